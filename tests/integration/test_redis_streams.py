"""The Redis stream log against a real redis-server: the per-stream summary beside the
events, what orphan handling takes from it, and how it comes through a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.servers import free_port, start_redis
from tokenrelay.sse import Decoder, Event
from tokenrelay.streams import Orphan
from tokenrelay.streams.redis import RedisStreamLog, keys

#: the shortest lease Redis can hold (EX takes whole seconds): a lost producer shows soon
LEASE = 1.0
START = {"stream_id": "s", "conversation_id": "c", "message_id": "m", "model": "scripted"}
#: multi-byte UTF-8 (2, 3 and 4 bytes), line breaks of every kind, JSON's specials
PIECES = ["Grüße, ", "世界\n", "🙂 on\r\n", "two\rlines\n\n", 'and "quotes" \\ ', "ünd"]

T = TypeVar("T")


@pytest.fixture
def redis_port() -> Iterator[int]:
    with start_redis() as port:
        yield port


def _url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


@contextlib.asynccontextmanager
async def _log(port: int, **options: float) -> AsyncIterator[RedisStreamLog]:
    log = RedisStreamLog(_url(port), lease=LEASE, **options)
    await log.start()
    try:
        yield log
    finally:
        await log.close()


@contextlib.asynccontextmanager
async def _inspector(port: int) -> AsyncIterator[aioredis.Redis]:
    """A plain client to look at what the log keeps in Redis."""
    client = aioredis.Redis.from_url(_url(port))
    try:
        yield client
    finally:
        await client.aclose()


async def _until(check: Callable[[], Awaitable[T | None]], what: str,
                 timeout: float = 20.0) -> T:
    """Poll `check` until it returns something truthy, up to a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(RedisConnectionError):  # Redis may be coming back
            if result := await check():
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def _covers(client: aioredis.Redis, seq: int) -> bool:
    """Whether the summary includes event `seq` (the producer has written that far)."""
    covers = await client.hget(keys.summary("s"), "covers")
    return covers is not None and int(covers) >= seq


async def _events(log: RedisStreamLog, stream_id: str) -> list[Event]:
    decoder = Decoder()
    return [event async for chunk in log.read(stream_id) for event in decoder.feed(chunk)]


async def _begin(log: RedisStreamLog, pieces: list[str]) -> int:
    await log.create("s")
    seq = await log.append("s", "start", START)
    for piece in pieces:
        seq = await log.append("s", "delta", {"text": piece})
    return seq


async def test_an_orphan_ends_with_the_start_and_text_of_its_summary(redis_port: int) -> None:
    async with _log(redis_port) as producer, _log(redis_port) as other, \
            _inspector(redis_port) as client:
        last = await _begin(producer, PIECES)
        await producer.close()  # gone without an end: its lease runs out, unrenewed
        assert await _covers(client, last), "closing sent everything to Redis"
        orphan = await _until(lambda: other.end_orphan("s", "producer_lost", "gone"),
                              "the lease ran out and the other process ended the orphan")
        assert orphan == Orphan(START, "".join(PIECES))
        events = await _events(other, "s")
        assert [e.event for e in events] == ["start", *["delta"] * len(PIECES), "error"]
        assert events[-1].data == ('{"code":"producer_lost","message":"gone","length":%d}'
                                   % len("".join(PIECES)))
        assert await other.has_ended("s")
        # Another process asking later still hears of it: the store needs the news once.
        assert await other.end_orphan("s", "producer_lost", "gone") == orphan
        # The ended stream's keys, its summary among them, expire after the retention.
        for key in (keys.events("s"), keys.summary("s")):
            assert 0 < await client.ttl(key) <= 600


async def test_an_orphan_keeps_its_reasoning_too(redis_port: int) -> None:
    async with _log(redis_port) as producer, _log(redis_port) as other:
        await producer.create("s")
        await producer.append("s", "start", START)
        for piece in PIECES[:3]:
            await producer.append("s", "reasoning", {"text": piece})
        await producer.append("s", "tool_call", {"index": 0, "id": "call_1", "name": "f",
                                                 "arguments": "{}"})
        await producer.append("s", "delta", {"text": "answer"})
        await producer.close()
        orphan = await _until(lambda: other.end_orphan("s", "producer_lost", "gone"),
                              "the other process ended the orphan")
        assert orphan == Orphan(START, "answer", "".join(PIECES[:3]))


async def test_the_summary_heals_when_redis_loses_it_behind_the_producers_back(
        redis_port: int) -> None:
    """A Redis failover, or a reconnect that redis-py hides, can lose the summary without
    the producer seeing an error: its next write finds the hole and writes it whole."""
    async with _log(redis_port) as producer, _inspector(redis_port) as client:
        last = await _begin(producer, PIECES[:3])
        await _until(lambda: _covers(client, last), "the first half is in Redis")
        await client.delete(keys.summary("s"))
        for piece in PIECES[3:]:
            last = await producer.append("s", "delta", {"text": piece})
        await _until(lambda: _covers(client, last), "the summary is written again")
        assert (await client.hget(keys.summary("s"), "text")).decode() == "".join(PIECES)
        assert 0 < await client.ttl(keys.summary("s")) <= keys.LIVE_TTL, "it expires again"


@pytest.mark.parametrize("persisted", [False, True], ids=["emptied", "persisted"])
async def test_the_summary_comes_through_a_redis_restart_without_doubled_text(
        tmp_path: Path, persisted: bool) -> None:
    """Redis restarts mid-stream, empty (no persistence) or with what it had saved; the
    producer resyncs, and the summary holds every piece once."""
    port = free_port()
    with contextlib.ExitStack() as first_redis:
        first_redis.enter_context(start_redis(port, tmp_path))
        async with _log(port) as producer:
            async with _inspector(port) as client:
                last = await _begin(producer, PIECES[:3])
                await _until(lambda: _covers(client, last), "the first half is in Redis")
                if persisted:
                    with contextlib.suppress(RedisConnectionError):
                        await client.shutdown(save=True)
            first_redis.close()  # (a no-op after SHUTDOWN SAVE; a crash otherwise)
            for piece in PIECES[3:]:
                last = await producer.append("s", "delta", {"text": piece})
            with start_redis(port, tmp_path):
                async with _inspector(port) as client:
                    await _until(lambda: _covers(client, last), "the producer resynced")
                    text = await client.hget(keys.summary("s"), "text")
                    assert text.decode() == "".join(PIECES), "every piece, once"
                    done = await producer.append("s", "done", {"finish_reason": "stop"})
                    await _until(lambda: _covers(client, done), "the end is in Redis")
                    assert (await client.hget(keys.summary("s"), "text")) == text
                    events = await _events(producer, "s")
                    assert [e.id for e in events] == [str(n) for n in range(1, done + 1)]


async def test_the_summary_expires_with_the_stream(redis_port: int) -> None:
    async with _log(redis_port, retention=1) as producer, _inspector(redis_port) as client:
        last = await _begin(producer, PIECES)
        await _until(lambda: _covers(client, last), "the summary is in Redis")
        # While live, both keys keep the live stream's TTL (set in the same pipeline).
        live = [await client.ttl(key) for key in (keys.events("s"), keys.summary("s"))]
        assert all(keys.LIVE_TTL - 5 <= ttl <= keys.LIVE_TTL for ttl in live), live
        await producer.append("s", "done", {"finish_reason": "stop"})

        async def gone() -> bool:
            return not await client.exists(keys.events("s"), keys.summary("s"))

        await _until(gone, "the stream and its summary expired, a second after the end")
