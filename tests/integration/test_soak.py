"""Soak (issue 8): 100 streams open at all times for 60 s against one real server.

What an operator would notice: memory that grows with traffic and never comes back,
and file descriptors that leak until the process hits its limit. The server's RSS and
open descriptors are read from /proc while the streams run, and again once they end.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import Server, start_server
from tokenrelay.sse import Decoder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

STREAMS = 100
SOAK_SECONDS = 60.0
WARM_UP_SECONDS = 5.0
# Finished streams stay readable for `retention` seconds (resume, late readers): kept
# short here, so that "after" measures what is left once they have expired.
RETENTION = 3.0
SETTLE_SECONDS = 6.0
MB = 1024 * 1024
TEXT = "soak " * 40  # 40 deltas, 30 ms apart: each stream lasts about 1.2 s


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _one_stream(client: httpx.AsyncClient, n: int) -> str | None:
    """One whole answer; None if it ended with `done` and the full text, else what
    went wrong."""
    body = {"messages": [{"role": "user", "content": f"soak {n}"}], "model": "scripted",
            "options": {"text": TEXT, "delay_ms": 30}}
    decoder, events = Decoder(), []
    try:
        async with client.stream("POST", "/api/chat", json=body) as response:
            if response.status_code != 200:
                return f"status {response.status_code}"
            async for chunk in response.aiter_raw():
                events += decoder.feed(chunk)
    except httpx.TransportError as exc:
        return f"{type(exc).__name__} after {len(events)} events: {exc}"
    text = "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")
    if not events or events[-1].event != "done" or text != TEXT:
        return f"ended with {events[-1].event if events else 'nothing'}, {len(text)} chars"
    return None


async def _keep_open(base: str, seconds: float, pid: int,
                     samples: list[int]) -> tuple[int, list[str]]:
    """`STREAMS` streams, each restarted as it ends, for `seconds`; samples the RSS
    every half second. Returns (streams completed, what went wrong with the others)."""
    deadline = time.monotonic() + seconds
    completed, failures = 0, []
    # Idle connections are dropped after 2 s, before uvicorn's own 5 s keep-alive
    # timeout: a request sent on a connection the server is closing at that moment is
    # reset (the HTTP/1.1 idle race), and with httpx's default of 5 s that can happen.
    limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=STREAMS,
                          keepalive_expiry=2.0)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        async def lane(lane_id: int) -> None:
            n = 0
            nonlocal completed
            while time.monotonic() < deadline:
                problem = await _one_stream(client, lane_id * 1_000_000 + n)
                if problem is None:
                    completed += 1
                else:
                    failures.append(problem)
                n += 1

        async def sample() -> None:
            while time.monotonic() < deadline:
                samples.append(_rss(pid))
                await asyncio.sleep(0.5)

        await asyncio.gather(sample(), *(lane(i) for i in range(STREAMS)))
    return completed, failures


@pytest.fixture(scope="module")
def soak_server() -> Server:
    with start_server("--model", "scripted", env={"TOKENRELAY_RETENTION": str(RETENTION)}) as s:
        yield s


def test_a_minute_of_100_open_streams_leaks_no_memory_or_descriptors(
        soak_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    pid = soak_server.process.pid
    warm: list[int] = []
    asyncio.run(_keep_open(soak_server.url, WARM_UP_SECONDS, pid, warm))
    time.sleep(SETTLE_SECONDS)
    baseline_rss, baseline_fds = _rss(pid), _fds(pid)

    samples: list[int] = []
    started = time.monotonic()
    completed, failed = asyncio.run(_keep_open(soak_server.url, SOAK_SECONDS, pid, samples))
    ran = time.monotonic() - started
    time.sleep(SETTLE_SECONDS)
    after_rss, after_fds = _rss(pid), _fds(pid)
    peak = max(samples)

    with capsys.disabled():
        print(f"\nsoak: {STREAMS} streams open for {ran:.0f}s, {completed} answers "
              f"({len(failed)} bad); RSS baseline {baseline_rss / MB:.1f} MB, peak "
              f"{peak / MB:.1f} MB (+{(peak - baseline_rss) / MB:.1f}), after "
              f"{after_rss / MB:.1f} MB; fds baseline {baseline_fds}, after {after_fds}")
    assert not failed, failed[:10]
    assert completed > STREAMS * 10  # the streams really were restarted, many times
    assert peak - baseline_rss < 50 * MB
    assert after_rss <= 1.2 * baseline_rss
    assert after_fds <= baseline_fds
