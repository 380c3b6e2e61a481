"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from types import FrameType

from fastapi import FastAPI
from starlette.types import ASGIApp

from tokenrelay.chat import ChatService
from tokenrelay.config import MEMORY_DATABASE, Settings
from tokenrelay.errors import TokenrelayError
from tokenrelay.providers import Registry
from tokenrelay.server import errors, page, routes, v1
from tokenrelay.server.auth import Keys
from tokenrelay.server.guard import Guard
from tokenrelay.server.limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tokenrelay.server.responses import DetachedBodies
from tokenrelay.store import Store
from tokenrelay.store.memory import MemoryStore
from tokenrelay.store.sql import SqlStore
from tokenrelay.streams import StreamLog
from tokenrelay.streams.memory import MemoryStreamLog

log = logging.getLogger("tokenrelay.server")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(settings: Settings) -> Settings:
    """Refuse impossible settings; returns them with the keys file read into `api_keys`."""
    if settings.workers < 1:
        raise TokenrelayError("--workers must be at least 1.")
    try:
        settings = replace(settings, api_keys=settings.keys(), api_keys_file=None)
    except OSError as exc:
        raise TokenrelayError(f"Cannot read the API keys file {settings.api_keys_file}: "
                              f"{exc.strerror}.") from None
    if not settings.api_keys and not _loopback(settings.host):
        log.warning(
            "\n!!! tokenrelay is listening on %s WITHOUT API KEYS: anyone who can reach it "
            "can read every conversation and spend your model credits. Set "
            "TOKENRELAY_API_KEYS or --api-keys-file (docs/security.md). !!!\n", settings.host)
    if settings.workers > 1 and not settings.redis:
        raise TokenrelayError(
            f"--workers {settings.workers} needs --redis URL: a stream lives in the process "
            "that generates it, and only a shared stream log lets another worker serve its "
            "readers, resume and cancel.")
    return settings


def make_streams(settings: Settings) -> StreamLog:
    if settings.redis:
        from tokenrelay.streams.redis import RedisStreamLog

        return RedisStreamLog(settings.redis, retention=settings.retention,
                              heartbeat=settings.heartbeat, lease=settings.lease)
    return MemoryStreamLog(retention=settings.retention, heartbeat=settings.heartbeat)


async def _reap_now_and_then(service: ChatService, every: float) -> None:
    """With a shared log, a worker or host can die while others live: look for its
    orphaned answers every lease period."""
    while True:
        await asyncio.sleep(every)
        try:
            await service.reap()
        except Exception:
            log.exception("reaping orphaned streams failed; retrying")


def make_store(settings: Settings) -> Store:
    if settings.database_url == MEMORY_DATABASE:
        return MemoryStore()
    return SqlStore(settings.database_url)


async def _warm(service: ChatService) -> None:
    """Load the default model in the background, so the first answer starts fast."""
    try:
        await service.registry.load(service.settings.model)
        provider, model = service.registry.resolve(service.settings.model)
        await provider.warm(model)
    except Exception:
        log.exception("could not warm up %s; it loads on first use", service.settings.model)


def _drain_on_exit_signal(service: ChatService, grace: float) -> Callable[[], None]:
    """Graceful shutdown (issue 8). uvicorn, on SIGTERM/SIGINT, stops accepting and
    then waits for open connections before the lifespan shutdown runs; an open stream
    would hold it until its timeout and then be cut. So the first signal also starts
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
        end = service.drain(grace) if signals == 1 else service.end_generations()
        loop.call_soon_threadsafe(lambda: loop.create_task(end))
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
    """FastAPI with DetachedBodies around all of its middleware: a stream's body is
    written with uvicorn's own `send`, and none of the framework's frames stay under it."""

    def build_middleware_stack(self) -> ASGIApp:
        return DetachedBodies(super().build_middleware_stack())


def app_from_env() -> FastAPI:
    """The app with settings from TOKENRELAY_* variables (each `--workers` process)."""
    from tokenrelay.server.runner import tune_gc

    app = create_app(Settings.from_env())
    tune_gc()  # as `run` does for one process, once the app is built
    return app


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    """Build the app; its lifespan makes the service and ends every stream on shutdown."""
    settings = check_settings(settings or Settings.from_env())
    limiter: RateLimiter | None = None
    if settings.api_keys and settings.rate_limit:
        limiter = (RedisRateLimiter(settings.rate_limit, settings.redis) if settings.redis
                   else MemoryRateLimiter(settings.rate_limit))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = make_store(settings)
        await store.start()
        streams = make_streams(settings)
        await streams.start()
        service = ChatService(settings, registry or Registry(), streams, store)
        app.state.service = service
        await service.reap()
        background = [asyncio.create_task(_warm(service))]
        if settings.redis:
            background.append(asyncio.create_task(_reap_now_and_then(service, settings.lease)))
        restore = _drain_on_exit_signal(service, settings.shutdown_grace)
        try:
            yield
        finally:
            restore()
            for task in background:
                task.cancel()
            await service.shutdown()
            if limiter is not None:
                await limiter.close()

    app = _App(title="tokenrelay", version="0.1.0", lifespan=lifespan)
    app.state.keys = Keys(settings.api_keys)
    app.add_middleware(Guard, keys=app.state.keys, limiter=limiter,
                       max_body_bytes=settings.max_body_bytes)
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(v1.router)
    app.include_router(page.router)
    page.mount_assets(app)
    return app
