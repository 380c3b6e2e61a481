"""The ASGI application factory: the service in a lifespan, the routes, the guard."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.types import ASGIApp

from tokenrelay.config import Settings, check_settings
from tokenrelay.service import ChatService
from tokenrelay.service.backends import make_limiter
from tokenrelay.server import aisdk, errors, page, responses_api, routes, v1
from tokenrelay.server.auth import Keys
from tokenrelay.server.fastpath import FastChat
from tokenrelay.server.guard import Guard
from tokenrelay.server.responses import DetachedBodies

if TYPE_CHECKING:  # the registry type only: the server never imports providers
    from tokenrelay.providers import Registry

log = logging.getLogger("tokenrelay.server")

#: middleware that does not wrap `send`, so bodies may be detached around it
_DETACHABLE = frozenset({Guard, FastChat})


def _drain_on_exit_signal(service: ChatService, grace: float) -> Callable[[], None]:
    """Graceful shutdown (issue 8). uvicorn (and granian), on SIGTERM/SIGINT, stops
    accepting and then waits for open connections before the lifespan shutdown runs;
    an open stream would hold it until its timeout and then be cut (granian, embedded,
    has no timeout: server/runner.py). So the first signal also starts
    the drain: new answers are refused (503), running ones get `grace` seconds to
    finish, then each is ended with an `error` event (`code: shutdown`) and its partial
    answer stored, and its readers finish. A second signal ends them at once.
    Returns a function that puts the previous handlers back."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signals = 0

    def handle(sig: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            loop.call_soon_threadsafe(service.begin_drain, grace)
        else:
            loop.call_soon_threadsafe(service.end_now)
        handler = previous[sig]
        if callable(handler):
            handler(sig, frame)

    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals are the main thread's (tests run apps elsewhere)
    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is handle:
                signal.signal(sig, handler)

    return restore


class _App(FastAPI):
    """FastAPI with DetachedBodies around all of its middleware (server/responses.py):
    a stream's body is written with uvicorn's own `send`, and none of the framework's
    frames stay under it; unless middleware that may wrap `send` was added."""

    #: settings.detach_bodies
    detach_bodies = True

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if not self.detach_bodies:
            return stack
        foreign = [m.cls.__name__ for m in self.user_middleware  # type: ignore[attr-defined]
                   if m.cls not in _DETACHABLE]
        if foreign:
            log.info("middleware %s added: event-stream bodies are written through it "
                     "(not detached; server/responses.py)", ", ".join(foreign))
            return stack
        return DetachedBodies(stack)


def app_from_env() -> FastAPI:
    """The app with settings from TOKENRELAY_* variables: each `--workers` process's
    entry point (uvicorn imports it by name), so it also tunes this process's GC as
    `runner.run` does for one process."""
    from tokenrelay.server.runner import tune_gc

    settings = Settings.from_env()
    app = create_app(settings)
    if settings.tune_gc:
        tune_gc()
    return app


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    """Build the app; its lifespan opens the service and ends every stream on shutdown."""
    settings = check_settings(settings or Settings.from_env())
    limiter = make_limiter(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = ChatService.build(settings, registry)
        app.state.service = service
        await service.open()
        restore = _drain_on_exit_signal(service, settings.shutdown_grace)
        try:
            yield
        finally:
            restore()
            await service.shutdown()
            if limiter is not None:
                await limiter.close()

    # FastAPI's own /docs and /redoc load from a CDN; server/page.py serves them offline.
    app = _App(title="tokenrelay", version="0.1.0", lifespan=lifespan, docs_url=None,
               redoc_url=None)
    app.detach_bodies = settings.detach_bodies
    app.state.keys = Keys(settings.api_keys)
    if settings.fast_path:
        app.add_middleware(FastChat)  # inside Guard: added first (server/fastpath.py)
    app.add_middleware(Guard, keys=app.state.keys, limiter=limiter,
                       max_body_bytes=settings.max_body_bytes)
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(v1.router)
    app.include_router(aisdk.router)
    app.include_router(responses_api.router)
    app.include_router(page.router)
    page.mount_assets(app)
    page.mount_docs_assets(app)
    return app
