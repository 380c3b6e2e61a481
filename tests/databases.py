"""A real PostgreSQL for the tests: Debian's binaries, initdb into a temp dir, a free
port, run as the `postgres` user when the tests run as root (PostgreSQL refuses root)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port


def postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: int(p.split("/")[-2]))
    found = next((Path(c) for c in reversed(candidates) if Path(c, "initdb").exists()), None)
    if found is None and shutil.which("initdb"):
        found = Path(shutil.which("initdb")).parent  # type: ignore[arg-type]
    return found


@dataclass
class Postgres:
    bindir: Path
    port: int
    started_in: float
    _user: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        name = f"t{os.urandom(6).hex()}"
        subprocess.run([*self._user, str(self.bindir / "createdb"), "-h", "127.0.0.1",
                        "-p", str(self.port), "-U", "postgres", name], check=True)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database at `url`, cutting its open connections: a database lost."""
        name = url.rsplit("/", 1)[1]
        subprocess.run([*self._user, str(self.bindir / "psql"), "-h", "127.0.0.1", "-p",
                        str(self.port), "-U", "postgres", "-c",
                        f"DROP DATABASE {name} WITH (FORCE)"], check=True,
                       stdout=subprocess.DEVNULL)


def _as_postgres_user() -> tuple[list[str], int | None, int | None]:
    if os.geteuid() != 0:
        return [], None, None
    entry = pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"], entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def start_postgres(bindir: Path) -> Iterator[Postgres]:
    started = time.perf_counter()
    user, uid, gid = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="tokenrelay-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if uid is not None:
        for path in (root, sockets):
            os.chown(path, uid, gid)  # type: ignore[arg-type]
    port = free_port()
    subprocess.run([*user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "-A", "trust", "--no-sync", "-E", "UTF8"],
                   check=True, stdout=subprocess.DEVNULL)
    options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")
    subprocess.run([*user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                    "-l", str(root / "log"), "-w", "-t", "60", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield Postgres(bindir, port, time.perf_counter() - started, user)
    finally:
        subprocess.run([*user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], stdout=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)
