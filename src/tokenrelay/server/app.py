"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tokenrelay.chat import ChatService
from tokenrelay.config import MEMORY_DATABASE, Settings
from tokenrelay.errors import TokenrelayError
from tokenrelay.providers import Registry
from tokenrelay.server import errors, page, routes, v1
from tokenrelay.store import Store
from tokenrelay.store.memory import MemoryStore
from tokenrelay.store.sql import SqlStore

log = logging.getLogger("tokenrelay.server")
from tokenrelay.streams.memory import MemoryStreamLog


def _check_backends(settings: Settings) -> None:
    if settings.redis:
        raise TokenrelayError("--redis is not supported yet (the scale-out issue adds it): "
                              "drop the flag to use the in-process stream log.")


def make_store(settings: Settings) -> Store:
    if settings.database_url == MEMORY_DATABASE:
        return MemoryStore()
    return SqlStore(settings.database_url)


async def _warm(service: ChatService) -> None:
    """Load the default model in the background, so the first answer starts fast."""
    try:
        provider, model = service.registry.resolve(service.settings.model)
        await provider.warm(model)
    except Exception:
        log.exception("could not warm up %s; it loads on first use", service.settings.model)


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    """Build the app; its lifespan makes the service and ends every stream on shutdown."""
    settings = settings or Settings.from_env()
    _check_backends(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = make_store(settings)
        await store.start()
        service = ChatService(
            settings,
            registry or Registry(),
            MemoryStreamLog(retention=settings.retention, heartbeat=settings.heartbeat),
            store,
        )
        app.state.service = service
        warming = asyncio.create_task(_warm(service))
        try:
            yield
        finally:
            warming.cancel()
            await service.shutdown()

    app = FastAPI(title="tokenrelay", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(v1.router)
    app.include_router(page.router)
    page.mount_assets(app)
    return app
