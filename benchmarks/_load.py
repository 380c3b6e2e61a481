"""The load generator of benchmarks/many.py: many concurrent SSE streams from one
process, on uvloop.

    python -m benchmarks._load --port P --streams N --index 0 --of 2 --tokens 30 --rate 10
        --ramp 1.5 --out FILE

Raw sockets through asyncio protocols (no HTTP library): one `POST /api/chat` per
connection (HTTP/1.1, `Connection: close`), a chunked-body decoder that only slices,
and SSE events split on the blank line; each `delta` event gets the time
(`time.monotonic()`, the system-wide CLOCK_MONOTONIC, so the parent and the other
client processes share it) of the read that completed it.

This process takes the streams whose global index i has i % of == index, and opens
stream i at go + i * ramp / N, `go` being a CLOCK_MONOTONIC instant the parent writes
to stdin once every client process has printed `ready`. It writes one JSON object to
`--out`: per stream the connect time, the delta arrival times and an error if any,
plus this process's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from typing import Any

_DELTA = b"event: delta"
_now = time.monotonic


def request(host: str, port: int, i: int, tokens: int, rate: float) -> bytes:
    """The scripted provider's request for stream `i`: `tokens` deltas `"w "`, one
    every 1/rate s (the `paced` peer reads the same options)."""
    body = json.dumps({
        "messages": [{"role": "user", "content": f"s{i}"}],
        "model": "scripted",
        "options": {"text": "w " * tokens, "delay_ms": 1000 / rate},
    }).encode()
    head = (f"POST /api/chat HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


class Stream(asyncio.Protocol):
    """One connection: sends its request, decodes the chunked SSE answer, times deltas."""

    def __init__(self, payload: bytes, finished: asyncio.Future[None]) -> None:
        self.payload = payload
        self.finished = finished
        self.times: list[float] = []
        self.error: str | None = None
        self.complete = False
        self.transport: asyncio.Transport | None = None
        self._head: bytes | None = b""  # None once the headers are in
        self._buf = b""  # undecoded chunked bytes
        self._events = b""  # the part of an SSE event not yet ended by a blank line

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.payload)  # type: ignore[attr-defined]

    def _fail(self, error: str) -> None:
        if self.error is None and not self.complete:
            self.error = error
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = _now()
        if self._head is not None:
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head = head
                return
            self._head = None
            status_line, _, rest = head[:end].partition(b"\r\n")
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or parts[1] != b"200":
                self._fail(f"HTTP {parts[1].decode('latin-1') if len(parts) > 1 else '?'}")
                return
            if b"chunked" not in rest.lower():
                self._fail("not chunked")
                return
            data = head[end + 4:]
        buf = self._buf + data if self._buf else data
        pos, size_of_buf = 0, len(buf)
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            try:
                size = int(buf[pos:eol].partition(b";")[0], 16)
            except ValueError:
                self._fail("bad chunk size line")
                return
            start = eol + 2
            end = start + size
            if end + 2 > size_of_buf:
                break
            if size == 0:
                self.complete = True
                pos = size_of_buf
                if self.transport is not None:
                    self.transport.close()
                break
            self._event_bytes(buf[start:end], now)
            pos = end + 2
        self._buf = buf[pos:]

    def _event_bytes(self, payload: bytes, now: float) -> None:
        if not self._events and payload.endswith(b"\n\n"):  # whole events: the usual case
            count = payload.count(_DELTA)
            if count:
                self.times.extend([now] * count)
            return
        text = self._events + payload
        cut = text.rfind(b"\n\n")
        if cut < 0:
            self._events = text
            return
        count = text.count(_DELTA, 0, cut)
        if count:
            self.times.extend([now] * count)
        self._events = text[cut + 2:]

    def eof_received(self) -> bool | None:
        if not self.complete:
            self._fail("connection closed before the last chunk")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete and self.error is None:
            self.error = f"connection lost: {exc!r}" if exc else "connection closed early"
        if not self.finished.done():
            self.finished.set_result(None)


async def run(args: argparse.Namespace, go: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    mine = list(range(args.index, args.streams, args.of))
    records: dict[int, dict[str, Any]] = {}
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        finished: asyncio.Future[None] = loop.create_future()
        payload = request(args.host, args.port, i, args.tokens, args.rate)
        record = records[i] = {"i": i, "connect": _now(), "times": [], "error": None}
        proto = Stream(payload, finished)
        try:
            await loop.create_connection(lambda: proto, args.host, args.port)
            await finished
        except asyncio.CancelledError:
            proto.error = proto.error or "timed out"
            if proto.transport is not None:
                proto.transport.abort()
        except OSError as exc:
            proto.error = f"connect: {exc!r}"
        record["times"] = proto.times
        if proto.error is None and not proto.complete:
            proto.error = "incomplete"
        record["error"] = proto.error

    step = args.ramp / args.streams
    for i in mine:
        delay = go + i * step - _now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    deadline = go + args.ramp + args.tokens / args.rate * 3 + args.slack
    _, pending = await asyncio.wait(tasks, timeout=max(deadline - _now(), 0.1))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    return {"streams": [records[i] for i in mine if i in records]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._load")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", type=int, required=True, help="streams in all processes")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--of", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--ramp", type=float, default=1.5)
    parser.add_argument("--slack", type=float, default=20.0,
                        help="seconds allowed past ramp + 3x a stream's nominal length")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.streams // args.of + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    import uvloop

    print("ready", flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return 2  # the parent went away
    go = float(line)
    cpu0 = time.process_time()
    result = uvloop.run(run(args, go))
    result["cpu"] = time.process_time() - cpu0
    with open(args.out, "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
