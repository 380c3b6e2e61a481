"""The stream log on Redis Streams, for many processes on many hosts (`--redis URL`).

Each process keeps the streams it generates in memory too (the in-process log), so its
own readers never wait on Redis; every event also goes to a Redis stream, `XADD` with
the event's sequence number as the entry id (`0-<seq>`), in small pipelined batches.
A reader in another process gets a local mirror fed by one `XREAD BLOCK` tail per
stream. Cancel travels by pub/sub to whichever process generates the stream.

Producer loss: the generating process renews a lease key every `lease / 3` seconds.
A tail that finds no lease ends the stream with an `error` event (`producer_lost`), once
(a `SET NX` claim decides who writes it), and the store marks the answer interrupted.

Redis restart: the producer keeps every event in memory; when Redis comes back it
re-sends what Redis lacks (from Redis's last entry on), and tails reconnect and go on
from where they were. Nothing is lost while the producer lives; tails wait a full
lease after reconnecting before they judge a producer lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from tokenrelay import sse
from tokenrelay.errors import TokenrelayError
from tokenrelay.events import ERROR, TERMINAL_EVENTS
from tokenrelay.sse import Decoder
from tokenrelay.streams import Orphan, StreamExists, StreamInfo, StreamLog, StreamNotFound
from tokenrelay.streams.memory import MemoryStreamLog

log = logging.getLogger("tokenrelay.streams.redis")

CANCEL_CHANNEL = "tokenrelay:cancel"
#: cap on a stream's length in Redis (a safety net; answers are far shorter)
MAX_EVENTS = 1_000_000
#: a live stream's keys expire this long after the last write, if never finished
LIVE_TTL = 3600


def _events_key(stream_id: str) -> str:
    return f"tokenrelay:{{{stream_id}}}:events"


def _lease_key(stream_id: str) -> str:
    return f"tokenrelay:{{{stream_id}}}:lease"


def _owner_key(stream_id: str) -> str:
    return f"tokenrelay:{{{stream_id}}}:owner"


def _lost_key(stream_id: str) -> str:
    return f"tokenrelay:{{{stream_id}}}:lost"


def _cancel_key(stream_id: str) -> str:
    return f"tokenrelay:{{{stream_id}}}:cancel"


def _reading_key(stream_id: str) -> str:
    return f"tokenrelay:{{{stream_id}}}:reading"


def _seq(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[1])


def _split(fields: dict[bytes, bytes]) -> list[bytes]:
    """An entry's encoded events: `e` holds them back to back, `n` their sizes."""
    data, sizes = fields[b"e"], fields.get(b"n")
    if sizes is None:
        return [data]
    events, offset = [], 0
    for size in map(int, sizes.split(b",")):
        events.append(data[offset:offset + size])
        offset += size
    return events


class _Producing:
    """A stream this process generates: what Redis has of it, and what it lacks."""

    __slots__ = ("written", "total", "finished")

    def __init__(self) -> None:
        self.written = 0  # events Redis is known to have
        self.total = 0  # events appended locally
        self.finished = False


