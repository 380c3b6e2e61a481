"""A TCP proxy the tests control: it forwards to a server and cuts connections."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.servers import free_port

#: A request may carry its own cut: the proxy closes the connection once this many bytes
#: of the response *body* (after the head) have gone back to the client.
CUT_HEADER = "X-Proxy-Cut-After"
_CUT_LINE = re.compile(rb"^x-proxy-cut-after:[ \t]*(\d+)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_HEAD_END = b"\r\n\r\n"


@dataclass
class CuttingProxy:
    """Forwards 127.0.0.1:port to `target`; connection n is closed after `plan[n]`
    bytes have come back from the server (connections past the plan are not cut).

    A request with an `X-Proxy-Cut-After: N` header is cut after N bytes of its response
    body instead, whatever the plan (many concurrent clients each choose their own cut).
    `severed` counts the connections really cut, plan or header."""

    target_port: int
    plan: list[int] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    connections: int = 0
    cut: int = 0
    severed: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    limit: int | None, *, after_head: bool = False) -> None:
        sent = 0
        head = b""
        try:
            while data := await reader.read(256):
                if after_head:
                    # Count from the end of the response head: forward the head whole.
                    head += data
                    end = head.find(_HEAD_END)
                    if end < 0:
                        writer.write(data)
                        continue
                    after_head = False
                    body = head[end + len(_HEAD_END):]
                    writer.write(data[: len(data) - len(body)])
                    data = body
                if limit is not None and sent + len(data) >= limit:
                    writer.write(data[: max(limit - sent, 0)])
                    await writer.drain()
                    self.severed += 1
                    raise ConnectionResetError("cut by the proxy")
                writer.write(data)
                await writer.drain()
                sent += len(data)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop may be stopping
                writer.close()

    async def _request_head(self, client_r: asyncio.StreamReader) -> tuple[bytes, int | None]:
        """The request head (and whatever followed it in the same reads), and the cut
        its X-Proxy-Cut-After header asks for."""
        received = b""
        while _HEAD_END not in received:
            data = await client_r.read(4096)
            if not data:
                break
            received += data
        match = _CUT_LINE.search(received.partition(_HEAD_END)[0].replace(b"\r\n", b"\n"))
        return received, int(match.group(1)) if match else None

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        first, limit = await self._request_head(client_r)
        by_header = limit is not None
        if not by_header and self.cut < len(self.plan):
            limit = self.plan[self.cut]
            self.cut += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        server_w.write(first)
        upstream = asyncio.ensure_future(self._pipe(client_r, server_w, None))
        downstream = asyncio.ensure_future(
            self._pipe(server_r, client_w, limit, after_head=by_header))
        await asyncio.wait([upstream, downstream], return_when=asyncio.FIRST_COMPLETED)
        for task in (upstream, downstream):
            task.cancel()
        for writer in (client_w, server_w):
            with contextlib.suppress(RuntimeError):
                writer.close()
        await asyncio.gather(upstream, downstream, return_exceptions=True)


@contextlib.contextmanager
def cutting_proxy(target_port: int, *, cut_after: int = 800, cuts: int = 0,
                  plan: list[int] | None = None) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(target_port, plan if plan is not None else [cut_after] * cuts)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server: asyncio.AbstractServer | None = None

    async def serve() -> None:
        nonlocal server
        server = await asyncio.start_server(proxy._handle, "127.0.0.1", proxy.port)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    ready.wait(5)
    try:
        yield proxy
    finally:
        async def stop() -> None:
            assert server is not None
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
