"""The DetachedBodies fence (server/responses.py): an event stream's body is written
after the framework returns, unless middleware that may wrap `send` was added, and
then it goes through that middleware, whole. Real uvicorn, and granian embedded, in
this process (the test adds middleware to the app object)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenrelay.config import Settings
from tokenrelay.server import create_app
from tokenrelay.server.responses import DETACH, DetachedBodies
from tests.servers import HTTP_SERVERS, free_port

BODY = {"messages": [{"role": "user", "content": "hi"}], "model": "scripted",
        "options": {"text": "one two three four five six seven eight"}}


class CountingMiddleware:
    """Wraps `send`, as logging, metrics or compression middleware do."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.bodies: list[bytes] = []
        self.ended = False
        CountingMiddleware.last = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.bodies.append(message.get("body", b""))
                self.ended = self.ended or not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, counting)


class Probe:
    """Records, in one shared list, when the ASGI app it wraps returned and when the
    body's last message passed through its `send`."""

    def __init__(self, app: ASGIApp, name: str, order: list[str]) -> None:
        self.app, self.name, self.order = app, name, order
        self.extension_seen = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/chat":
            await self.app(scope, receive, send)
            return

        async def watching(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.order.append(f"{self.name}: body ended")
            await send(message)

        self.extension_seen = DETACH in (scope.get("extensions") or {})
        await self.app(scope, receive, watching)
        self.order.append(f"{self.name}: returned")


@asynccontextmanager
async def serving(app: FastAPI, http_server: str = "uvicorn") -> AsyncIterator[str]:
    if http_server == "granian":
        async with serving_on_granian(app) as url:
            yield url
        return
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:
        assert not task.done(), "the server did not start"
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def serving_on_granian(app: FastAPI) -> AsyncIterator[str]:
    """granian's embedded server, as `tokenrelay serve --server granian` runs it, on
    this test's loop (without the runner's signal handlers: pytest keeps its own)."""
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    port = free_port()
    server = Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI,
                    http=HTTPModes.http1, log_level=LogLevels.warning)
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    deadline = asyncio.get_running_loop().time() + 30
    while True:  # listening (no request: the middleware under test would count it)
        assert not task.done(), "the server did not start"
        assert asyncio.get_running_loop().time() < deadline
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        await asyncio.sleep(0.02)
    try:
        yield url
    finally:
        server.stop()
        await asyncio.wait_for(task, 30)


async def _chat(url: str) -> bytes:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post("/api/chat", json=BODY)
        assert response.status_code == 200
        return response.content


def _app() -> FastAPI:
    return create_app(Settings(model="scripted", database="memory"))


@pytest.mark.parametrize("http_server", HTTP_SERVERS)
async def test_a_stream_through_a_send_wrapping_middleware_arrives_whole(
        http_server: str) -> None:
    app = _app()
    app.add_middleware(CountingMiddleware)
    async with serving(app, http_server) as url:
        received = await _chat(url)
    seen = CountingMiddleware.last
    assert b"event: done" in received and b"eight" in received
    assert b"".join(seen.bodies) == received  # the middleware saw every byte it sent
    assert seen.ended
    assert not isinstance(app.middleware_stack, DetachedBodies)


@pytest.mark.parametrize("http_server", HTTP_SERVERS)
async def test_without_foreign_middleware_the_body_is_written_after_the_framework_returns(
        http_server: str) -> None:
    app = _app()
    order: list[str] = []
    inner: list[Probe] = []

    def build() -> ASGIApp:
        inner.append(Probe(FastAPI.build_middleware_stack(app), "framework", order))
        return Probe(DetachedBodies(inner[0]), "server", order)

    assert isinstance(app.build_middleware_stack(), DetachedBodies)  # what the app runs
    app.build_middleware_stack = build  # type: ignore[method-assign]
    async with serving(app, http_server) as url:
        received = await _chat(url)
    assert b"event: done" in received
    assert inner[0].extension_seen
    # The body goes out with the server's own `send`, after the framework returned.
    # The day Starlette drops our extension from the scope, or the response writes its
    # body inline again, this order changes (and the frames stay alive under it).
    assert order == ["framework: returned", "server: body ended", "server: returned"]


async def test_the_setting_turns_detaching_off() -> None:
    app = create_app(Settings(model="scripted", database="memory", detach_bodies=False))
    assert not isinstance(app.build_middleware_stack(), DetachedBodies)
    async with serving(app) as url:
        assert b"event: done" in await _chat(url)


