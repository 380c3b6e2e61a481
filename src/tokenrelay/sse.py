"""Server-Sent Events: a pure encoder and an incremental decoder.

Both follow the WHATWG HTML Standard, §9.2 "Server-sent events" (the event stream
format, and "interpreting an event stream"). Neither does any I/O.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Event", "Decoder", "encode", "encode_json", "comment", "retry", "PING"]

# §9.2.5: lines end with CRLF, LF or CR. A data value may contain any of them, so the
# encoder splits on all three and writes one `data:` line per line.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: the heartbeat: a comment line alone, with no blank line after it. A blank line after
#: a comment dispatches nothing by the spec, but some parsers (httpx-sse,
#: @microsoft/fetch-event-source) hand on an empty event for it (issue 15).
PING = b": ping\n"


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event, as an EventSource would hand it to a listener."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


def encode(data: str, *, event: str | None = None, id: str | int | None = None) -> bytes:
    """Encode one event to bytes. `data` may hold any text, line breaks included.
    `id` is the last field: a reader that records an id as soon as it reads its line
    (fetch-event-source) must not count an event cut off after it (issue 15)."""
    parts: list[str] = []
    if event is not None:
        if _LINE_BREAK.search(event):
            raise ValueError("an SSE event name may not contain CR or LF")
        parts.append(f"event: {event}\n")
    for line in _LINE_BREAK.split(data):
        parts.append(f"data: {line}\n")
    if id is not None:
        id = str(id)
        if _LINE_BREAK.search(id) or "\0" in id:
            # §9.2.6: an id with NUL is ignored by the reader; a line break would end it.
            raise ValueError("an SSE id may not contain CR, LF or NUL")
        parts.append(f"id: {id}\n")
    parts.append("\n")
    return "".join(parts).encode()


def comment(text: str = "") -> bytes:
    """Comment lines; readers ignore them, proxies see traffic (used as a heartbeat).
    No blank line follows (see PING)."""
    return b"".join(b": " + line.encode() + b"\n" for line in _LINE_BREAK.split(text))


def encode_json(data: bytes, event: str, id: int) -> bytes:
    """The fast path for stream events: `data` is compact JSON, which holds no raw CR
    or LF (JSON escapes them), so it is a single `data:` line; `id` last (see encode)."""
    return b"event: %s\ndata: %s\nid: %d\n\n" % (event.encode(), data, id)


def retry(ms: int) -> bytes:
    """The `retry:` field that sets the client's reconnection time, to put in the first
    event's block (a block of its own is an empty event to some parsers: issue 15)."""
    if ms < 0:
        raise ValueError("retry must be a non-negative number of milliseconds")
    return b"retry: %d\n" % ms


class Decoder:
    """Turn a byte stream, fed in chunks split anywhere, into `Event`s.

    Keeps the state the spec gives an EventSource: the data and event-type buffers,
    the last event ID (which persists across events), and the reconnection time.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._first = True
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        self._id = ""  # §9.2.6 "last event ID buffer"; see _dispatch
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Feed the next bytes; return the events they complete, in order."""
        return list(self._lines(self._utf8.decode(chunk)))

    def _lines(self, text: str) -> Iterator[Event]:
        if self._first and text:
            # §9.2.6: one leading U+FEFF BOM is ignored.
            self._first = False
            if text.startswith("\ufeff"):
                text = text[1:]
        if not text:
            return
        if self._pending_cr and text.startswith("\n"):
            # The CR of a CRLF pair ended the previous chunk; its LF is no new line.
            text = text[1:]
        self._pending_cr = False
        buffer = self._buffer + text
        start = 0
        for match in _LINE_BREAK.finditer(buffer):
            if match.group() == "\r" and match.end() == len(buffer):
                self._pending_cr = True  # it may be the first half of a CRLF
            event = self._line(buffer[start : match.start()])
            if event is not None:
                yield event
            start = match.end()
        self._buffer = buffer[start:]

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        # §9.2.6 "dispatch the event", step 1: the last event ID takes the buffer's value
        # only here, so an event cut off before its blank line never advances the ID a
        # client resumes from. No data means no event, but the type resets.
        self.last_event_id = self._id
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Event(
            data="\n".join(data),
            event=event or "message",
            id=self.last_event_id,
            retry=self.retry,
        )
