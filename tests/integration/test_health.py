"""Liveness and readiness (issue 14, point 11): /healthz says the process answers;
/readyz says whether it can serve, and answers 503 naming what failed while the
PostgreSQL database or the redis-server behind it is stopped, 200 once it is back."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import _as_postgres_user, postgres_bindir
from tests.servers import free_port, start_redis, start_server

DEADLINE = 60.0


@dataclass
class OwnPostgres:
    """A PostgreSQL of this test's own, so that stopping it disturbs no other test."""

    bindir: Path
    data: Path
    port: int
    options: str
    user: list[str]

    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.user, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
                       check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self._ctl("-o", self.options, "-l", str(self.data.parent / "log"), "-w", "-t", "60",
                  "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found: `apt-get install postgresql`")
    user, uid, gid = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="tokenrelay-pg-ready-"))
    sockets = root / "sockets"
    sockets.mkdir()
    if uid is not None:
        for path in (root, sockets):
            shutil.chown(path, uid, gid)
    subprocess.run([*user, str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
                    "-A", "trust", "--no-sync", "-E", "UTF8"],
                   check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    postgres = OwnPostgres(bindir, root / "data", port,
                           f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off",
                           user)
    postgres.start()
    try:
        yield postgres
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            postgres._ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def readiness(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{url}/readyz", timeout=10)
    return response.status_code, response.json()


def until(url: str, wanted: Callable[[int, dict[str, Any]], bool]) -> tuple[int, dict[str, Any]]:
    """Ask /readyz until `wanted` holds; the last answer if the deadline passes."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status, body = readiness(url)
        if wanted(status, body) or time.monotonic() > deadline:
            return status, body
        time.sleep(0.1)


def test_readiness_follows_the_database_and_redis(tmp_path: Path) -> None:
    redis_port = free_port()
    with own_postgres() as postgres, contextlib.ExitStack() as redis:
        redis.enter_context(start_redis(redis_port, tmp_path))
        with start_server("--model", "scripted", "--database", postgres.url(),
                          "--redis", f"redis://127.0.0.1:{redis_port}/0") as server:
            status, body = readiness(server.url)
            assert (status, body["status"]) == (200, "ready"), body
            assert body["checks"] == {"database": "ok", "redis": "ok", "accepting": "ok"}

            postgres.stop()
            status, body = until(server.url, lambda s, b: s == 503)
            assert status == 503, body
            assert body["status"] == "not_ready"
            assert body["checks"]["database"] != "ok" and body["checks"]["redis"] == "ok"
            assert body["error"]["code"] == "not_ready"
            assert "database" in body["error"]["message"]
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200

            postgres.start()
            status, body = until(server.url, lambda s, b: s == 200)
            assert status == 200, body

            redis.close()  # redis-server stopped
            status, body = until(server.url, lambda s, b: s == 503)
            assert status == 503, body
            assert body["checks"]["redis"] != "ok" and body["checks"]["database"] == "ok"
            assert "redis" in body["error"]["message"]

            redis.enter_context(start_redis(redis_port, tmp_path))
            status, body = until(server.url, lambda s, b: s == 200)
            assert status == 200, body
            log = server.log()
    # Each outage is one line when it starts, never a traceback (and it is asked
    # about many times meanwhile).
    assert log.count("not ready: database failed") == 1, log
    assert log.count("not ready: redis failed") == 1, log
    assert "Traceback" not in log, log


def test_readiness_with_the_default_backends(server) -> None:  # type: ignore[no-untyped-def]
    """SQLite and the in-process stream log: only the database is checked."""
    assert readiness(server.url) == (200, {"status": "ready",
                                           "checks": {"database": "ok", "accepting": "ok"}})
    assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
