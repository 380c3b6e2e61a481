"""The stream log on Redis Streams, for many processes on many hosts (`--redis URL`).

A composition of its parts, one module each:

- producer.py: the streams this process generates, kept in the in-process log for its
  own readers and sent to Redis in pipelined batches (entries.py: one `XADD` a batch;
  summary.py: the answer so far, in a hash); resync after a Redis restart; leases.
- mirror.py: streams generated elsewhere, tailed with `XREAD BLOCK` into the local log
  for readers here; a tail notices when their producer is gone.
- orphans.py: ending a stream whose producer is gone, once (a `SET NX` claim), with
  the text from its summary for the store.
- cancel.py: a cancel request from any process reaches the producer (pub/sub).
- keys.py: every Redis key name; outage.py: the doubt a Redis failure leaves.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tokenrelay.errors import TokenrelayError
from tokenrelay.streams import Orphan, StreamInfo, StreamLog, StreamNotFound, Tap
from tokenrelay.streams.memory import MemoryStreamLog
from tokenrelay.streams.redis import entries
from tokenrelay.streams.redis.cancel import Cancel
from tokenrelay.streams.redis.mirror import Mirror
from tokenrelay.streams.redis.orphans import Orphans
from tokenrelay.streams.redis.outage import Outage
from tokenrelay.streams.redis.producer import Producer

__all__ = ["RedisStreamLog"]


class RedisStreamLog(StreamLog):
    def __init__(self, url: str, *, retention: float = 600.0, heartbeat: float = 15.0,
                 lease: float = 6.0):
        self.retention, self.lease = retention, lease
        self._redis = aioredis.from_url(url, max_connections=None)
        self._local = MemoryStreamLog(retention=retention, heartbeat=heartbeat)
        outage = Outage(lease)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        self._producer = Producer(self._redis, self._local, outage, owner=owner,
                                  retention=retention, lease=lease)
        self._orphans = Orphans(self._redis, self._producer, outage, owner=owner,
                                retention=retention)
        self._mirror = Mirror(self._redis, self._local, self._orphans, outage)
        self._cancel = Cancel(self._redis, self._local, self._producer, outage, lease=lease)

    async def start(self) -> None:
        """Check Redis answers; start the flusher, the lease renewer and the cancel
        listener."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise TokenrelayError(f"Cannot reach Redis: {exc}. Start redis-server, or drop "
                                  "--redis to keep streams in this process.",
                                  code="redis_unavailable", status=503) from exc
        self._producer.start()
        self._cancel.start()

    async def create(self, stream_id: str, owner: str | None = None) -> None:
        await self._producer.create(stream_id, owner)

    async def append(self, stream_id: str, event: str, data: dict[str, Any]) -> int:
        return await self._producer.append(stream_id, event, data)

    async def read(self, stream_id: str, after: int = 0,
                   tap: Tap | None = None) -> AsyncIterator[bytes]:
        if stream_id not in self._producer:
            await self._mirror.open(stream_id)
        async for chunk in self._local.read(stream_id, after, tap):
            yield chunk

    async def info(self, stream_id: str) -> StreamInfo:
        if stream_id in self._producer:
            return await self._producer.info(stream_id)
        return await entries.stored_info(self._redis, stream_id)

    async def request_cancel(self, stream_id: str) -> bool:
        return await self._cancel.request(stream_id)

    def on_cancel(self, stream_id: str, callback: Callable[[], None]) -> None:
        self._local.on_cancel(stream_id, callback)

    async def producer_alive(self, stream_id: str) -> bool:
        """Whether this or another process holds the stream's lease (or Redis was
        away too recently to tell)."""
        return await self._orphans.producer_alive(stream_id)

    async def has_ended(self, stream_id: str) -> bool:
        try:
            return (await self.info(stream_id)).finished
        except StreamNotFound:
            return False

    async def end_orphan(self, stream_id: str, code: str, message: str, *,
                         known: int = 0) -> Orphan | None:
        return await self._orphans.end(stream_id, code, message, known=known)

    async def close(self) -> None:
        await self._producer.drain()  # let the last events reach Redis
        self._producer.stop()
        self._cancel.stop()
        self._mirror.stop()
        await self._local.close()
        await self._redis.aclose()
