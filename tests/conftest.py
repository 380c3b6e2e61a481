"""Shared fixtures: a hermetic environment and real servers on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.databases import Postgres, postgres_bindir, start_postgres
from tests.servers import Server, start_server

@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No real provider keys or profiles, no user data directories, no TOKENRELAY_*
    settings: the SDKs also read credentials from files under HOME."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "ANTHROPIC_", "TOKENRELAY_")):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One tokenrelay server (scripted default model) shared by the read-only tests."""
    with start_server("--model", "scripted") as running:
        yield running


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the whole run (the set-up installs Debian's package)."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found: `apt-get install postgresql` "
                    "(make test does this on Debian)")
    with start_postgres(bindir) as running:
        print(f"\nPostgreSQL started in {running.started_in:.2f}s")
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh database of each kind, as a --database URL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/chat.db"
    return request.getfixturevalue("postgres").create_database()  # type: ignore[no-any-return]
