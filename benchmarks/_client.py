"""A lean HTTP/1.1 + SSE client for the relay benchmark.

A blocking socket, a chunked-body parser that only slices, and event counting with
`bytes.count` (C speed) once the body is in. It keeps up with several hundred
thousand events per second, so the server under test is what is measured; an
httpx client would top out first. `client_ceiling()` measures how far it goes.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

__all__ = ["BenchError", "StreamResult", "ChunkedBody", "stream", "client_ceiling"]

_RECV_SIZE = 1 << 18
_DELTA = b"event: delta"
# Look for the first delta in at most this much of the body (a server that sends
# none fails the run on the count anyway).
_HEAD_LIMIT = 1 << 20


class BenchError(RuntimeError):
    """A run did not complete as a correct stream: status, framing, count or time."""


@dataclass(frozen=True, slots=True)
class StreamResult:
    events: int  # SSE events, each ended by a blank line (LF LF or CRLF CRLF)
    deltas: int  # of them, `event: delta`
    chunks: int  # HTTP chunks carrying them: uvicorn frames one ASGI `send` (one write) each
    body_bytes: int
    first_delta: float  # seconds from connect to the first complete delta event
    total: float  # seconds from connect to the terminal chunk
    client_cpu: float  # CPU seconds this process spent meanwhile

    @property
    def rate(self) -> float:
        """End to end: deltas over the whole request, time to first delta included."""
        return self.deltas / self.total

    @property
    def steady_rate(self) -> float:
        """After the first delta: what the stream sustains once it flows."""
        span = self.total - self.first_delta
        return (self.deltas - 1) / span if span > 0 and self.deltas > 1 else float("nan")

    @property
    def events_per_chunk(self) -> float:
        """How many events each write carried on average (1 when there is no coalescing)."""
        return self.events / self.chunks if self.chunks else float("nan")


class ChunkedBody:
    """Incremental `Transfer-Encoding: chunked` decoder (RFC 9112 §7.1) that keeps
    the chunk payloads as they are, for counting at the end."""

    __slots__ = ("payloads", "done", "_rest")

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.done = False
        self._rest = b""

    def feed(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        pos, size_of_buf, append = 0, len(buf), self.payloads.append
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            try:
                size = int(buf[pos:eol].partition(b";")[0], 16)
            except ValueError:
                raise BenchError(f"bad chunk size line {buf[pos:eol][:40]!r}") from None
            start = eol + 2
            end = start + size
            if end + 2 > size_of_buf:
                break
            if size == 0:  # the last chunk; these servers send no trailers
                self.done = True
                pos = size_of_buf
                break
            if buf[end:end + 2] != b"\r\n":
                raise BenchError("chunk data not followed by CRLF")
            append(buf[start:end])
            pos = end + 2
        self._rest = buf[pos:]


def _request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _headers(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise BenchError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def stream(host: str, port: int, path: str, body: bytes, *, recv_timeout: float = 10.0,
           deadline: float = 120.0) -> StreamResult:
    """POST `body`, read the event stream to its end, count its events."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    stop = t0 + deadline
    with socket.create_connection((host, port), timeout=recv_timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(_request(host, port, path, body))
        recv = sock.recv

        def more() -> bytes:
            if time.perf_counter() > stop:
                raise BenchError(f"stream not finished after {deadline:.0f}s")
            try:
                return recv(_RECV_SIZE)
            except TimeoutError:
                raise BenchError(f"no bytes for {recv_timeout:.0f}s") from None

        raw = b""
        while b"\r\n\r\n" not in raw:
            data = more()
            if not data:
                raise BenchError(f"connection closed before the headers: {raw[:200]!r}")
            raw += data
        head, _, rest = raw.partition(b"\r\n\r\n")
        status, headers = _headers(head)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if status != 200:
            raise BenchError(f"HTTP {status}: {rest[:300]!r}")
        if not chunked:
            raise BenchError(f"expected a chunked body, got headers {headers}")

        parser = ChunkedBody()
        payloads = parser.payloads
        first_delta: float | None = None
        head_buf, scanned = b"", 0
        data = rest
        while True:
            if data:
                parser.feed(data)
                if first_delta is None and scanned < len(payloads) and len(head_buf) < _HEAD_LIMIT:
                    head_buf += b"".join(payloads[scanned:])
                    scanned = len(payloads)
                    at = head_buf.find(_DELTA)
                    if at >= 0 and (head_buf.find(b"\n\n", at) >= 0
                                    or head_buf.find(b"\r\n\r\n", at) >= 0):
                        first_delta = time.perf_counter()
            if parser.done:
                break
            data = more()
            if not data:
                raise BenchError("connection closed before the last chunk")
        total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0

    whole = b"".join(payloads)
    deltas = whole.count(_DELTA)
    return StreamResult(
        events=whole.count(b"\n\n") + whole.count(b"\r\n\r\n"),
        deltas=deltas,
        chunks=len(payloads),
        body_bytes=len(whole),
        first_delta=(first_delta - t0) if first_delta is not None else float("nan"),
        total=total,
        client_cpu=cpu,
    )


def client_ceiling(events: int) -> float:
    """Events/s this client decodes when the bytes are already there: one chunk per
    event (as uvicorn frames one `send`), fed in the socket reads' size."""
    event = b'id: 99999\nevent: delta\ndata: {"text":"word "}\n\n'
    chunk = b"%x\r\n%s\r\n" % (len(event), event)
    wire = chunk * events + b"0\r\n\r\n"
    reads = [wire[i:i + _RECV_SIZE] for i in range(0, len(wire), _RECV_SIZE)]
    t0 = time.perf_counter()
    parser = ChunkedBody()
    for data in reads:
        parser.feed(data)
    count = b"".join(parser.payloads).count(_DELTA)
    elapsed = time.perf_counter() - t0
    if not parser.done or count != events:
        raise BenchError("client self-test failed")
    return events / elapsed