class RedisStreamLog(StreamLog):
    def __init__(self, url: str, *, retention: float = 600.0, heartbeat: float = 15.0,
                 lease: float = 6.0):
        self.retention, self.lease = retention, lease
        self._redis = aioredis.from_url(url, max_connections=None)
        self._local = MemoryStreamLog(retention=retention, heartbeat=heartbeat)
        self._producing: dict[str, _Producing] = {}
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._background: list[asyncio.Task[None]] = []
        self._unsure_until = 0.0
        #: streams with events Redis lacks; one flusher sends them all per round trip
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check Redis answers; start the lease renewer and the cancel listener."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise TokenrelayError(f"Cannot reach Redis: {exc}. Start redis-server, or drop "
                                  "--redis to keep streams in this process.",
                                  code="redis_unavailable", status=503) from exc
        self._background = [asyncio.create_task(self._renew_leases()),
                            asyncio.create_task(self._listen_for_cancels())]
        self._flusher = asyncio.create_task(self._flush())

    # --- producing --------------------------------------------------------------------

    async def create(self, stream_id: str, owner: str | None = None) -> None:
        claimed = await self._redis.set(_lease_key(stream_id), self._owner,
                                        ex=max(1, round(self.lease)), nx=True)
        if not claimed:
            raise StreamExists(stream_id)
        if owner is not None:
            # As long as the events: LIVE_TTL while live (with slack), `retention` after.
            await self._redis.set(_owner_key(stream_id), owner,
                                  ex=LIVE_TTL + max(1, round(self.retention)))
        await self._local.create(stream_id, owner)
        self._producing[stream_id] = _Producing()

    async def append(self, stream_id: str, event: str, data: dict[str, Any]) -> int:
        seq = await self._local.append(stream_id, event, data)
        producing = self._producing[stream_id]
        producing.total = seq
        producing.finished = event in TERMINAL_EVENTS
        self._dirty.add(stream_id)
        self._wake.set()
        return seq

    async def _flush(self) -> None:
        """Send what Redis lacks, for every stream at once: one pipeline per round
        trip, so events that arrive while one is in flight go out together in the next
        (many streams at a few tokens/s each cost one round trip, not one each)."""
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
                self._redis_trouble()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                await self._resync(batch)
                self._dirty |= batch
                self._wake.set()

    async def _send(self, batch: set[str]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        sent: list[tuple[str, _Producing, int]] = []
        for stream_id in batch:
            producing = self._producing.get(stream_id)
            if producing is None:
                continue
            key, first, upto = _events_key(stream_id), producing.written + 1, producing.total
            if first <= upto:
                # One entry per batch, its id the batch's last sequence number; the
                # sizes let a reader split it back into events (one XADD, not one per
                # event: a burst of tokens costs one command).
                events = [self._local.encoded(stream_id, seq) for seq in range(first, upto + 1)]
                pipe.xadd(key, {"e": b"".join(events), "f": first,
                                "n": b",".join(b"%d" % len(e) for e in events),
                                "t": b"1" if producing.finished else b"0"},
                          id=f"0-{upto}", maxlen=MAX_EVENTS, approximate=True)
            if producing.written == 0:
                pipe.expire(key, LIVE_TTL)  # an unfinished stream does not live forever
            if producing.finished:
                pipe.expire(key, max(1, round(self.retention)))
                # The owner record lives as long as the events it guards (chat.py
                # refuses a stream whose owner is unknown when keys are set).
                pipe.expire(_owner_key(stream_id), max(1, round(self.retention)))
                pipe.delete(_lease_key(stream_id))
            sent.append((stream_id, producing, upto))
        if not sent:
            return
        for result in await pipe.execute(raise_on_error=False):
            # "equal or smaller": a re-send after a failure of what Redis already has.
            if isinstance(result, ResponseError) and "equal or smaller" not in str(result):
                raise result
        for stream_id, producing, upto in sent:
            producing.written = upto
            if producing.finished and upto == producing.total:
                self._producing.pop(stream_id, None)

    async def _resync(self, batch: set[str]) -> None:
        """After a failure: learn what Redis really has of each stream (nothing, after
        a restart without persistence), so the next send starts there."""
        with contextlib.suppress(RedisError):
            for stream_id in batch:
                producing = self._producing.get(stream_id)
                if producing is None:
                    continue
                last = await self._redis.xrevrange(_events_key(stream_id), count=1)
                producing.written = _seq(last[0][0]) if last else 0
                await self._redis.set(_lease_key(stream_id), self._owner,
                                      ex=max(1, round(self.lease)))

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            live = [s for s, p in self._producing.items() if not p.finished]
            if not live:
                continue
            try:
                pipe = self._redis.pipeline(transaction=False)
                for stream_id in live:
                    pipe.set(_lease_key(stream_id), self._owner, ex=max(1, round(self.lease)))
                    pipe.exists(_cancel_key(stream_id))
                results = await pipe.execute()
            except RedisError:
                self._redis_trouble()
                continue
            for stream_id, flagged in zip(live, results[1::2], strict=True):
                if flagged and stream_id in self._producing:
                    await self._local.request_cancel(stream_id)

    # --- reading ----------------------------------------------------------------------

    async def read(self, stream_id: str, after: int = 0) -> AsyncIterator[bytes]:
        if stream_id not in self._producing:
            await self._mirror(stream_id)
        async for chunk in self._local.read(stream_id, after):
            yield chunk

    async def _mirror(self, stream_id: str) -> None:
        try:
            await self._local.info(stream_id)
            return  # produced here earlier, or mirrored already
        except StreamNotFound:
            pass
        if not await self._redis.exists(_events_key(stream_id)):
            raise StreamNotFound(stream_id)
        with contextlib.suppress(StreamExists):
            await self._local.create(stream_id)
            self._tails[stream_id] = asyncio.create_task(self._tail(stream_id))

    async def _tail(self, stream_id: str) -> None:
        """Copy a stream generated elsewhere into the local mirror, and watch its
        producer's lease. Whatever happens, the mirror ends with a terminal event."""
        last = 0
        try:
            last = await self._follow(stream_id)
        except Exception:
            log.exception("tailing %s failed", stream_id)
        finally:
            self._tails.pop(stream_id, None)
            if not (await self._local.info(stream_id)).finished:
                self._end_mirror(stream_id, last, "producer_lost", _LOST)

    async def _follow(self, stream_id: str) -> int:
        """Mirror entries until the terminal one; returns the last sequence number."""
        key, last, backoff = _events_key(stream_id), 0, 0.05
        while True:
            try:
                if (await self._local.info(stream_id)).readers:
                    await self._redis.set(_reading_key(stream_id), 1, ex=3)
                found = await self._redis.xread({key: f"0-{last}"}, count=1000, block=1000)
                for _, entries in found or ():
                    for entry_id, fields in entries:
                        events, first = _split(fields), int(fields.get(b"f", _seq(entry_id)))
                        terminal = fields[b"t"] == b"1"
                        if first > last + 1 and not terminal:
                            # A hole: Redis lost events and their producer is gone too.
                            log.warning("stream %s lost events %d..%d", stream_id, last + 1,
                                        first - 1)
                            return last
                        final = first + len(events) - 1
                        for seq, encoded in enumerate(events, first):
                            if seq == last + 1:  # skip what a re-send repeats
                                self._local.add_encoded(stream_id, encoded,
                                                        terminal and seq == final)
                                last = seq
                        if terminal:
                            return last
                if not found and not await self.producer_alive(stream_id):
                    await self.end_orphan(stream_id, "producer_lost", _LOST, known=last)
                    tail = await self._redis.xrevrange(key, count=1)
                    if tail and tail[0][1][b"t"] == b"1" and _seq(tail[0][0]) <= last:
                        return last  # ended below our position (Redis lost data)
                backoff = 0.05
            except RedisError as exc:
                log.warning("Redis read for %s failed (%s); reconnecting", stream_id, exc)
                self._redis_trouble()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _end_mirror(self, stream_id: str, last: int, code: str, message: str) -> None:
        decoder, length = Decoder(), 0
        for seq in range(1, last + 1):
            for event in decoder.feed(self._local.encoded(stream_id, seq)):
                if event.event == "delta":
                    length += len(orjson.loads(event.data)["text"])
        data = {"code": code, "message": message, "length": length}
        self._local.add_encoded(stream_id, sse.encode_json(orjson.dumps(data), ERROR, last + 1),
                                terminal=True)

    # --- state and control ----------------------------------------------------------

    async def info(self, stream_id: str) -> StreamInfo:
        if stream_id in self._producing:
            local = await self._local.info(stream_id)
            if local.readers == 0 and await self._redis.exists(_reading_key(stream_id)):
                return StreamInfo(local.last_seq, local.finished, 1, None, local.owner)
            return local
        async with self._redis.pipeline(transaction=False) as pipe:
            last, owner = await (pipe.xrevrange(_events_key(stream_id), count=1)
                                 .get(_owner_key(stream_id)).execute())
        if not last:
            raise StreamNotFound(stream_id)
        entry_id, fields = last[0]
        return StreamInfo(_seq(entry_id), fields[b"t"] == b"1", 0, None,
                          owner.decode() if owner is not None else None)

    async def producer_alive(self, stream_id: str) -> bool:
        if stream_id in self._producing:
            return True
        if time.monotonic() < self._unsure_until:
            return True  # Redis was just away: leases may not be renewed yet
        return bool(await self._redis.exists(_lease_key(stream_id)))

    def _redis_trouble(self) -> None:
        """After a Redis failure (a restart loses the lease keys), judge no producer
        lost for a full lease."""
        self._unsure_until = time.monotonic() + self.lease * 1.5

    async def end_orphan(self, stream_id: str, code: str, message: str, *,
                         known: int = 0) -> Orphan | None:
        """If the producer is gone: end the stream with an `error` event (once across
        all processes, by a SET NX claim) and return what it had. `known` is the last
        sequence number the caller has seen (Redis may have lost some in a restart)."""
        if await self.producer_alive(stream_id):
            return None
        entries = await self._redis.xrange(_events_key(stream_id))
        start: dict[str, Any] = {}
        parts: list[str] = []
        decoder = Decoder()
        for _, fields in entries:
            for event in decoder.feed(fields[b"e"]):
                if event.event == "delta":
                    parts.append(orjson.loads(event.data)["text"])
                elif event.event == "start":
                    start = orjson.loads(event.data)
        text = "".join(parts)
        if entries and entries[-1][1][b"t"] == b"1":
            # Ended: normally (its producer stores it), or by another process for
            # its lost producer (then the store still needs the news: say so).
            if await self._redis.exists(_lost_key(stream_id)):
                return Orphan(start, text)
            return None
        if await self._redis.set(_lost_key(stream_id), self._owner, nx=True,
                                               ex=max(1, round(self.retention))):
            seq = max(_seq(entries[-1][0]) if entries else 0, known) + 1
            data = {"code": code, "message": message, "length": len(text)}
            pipe = self._redis.pipeline(transaction=False)
            encoded = sse.encode_json(orjson.dumps(data), ERROR, seq)
            pipe.xadd(_events_key(stream_id),
                      {"e": encoded, "f": seq, "n": b"%d" % len(encoded), "t": b"1"},
                      id=f"0-{seq}")
            pipe.expire(_events_key(stream_id), max(1, round(self.retention)))
            await pipe.execute()
            log.warning("stream %s lost its producer; ended it after event %d", stream_id, seq - 1)
        return Orphan(start, text)

    async def request_cancel(self, stream_id: str) -> bool:
        producing = self._producing.get(stream_id)
        if producing is not None:
            return await self._local.request_cancel(stream_id)
        info = await self.info(stream_id)
        if info.finished:
            return False
        # Pub/sub for speed; the flag for a producer whose listener was reconnecting
        # (it checks flags with every lease renewal).
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(_cancel_key(stream_id), 1, ex=max(1, round(self.lease * 2)))
        pipe.publish(CANCEL_CHANNEL, stream_id)
        await pipe.execute()
        return True

    def on_cancel(self, stream_id: str, callback: Callable[[], None]) -> None:
        self._local.on_cancel(stream_id, callback)

    async def _listen_for_cancels(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CANCEL_CHANNEL)
                    async for message in pubsub.listen():
                        if message["type"] != "message":
                            continue
                        stream_id = message["data"].decode()
                        if stream_id in self._producing:
                            await self._local.request_cancel(stream_id)
            except RedisError as exc:
                log.warning("cancel listener lost Redis (%s); reconnecting", exc)
                self._redis_trouble()
                await asyncio.sleep(1)
            except Exception:  # never let one bad message end cross-process cancel
                log.exception("cancel listener failed; restarting it")
                await asyncio.sleep(1)

    async def close(self) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(  # let the last events reach Redis
                p.written < p.total for p in self._producing.values()):
            await asyncio.sleep(0.01)
        for task in [*self._background, *self._tails.values()]:
            task.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
        await self._local.close()
        await self._redis.aclose()


_LOST = ("The process generating this answer stopped (crash, kill or lost host); the "
         "text streamed until then is kept.")
