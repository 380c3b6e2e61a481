"""Prometheus metrics: what an operator watches (DESIGN.md "Principles"): streams,
tokens, time to first token, errors by code, and how fast the store and Redis answer.

Cheap on the hot path: nothing here runs per token. A stream is counted when it starts
and once when it ends, its tokens and timings from that end (the `done` summary); a
reader is counted when it leaves; the store and Redis are timed per write or round
trip, and those are batched already (service/answers.py, streams/redis/producer.py).

Names follow Prometheus' conventions (a `tokenrelay_` prefix, `_total` counters,
`_seconds` durations), labels only from closed sets (a provider's name, a finish
reason, an error code), never from what a request names freely (a model, an id).

One process keeps its values in memory. With `--workers N`, server/runner.py points
PROMETHEUS_MULTIPROC_DIR at a directory of the run's own before the workers start;
prometheus_client, which reads the variable when it is first imported, then keeps
each worker's values in files there, and `/metrics` answers for all the workers from
whichever one is asked.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder

from tokenrelay.errors import TokenrelayError

__all__ = ["MULTIPROC_ENV", "exposition"]

#: prometheus_client's switch to multiprocess mode (a directory for the values' files)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# `_created` series double every counter's output and say nothing an operator uses.
disable_created_metrics()

#: time to first token: a local model in tens of ms, a remote one in seconds
_TTFT = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: what tokenrelay adds before it asks the model: well under a millisecond when idle
_ADDED = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.5, 1.0)
#: a model streams 10-200 tokens/s; a relayed burst (the scripted model) far more
_RATE = (1, 5, 10, 20, 50, 100, 200, 500, 1_000, 5_000, 20_000, 100_000, 1_000_000)
#: a write or a round trip on loopback or a LAN
_IO = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
       1.0, 2.5, 5.0, 10.0)

STREAMS_STARTED = Counter(
    "tokenrelay_streams_started", "Generations started.", ["provider"])
STREAMS_FINISHED = Counter(
    "tokenrelay_streams_finished", "Generations ended, by how: a finish reason (stop, "
    "length, tool_calls), cancelled, abandoned (no reader) or error.",
    ["provider", "reason"])
STREAMS_IN_PROGRESS = Gauge(
    "tokenrelay_streams_in_progress", "Generations running now.", ["provider"],
    multiprocess_mode="livesum")
OUTPUT_TOKENS = Counter(
    "tokenrelay_output_tokens", "Tokens relayed (the provider's count, else the deltas), "
    "counted when each stream ends.", ["provider"])
INPUT_TOKENS = Counter(
    "tokenrelay_input_tokens", "Prompt tokens, as providers report them.", ["provider"])
MODEL_TTFT = Histogram(
    "tokenrelay_model_time_to_first_token_seconds", "From asking the provider to its "
    "first token: the model's (and the network's) part of the time to first token.",
    ["provider"], buckets=_TTFT)
ADDED_TTFT = Histogram(
    "tokenrelay_added_time_to_first_token_seconds", "From the service taking a request "
    "to asking the provider: tokenrelay's own part of the time to first token.",
    buckets=_ADDED)
TOKENS_PER_SECOND = Histogram(
    "tokenrelay_output_tokens_per_second", "Each stream's rate after its first token.",
    ["provider"], buckets=_RATE)
STREAM_ERRORS = Counter(
    "tokenrelay_stream_errors", "Streams ended with an `error` event, by its code.",
    ["code"])
REFUSED = Counter(
    "tokenrelay_refused", "Answers refused before they started (a 4xx or 503 from the "
    "service: limits, unknown model, invalid options, shutting down), by error code.",
    ["code"])
RESUMES = Counter(
    "tokenrelay_resumes", "Readers that resumed a stream after an event id "
    "(Last-Event-ID, starting_after).")
CANCELS = Counter(
    "tokenrelay_cancels", "Cancel requests that stopped a running generation.")
READER_DISCONNECTS = Counter(
    "tokenrelay_reader_disconnects", "Readers that left before their stream's end (the "
    "generation goes on).")
STORE_WRITE = Histogram(
    "tokenrelay_store_write_seconds", "Database writes, by operation.", ["operation"],
    buckets=_IO)
REDIS_ROUND_TRIP = Histogram(
    "tokenrelay_redis_round_trip_seconds", "Redis round trips, by operation.",
    ["operation"], buckets=_IO)


# --- streams ---------------------------------------------------------------------------


class _PerProvider:
    """One provider's series, looked up once (`labels()` takes a lock and hashes its
    arguments on every call)."""

    __slots__ = ("started", "in_progress", "output", "input", "ttft", "rate")

    def __init__(self, provider: str):
        self.started = STREAMS_STARTED.labels(provider)
        self.in_progress = STREAMS_IN_PROGRESS.labels(provider)
        self.output = OUTPUT_TOKENS.labels(provider)
        self.input = INPUT_TOKENS.labels(provider)
        self.ttft = MODEL_TTFT.labels(provider)
        self.rate = TOKENS_PER_SECOND.labels(provider)


_providers: dict[str, _PerProvider] = {}


def _of(provider: str) -> _PerProvider:
    series = _providers.get(provider)
    if series is None:
        series = _providers[provider] = _PerProvider(provider)
    return series


def stream_started(provider: str) -> None:
    series = _of(provider)
    series.started.inc()
    series.in_progress.inc()


def stream_stopped(provider: str) -> None:
    """The generation's task is over (after its end, or cut by the loop closing)."""
    _of(provider).in_progress.dec()


