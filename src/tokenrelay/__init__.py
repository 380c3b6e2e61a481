"""tokenrelay: stream LLM chat answers over Server-Sent Events."""

from tokenrelay.events import Finish, TextDelta, Usage
from tokenrelay.providers import ChatRequest, Message, Provider, ProviderError
from tokenrelay.sse import Decoder, Event

__all__ = [
    "ChatRequest",
    "Decoder",
    "Event",
    "Finish",
    "Message",
    "Provider",
    "ProviderError",
    "TextDelta",
    "Usage",
]

__version__ = "0.1.0"
