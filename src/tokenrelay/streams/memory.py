"""The in-process stream log: the default when one server process is enough."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from tokenrelay import sse
from tokenrelay.events import TERMINAL_EVENTS
from tokenrelay.streams import StreamExists, StreamInfo, StreamLog, StreamNotFound


class _Stream:
    __slots__ = ("events", "finished", "waiters", "readers", "unread_since", "expires", "cancel")

    def __init__(self) -> None:
        self.events: list[bytes] = []  # events[i] has sequence number i + 1
        self.finished = False
        self.waiters: list[asyncio.Future[None]] = []
        self.readers = 0
        self.unread_since: float | None = time.monotonic()
        self.expires = float("inf")
        self.cancel: Callable[[], None] | None = None

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


class MemoryStreamLog(StreamLog):
    """Streams in a dict; finished ones expire `retention` seconds after their end."""

    def __init__(self, retention: float = 600.0):
        self.retention = retention
        self._streams: dict[str, _Stream] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def _get(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.expires <= time.monotonic():
            raise StreamNotFound(stream_id)
        return stream

    async def create(self, stream_id: str) -> None:
        if stream_id in self._streams:
            raise StreamExists(stream_id)
        self._streams[stream_id] = _Stream()
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())

    async def append(self, stream_id: str, event: str, data: dict[str, Any]) -> int:
        stream = self._get(stream_id)
        if stream.finished:
            raise ValueError(f"stream {stream_id} has already finished")
        seq = len(stream.events) + 1
        stream.events.append(sse.encode_json(orjson.dumps(data), event, seq))
        if event in TERMINAL_EVENTS:
            stream.finished = True
            stream.cancel = None
            stream.expires = time.monotonic() + self.retention
        stream.wake()
        return seq

    async def read(
        self, stream_id: str, after: int = 0, *, heartbeat: float | None = None
    ) -> AsyncIterator[bytes]:
        stream = self._get(stream_id)
        stream.readers += 1
        stream.unread_since = None
        loop = asyncio.get_running_loop()
        try:
            position = max(after, 0)
            while True:
                events = stream.events
                if position < len(events):
                    # A reader that is behind gets all its pending events in one chunk.
                    chunk = b"".join(events[position:]) if len(events) - position > 1 else events[position]
                    position = len(events)
                    yield chunk
                    continue
                if stream.finished:
                    return
                waiter = loop.create_future()
                stream.waiters.append(waiter)
                try:
                    async with asyncio.timeout(heartbeat):
                        await waiter
                except TimeoutError:
                    yield sse.PING
        finally:
            stream.readers -= 1
            if stream.readers == 0:
                stream.unread_since = time.monotonic()

    async def info(self, stream_id: str) -> StreamInfo:
        stream = self._get(stream_id)
        return StreamInfo(
            last_seq=len(stream.events),
            finished=stream.finished,
            readers=stream.readers,
            unread_since=stream.unread_since,
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

    async def _sweep(self) -> None:
        interval = min(max(self.retention / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for stream_id in [k for k, s in self._streams.items() if s.expires <= now]:
                del self._streams[stream_id]

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for stream in self._streams.values():
            stream.wake()
