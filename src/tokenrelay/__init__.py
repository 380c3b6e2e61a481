"""tokenrelay: stream LLM chat answers over Server-Sent Events.

The client side (`Client`, `AsyncClient`, the events, the SSE decoder) imports with
the plain install; the provider API (`Provider`, `ChatRequest`, `ProviderError`) needs
the server's extra and is imported on first use, so `from tokenrelay import Client`
never loads pydantic, FastAPI or the model runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from tokenrelay.events import (
    Delta, Done, Error, Finish, Reasoning, Start, StreamEvent, TextDelta, ToolCall, Usage,
)
from tokenrelay.messages import AssistantToolCall, Message
from tokenrelay.sse import Decoder, Event

if TYPE_CHECKING:
    from tokenrelay.providers import ChatRequest, Provider, ProviderError

#: names served from the server side, imported when first asked for
_SERVER_SIDE = {"ChatRequest": "tokenrelay.providers", "Provider": "tokenrelay.providers",
                "ProviderError": "tokenrelay.providers"}

__all__ = [
    "APIError",
    "AssistantToolCall",
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
    "Reasoning",
    "Start",
    "StreamEvent",
    "StreamFailed",
    "StreamInterrupted",
    "StreamMismatch",
    "TextDelta",
    "ToolCall",
    "Usage",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _SERVER_SIDE.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenrelay' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
