"""Run the app under uvicorn, ending every stream explicitly on SIGTERM/SIGINT."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from tokenrelay.config import Settings


class _Server(uvicorn.Server):
    """uvicorn waits for open connections before the lifespan shutdown runs, and an
    open stream would hold it until its timeout, then be cut. So the generations are
    ended first: every reader gets its `error` event (`code: shutdown`) and finishes."""

    def __init__(self, config: uvicorn.Config, app: FastAPI):
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        service = getattr(self._app.state, "service", None)
        if service is not None:
            await service.end_generations()
        await super().shutdown(sockets)


def run(app: FastAPI, settings: Settings, *, log_level: str = "info") -> None:
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level,
        loop="uvloop", http="httptools", timeout_graceful_shutdown=10,
    )
    _Server(config, app).run()
