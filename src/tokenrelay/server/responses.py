"""The event-stream response: moves the stream log's bytes to the socket, nothing else.

Framework fence (STYLE.md "Framework internals are touched only behind a fence").
`DetachedBodies` writes an event stream's body *after* the ASGI app has returned: a
stream lasts seconds to minutes, and written from inside the route it keeps the whole
framework stack alive under it for that long (FastAPI's request handling and exit
stacks, Starlette's exception layers, the request and its parsed body: ~20 coroutine
frames per open stream). Measured (issue 7, and again for issue 12 in
benchmarks/RESULTS.md "DetachedBodies"): 39 -> 27 KiB per open stream at 1,000
streams, and a lower lateness p99 at 3,000.

What it costs, and how it is kept safe:
- the route hands the body over through `scope["extensions"]["tokenrelay.detach"]`
  (ASGI's place for server-specific additions); a response that finds no such
  extension writes its body inline, as any Starlette response does;
- a middleware that wraps `send` would see the response start but never its body
  (the body goes out with the outer `send`), and a `BaseHTTPMiddleware` would end the
  response early. So `server/app.py` detaches only when the app has no middleware but
  tokenrelay's own (`Guard`, which does not wrap `send`); add any other and bodies are
  written inline, through it (tests/integration/test_detached_bodies.py checks both);
- an exception while a detached body is written never reaches the error middleware:
  the status line has gone out by then in either case, so all it could do is log;
  the generation, not the body, reports upstream failures (as an `error` event).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

#: DESIGN.md "Contract": never cached, never buffered by a proxy. (Never compressed:
#: the app adds no compression, and a compressing proxy would hold tokens back.)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

#: the `scope["extensions"]` key through which DetachedBodies takes a body over
DETACH = "tokenrelay.detach"

_Body = Callable[[Receive, Send], Awaitable[None]]


class EventStreamResponse(Response):
    """Writes each chunk of `chunks` as it comes, `prelude` (fields such as `retry:`)
    at the start of the first event's block.

    The client going away cancels the writing (and only that: the generation goes on).
    One ASGI `send` per chunk; the log already joins pending events into one chunk.
    Under DetachedBodies the chunks are written after the framework has returned.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        prelude: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ):
        self.chunks = chunks
        self.prelude = prelude
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        # The body holds the chunks and the prelude, not this response and its headers.
        body = functools.partial(_write_body, self.chunks, self.prelude)
        detach = (scope.get("extensions") or {}).get(DETACH)
        if detach is not None:
            detach.append(body)
        else:
            await body(receive, send)


async def _write_body(chunks: AsyncIterator[bytes], prelude: bytes, receive: Receive,
                      send: Send) -> None:
    writer = asyncio.current_task()
    assert writer is not None
    watcher = asyncio.create_task(_cancel_on_disconnect(receive, writer))
    try:
        async for chunk in chunks:
            if prelude and not chunk.startswith(b":"):  # a heartbeat is no event's block
                chunk, prelude = prelude + chunk, b""
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not watcher.done() or watcher.cancelled():
            raise  # not a disconnect: the server is stopping
        writer.uncancel()
    finally:
        watcher.cancel()
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]


class DetachedBodies:
    """Writes event-stream bodies after the app has returned (see the top of this
    module). The route only starts the response (status and headers go out at once);
    its body is then written from this middleware's frame, with the server's own
    `receive` and `send`, and everything the route held is freed: the app gets its
    own copy of the scope, so what the framework keeps there per request (its state,
    the parsed body) goes too."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bodies: list[_Body] = []
        extensions = {**(scope.get("extensions") or {}), DETACH: bodies}
        await self.app({**scope, "extensions": extensions}, receive, send)
        if bodies:
            body = bodies.pop()
            await body(receive, send)


async def _cancel_on_disconnect(receive: Receive, writer: asyncio.Task[None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            writer.cancel()
            return
