"""tokenrelay: stream LLM chat answers over Server-Sent Events."""

from tokenrelay.client import (
    APIError,
    AsyncChatStream,
    AsyncClient,
    ChatStream,
    Client,
    StreamFailed,
    StreamInterrupted,
    StreamMismatch,
)
from tokenrelay.events import Delta, Done, Error, Finish, Start, StreamEvent, TextDelta, Usage
from tokenrelay.providers import ChatRequest, Message, Provider, ProviderError
from tokenrelay.sse import Decoder, Event

__all__ = [
    "APIError",
    "AsyncChatStream",
    "AsyncClient",
    "ChatRequest",
    "ChatStream",
    "Client",
    "Decoder",
    "Delta",
    "Done",
    "Error",
    "Event",
    "Finish",
    "Message",
    "Provider",
    "ProviderError",
    "Start",
    "StreamEvent",
    "StreamFailed",
    "StreamInterrupted",
    "StreamMismatch",
    "TextDelta",
    "Usage",
]

__version__ = "0.1.0"
