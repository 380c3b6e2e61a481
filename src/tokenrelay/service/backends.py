"""The one place that builds the backends from the settings: the conversation store,
the stream log and the per-key rate limiter. The server and the CLI both use it."""

from __future__ import annotations

from tokenrelay.config import MEMORY_DATABASE, Settings
from tokenrelay.service.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tokenrelay.store import Store
from tokenrelay.streams import StreamLog


def make_store(settings: Settings) -> Store:
    if settings.database_url == MEMORY_DATABASE:
        from tokenrelay.store.memory import MemoryStore

        return MemoryStore()
    from tokenrelay.store.sql import SqlStore

    return SqlStore(settings.database_url)


def make_streams(settings: Settings) -> StreamLog:
    if settings.redis:
        from tokenrelay.streams.redis import RedisStreamLog

        return RedisStreamLog(settings.redis, retention=settings.retention,
                              heartbeat=settings.heartbeat, lease=settings.lease)
    from tokenrelay.streams.memory import MemoryStreamLog

    return MemoryStreamLog(retention=settings.retention, heartbeat=settings.heartbeat)


def make_limiter(settings: Settings) -> RateLimiter | None:
    """Requests per minute per key; only with API keys (no keys: one owner, no limit)."""
    if not (settings.api_keys and settings.rate_limit):
        return None
    if settings.redis:
        return RedisRateLimiter(settings.rate_limit, settings.redis)
    return MemoryRateLimiter(settings.rate_limit)


async def check_backends(settings: Settings) -> None:
    """Migrate and check the database, and reach Redis, before serving, so that a
    problem is one clear line, not a traceback from the server's start-up."""
    store = make_store(settings)
    try:
        await store.start()
    finally:
        await store.close()
    if settings.redis:
        streams = make_streams(settings)
        try:
            await streams.start()
        finally:
            await streams.close()
