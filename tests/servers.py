"""Start real servers (tokenrelay, llama.cpp's OpenAI server) as subprocesses."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _granian() -> object:
    """`--server granian` as a test parameter, skipped where granian is not installed
    (an optional extra, under evaluation: issue 16)."""
    import pytest

    if importlib.util.find_spec("granian") is None:
        return pytest.param("granian", marks=pytest.mark.skip(
            reason="granian is not installed: pip install 'tokenrelay[granian]'"))
    return "granian"


#: the HTTP servers `tokenrelay serve --server` runs, for tests parametrized over them
HTTP_SERVERS = ["uvicorn", _granian()]
#: `--server` for every `start_server` whose args name none: `TESTS_HTTP_SERVER=granian
#: pytest tests/integration` runs the suite's real servers on granian (issue 16)
HTTP_SERVER_ENV = "TESTS_HTTP_SERVER"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "ANTHROPIC_", "TOKENRELAY_"))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log_path.read_text()}")


@contextlib.contextmanager
def run_process(argv: list[str], ready_url: str, *, env: dict[str, str] | None = None,
                timeout: float = 60) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log_dir = Path(tempfile.mkdtemp(prefix="tokenrelay-test-"))
    log_path = log_dir / "server.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                   env={**_clean_env(), **(env or {})}, cwd=ROOT)
    try:
        _wait_ready(ready_url, process, log_path, timeout)
        yield process, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def start_server(*args: str, env: dict[str, str] | None = None,
                 port: int | None = None) -> Iterator[Server]:
    """`tokenrelay serve` on a free 127.0.0.1 port, as a user would start it; with a
    fresh SQLite file unless `args` name a --database, and a 1 s shutdown grace unless
    `env` sets one (a test's teardown should not wait for streams it left running);
    on TESTS_HTTP_SERVER's `--server` unless `args` name one."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    if "--server" not in args and os.environ.get(HTTP_SERVER_ENV):
        args = (*args, "--server", os.environ[HTTP_SERVER_ENV])
    if "--database" not in args:
        database = Path(tempfile.mkdtemp(prefix="tokenrelay-db-")) / "chat.db"
        args = (*args, "--database", f"sqlite+aiosqlite:///{database}")
    argv = [sys.executable, "-m", "tokenrelay", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", *args]
    env = {"TOKENRELAY_SHUTDOWN_GRACE": "1", **(env or {})}
    with run_process(argv, f"{url}/healthz", env=env) as (process, log_path):
        yield Server(url, process, log_path)


@contextlib.contextmanager
def start_llama_server(*args: str) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the bundled GGUF; yields its /v1 URL."""
    from tokenrelay.providers.local import bundled_model_path

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path()),
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", *args]
    with run_process(argv, f"{base}/docs", timeout=120):
        yield f"{base}/v1"


@contextlib.contextmanager
def start_redis(port: int | None = None, directory: Path | None = None) -> Iterator[int]:
    """redis-server on a free port, no persistence (a restart loses everything)."""
    binary = shutil.which("redis-server")
    if binary is None:
        import pytest

        pytest.skip("redis-server not found: `apt-get install redis-server` "
                    "(make test does this on Debian)")
    port = port or free_port()
    directory = directory or Path(tempfile.mkdtemp(prefix="tokenrelay-redis-"))
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        process.kill()
        process.wait()
