"""Chaos (issue 8): 100 concurrent streams, 1,000 connection drops and resumes.

Every stream is read through ten dropped connections, half cut by the client (it closes
its socket after a random number of body bytes, possibly mid-event, mid-character)
and half by a proxy in between (tests/proxy.py cuts after the number of body bytes the
request asks for), each followed by a resume with Last-Event-ID, as EventSource does.
What a user would notice is checked: the final text, the events in order with none
lost or repeated, and an explicit `done` at the end of every stream.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.proxy import CUT_HEADER, cutting_proxy
from tests.servers import Server, start_server
from tests.sse_client import chat
from tokenrelay.sse import Decoder, Event

pytestmark = pytest.mark.slow

STREAMS = 100
DROPS_PER_STREAM = 10  # 5 by the client, 5 by the proxy: 1,000 in all
SEED = 8
DELAY_MS = 12  # between deltas: each generation lasts ~2 s, so cuts hit live tails too

# Multi-line, CRLF, multi-byte and astral characters: a cut can land inside any of them.
_WORDS = ("relay", "stream", "résumé", "naïve", "日本語", "emoji 🚀", "tab\tstop",
          "line\nbreak", "crlf\r\nend", "**bold**", "`code`", "ünïcödé", "- item\n")


def _texts(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choice(_WORDS) for _ in range(120)) + f" (text {n})."
            for n in range(count)]


def _body(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "chaos"}], "model": "scripted",
            "options": {"text": text, "delay_ms": DELAY_MS}}


def _size(event: Event) -> int:
    """Bytes of an event on the wire (id, event and data lines, blank line)."""
    return len(event.id) + len(event.event) + len(event.data.encode()) + 22


@dataclass
class Reader:
    """One stream read through planned drops, collecting what a client would keep."""

    text: str
    drops: list[str]  # the kind of each planned drop, in order: "client" or "proxy"
    reference_sizes: list[int]
    rng: random.Random
    stream_id: str | None = None
    events: list[Event] = field(default_factory=list)
    observed: dict[str, int] = field(default_factory=lambda: {"client": 0, "proxy": 0})
    legs: int = 0

    @property
    def last_id(self) -> int:
        return int(self.events[-1].id) if self.events else 0

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1].event in ("done", "error")

    def cut_point(self) -> int:
        """Body bytes to let through before cutting: somewhere in the first 80% of what
        is left (by the uninterrupted run's sizes), so the cut comes before `done`."""
        remaining = sum(self.reference_sizes[self.last_id:])
        return self.rng.randint(0, int(remaining * 0.8))


async def _leg(reader: Reader, direct: httpx.AsyncClient, proxied: httpx.AsyncClient,
               kind: str | None) -> None:
    """One connection: the first POST or a resume; cut by `kind`, or read to the end."""
    cut = reader.cut_point() if kind else None
    headers = {"Connection": "close"}
    if kind == "proxy":
        headers[CUT_HEADER] = str(cut)
    client = proxied if kind == "proxy" else direct
    if reader.stream_id is None:
        request = client.build_request("POST", "/api/chat", json=_body(reader.text),
                                       headers=headers)
    else:
        headers["Last-Event-ID"] = str(reader.last_id)
        request = client.build_request("GET", f"/api/streams/{reader.stream_id}",
                                       headers=headers)
    reader.legs += 1
    decoder = Decoder()
    received = 0
    try:
        response = await client.send(request, stream=True)
        try:
            assert response.status_code == 200, (response.status_code, await response.aread())
            reader.stream_id = response.headers["x-stream-id"]
            async for chunk in response.aiter_raw():
                if kind == "client" and received + len(chunk) >= cut:
                    reader.events += decoder.feed(chunk[: cut - received])
                    break  # closing the response closes the socket mid-stream
                received += len(chunk)
                reader.events += decoder.feed(chunk)
        finally:
            await response.aclose()
    except (httpx.RemoteProtocolError, httpx.ReadError):
        if kind != "proxy":
            raise
    if kind is not None and not reader.finished:
        reader.observed[kind] += 1


async def _read_with_drops(reader: Reader, direct: httpx.AsyncClient,
                           proxied: httpx.AsyncClient) -> None:
    for kind in reader.drops:
        await _leg(reader, direct, proxied, kind)
    while not reader.finished:
        await _leg(reader, direct, proxied, None)


async def _run_all(readers: list[Reader], base: str, proxy_url: str) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(30)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as direct, \
            httpx.AsyncClient(base_url=proxy_url, limits=limits, timeout=timeout) as proxied:
        await asyncio.gather(*(_read_with_drops(r, direct, proxied) for r in readers))


@pytest.fixture(scope="module")
def chaos_server() -> Any:
    with start_server("--model", "scripted") as running:
        yield running


def test_a_thousand_drops_and_resumes_lose_and_repeat_nothing(
        chaos_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    texts = _texts(rng, 5)
    references = [chat(chaos_server.url, {**_body(t), "options": {"text": t}}) for t in texts]
    for text, reference in zip(texts, references):
        assert reference.text == text and reference.last[0] == "done"

    readers = []
    for n in range(STREAMS):
        kinds = ["client", "proxy"] * (DROPS_PER_STREAM // 2)
        rng.shuffle(kinds)
        which = n % len(texts)
        readers.append(Reader(texts[which], kinds,
                              [_size(e) for e in references[which].events],
                              random.Random(rng.getrandbits(64))))

    port = int(chaos_server.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with cutting_proxy(port) as proxy:
        asyncio.run(_run_all(readers, chaos_server.url, proxy.url))
    wall = time.monotonic() - started

    for reader in readers:
        reference = references[texts.index(reader.text)]
        ids = [int(e.id) for e in reader.events]
        assert ids == list(range(1, len(ids) + 1)), f"{reader.stream_id}: ids {ids}"
        assert [e.event for e in reader.events] == [e.event for e in reference.events]
        deltas = [json.loads(e.data)["text"] for e in reader.events if e.event == "delta"]
        assert "".join(deltas) == reference.text
        done = json.loads(reader.events[-1].data)
        assert reader.events[-1].event == "done" and done["finish_reason"] == "stop"
        assert done["length"] == len(reference.text)

    by_client = sum(r.observed["client"] for r in readers)
    by_proxy = sum(r.observed["proxy"] for r in readers)
    legs = sum(r.legs for r in readers)
    with capsys.disabled():
        print(f"\nchaos: {STREAMS} streams, {by_client + by_proxy} drops and resumes "
              f"({by_client} by the client, {by_proxy} by the proxy, {proxy.severed} "
              f"connections severed by it), {legs} connections, {wall:.1f}s")
    assert by_client + by_proxy >= STREAMS * DROPS_PER_STREAM
    assert proxy.severed >= by_proxy
    assert "Traceback" not in chaos_server.log()
