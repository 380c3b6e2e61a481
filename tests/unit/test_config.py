"""Settings: keys from the environment and a file, the exposed-bind warning, the
round trip to `--workers` processes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tokenrelay.config import Settings
from tokenrelay.errors import TokenrelayError
from tokenrelay.config import check_settings


def test_keys_come_from_the_variable_and_the_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\nfile-key-1\n\n  file-key-2  # ci\nenv-key\n")
    settings = Settings.from_env({"TOKENRELAY_API_KEYS": "env-key, other ,",
                                  "TOKENRELAY_API_KEYS_FILE": str(keys_file)})
    assert check_settings(settings).api_keys == ("env-key", "other", "file-key-1", "file-key-2")


def test_an_unreadable_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokenrelayError, match="Cannot read the API keys file"):
        check_settings(Settings(api_keys_file=str(tmp_path / "missing")))


@pytest.mark.parametrize(("host", "keys", "warned"), [
    ("0.0.0.0", (), True), ("192.168.1.5", (), True), ("0.0.0.0", ("k",), False),
    ("127.0.0.1", (), False), ("::1", (), False), ("localhost", (), False),
])
def test_binding_beyond_loopback_without_keys_warns(
        caplog: pytest.LogCaptureFixture, host: str, keys: tuple[str, ...], warned: bool) -> None:
    with caplog.at_level(logging.WARNING, logger="tokenrelay.config"):
        check_settings(Settings(host=host, api_keys=keys))
    assert ("WITHOUT API KEYS" in caplog.text) is warned


def test_worker_processes_get_the_same_settings() -> None:
    settings = Settings(api_keys=("a", "b"), max_streams=3, shutdown_grace=2.5, workers=2,
                        redis="redis://x", server="granian")
    assert Settings.from_env(settings.env()) == settings


def test_the_http_server_comes_from_the_environment_and_is_checked() -> None:
    assert Settings.from_env({}).server == "uvicorn"
    assert Settings.from_env({"TOKENRELAY_SERVER": "granian"}).server == "granian"
    with pytest.raises(TokenrelayError, match="--server hypercorn is not one of uvicorn, granian"):
        check_settings(Settings(server="hypercorn"))
