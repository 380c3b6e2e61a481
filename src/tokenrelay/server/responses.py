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
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenrelay.service import Tap

#: DESIGN.md "Contract": never cached, never buffered by a proxy. (Never compressed:
#: the app adds no compression, and a compressing proxy would hold tokens back.)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

#: the `scope["extensions"]` key through which DetachedBodies takes a body over
DETACH = "tokenrelay.detach"

#: a body: (receive, send, drivable) -> written; `drivable`: `receive` and `send` are
#: uvicorn's own, which may be driven outside the body's task (see _Connection)
_Body = Callable[[Receive, Send, bool], Awaitable[None]]


class EventStreamResponse(Response):
    """Writes each chunk of `chunks` as it comes, `prelude` (fields such as `retry:`)
    at the start of the first event's block.

    The client going away cancels the writing (and only that: the generation goes on).
    One ASGI `send` per chunk; the log already joins pending events into one chunk.
    Under DetachedBodies the chunks are written after the framework has returned, and
    `tap` (the reader's, if the log writes through: streams.Tap) is bound to the
    connection, so a caught-up reader's events are written by the task that appends
    them.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        prelude: bytes = b"",
        headers: Mapping[str, str] | None = None,
        tap: Tap | None = None,
    ):
        self.chunks = chunks
        self.prelude = prelude
        self.tap = tap
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        # The body holds the chunks and the prelude, not this response and its headers.
        body = functools.partial(_write_body, self.chunks, self.prelude, self.tap)
        detach = (scope.get("extensions") or {}).get(DETACH)
        if detach is not None:
            detach.append(body)
        else:
            await body(receive, send, False)


async def _write_body(chunks: AsyncIterator[bytes], prelude: bytes, tap: Tap | None,
                      receive: Receive, send: Send, drivable: bool) -> None:
    writer = asyncio.current_task()
    assert writer is not None
    connection = _Connection(send, prelude)
    watch: _Watch = _CallbackWatch(receive, writer) if drivable else _TaskWatch(receive, writer)
    if drivable and tap is not None:
        tap.bind(connection.write_now, connection.settle)
    try:
        async for chunk in chunks:
            await send(connection.message(chunk))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not watch.disconnected:
            raise  # not a disconnect: the server is stopping
        writer.uncancel()
    finally:
        if tap is not None:
            tap.write = None  # nothing more goes through this connection
        watch.close()
        connection.close()
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]


class _Connection:
    """A body's writes to its connection: from the body's own task (`message`, then
    `await send`), or written through from the task that appends an event
    (`write_now`, issue 16), which runs the server's `send` coroutine to its first
    suspension. uvicorn's `send` writes to the transport without suspending unless the
    transport's buffer is full (it then waits for it to drain first); that rest, if
    any, is left pending for the body's task to finish (`settle`). Only uvicorn's own
    `send` is driven so (DetachedBodies, `_drivable`): a middleware's may need its own
    task, and another server's `send` may not complete without suspending.

    Measured (benchmarks/RESULTS.md "Issue 16"): one task step per token instead of
    two. tests/integration/test_write_through.py breaks if uvicorn's `send` starts to
    suspend on a writable transport (every token would then go the reader's way)."""

    __slots__ = ("send", "prelude", "pending")

    def __init__(self, send: Send, prelude: bytes) -> None:
        self.send = send
        self.prelude = prelude
        self.pending: _Resume | None = None

    def message(self, chunk: bytes) -> Message:
        if self.prelude and not chunk.startswith(b":"):  # a heartbeat is no event's block
            chunk, self.prelude = self.prelude + chunk, b""
        return {"type": "http.response.body", "body": chunk, "more_body": True}

    def write_now(self, chunk: bytes) -> bool:
        """Write `chunk` from the calling task; False if the write waits (pending)."""
        steps = self.send(self.message(chunk)).__await__()
        try:
            waiting = steps.send(None)
        except StopIteration:
            return True
        self.pending = _Resume(steps, waiting)
        return False

    async def settle(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending

    def close(self) -> None:
        if self.pending is not None:
            self.pending.steps.close()
            self.pending = None


class _Resume:
    """The rest of a coroutine begun in another task, which waits on `waiting`: awaited,
    it hands each future the coroutine waits on to the awaiting task, and sends and
    throws what the task gets back into the coroutine (what a task does for the
    coroutine it runs)."""

    __slots__ = ("steps", "waiting")

    def __init__(self, steps: Generator[Any, Any, Any] | Iterator[Any], waiting: Any) -> None:
        self.steps = steps
        self.waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        steps, waiting = self.steps, self.waiting
        while True:
            try:
                sent = yield waiting
            except BaseException as exc:  # a cancel, into the coroutine where it waits
                try:
                    waiting = steps.throw(exc)  # type: ignore[union-attr]
                except StopIteration:
                    return
            else:
                try:
                    waiting = steps.send(sent)  # type: ignore[union-attr]
                except StopIteration:
                    return


class _Watch:
    """Notices the client going away: cancels the body's task, says so in
    `disconnected`. ASGI tells of a disconnect only to a pending `receive`."""

    __slots__ = ("receive", "writer", "disconnected")

    def __init__(self, receive: Receive, writer: asyncio.Task[None]) -> None:
        self.receive = receive
        self.writer = writer
        self.disconnected = False

    def _received(self, message: Message) -> bool:
        """True once the client has gone (the writer is then cancelled)."""
        if message["type"] == "http.disconnect":
            self.disconnected = True
            self.writer.cancel()
            return True
        return False

    def close(self) -> None:
        raise NotImplementedError


class _CallbackWatch(_Watch):
    """The server's `receive`, driven by callbacks on the futures it waits on rather
    than awaited in a task of its own: no task, no step to start it, per open stream
    (issue 16; the table in benchmarks/RESULTS.md "Issue 16"). Only for uvicorn's own
    `receive` (DetachedBodies, `_drivable`), like _Connection's writes."""

    __slots__ = ("steps",)

    def __init__(self, receive: Receive, writer: asyncio.Task[None]) -> None:
        super().__init__(receive, writer)
        self.steps: Generator[Any, Any, Any] | Iterator[Any] | None = None
        self._next()

    def _next(self) -> None:
        self.steps = self.receive().__await__()
        self._step(None)

    def _step(self, _done: object) -> None:
        if self.steps is None:
            return
        try:
            waiting = self.steps.send(None)  # type: ignore[union-attr]
        except StopIteration as stop:
            self.steps = None
            if not self._received(stop.value):
                self._next()  # the rest of a request body: wait on
            return
        except Exception:  # a broken connection's receive: as good as gone
            self.steps = None
            self._received({"type": "http.disconnect"})
            return
        if waiting is None:  # a bare yield: step again on the next loop pass
            asyncio.get_running_loop().call_soon(self._step, None)
        else:
            waiting._asyncio_future_blocking = False  # as a task does with what it awaits
            waiting.add_done_callback(self._step)

    def close(self) -> None:
        steps, self.steps = self.steps, None
        if steps is not None:
            steps.close()  # type: ignore[union-attr] (the pending receive lets go)


class _TaskWatch(_Watch):
    """A `receive` that may be a middleware's, awaited in a task of its own."""

    __slots__ = ("task",)

    def __init__(self, receive: Receive, writer: asyncio.Task[None]) -> None:
        super().__init__(receive, writer)
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while not self._received(await self.receive()):
            pass

    def close(self) -> None:
        self.task.cancel()


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
            await body(receive, send, _drivable(send) and _drivable(receive))


def _drivable(method: object) -> bool:
    """Whether `method` is uvicorn's own (a method of its HTTP protocols' request
    cycle), whose `send` writes to the transport without suspending while the socket
    is writable: the write-through and the callback watch were measured and are tested
    with it (tests/integration/test_write_through.py). Another server's (granian's:
    its `send` awaits its own I/O) is awaited in the body's task, as usual."""
    owner = getattr(method, "__self__", None)
    return owner is not None and type(owner).__module__.startswith("uvicorn.protocols.http.")
