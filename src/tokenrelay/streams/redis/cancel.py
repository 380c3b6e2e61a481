"""Cancel across processes: a request anywhere reaches the stream's producer.

A request for a stream generated elsewhere travels by pub/sub, for speed, and leaves
a flag key too, for a producer whose listener was reconnecting (its lease renewal
checks the flags, producer.py).
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tokenrelay.streams.memory import MemoryStreamLog
from tokenrelay.streams.redis import entries, keys
from tokenrelay.streams.redis.outage import Outage
from tokenrelay.streams.redis.producer import Producer

log = logging.getLogger("tokenrelay.streams.redis")

#: how long the listener waits before it subscribes again after a failure
_RESUBSCRIBE_AFTER = 1.0


class Cancel:
    def __init__(self, redis: aioredis.Redis, local: MemoryStreamLog, producer: Producer,
                 outage: Outage, *, lease: float) -> None:
        self._redis, self._local, self._producer, self._outage = redis, local, producer, outage
        self._lease = lease
        self._listener: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def request(self, stream_id: str) -> bool:
        """Ask the producer to stop; False if the stream has finished. Raises
        StreamNotFound."""
        if stream_id in self._producer:
            return await self._local.request_cancel(stream_id)
        if (await entries.stored_info(self._redis, stream_id)).finished:
            return False
        # The flag outlives two lease renewals, so the producer sees it if it lives.
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(keys.cancel(stream_id), 1, ex=keys.seconds(self._lease * 2))
        pipe.publish(keys.CANCEL_CHANNEL, stream_id)
        await pipe.execute()
        return True

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(keys.CANCEL_CHANNEL)
                    async for message in pubsub.listen():
                        if message["type"] != "message":
                            continue
                        stream_id = message["data"].decode()
                        if stream_id in self._producer:
                            await self._local.request_cancel(stream_id)
            except RedisError as exc:
                log.warning("cancel listener lost Redis (%s); reconnecting", exc)
                self._outage.noticed()
                await asyncio.sleep(_RESUBSCRIBE_AFTER)
            except Exception:  # never let one bad message end cross-process cancel
                log.exception("cancel listener failed; restarting it")
                await asyncio.sleep(_RESUBSCRIBE_AFTER)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
