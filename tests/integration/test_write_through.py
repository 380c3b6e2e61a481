"""The write-through fence (server/responses.py `_Connection`): a caught-up reader's
events are written to the socket by the generation's own task step, driving uvicorn's
`send` outside the body's task; a full socket hands the write back to the body's task
with nothing lost or reordered. Real uvicorn, in this process (the tests count the
writes by wrapping the connection's method)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest

from tokenrelay.config import Settings
from tokenrelay.server import create_app
from tokenrelay.server import responses
from tokenrelay.sse import Decoder
from tests.integration.test_detached_bodies import serving


class Counts:
    def __init__(self) -> None:
        self.through = 0
        self.left_pending = 0


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    counts = Counts()
    write_now = responses._Connection.write_now

    def counting(self: Any, chunk: bytes) -> bool:
        written = write_now(self, chunk)
        if written:
            counts.through += 1
        else:
            counts.left_pending += 1
        return written

    monkeypatch.setattr(responses._Connection, "write_now", counting)
    return counts


async def _post(url: str, body: dict[str, Any], *, rcvbuf: int | None = None,
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    payload = orjson.dumps(body)
    writer.write(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
    await writer.drain()
    return reader, writer


def _events(raw: bytes) -> list[Any]:
    head, _, chunked = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    body, rest = b"", chunked
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2:]
    return Decoder().feed(body)


async def test_a_caught_up_reader_is_written_by_the_generation_itself(counts: Counts) -> None:
    app = create_app(Settings(model="scripted", database="memory"))
    words = [f"w{n} " for n in range(30)]
    body = {"messages": [{"role": "user", "content": "hi"}],
            "options": {"text": "".join(words), "delay_ms": 20}}
    async with serving(app) as url:
        reader, writer = await _post(url, body)
        raw = await asyncio.wait_for(reader.read(), 60)
        writer.close()
    events = _events(raw)
    assert [e.event for e in events] == ["start", *["delta"] * 30, "done"]
    assert [orjson.loads(e.data)["text"] for e in events[1:-1]] == words
    # 20 ms apart, the reader is caught up before each delta: they go out from the
    # generation's step. The day uvicorn's `send` suspends on a writable socket, none do.
    assert counts.through >= 15, counts.through
    assert counts.left_pending == 0


async def test_a_full_socket_hands_the_write_back_and_nothing_is_lost(counts: Counts) -> None:
    app = create_app(Settings(model="scripted", database="memory",
                              max_body_bytes=32 * 1024 * 1024))
    words = [f"{n:05d}" + "x" * 1000 + " " for n in range(8000)]  # 8 MB: more than buffers
    body = {"messages": [{"role": "user", "content": "hi"}], "options": {"text": "".join(words)}}
    async with serving(app) as url:
        reader, writer = await _post(url, body, rcvbuf=4096)
        deadline = asyncio.get_running_loop().time() + 60
        while counts.left_pending == 0:  # the client reads nothing until a write waits
            assert asyncio.get_running_loop().time() < deadline, "no write ever waited"
            await asyncio.sleep(0.01)
        raw = await asyncio.wait_for(reader.read(), 120)
        writer.close()
    events = _events(raw)
    assert [e.id for e in events] == [str(n) for n in range(1, len(words) + 3)]
    assert [orjson.loads(e.data)["text"] for e in events[1:-1]] == words
    assert events[-1].event == "done"
