"""Per-key request rates (docs/security.md, "Limits"): a token bucket per owner in one
process; with --redis, a counter per owner and minute shared by every worker."""

from __future__ import annotations

import abc
import math
import time

__all__ = ["RateLimiter", "MemoryRateLimiter", "RedisRateLimiter"]


class RateLimiter(abc.ABC):
    def __init__(self, per_minute: int):
        self.per_minute = per_minute

    @abc.abstractmethod
    async def take(self, owner: str) -> float | None:
        """Count one request; None if allowed, else seconds until one would be."""

    async def close(self) -> None:
        pass


class MemoryRateLimiter(RateLimiter):
    """A bucket of `per_minute` requests per owner, refilled evenly over a minute, so
    a burst of a minute's worth is allowed and then one request every 60/N s."""

    def __init__(self, per_minute: int):
        super().__init__(per_minute)
        self._rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, owner: str) -> float | None:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(owner, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - stamp) * self._rate)
        if tokens < 1.0:
            self._buckets[owner] = (tokens, now)
            return (1.0 - tokens) / self._rate
        self._buckets[owner] = (tokens - 1.0, now)
        return None


class RedisRateLimiter(RateLimiter):
    """A fixed window per owner and minute (INCR + EXPIRE): one round trip, shared by
    all workers. At a window's edge a client may get up to twice the rate for a moment."""

    def __init__(self, per_minute: int, url: str):
        super().__init__(per_minute)
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url)

    async def take(self, owner: str) -> float | None:
        now = time.time()
        window = math.floor(now / 60)
        key = f"tokenrelay:rate:{owner}:{window}"
        async with self._redis.pipeline(transaction=False) as pipe:
            count, _ = await pipe.incr(key).expire(key, 120).execute()
        if count > self.per_minute:
            return (window + 1) * 60 - now
        return None

    async def close(self) -> None:
        await self._redis.aclose()