def stream_ended(provider: str, reason: str, error_code: str | None,
                 summary: dict[str, Any], *, accepted: float, asked: float | None,
                 first_token: float | None) -> None:
    """One stream's end, all at once: its reason, its tokens, and its timings from
    perf_counter values: when the service took the request, asked the provider, and
    had the first token."""
    series = _of(provider)
    STREAMS_FINISHED.labels(provider, reason).inc()
    if error_code is not None:
        STREAM_ERRORS.labels(error_code).inc()
    usage, rate = summary["usage"], summary["timings"]["tokens_per_s"]
    if usage["output_tokens"]:
        series.output.inc(usage["output_tokens"])
    if usage["input_tokens"]:
        series.input.inc(usage["input_tokens"])
    if asked is not None:
        ADDED_TTFT.observe(asked - accepted)
        if first_token is not None:
            series.ttft.observe(first_token - asked)
    if rate is not None:
        series.rate.observe(rate)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def counts_refusals(method: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """Count the TokenrelayErrors `method` raises, by code (it re-raises them)."""

    @functools.wraps(method)
    async def counted(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except TokenrelayError as exc:
            REFUSED.labels(exc.code).inc()
            raise

    return counted


def resumed() -> None:
    RESUMES.inc()


def cancelled() -> None:
    CANCELS.inc()


class CountedReader:
    """A reader's chunks, counted as a disconnect when closed before their stream's end.

    `async for` iterates the stream log's own generator (what `__aiter__` returns), so
    this adds nothing per chunk; only `aclose()`, called once by whoever writes the
    body, comes here, and asks `left_early` (the service: is the stream still going?)
    before the reader lets go of it."""

    __slots__ = ("_chunks", "_left_early")

    def __init__(self, chunks: AsyncIterator[bytes], left_early: Callable[[], Awaitable[bool]]):
        self._chunks = chunks
        self._left_early = left_early

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def __anext__(self) -> bytes:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        try:
            if await self._left_early():
                READER_DISCONNECTS.inc()
        except Exception:  # a metric never stands in the way of closing a reader
            pass
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


# --- the store and Redis -----------------------------------------------------------------


def store_write(operation: str) -> Callable[[Callable[_P, Awaitable[_R]]],
                                            Callable[_P, Awaitable[_R]]]:
    """`@store_write("add_turn")` times each call of a store's write method (the ones
    that succeed: a failed write has no latency worth a bucket)."""
    observe = STORE_WRITE.labels(operation).observe

    def decorate(method: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        @functools.wraps(method)
        async def timed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            started = time.perf_counter()
            result = await method(*args, **kwargs)
            observe(time.perf_counter() - started)
            return result

        return timed

    return decorate


def redis_round_trip(operation: str, started: float) -> None:
    """A Redis round trip that began at `started` (perf_counter) has just answered."""
    REDIS_ROUND_TRIP.labels(operation).observe(time.perf_counter() - started)


# --- the exposition ----------------------------------------------------------------------


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition(accept: str = "") -> tuple[bytes, str]:
    """The metrics in the format the scraper asks for (its Accept header), and their
    content type: this process's, or every worker's in multiprocess mode. Reads files
    in that mode: call it off the event loop."""
    registry: CollectorRegistry = REGISTRY
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


def process_ended() -> None:
    """Forget this worker's running-streams gauge (its counters stay, summed with the
    other workers'): on shutdown, in multiprocess mode."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())
