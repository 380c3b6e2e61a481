"""Server settings: one frozen object, built from CLI flags and `TOKENRELAY_*` env vars."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

__all__ = ["Settings", "default_database_url", "MEMORY_DATABASE"]

#: `--database memory`: conversations in process memory, gone on restart
MEMORY_DATABASE = "memory"


def default_database_url() -> str:
    """SQLite in the user's data directory (e.g. ~/.local/share/tokenrelay)."""
    path = Path(platformdirs.user_data_dir("tokenrelay", appauthor=False)) / "tokenrelay.db"
    return f"sqlite+aiosqlite:///{path}"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    #: the model used when a request names none; `local` is the bundled SmolLM2
    model: str = "local"
    #: SQLAlchemy URL; None for the default SQLite file; `memory` for no persistence
    database: str | None = None
    redis: str | None = None
    #: seconds a finished stream stays readable (resume, late readers)
    retention: float = 600.0
    #: seconds of silence after which a reader gets a `: ping` comment
    heartbeat: float = 15.0
    #: stop a generation nobody has read for this many seconds (None: never)
    abandon_after: float | None = None
    #: the reconnection time sent to EventSource clients (`retry:` field), in ms
    retry_ms: int = 1000
    #: with --redis: seconds after which a generating process that stopped renewing
    #: its lease is judged lost (it renews every lease / 3)
    lease: float = 6.0
    #: server processes (more than one needs --redis)
    workers: int = 1

    @property
    def database_url(self) -> str:
        return self.database or default_database_url()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `TOKENRELAY_<FIELD>` variables, then the non-None overrides."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"TOKENRELAY_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(f.name, raw, getattr(cls(), f.name))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _parse(name: str, raw: str, default: Any) -> Any:
    if raw == "":
        return None
    try:
        if isinstance(default, bool):
            return raw.lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float) or name == "abandon_after":
            return float(raw)
    except ValueError:
        raise ValueError(f"TOKENRELAY_{name.upper()}={raw!r} is not a number") from None
    return raw
