"""The producing side: this process's streams, sent to Redis as they are written.

Each stream this process generates stays in the in-process log too, so its own readers
never wait on Redis. One flusher sends what Redis lacks of every stream in one
pipeline per round trip, events (entries.py) and summary (summary.py) together, so
events that arrive while one is in flight go out together in the next (many streams
at a few tokens/s each cost one round trip, not one each).

Redis restart: every event stays in memory until Redis has it; after a failed write
the producer asks Redis what it really has of each stream (nothing, after a restart
without persistence) and re-sends from there. A renewer keeps each live stream's
lease, which tells other processes the producer lives (orphans.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError

from tokenrelay import metrics
from tokenrelay.events import TERMINAL_EVENTS
from tokenrelay.streams import StreamExists, StreamInfo
from tokenrelay.streams.memory import MemoryStreamLog
from tokenrelay.streams.redis import entries, keys, summary
from tokenrelay.streams.redis.outage import Outage
from tokenrelay.streams.redis.summary import Summary

log = logging.getLogger("tokenrelay.streams.redis")

#: cap on a stream's length in Redis (a safety net; answers are far shorter)
MAX_EVENTS = 1_000_000


class _Producing:
    """A stream this process generates: what Redis has of it, and what it lacks."""

    __slots__ = ("written", "total", "finished", "summary")

    def __init__(self) -> None:
        self.written = 0  # events Redis is known to have
        self.total = 0  # events appended locally
        self.finished = False
        self.summary = Summary()

    @property
    def behind(self) -> bool:
        return self.written < self.total or self.summary.behind


class Producer:
    def __init__(self, redis: aioredis.Redis, local: MemoryStreamLog, outage: Outage, *,
                 owner: str, retention: float, lease: float) -> None:
        self._redis, self._local, self._outage = redis, local, outage
        self._owner, self._retention, self._lease = owner, retention, lease
        self._producing: dict[str, _Producing] = {}
        #: streams with something Redis lacks; the flusher sends them all per round trip
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._producing

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._flush()),
                       asyncio.create_task(self._renew_leases())]

    async def create(self, stream_id: str, owner: str | None) -> None:
        started = time.perf_counter()
        claimed = await self._redis.set(keys.lease(stream_id), self._owner,
                                        ex=keys.seconds(self._lease), nx=True)
        if not claimed:
            raise StreamExists(stream_id)
        if owner is not None:
            # As long as the events: LIVE_TTL while live (with slack), `retention` after.
            await self._redis.set(keys.owner(stream_id), owner,
                                  ex=keys.LIVE_TTL + keys.seconds(self._retention))
        metrics.redis_round_trip("create", started)  # on the way to the first token
        await self._local.create(stream_id, owner)
        self._producing[stream_id] = _Producing()

    async def append(self, stream_id: str, event: str, data: dict[str, Any]) -> int:
        seq = await self._local.append(stream_id, event, data)
        producing = self._producing[stream_id]
        producing.total = seq
        producing.finished = event in TERMINAL_EVENTS
        producing.summary.add(seq, event, data)
        self._dirty.add(stream_id)
        self._wake.set()
        return seq

    async def info(self, stream_id: str) -> StreamInfo:
        """The local stream's info, counting another process's readers (it keeps the
        `reading` key while it has some) for the abandon rule."""
        local = await self._local.info(stream_id)
        if local.readers == 0 and await self._redis.exists(keys.reading(stream_id)):
            return StreamInfo(local.last_seq, local.finished, 1, None, local.owner)
        return local

    async def _flush(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._dirty = self._dirty, set()
            try:
                await self._send(batch)
                backoff = 0.05
            except RedisError as exc:
                log.warning("Redis write failed (%s); retrying", exc)
                self._outage.noticed()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                await self._resync(batch)
                self._dirty |= batch
                self._wake.set()

    async def _send(self, batch: set[str]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        sending = [(s, p) for s in batch if (p := self._producing.get(s)) is not None]
        if any(p.summary.rewrite for _, p in sending):
            summary.load_script(pipe)
        sent = [(stream_id, producing, producing.total, self._queue(pipe, stream_id, producing))
                for stream_id, producing in sending]
        if not sent:
            return
        try:
            started = time.perf_counter()
            results = await pipe.execute(raise_on_error=False)
            metrics.redis_round_trip("flush", started)
            self._raise_failure(results, {at for *_, at in sent})
        except BaseException:
            for _, producing, _, at in sent:
                if at is not None:
                    producing.summary.settle(None)
            raise
        for stream_id, producing, upto, at in sent:
            if at is not None:
                producing.summary.settle(results[at])
            producing.written = upto
            if producing.finished and not producing.behind:
                self._producing.pop(stream_id, None)
            elif producing.behind:  # more came in flight, or its summary is to be written whole
                self._dirty.add(stream_id)
                self._wake.set()

    @staticmethod
    def _raise_failure(results: list[Any], summaries: set[int | None]) -> None:
        """Raise the first failed command's error, but for the summaries' (they settle
        their own) and the XADDs that re-send what Redis already has ("equal or
        smaller", after a failure)."""
        for index, result in enumerate(results):
            if (isinstance(result, ResponseError) and index not in summaries
                    and "equal or smaller" not in str(result)):
                raise result

    def _queue(self, pipe: Pipeline, stream_id: str, producing: _Producing) -> int | None:
        """Queue one stream's writes; returns the index of its summary write, if any."""
        key, first, upto = keys.events(stream_id), producing.written + 1, producing.total
        rewrite = producing.summary.rewrite
        # The summary before the events: see summary.py.
        at = producing.summary.write(pipe, stream_id) if producing.summary.behind else None
        if first <= upto:
            # One entry per batch, its id the batch's last sequence number (entries.py).
            events = [self._local.encoded(stream_id, seq) for seq in range(first, upto + 1)]
            pipe.xadd(key, entries.fields(events, first, terminal=producing.finished,
                                          length=producing.summary.length),
                      id=f"0-{upto}", maxlen=MAX_EVENTS, approximate=True)
        # An unfinished stream does not live forever; its summary lives as long.
        if producing.written == 0:
            pipe.expire(key, keys.LIVE_TTL)
        if rewrite:
            pipe.expire(keys.summary(stream_id), keys.LIVE_TTL)
        if producing.finished:
            retention = keys.seconds(self._retention)
            pipe.expire(key, retention)
            pipe.expire(keys.summary(stream_id), retention)
            # The owner record lives as long as the events it guards (chat.py
            # refuses a stream whose owner is unknown when keys are set).
            pipe.expire(keys.owner(stream_id), retention)
            pipe.delete(keys.lease(stream_id))
        return at

    async def _resync(self, batch: set[str]) -> None:
        """After a failure: learn what Redis really has of each stream's events
        (nothing, after a restart without persistence), so the next send starts there;
        its summary is then written whole (summary.py)."""
        with contextlib.suppress(RedisError):
            for stream_id in batch:
                producing = self._producing.get(stream_id)
                if producing is None:
                    continue
                last = await self._redis.xrevrange(keys.events(stream_id), count=1)
                producing.written = entries.seq(last[0][0]) if last else 0
                await self._redis.set(keys.lease(stream_id), self._owner,
                                      ex=keys.seconds(self._lease))

    async def _renew_leases(self) -> None:
        """Renew every live stream's lease, and pick up the cancel flags of requests
        whose pub/sub message this process missed (cancel.py)."""
        while True:
            await asyncio.sleep(self._lease / 3)
            live = [s for s, p in self._producing.items() if not p.finished]
            if not live:
                continue
            try:
                pipe = self._redis.pipeline(transaction=False)
                for stream_id in live:
                    pipe.set(keys.lease(stream_id), self._owner, ex=keys.seconds(self._lease))
                    pipe.exists(keys.cancel(stream_id))
                started = time.perf_counter()
                results = await pipe.execute()
                metrics.redis_round_trip("renew_leases", started)
            except RedisError:
                self._outage.noticed()
                continue
            for stream_id, flagged in zip(live, results[1::2], strict=True):
                if flagged and stream_id in self._producing:
                    await self._local.request_cancel(stream_id)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout`) until Redis has everything written here."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p.behind for p in self._producing.values()):
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
