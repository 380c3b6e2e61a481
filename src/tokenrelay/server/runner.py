"""Run the app under uvicorn: one process, or `--workers N` processes on one socket."""

from __future__ import annotations

import os
from dataclasses import fields

import uvicorn
from fastapi import FastAPI

from tokenrelay.config import Settings


def run(app: FastAPI, settings: Settings, *, log_level: str = "info") -> None:
    if settings.workers > 1:
        _run_workers(settings, log_level)
        return
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level,
                loop="uvloop", http="httptools", timeout_graceful_shutdown=10)


def _run_workers(settings: Settings, log_level: str) -> None:
    """uvicorn's supervisor starts each worker from an import string; the workers
    read their settings from TOKENRELAY_* variables, set here from the flags."""
    for field in fields(Settings):
        value = getattr(settings, field.name)
        if value is not None:
            os.environ[f"TOKENRELAY_{field.name.upper()}"] = str(value)
    uvicorn.run("tokenrelay.server.app:app_from_env", factory=True, workers=settings.workers,
                host=settings.host, port=settings.port, log_level=log_level,
                loop="uvloop", http="httptools", timeout_graceful_shutdown=10)
