"""The typed chunks a provider yields, and the names of the events a stream carries.

Providers speak in chunks (`TextDelta`, `Usage`, `Finish`); the generation turns them
into stream events (`start`, `delta`, `done`, `error`, DESIGN.md "Contract").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

FinishReason = Literal["stop", "length", "cancelled"]

START: Final = "start"
DELTA: Final = "delta"
DONE: Final = "done"
ERROR: Final = "error"
TERMINAL_EVENTS: Final = frozenset({DONE, ERROR})


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reports them; None where it does not."""

    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """Why the provider stopped: `stop` (natural end) or `length` (hit max_tokens)."""

    reason: Literal["stop", "length"]


Chunk = TextDelta | Usage | Finish
