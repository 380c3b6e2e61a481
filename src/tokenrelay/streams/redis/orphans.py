"""Orphans: streams whose producing process is gone (crash, kill, lost host).

The producer holds a lease key while it lives (producer.py). A stream without one and
without a terminal event is an orphan: some process ends it with an `error` event
(`producer_lost`), once across all processes (a `SET NX` claim decides who writes
it), so that no reader waits forever, and the store marks the answer interrupted with
the text from the stream's summary (summary.py).
"""

from __future__ import annotations

import logging

import orjson
import redis.asyncio as aioredis

from tokenrelay import sse
from tokenrelay.events import ERROR
from tokenrelay.streams import Orphan
from tokenrelay.streams.redis import entries, keys, summary
from tokenrelay.streams.redis.outage import Outage
from tokenrelay.streams.redis.producer import Producer

log = logging.getLogger("tokenrelay.streams.redis")


class Orphans:
    def __init__(self, redis: aioredis.Redis, producer: Producer, outage: Outage, *,
                 owner: str, retention: float) -> None:
        self._redis, self._producer, self._outage = redis, producer, outage
        self._owner, self._retention = owner, retention

    async def producer_alive(self, stream_id: str) -> bool:
        if stream_id in self._producer:
            return True
        if self._outage.recent:
            return True  # Redis was just away: leases may not be renewed yet
        return bool(await self._redis.exists(keys.lease(stream_id)))

    async def end(self, stream_id: str, code: str, message: str, *,
                  known: int = 0) -> Orphan | None:
        """If the producer is gone: end the stream with an `error` event (once across
        all processes) and return what it had. `known` is the last sequence number the
        caller has seen (Redis may have lost some in a restart)."""
        if await self.producer_alive(stream_id):
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            last, stored, lost = await (pipe.xrevrange(keys.events(stream_id), count=1)
                                        .hgetall(keys.summary(stream_id))
                                        .exists(keys.lost(stream_id)).execute())
        orphan = summary.read(stored)
        if last and entries.is_terminal(last[0][1]):
            # Ended: normally (its producer stores it), or by another process for
            # its lost producer (then the store still needs the news: say so).
            return orphan if lost else None
        if await self._redis.set(keys.lost(stream_id), self._owner, nx=True,
                                 ex=keys.seconds(self._retention)):
            seq = max(entries.seq(last[0][0]) if last else 0, known) + 1
            await self._write_error(stream_id, seq, code, message, len(orphan.text))
        return orphan

    async def _write_error(self, stream_id: str, seq: int, code: str, message: str,
                           length: int) -> None:
        data = {"code": code, "message": message, "length": length}
        encoded = sse.encode_json(orjson.dumps(data), ERROR, seq)
        retention = keys.seconds(self._retention)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(keys.events(stream_id),
                      entries.fields([encoded], seq, terminal=True, length=length),
                      id=f"0-{seq}")
            # The stream's keys expire together, as when its producer ends it.
            pipe.expire(keys.events(stream_id), retention)
            pipe.expire(keys.summary(stream_id), retention)
            await pipe.execute()
        log.warning("stream %s lost its producer; ended it after event %d", stream_id, seq - 1)
