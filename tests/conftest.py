"""Shared fixtures: a hermetic environment and real servers on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

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
