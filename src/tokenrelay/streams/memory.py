"""The in-process stream log: the default when one server process is enough."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from tokenrelay import sse
from tokenrelay.events import TERMINAL_EVENTS
from tokenrelay.streams import (
    Orphan, StreamExists, StreamInfo, StreamLog, StreamNotFound, Tap,
)

#: why a waiting reader wakes: new events; a heartbeat is due; its tap left a write
#: pending (the connection's buffer was full: the reader finishes it, see Tap)
_EVENTS, _PING, _PENDING = 0, 1, 2


class _Wait:
    """A caught-up reader waiting for the next event. `since`: when it last had
    something to send (for the heartbeat). `write`: its tap's, if it writes through;
    `seq` is then the last sequence number written to its connection."""

    __slots__ = ("future", "since", "write", "seq")

    def __init__(self, future: asyncio.Future[int], write: Callable[[bytes], bool] | None,
                 seq: int) -> None:
        self.future = future
        self.since = time.monotonic()
        self.write = write
        self.seq = seq


class _Stream:
    __slots__ = ("data", "ends", "count", "finished", "waiters", "delivering", "readers",
                 "unread_since", "expires", "cancel", "owner")

    def __init__(self, owner: str | None = None) -> None:
        self.owner = owner
        #: the encoded events back to back, and where each ends (event `seq` is
        #: data[ends[seq - 2]:ends[seq - 1]]): about 50 bytes a token instead of the 90
        #: of a bytes object each in a list (issue 16: a held stream's events were the
        #: biggest part of its memory); a bytearray while live, bytes once finished
        self.data: bytearray | bytes = bytearray()
        self.ends = array("Q")
        self.count = 0
        self.finished = False
        #: readers waiting for the next event
        self.waiters: list[_Wait] = []
        #: a delivery to them is scheduled (see deliver)
        self.delivering = False
        self.readers = 0
        self.unread_since: float | None = time.monotonic()
        self.expires = float("inf")
        self.cancel: Callable[[], None] | None = None

    def add(self, encoded: bytes) -> None:
        self.data += encoded  # type: ignore[operator] (live: a bytearray)
        self.ends.append(len(self.data))
        self.count += 1

    def compact(self) -> None:
        self.data = bytes(self.data)

    def since(self, position: int) -> bytes:
        """The events after the first `position`, joined."""
        return bytes(memoryview(self.data)[self.ends[position - 1] if position else 0:])

    def event(self, seq: int) -> bytes:
        return bytes(memoryview(self.data)[self.ends[seq - 2] if seq > 1 else 0:self.ends[seq - 1]])

    def deliver(self) -> None:
        """What was appended since the last delivery, to the waiting readers: written
        through the tap of each that has one, all of it in one chunk (it goes on
        waiting, unless that was the end or the write is left pending); the others
        wake to read it. Run once per loop pass that appended (`_add` schedules it):
        at a model's pace that is each event as it comes, in a burst one write for
        all of the burst (issue 16)."""
        self.delivering = False
        count, woken = self.count, False
        for wait in self.waiters:
            future = wait.future
            if future.done():  # its reader was cancelled
                woken = True
                continue
            if wait.seq >= count:  # it began to wait after the append
                continue
            write = wait.write
            if write is None:
                future.set_result(_EVENTS)
                woken = True
                continue
            try:
                written = write(self.since(wait.seq))
            except Exception as exc:  # the connection's, for its reader to raise
                future.set_exception(exc)
                woken = True
                continue
            wait.seq = count
            if not written:
                future.set_result(_PENDING)
                woken = True
            elif self.finished:
                future.set_result(_EVENTS)
                woken = True
            else:
                wait.since = time.monotonic()
        if woken:  # the common case, one reader writing through, keeps its list
            self.waiters = [wait for wait in self.waiters if not wait.future.done()]

    def wake(self) -> None:
        for wait in self.waiters:
            if not wait.future.done():
                wait.future.set_result(_EVENTS)
        self.waiters.clear()

    def ping_idle(self, idle_since: float) -> None:
        """Wake the readers that have waited since before `idle_since` with a ping."""
        keep = []
        for wait in self.waiters:
            if wait.since <= idle_since:
                if not wait.future.done():
                    wait.future.set_result(_PING)
            else:
                keep.append(wait)
        self.waiters = keep


class MemoryStreamLog(StreamLog):
    """Streams in a dict; finished ones expire `retention` seconds after their end.

    One housekeeping task pings idle readers and drops expired streams, so a reader's
    wait costs one future, not a timer per wait (it waits once per batch of events).
    """

    def __init__(self, retention: float = 600.0, heartbeat: float = 15.0):
        self.retention = retention
        self.heartbeat = heartbeat
        self._streams: dict[str, _Stream] = {}
        self._housekeeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Nothing to connect: the housekeeper starts with the first stream."""

    def _get(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.expires <= time.monotonic():
            raise StreamNotFound(stream_id)
        return stream

    async def create(self, stream_id: str, owner: str | None = None) -> None:
        if stream_id in self._streams:
            raise StreamExists(stream_id)
        self._streams[stream_id] = _Stream(owner)
        if self._housekeeper is None:
            self._housekeeper = asyncio.create_task(self._housekeeping())

    async def append(self, stream_id: str, event: str, data: dict[str, Any]) -> int:
        stream = self._streams.get(stream_id)  # a live stream never expires
        if stream is None:
            raise StreamNotFound(stream_id)
        if stream.finished:
            raise ValueError(f"stream {stream_id} has already finished")
        seq = stream.count + 1
        self._add(stream, sse.encode_json(orjson.dumps(data), event, seq), event in TERMINAL_EVENTS)
        return seq

    def encoded(self, stream_id: str, seq: int) -> bytes:
        """The bytes of event `seq`, as every reader gets them."""
        return self._get(stream_id).event(seq)

    def add_encoded(self, stream_id: str, encoded: bytes, terminal: bool) -> int:
        """Append an event encoded elsewhere (a mirror of another process's stream)."""
        stream = self._get(stream_id)
        self._add(stream, encoded, terminal)
        return stream.count

    def _add(self, stream: _Stream, encoded: bytes, terminal: bool) -> None:
        stream.add(encoded)
        if terminal:
            stream.compact()
            stream.finished = True
            stream.cancel = None
            stream.expires = time.monotonic() + self.retention
        if stream.waiters and not stream.delivering:
            stream.delivering = True
            asyncio.get_running_loop().call_soon(stream.deliver)

    async def read(self, stream_id: str, after: int = 0,
                   tap: Tap | None = None) -> AsyncIterator[bytes]:
        stream = self._get(stream_id)
        stream.readers += 1
        stream.unread_since = None
        loop = asyncio.get_running_loop()
        try:
            position = max(after, 0)
            while True:
                count = stream.count
                if count > position:
                    # A reader that is behind gets all its pending events in one chunk.
                    chunk = stream.since(position)
                    position = count
                    yield chunk
                    continue
                if stream.finished:
                    return
                wait = _Wait(loop.create_future(), tap.write if tap is not None else None,
                             position)
                stream.waiters.append(wait)
                woken = await wait.future
                position = wait.seq  # past what its tap wrote
                if woken == _PENDING:
                    await tap.settle()  # type: ignore[union-attr] (a tap's write left it)
                elif woken == _PING:
                    yield sse.PING
        finally:
            stream.readers -= 1
            if stream.readers == 0:
                stream.unread_since = time.monotonic()

    async def info(self, stream_id: str) -> StreamInfo:
        stream = self._get(stream_id)
        return StreamInfo(
            last_seq=stream.count,
            finished=stream.finished,
            readers=stream.readers,
            unread_since=stream.unread_since,
            owner=stream.owner,
        )

    async def request_cancel(self, stream_id: str) -> bool:
        stream = self._get(stream_id)
        if stream.finished:
            return False
        if stream.cancel is not None:
            stream.cancel()
        return True

    def on_cancel(self, stream_id: str, callback: Callable[[], None]) -> None:
        self._get(stream_id).cancel = callback

    async def producer_alive(self, stream_id: str) -> bool:
        """In one process the generation lives here, so an unfinished stream this log
        does not know has no producer."""
        try:
            return not self._get(stream_id).finished
        except StreamNotFound:
            return False

    async def has_ended(self, stream_id: str) -> bool:
        try:
            return self._get(stream_id).finished
        except StreamNotFound:
            return False

    async def end_orphan(self, stream_id: str, code: str, message: str, *,
                         known: int = 0) -> Orphan | None:
        """Nothing to end: in one process a stream dies with its producer, and the
        store's last write is all that is left of it (the service reaps it)."""
        return None

    async def _housekeeping(self) -> None:
        interval = max(0.02, min(self.heartbeat / 4, self.retention / 4, 1.0))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            expired = []
            for stream_id, stream in self._streams.items():
                if stream.expires <= now:
                    expired.append(stream_id)
                elif stream.waiters:
                    stream.ping_idle(now - self.heartbeat)
            for stream_id in expired:
                del self._streams[stream_id]

    async def close(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            self._housekeeper = None
        for stream in self._streams.values():
            stream.wake()
