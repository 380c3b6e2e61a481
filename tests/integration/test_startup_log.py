"""What `tokenrelay serve` says when it starts (issue 14, point 11): once, plainly, the
URL, the model, the database (a password masked) and Redis; none of Alembic's lines."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.databases import Postgres
from tests.servers import HTTP_SERVER_ENV, Server, start_redis, start_server


#: what uvicorn, or granian (TESTS_HTTP_SERVER=granian), says once it serves
_RUNNING = ("Uvicorn running on", "Started worker-1")


def _startup(server: Server) -> tuple[list[str], str]:
    """The log's start-up lines (read once the server says it runs) and the whole log."""
    deadline = time.monotonic() + 30
    while (not any(line in server.log() for line in _RUNNING)
           and time.monotonic() < deadline):
        time.sleep(0.05)
    log = server.log()
    return [line for line in log.splitlines() if "tokenrelay on http://" in line], log


def test_the_start_says_where_which_model_and_which_database(tmp_path: Path) -> None:
    database = tmp_path / "chat.db"
    with start_server("--model", "scripted", "--database", f"sqlite+aiosqlite:///{database}",
                      "--log-level", "info") as server:
        lines, log = _startup(server)
    assert len(lines) == 1, log
    line = lines[0]
    http_server = os.environ.get(HTTP_SERVER_ENV) or "uvicorn"
    assert f"{server.url} (1 process{'' if http_server == 'uvicorn' else ', ' + http_server})" in line
    assert "model scripted" in line
    assert f"database SQLite file {database}" in line
    assert "redis none" in line
    assert "alembic" not in log.lower(), log  # no "Context impl", no "Running upgrade"
    assert "Traceback" not in log


def test_a_database_password_is_masked(postgres: Postgres) -> None:
    # Trust authentication: the password is never checked, only shown (or not).
    url = postgres.create_database().replace("postgres@", "postgres:s3cret-pw@")
    with start_redis() as port, start_server(
            "--model", "scripted", "--database", url, "--redis", f"redis://127.0.0.1:{port}/0",
            "--log-level", "info") as server:
        lines, log = _startup(server)
    assert len(lines) == 1, log
    assert "s3cret-pw" not in log
    assert "database postgresql+asyncpg://postgres:***@127.0.0.1:" in lines[0]
    assert f"redis redis://127.0.0.1:{port}/0" in lines[0]
    assert "alembic" not in log.lower(), log
