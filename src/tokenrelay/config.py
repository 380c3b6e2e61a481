"""Server settings: one frozen object, built from CLI flags and `TOKENRELAY_*` env vars."""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from tokenrelay.errors import TokenrelayError

__all__ = ["Settings", "check_settings", "default_database_url", "MEMORY_DATABASE", "SERVERS"]

log = logging.getLogger("tokenrelay.config")

#: `--database memory`: conversations in process memory, gone on restart
MEMORY_DATABASE = "memory"
#: the HTTP servers `--server` chooses from (server/runner.py)
SERVERS = ("uvicorn", "granian")


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
    #: seconds between the batched writes of streaming answers' texts (a crash loses
    #: at most this much of an answer; the final text is always written at its end)
    flush_interval: float = 0.5
    #: the reconnection time sent to EventSource clients (`retry:` field), in ms
    retry_ms: int = 1000
    #: with --redis: seconds after which a generating process that stopped renewing
    #: its lease is judged lost (it renews every lease / 3)
    lease: float = 6.0
    #: server processes (more than one needs --redis)
    workers: int = 1
    #: the HTTP server: `uvicorn`, or `granian` (issue 16's evaluation; the
    #: `tokenrelay[granian]` extra); server/runner.py starts either
    server: str = "uvicorn"
    #: API keys: with any, every /api and /v1 request needs one, and each key is an
    #: owner who sees only its own conversations and streams (docs/security.md)
    api_keys: tuple[str, ...] = ()
    #: a file with one API key per line (blank lines and `#` comments ignored)
    api_keys_file: str | None = None
    #: limits: request body bytes (413), messages and characters per request, the
    #: largest max_tokens a request may ask for (400)
    max_body_bytes: int = 2 * 1024 * 1024
    max_messages: int = 500
    max_characters: int = 500_000
    max_tokens_ceiling: int = 32_768
    #: per key, with API keys set: requests per minute and streams generating at
    #: once (429 with Retry-After); 0 turns a limit off
    rate_limit: int = 600
    max_streams: int = 16
    #: seconds running streams get to finish on SIGTERM before each is ended with an
    #: `error` event (`code: shutdown`) and its partial answer stored
    shutdown_grace: float = 20.0

    #: write event-stream bodies after the framework returns (server/responses.py);
    #: off: through the whole middleware stack, as Starlette does
    detach_bodies: bool = True
    #: freeze the start-up heap and make full GC passes rare (server/runner.py); only
    #: applied on the Python versions where it was measured
    tune_gc: bool = True
    #: take POST /api/chat before FastAPI's routing and dependency solving
    #: (server/fastpath.py); off: FastAPI handles it as every other route
    fast_path: bool = True

    @property
    def database_url(self) -> str:
        return self.database or default_database_url()

    def keys(self) -> tuple[str, ...]:
        """`api_keys` and the keys in `api_keys_file`. Raises OSError if it cannot be read."""
        keys = list(self.api_keys)
        if self.api_keys_file:
            for line in Path(self.api_keys_file).read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.append(line)
        return tuple(dict.fromkeys(keys))

    def env(self) -> dict[str, str]:
        """These settings as TOKENRELAY_* variables (for `--workers` processes)."""
        variables = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                text = ",".join(value) if isinstance(value, tuple) else str(value)
                variables[f"TOKENRELAY_{f.name.upper()}"] = text
        return variables

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
    if isinstance(default, tuple):
        return tuple(item.strip() for item in raw.split(",") if item.strip())
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
    if settings.server not in SERVERS:
        raise TokenrelayError(f"--server {settings.server} is not one of {', '.join(SERVERS)}: "
                              "use --server uvicorn (the default) or --server granian.")
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
