"""The values that cross the service's front: what a route asks for, what it gets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenrelay.messages import Message
from tokenrelay.providers import Tool, ToolChoice
from tokenrelay.store import DEFAULT_OWNER
from tokenrelay.streams import Tap

__all__ = ["ChatInput", "Reading", "StartedStream"]


@dataclass(frozen=True, slots=True)
class ChatInput:
    """A request to answer: new `messages`, appended to the stored history when
    `conversation_id` names an existing conversation."""

    messages: Sequence[Message]
    model: str | None = None
    conversation_id: str | None = None
    #: a new conversation's name chosen by the client (the AI SDK's chat id), by
    #: which `ChatService.chat` finds it again
    chat_id: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    owner: str = DEFAULT_OWNER
    idempotency_key: str | None = None
    #: False: store nothing of this exchange (the client opted out)
    persist: bool = True
    #: functions the model may call, and how (OpenAI's semantics)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    #: a system message that leads what the model sees for this answer only, never
    #: stored (OpenAI's Responses `instructions`: not carried over to the next turn)
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class StartedStream:
    stream_id: str
    #: None when an Idempotency-Key repeat returned an existing stream
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """A reader of one stream: `chunks`, the encoded events after the resume point,
    until the stream's end; `prelude` (the SSE `retry:` field) goes in the first
    event's block."""

    chunks: AsyncIterator[bytes]
    prelude: bytes = b""
    #: the reader's tap into the stream log, for writing through (streams.Tap): bound
    #: by a body writer that moves the chunks to the socket unchanged
    tap: Tap | None = None
