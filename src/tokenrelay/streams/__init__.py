"""The stream log: per stream, an append-only sequence of encoded events.

The generation appends; every HTTP response is a reader from some sequence number on
(DESIGN.md, "The data flow"). Sequence numbers start at 1 and are the SSE `id`s, so a
reader resumes with `after=<Last-Event-ID>`. A `done` or `error` event ends the stream;
after that it is kept for the retention time so that late readers can still replay it.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Orphan", "StreamLog", "StreamInfo", "StreamNotFound", "StreamExists", "Tap"]


class StreamNotFound(LookupError):
    """No such stream, or it ended longer ago than the retention time."""


class StreamExists(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Orphan:
    """A stream ended for its lost producer: its `start` data, and the text and
    reasoning it had."""

    start: dict[str, Any]
    text: str
    reasoning: str = ""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    last_seq: int
    finished: bool
    readers: int
    #: monotonic time since which the stream has had no reader (None while it has one)
    unread_since: float | None
    #: who started it (an API key's owner); only they may read or cancel it
    owner: str | None = None


class Tap:
    """A reader's connection, for writing through (issue 16): while the reader is caught
    up, the task that appends an event writes it to the connection at once, so a token
    costs one task step (the generation's) instead of two (the generation's, then the
    reader's wake-up to write it).

    The log hands a reader's tap to nothing until whoever writes the body binds it
    (`bind`); an unbound tap, or a log that does not write through, leaves the reader
    to write everything itself. `write(chunk)` returns False when the connection could
    not take the chunk at once (its buffer is full): the chunk is then pending, and the
    reader finishes it with `settle()` before it writes anything else, so order is
    kept and what piles up meanwhile goes out in one write."""

    __slots__ = ("write", "settle")

    def __init__(self) -> None:
        self.write: Callable[[bytes], bool] | None = None
        self.settle: Callable[[], Awaitable[None]] | None = None

    def bind(self, write: Callable[[bytes], bool], settle: Callable[[], Awaitable[None]]) -> None:
        self.write, self.settle = write, settle


class StreamLog(abc.ABC):
    """The contract every stream log keeps (the service calls only these). Each
    implementation says how, in one process (memory.py) or across many (redis/)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and start background work."""

    @abc.abstractmethod
    async def create(self, stream_id: str, owner: str | None = None) -> None:
        """Start an empty stream for `owner`. Raises StreamExists if the id is taken."""

    @abc.abstractmethod
    async def append(self, stream_id: str, event: str, data: dict[str, Any]) -> int:
        """Encode the event once and append it; returns its sequence number.
        A terminal event (`done`, `error`) finishes the stream."""

    @abc.abstractmethod
    def read(self, stream_id: str, after: int = 0, tap: Tap | None = None) -> AsyncIterator[bytes]:
        """Yield the encoded events after `after`, several joined into one chunk when
        the reader is behind, until the stream's terminal event. When the log's
        heartbeat time passes with nothing to send, yield an SSE comment instead.
        With a bound `tap`, events that come while the reader is caught up may be
        written through it instead of yielded (see Tap). Raises StreamNotFound
        (before the first chunk)."""

    @abc.abstractmethod
    async def info(self, stream_id: str) -> StreamInfo:
        """Raises StreamNotFound."""

    @abc.abstractmethod
    async def request_cancel(self, stream_id: str) -> bool:
        """Ask the producer to stop. False if the stream has already finished.
        Raises StreamNotFound."""

    @abc.abstractmethod
    def on_cancel(self, stream_id: str, callback: Callable[[], None]) -> None:
        """Register the producer's callback for `request_cancel` (from any reader)."""

    @abc.abstractmethod
    async def producer_alive(self, stream_id: str) -> bool:
        """Whether some process is still generating this stream (False if unknown)."""

    @abc.abstractmethod
    async def has_ended(self, stream_id: str) -> bool:
        """Whether the stream holds its terminal event (False if unknown)."""

    @abc.abstractmethod
    async def end_orphan(self, stream_id: str, code: str, message: str, *,
                         known: int = 0) -> Orphan | None:
        """If the stream's producer is gone, end it with an `error` event (if nobody
        has) and return what it had, for the store; None while it has a producer or
        once it has ended. `known` is the last sequence number the caller has seen."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release resources (background tasks, connections)."""
