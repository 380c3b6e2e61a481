"""One answer as its reader knows it, and every decision about reading it, with no I/O.

The twins (`_sync`, `_async`) only send what `Reading.next_request()` gives, feed the
bytes they receive, and sleep as long as the reading says; whether to send again, when
to resume and from where, and whether the text adds up are all decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from tokenrelay.client._errors import StreamInterrupted, StreamMismatch, raise_for
from tokenrelay.events import (
    Delta, Done, Error, Reasoning, Start, StreamEvent, ToolCall, parse_event,
)
from tokenrelay.messages import AssistantToolCall
from tokenrelay.sse import Decoder

#: a proxy's answer while a backend restarts: worth another try
RETRY_STATUSES = frozenset({502, 503, 504})

#: builds the GET that resumes stream `stream_id` after event `last_id`
Resume = Callable[[str, int], httpx.Request]


class Cut(Exception):
    """The connection ended before the answer did."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often to try again, and how long to wait before try `attempt` (0-based)."""

    max_retries: int
    base: float

    def delay(self, attempt: int) -> float:
        return self.base * 2 ** attempt


def may_resend(request: httpx.Request, exc: httpx.TransportError) -> bool:
    """A GET, or a POST with an Idempotency-Key, is safe to send again whatever
    happened; another POST only if it never reached the server."""
    if request.method == "GET" or "idempotency-key" in request.headers:
        return True
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def is_event_stream(response: httpx.Response) -> bool:
    """False for a response whose body is not the stream: an error (read it for its
    reason), or a 204 (no events after the last one seen)."""
    return response.status_code < 400 and response.status_code != 204


class Reading:
    """What the reader of one answer knows across reconnects: the events so far (kept,
    so that a second iteration replays them), the last event id, and the end."""

    def __init__(self, backoff: Backoff, resume: Resume, start: httpx.Request | None = None,
                 stream_id: str | None = None, after: int = 0):
        self.backoff = backoff
        self._resume = resume
        self._start = start  # None once a response accepted it: from then on, resume
        self.stream_id = stream_id
        self.start_event: Start | None = None
        self.last_id = after
        self.from_start = after == 0
        self.events: list[StreamEvent] = []
        self.parts: list[str] = []
        self.length = 0
        self.reasoning_parts: list[str] = []
        #: tool calls by index: [id, name, argument pieces]
        self.calls: dict[int, list] = {}
        self.end: Done | Error | None = None
        self._cuts = 0  # consecutive cuts without an event in between
        self._decoder = Decoder()

    @property
    def conversation_id(self) -> str | None:
        return self.start_event.conversation_id if self.start_event else None

    def text(self) -> str:
        return "".join(self.parts)

    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    def tool_calls(self) -> list[AssistantToolCall]:
        """The calls read so far, assembled, in index order."""
        return [AssistantToolCall(call_id, name, "".join(pieces))
                for _, (call_id, name, pieces) in sorted(self.calls.items())]

    # --- what to send, and what its answer means -------------------------------------

    def next_request(self) -> httpx.Request:
        """The request that starts the answer until a response accepted it; then the
        GET that resumes it from after the last event seen."""
        if self._start is not None:
            return self._start
        if self.stream_id is None:  # only a start request comes without a stream id
            raise StreamInterrupted("no stream to resume", None, self.last_id)
        return self._resume(self.stream_id, self.last_id)

    def after_send_error(self, request: httpx.Request, exc: httpx.TransportError,
                         attempt: int) -> float:
        """`request` got no response: the seconds to wait before sending it again, or
        StreamInterrupted when it must not be sent again."""
        if attempt >= self.backoff.max_retries or not may_resend(request, exc):
            raise StreamInterrupted(f"no response: {exc}", self.stream_id, self.last_id) from exc
        return self.backoff.delay(attempt)

    def after_status(self, status: int, attempt: int) -> float | None:
        """The seconds to wait before sending the request again, or None to take this
        response as the answer."""
        if status in RETRY_STATUSES and attempt < self.backoff.max_retries:
            return self.backoff.delay(attempt)
        return None

    def opened(self, response: httpx.Response) -> None:
        """Take `response` as the stream from here on. An error (body read) raises
        APIError; a 204 says the stream ended with nothing after the last event seen,
        which no retry changes."""
        raise_for(response)
        if response.status_code == 204:
            raise StreamInterrupted("the stream has no events after the last one seen",
                                    self.stream_id, self.last_id)
        self.stream_id = self.stream_id or response.headers.get("x-stream-id")
        self._start = None
        self._decoder = Decoder()  # a new connection: no half-read event carries over

    def after_cut(self, exc: Exception) -> float:
        """The connection ended before the answer: the seconds to wait before resuming,
        or StreamInterrupted when it cannot be (no stream id, or the retries ran out)."""
        if self.stream_id is None or self._cuts >= self.backoff.max_retries:
            raise StreamInterrupted(f"could not resume: {exc}", self.stream_id,
                                    self.last_id) from exc
        delay = self.backoff.delay(self._cuts)
        self._cuts += 1
        return delay

    # --- what was received -------------------------------------------------------------

    def feed(self, chunk: bytes) -> Iterator[StreamEvent]:
        """The new events `chunk` completes, each kept before it is handed on."""
        for raw in self._decoder.feed(chunk):
            event = parse_event(raw.event, raw.id, raw.data)
            if event is None or (event.id and event.id <= self.last_id):
                continue  # an unknown event, or one already seen before a reconnect
            self._take(event)
            yield event

    def _take(self, event: StreamEvent) -> None:
        if isinstance(event, Delta):
            self.parts.append(event.text)
            self.length += len(event.text)
        elif isinstance(event, Reasoning):
            self.reasoning_parts.append(event.text)
        elif isinstance(event, ToolCall):
            call = self.calls.setdefault(event.index, [event.call_id or "", event.name or "", []])
            call[2].append(event.arguments)
        elif isinstance(event, Start):
            self.start_event = event
            self.stream_id = event.stream_id
        else:
            # DESIGN.md: `length` is the whole text in code points, which is what a
            # Python str counts. Only a reader from the first event can check it; the
            # end is not taken when it fails, so reading again fails again.
            if self.from_start and event.length != self.length:
                raise StreamMismatch(
                    f"received {self.length} characters, the server sent {event.length}")
            self.end = event
        self.last_id = event.id or self.last_id
        self.events.append(event)
        self._cuts = 0  # progress: the next cut gets all the retries again
