"""The typed chunks a provider yields, and the names of the events a stream carries.

Providers speak in chunks (`TextDelta`, `ReasoningDelta`, `ToolCallDelta`, `Usage`,
`Finish`); the generation turns them into stream events (`start`, `delta`, `reasoning`,
`tool_call`, `done`, `error`, DESIGN.md "Contract").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final, Literal

FinishReason = Literal["stop", "length", "cancelled", "tool_calls"]

START: Final = "start"
DELTA: Final = "delta"
REASONING: Final = "reasoning"
TOOL_CALL: Final = "tool_call"
DONE: Final = "done"
ERROR: Final = "error"
TERMINAL_EVENTS: Final = frozenset({DONE, ERROR})


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning, in order, before or between text deltas.
    `signature` (Anthropic) closes a thinking block; it is kept, never streamed."""

    text: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of tool call number `index`: its first piece carries `id` and `name`,
    every piece the next part of `arguments` (JSON text, as the model writes it)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reports them; None where it does not."""

    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """Why the provider stopped: `stop` (natural end), `length` (hit max_tokens) or
    `tool_calls` (it stopped to call tools)."""

    reason: Literal["stop", "length", "tool_calls"]


Chunk = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish


# --- stream events, as a client reads them (DESIGN.md "Contract") ----------------------


@dataclass(frozen=True, slots=True)
class Start:
    id: int
    stream_id: str
    conversation_id: str
    message_id: str
    model: str


@dataclass(frozen=True, slots=True)
class Delta:
    id: int
    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    id: int
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A piece of tool call `index` (`call_id` and `name` on its first piece)."""

    id: int
    index: int
    arguments: str = ""
    call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Done:
    id: int
    finish_reason: str
    length: int
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    reasoning_length: int = 0
    #: the assembled calls, `{"id", "name", "arguments"}` each
    tool_calls: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Error:
    id: int
    code: str
    message: str
    length: int = 0


StreamEvent = Start | Delta | Reasoning | ToolCall | Done | Error


def parse_event(name: str, id: str, data: str) -> StreamEvent | None:
    """A decoded SSE event as a typed stream event; None for a name it does not know
    (a newer server may add events: readers skip them)."""
    payload = json.loads(data)
    seq = int(id) if id.isdigit() else 0
    if name == DELTA:
        return Delta(seq, payload["text"])
    if name == START:
        return Start(seq, payload["stream_id"], payload["conversation_id"],
                     payload["message_id"], payload["model"])
    if name == REASONING:
        return Reasoning(seq, payload["text"])
    if name == TOOL_CALL:
        return ToolCall(seq, payload["index"], payload.get("arguments", ""),
                        payload.get("id"), payload.get("name"))
    if name == DONE:
        return Done(seq, payload["finish_reason"], payload.get("length", 0),
                    payload.get("usage") or {}, payload.get("timings") or {},
                    payload.get("reasoning_length", 0), payload.get("tool_calls") or [])
    if name == ERROR:
        return Error(seq, payload["code"], payload["message"], payload.get("length", 0))
    return None
