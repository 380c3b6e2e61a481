"""Run the app: one process, or `--workers N` processes on one socket; under uvicorn
(the default) or granian (`--server granian`, issue 16's evaluation).

granian, for one process, runs embedded (`granian.server.embed`, which granian marks
experimental) rather than as its CLI does (a supervisor and worker processes): so the
app is the one `serve` built, the GC tuning and the SIGTERM drain are this process's,
and the benchmarks' CPU and memory figures are the serving process's own. granian's
embedded server installs no signal handlers: `_stop_on_exit_signal` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI

from tokenrelay.config import Settings
from tokenrelay.errors import TokenrelayError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

#: the listen queue: thousands of streams opened at once must wait in it, not have their
#: connections dropped and retried a second later (the kernel caps it at
#: net.core.somaxconn; uvicorn's default is 2,048)
BACKLOG = 65535
#: full collections only after this many second-generation ones (CPython's default: 10)
FULL_COLLECTION_EVERY = 1000
#: prometheus_client's multiprocess switch: a folder where each worker keeps its values
#: (tokenrelay/metrics.py)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the Python versions the GC tuning is for: measured on 3.11; 3.12 and 3.13 keep the
#: same three-generation collector. 3.14's incremental collector ignores the third
#: threshold, so there it would silently do nothing (and freezing alone is unmeasured).
GC_TUNED_VERSIONS = ((3, 11), (3, 13))

#: uvicorn's exit status when the app's start-up fails; granian's is the same here
STARTUP_FAILED = 3
#: each `--workers` process's app factory (server/app.py); granian's adds the proxy
#: headers uvicorn reads itself
WORKER_APP = "tokenrelay.server.app:app_from_env"
GRANIAN_WORKER_APP = "tokenrelay.server.runner:granian_worker_app"

log = logging.getLogger("tokenrelay.server")


def check_server(settings: Settings) -> None:
    """Refuse a `--server` that is not installed (uvicorn comes with the server extra)."""
    if settings.server == "granian" and not _installed("granian"):
        raise TokenrelayError("--server granian needs granian, which is not installed: "
                              "pip install 'tokenrelay[granian]'.")


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a broken or blocked install counts as missing
        return False


def run(app: FastAPI, settings: Settings, *, log_level: str = "info") -> None:
    if settings.workers > 1:
        _run_workers(settings, log_level)
        return
    if settings.tune_gc:
        tune_gc()
    if settings.server == "granian":
        serve_granian(app, settings.host, settings.port, log_level=log_level)
        return
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level,
                loop="uvloop", http="httptools", backlog=BACKLOG,
                timeout_graceful_shutdown=_connections_timeout(settings))


def _connections_timeout(settings: Settings) -> float:
    """How long uvicorn waits for open connections on shutdown: past the streams'
    grace period (server/app.py ends them then), so none is cut before its end."""
    return settings.shutdown_grace + 10


def tune_gc() -> bool:
    """Keep the garbage collector's full passes off the streams (issue 7, many streams).

    A full collection walks every tracked object and holds the event loop meanwhile:
    with ~200 live objects per open stream (most of them the ASGI stack's coroutines
    and closures) it took ~100 ms at 1,000 streams, and CPython's rule (a full pass
    whenever the old generation grew by 25%) ran one about every second, as streams
    come and go. Measured here, almost no stream object is cyclic garbage: refcounting
    frees them, and the young generations catch the rest. So the modules, classes and
    app built at start-up are frozen out of every pass, and full passes are rare.
    Process-wide, so only `serve` applies it (never `create_app`), and only on the
    versions it was measured on; returns whether it did."""
    lowest, highest = GC_TUNED_VERSIONS
    if not lowest <= sys.version_info[:2] <= highest:
        log.info("GC tuning not applied: it is for Python %d.%d to %d.%d (server/runner.py)",
                 *lowest, *highest)
        return False
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
    return True


def _run_workers(settings: Settings, log_level: str) -> None:
    """uvicorn's (or granian's) supervisor starts each worker from an import string;
    the workers read their settings from TOKENRELAY_* variables, set here from the
    flags."""
    os.environ.update(settings.env())
    with metrics_folder():
        if settings.server == "granian":
            _granian_workers(settings, log_level)
            return
        uvicorn.run(WORKER_APP, factory=True,
                    workers=settings.workers, host=settings.host, port=settings.port,
                    log_level=log_level, loop="uvloop", http="httptools", backlog=BACKLOG,
                    timeout_graceful_shutdown=_connections_timeout(settings))


# --- granian ---------------------------------------------------------------------------


def serve_granian(app: ASGIApp, host: str, port: int, *, log_level: str = "info") -> None:
    """Serve `app` in this process with granian's embedded server, on uvloop and
    HTTP/1.1 (as uvicorn runs here). On SIGTERM or SIGINT it stops accepting, waits
    for the open connections, then runs the lifespan's shutdown. It has no timeout for
    them (uvicorn's is `_connections_timeout`): the lifespan's drain ends every stream
    within its grace period, but a client that stops reading could hold the exit.
    benchmarks/_granian.py runs the bare peers with it, so both are served alike."""
    import uvloop
    from granian.errors import FatalError

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            runner.run(_serve_embedded(trusting_proxies(app), host, port, log_level))
        except FatalError:  # the lifespan's start-up failed; granian logged why
            raise SystemExit(STARTUP_FAILED) from None


async def _serve_embedded(app: ASGIApp, host: str, port: int, log_level: str) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    server = Server(app, address=host, port=port, interface=Interfaces.ASGI,
                    http=HTTPModes.http1, backlog=BACKLOG, log_level=_granian_level(log_level),
                    log_access=_access_log(log_level))
    restore = _stop_on_exit_signal(server.stop)
    try:
        await server.serve()
    finally:
        restore()


def _stop_on_exit_signal(stop: Callable[[], None]) -> Callable[[], None]:
    """SIGTERM and SIGINT call `stop` on the loop (the embedded server has no handlers
    of its own). Installed before the lifespan starts, so the lifespan's drain handler
    (server/app.py) runs first and then calls this one. Returns a function that puts
    the previous handlers back."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stop)

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            if handler is not None and signal.getsignal(sig) is handle:
                signal.signal(sig, handler)

    return restore


def trusting_proxies(app: ASGIApp) -> ASGIApp:
    """`app` reading X-Forwarded-Proto and X-Forwarded-For from the proxies uvicorn
    trusts (FORWARDED_ALLOW_IPS, default 127.0.0.1 and ::1), with uvicorn's own
    middleware, as uvicorn runs every app: granian reads neither header, and behind a
    TLS proxy the session cookie would lose `Secure` (server/routes.py)."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    return ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]


def granian_worker_app() -> ASGIApp:
    """Each granian `--workers` process's app (GRANIAN_WORKER_APP)."""
    from tokenrelay.server.app import app_from_env

    return trusting_proxies(app_from_env())


def _granian_workers(settings: Settings, log_level: str) -> None:
    """granian's own supervisor and worker processes (its CLI's way). Past the
    connections' timeout a worker still open is killed, as uvicorn cuts them.

    Started by `spawn`, as uvicorn starts its workers, not by `fork` (granian takes
    the process-wide start method, on Linux `fork` up to Python 3.13): a forked
    worker inherits prometheus_client as imported before PROMETHEUS_MULTIPROC_DIR
    was set, keeps its values in memory, and /metrics, reading the folder, is empty."""
    import multiprocessing

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    multiprocessing.set_start_method("spawn", force=True)
    Granian(GRANIAN_WORKER_APP, factory=True, address=settings.host, port=settings.port,
            interface=Interfaces.ASGI, workers=settings.workers, loop=Loops.uvloop,
            http=HTTPModes.http1, backlog=BACKLOG, log_level=_granian_level(log_level),
            log_access=_access_log(log_level),
            workers_kill_timeout=math.ceil(_connections_timeout(settings))).serve()


def _access_log(log_level: str) -> bool:
    """A line per request at info and below, as uvicorn logs them (granian's access
    log has no level of its own: on, it prints whatever `--log-level` says)."""
    return log_level.lower() in ("info", "debug", "trace")


def _granian_level(log_level: str) -> Any:
    """`--log-level` as granian's LogLevels (uvicorn's `trace` is granian's `debug`)."""
    from granian.log import LogLevels

    name = log_level.lower()
    return LogLevels.debug if name == "trace" else LogLevels(name)


@contextlib.contextmanager
def metrics_folder() -> Iterator[str]:
    """PROMETHEUS_MULTIPROC_DIR for the workers: each keeps its metrics in files there,
    and /metrics sums them from whichever worker is asked. Set before they start (they
    read it when they first import prometheus_client), to a folder of this run's own
    (an earlier run's files would add to the counts), removed when the workers are
    gone. An operator's own setting is used as it is, and its folder left alone."""
    own = os.environ.get(MULTIPROC_ENV)
    if own:
        yield own
        return
    folder = tempfile.mkdtemp(prefix="tokenrelay-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)
