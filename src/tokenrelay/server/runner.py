"""Run the app under uvicorn: one process, or `--workers N` processes on one socket."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from tokenrelay.config import Settings

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

log = logging.getLogger("tokenrelay.server")


def run(app: FastAPI, settings: Settings, *, log_level: str = "info") -> None:
    if settings.workers > 1:
        _run_workers(settings, log_level)
        return
    if settings.tune_gc:
        tune_gc()
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
    """uvicorn's supervisor starts each worker from an import string; the workers
    read their settings from TOKENRELAY_* variables, set here from the flags."""
    os.environ.update(settings.env())
    with metrics_folder():
        uvicorn.run("tokenrelay.server.app:app_from_env", factory=True,
                    workers=settings.workers, host=settings.host, port=settings.port,
                    log_level=log_level, loop="uvloop", http="httptools", backlog=BACKLOG,
                    timeout_graceful_shutdown=_connections_timeout(settings))


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
