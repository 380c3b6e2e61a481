"""Relay throughput: how many events per second one stream delivers over loopback.

    .venv/bin/python -m benchmarks.relay [--tokens 100000] [--repeat 3] [--quick] [--write]

Starts each server in its own uvicorn process (uvloop, httptools, log level warning)
on a free 127.0.0.1 port, streams `--tokens` deltas through it to a lean raw-socket
client (benchmarks/_client.py), once to warm up and then `--repeat` times, and reports
the median. The servers:

- `bare`: a framework-less ASGI app sending pre-encoded events, one `send` each: the
  limit for Python on this stack when every event is its own write;
- `tokenrelay`: the real server (`tokenrelay serve --model scripted`), every feature on:
  generation task, stream log, store (its default SQLite, in a temporary file),
  resumable ids. The scripted provider hands its text over as a burst (delay_ms 0),
  as an upstream does when one network read holds many tokens: the generation yields
  the loop at least every 1 ms and the reader writes what piled up meanwhile in one
  write;
- `tokenrelay-redis`: the `tokenrelay` row with `--redis` to a redis-server started for
  the run (free port, no persistence): every event also goes to a Redis stream;
- `tokenrelay-trickle`: the same server and request with options.delay_ms = 0.001, so
  the provider suspends on a timer after every delta (one loop turn each under
  uvloop), as when tokens arrive one per network read: the worst case, where nothing
  piles up to be joined;
- `bare-granian`, `tokenrelay-granian` (issue 16, run only when named): `bare` and
  `tokenrelay` on granian instead of uvicorn (`tokenrelay serve --server granian`;
  benchmarks/_granian.py for the bare app), each embedded in the measured process;
- `sse-starlette`: Starlette + sse_starlette.EventSourceResponse, as its README shows;
- `fastapi-sse`: FastAPI's own EventSourceResponse (fastapi.sse), as its docs show.

Issue goal: tokenrelay >= 0.8x bare. `--write` records the run in benchmarks/RESULTS.md,
keeping the sections the other modules write there ("## Many streams",
benchmarks/many.py; "## Added time to first token", benchmarks/ttft.py; "## Local model",
benchmarks/local.py), and its figures in benchmarks/results/relay.json (for
benchmarks/charts.py). `--out DIR` writes DIR/RESULTS.md and DIR/results/ instead;
`--quick --write` without `--out` writes to a new temporary directory, so a smoke run
never replaces the full figures. `python -m benchmarks` runs every module.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._client import BenchError, StreamResult, client_ceiling, stream

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
HOST = "127.0.0.1"
PATH = "/api/chat"
GOAL = 0.8  # the issue: tokenrelay delivers at least 0.8x what the bare app does

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0  # tokenrelay's graceful shutdown allows 10 s


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    argv: Callable[[int], list[str]]
    needs: str | None = None  # a module that must be importable, else skipped
    note: str = ""
    options: dict[str, object] = field(default_factory=dict)  # added to the request's options
    redis: bool = False  # give it `--redis` to a redis-server started with it
    env: dict[str, str] = field(default_factory=dict)  # TOKENRELAY_* settings of its own
    #: an A/B variant (a framework workaround turned off, another HTTP server): run
    #: only when named
    variant: bool = False


#: why the granian rows are skipped where they are
GRANIAN_MISSING = "granian is not installed: pip install 'tokenrelay[granian]'"


def _uvicorn(app: str) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
    ]


def _granian(app: str) -> Callable[[int], list[str]]:
    # Embedded in the process the benchmark watches, as `tokenrelay serve --server
    # granian` runs (benchmarks/_granian.py).
    return lambda port: [
        sys.executable, "-m", "benchmarks._granian", app, "--host", HOST, "--port", str(port),
        "--log-level", "warning",
    ]


def _tokenrelay(port: int) -> list[str]:
    # `tokenrelay serve` runs uvicorn itself, with loop=uvloop and http=httptools.
    return [sys.executable, "-m", "tokenrelay", "serve", "--model", "scripted",
            "--host", HOST, "--port", str(port), "--log-level", "warning"]


def _tokenrelay_without_store(port: int) -> list[str]:
    # The same, with conversations kept in memory: the store's cost, by difference.
    return [*_tokenrelay(port), "--database", "memory"]


SERVERS = [
    Server("bare", _uvicorn("benchmarks._peers:bare")),
    Server("tokenrelay", _tokenrelay),
    Server("tokenrelay-redis", _tokenrelay, redis=True),
    # 1 µs: under uvloop a timer rounds to 0 ms, so this is one loop turn per delta
    # (~2 µs), not a real pause: the provider suspends per delta and nothing piles up.
    Server("tokenrelay-trickle", _tokenrelay, options={"delay_ms": 0.001}),
    Server("tokenrelay-nostore", _tokenrelay_without_store),
    # Issue 12's A/B: the two framework workarounds, each turned off alone.
    Server("tokenrelay-inline", _tokenrelay, env={"TOKENRELAY_DETACH_BODIES": "0"},
           variant=True, note="event-stream bodies written inside the framework"),
    Server("tokenrelay-gc-default", _tokenrelay, env={"TOKENRELAY_TUNE_GC": "0"},
           variant=True, note="CPython's default GC thresholds, nothing frozen"),
    # Issue 16's evaluation: the bare loop and tokenrelay on granian instead of uvicorn.
    Server("bare-granian", _granian("benchmarks._peers:bare"), needs="granian", variant=True,
           note=GRANIAN_MISSING),
    Server("tokenrelay-granian", _tokenrelay, env={"TOKENRELAY_SERVER": "granian"},
           needs="granian", variant=True, note=GRANIAN_MISSING),
    Server("sse-starlette", _uvicorn("benchmarks._peers:sse_starlette_app"), needs="sse_starlette"),
    Server("fastapi-sse", _uvicorn("benchmarks._peers:fastapi_sse_app"), needs="fastapi.sse",
           note="FastAPI's own SSE support (fastapi.sse) is absent from this FastAPI (< 0.135)"),
]


@dataclass(slots=True)
class Outcome:
    server: Server
    runs: list[StreamResult] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)  # CPU seconds per run
    server_writes: list[int] = field(default_factory=list)  # write syscalls per run
    skipped: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.runs) and self.error is None and self.skipped is None

    def median(self, value: Callable[[StreamResult], float]) -> float:
        return statistics.median(value(r) for r in self.runs)


# --- running a server -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a `--workers` server's worker processes)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                # the field after the command's closing parenthesis: state, then ppid
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _cpu_seconds(pid: int, members: list[int] | None = None) -> float:
    """CPU time of a process and its descendants (`members`, if the caller has found
    them already), all their threads: the scheduler's exact runtime from
    /proc/PID/task/*/schedstat (tick-sampled utime+stime is too coarse here); 0 where
    there is no /proc."""
    total = 0
    for member in members if members is not None else process_tree(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{member}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def wait_until_idle(pid: int, *, busy: float = 0.03, window: float = 1.0,
                    timeout: float = 120.0) -> float:
    """Wait until process `pid` uses under `busy` of a core over `window` seconds (up
    to `timeout`); return the seconds waited. A server still busy starting (tokenrelay
    imports the providers' SDKs in a thread after start-up, seconds on this machine)
    would take the loop's time from what is measured (issue 16: it had, by holding the
    GIL against the event loop's thread)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = _cpu_seconds(pid)
        time.sleep(window)
        if (_cpu_seconds(pid) - before) / window < busy:
            break
    return time.monotonic() - start


def _write_calls(pid: int) -> int:
    """write-family syscalls (write, writev, pwrite) the process's main thread has made:
    `syscw` of /proc/PID/task/PID/io. The event loop runs there and writes the sockets;
    tokenrelay's store (aiosqlite) and llama.cpp work in threads of their own, so their
    file writes and wake-ups are not counted. 0 where there is no /proc."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/task/{pid}/io").read_text().splitlines():
            if line.startswith("syscw:"):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True, slots=True)
class MachineCpu:
    """Jiffies from the `cpu` line of /proc/stat: all cores together."""

    busy: int
    steal: int
    total: int

    @classmethod
    def now(cls) -> MachineCpu | None:
        try:
            line = Path("/proc/stat").read_text().splitlines()[0].split()
        except OSError:
            return None
        values = [int(v) for v in line[1:9]]  # user nice system idle iowait irq softirq steal
        idle, steal = values[3] + values[4], values[7]
        return cls(busy=sum(values) - idle - steal, steal=steal, total=sum(values))

    def since(self, earlier: MachineCpu) -> tuple[float, float]:
        """(busy, steal) as fractions of all cores' time between the two snapshots."""
        span = max(self.total - earlier.total, 1)
        return (self.busy - earlier.busy) / span, (self.steal - earlier.steal) / span


def _machine_load(seconds: float = 1.0) -> tuple[float, float] | None:
    """How busy the machine is with other work, over `seconds` of doing nothing."""
    before = MachineCpu.now()
    time.sleep(seconds)
    after = MachineCpu.now()
    return after.since(before) if before and after else None


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BenchError(f"server not listening after {STARTUP_TIMEOUT:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully on SIGTERM
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[int, int]]:
    """redis-server on a free 127.0.0.1 port with no persistence (as tests/servers.py
    starts it); yield (pid, port); always stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server not found (apt-get install redis-server)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="relay-bench-redis-") as tmp:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", HOST, "--dir", tmp, "--save", "",
             "--appendonly", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise BenchError(f"redis-server exited with {proc.returncode}")
                with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
                    break
                if time.monotonic() > deadline:
                    raise BenchError("redis-server not listening")
                time.sleep(0.02)
            yield proc.pid, port
        finally:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def running(server: Server, prefix: list[str] | None = None) -> Iterator[tuple[int, int]]:
    """Start `server` on a free port; yield (pid, port); always stop it.
    `prefix` wraps the command (e.g. a profiler) and must exec the server as its child.
    A `redis` server gets a redis-server of its own, stopped after it."""
    if server.redis:
        with redis_server() as (_, redis_port):
            with_redis = Server(server.name, lambda port: [
                *server.argv(port), "--redis", f"redis://{HOST}:{redis_port}/0"],
                env=server.env)
            with running(with_redis, prefix) as started:
                yield started
        return
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENRELAY_")}
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        # tokenrelay's default store (SQLite), in a file of this run's own rather than
        # the user's data directory; the other servers ignore it.
        env["TOKENRELAY_DATABASE"] = f"sqlite+aiosqlite:///{Path(tmp) / 'tokenrelay.db'}"
        # One answer of --tokens (100,000) asks for as many max_tokens: over the server's
        # default ceiling (TOKENRELAY_MAX_TOKENS_CEILING, 32,768).
        env["TOKENRELAY_MAX_TOKENS_CEILING"] = str(10**9)
        env.update(server.env)
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([*(prefix or []), *server.argv(port)], cwd=ROOT, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_until_listening(proc, port, log)
            wait_until_idle(proc.pid)
            yield proc.pid, port
            if proc.poll() is not None:
                raise BenchError(f"server died during the run:\n{_tail(log)}")
        finally:
            _stop(proc)


# --- measuring ----------------------------------------------------------------------------


def request_body(tokens: int, options: dict[str, object] | None = None) -> bytes:
    """The body every server gets: `tokens` words, which the scripted cut makes into
    `tokens` deltas of `"word "` each; `options` adds scripted options (the peers read
    only `text`)."""
    return json.dumps({
        "messages": [{"role": "user", "content": "bench"}],
        "model": "scripted",
        "max_tokens": tokens,
        "options": {"text": "word " * tokens, **(options or {})},
    }).encode()


def _one_run(pid: int, port: int, body: bytes, tokens: int,
             timeout: float) -> tuple[StreamResult, float, int]:
    """One stream: (what the client saw, server CPU seconds, server write syscalls)."""
    cpu0, writes0 = _cpu_seconds(pid), _write_calls(pid)
    result = stream(HOST, port, PATH, body, deadline=timeout)
    cpu, writes = _cpu_seconds(pid) - cpu0, _write_calls(pid) - writes0
    if result.deltas != tokens:
        raise BenchError(f"expected {tokens} delta events, got {result.deltas}")
    return result, cpu, writes


def measure(servers: list[Server], tokens: int, repeat: int, timeout: float,
            progress: Callable[[str], None] = lambda _: None) -> list[Outcome]:
    """Start every server, warm each up, then run them in turns (round-robin), so a
    slow drift of the machine weighs on all of them alike rather than on one."""
    outcomes = [Outcome(s) for s in servers]
    live: list[tuple[Outcome, int, int]] = []
    with contextlib.ExitStack() as stack:
        for outcome in outcomes:
            server = outcome.server
            if server.needs and importlib.util.find_spec(server.needs) is None:
                outcome.skipped = server.note or f"{server.needs} is not installed"
                continue
            if server.redis and shutil.which("redis-server") is None:
                outcome.skipped = "redis-server is not installed"
                continue
            own = contextlib.ExitStack()
            try:
                pid, port = own.enter_context(running(server))
                _one_run(pid, port, request_body(tokens, server.options), tokens,
                         timeout)  # warm-up
            except (BenchError, OSError) as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
                own.close()  # stop it now rather than after the others
                continue
            except BaseException:
                own.close()
                raise
            stack.push(own.__exit__)
            live.append((outcome, pid, port))
        progress("started and warmed up: " + ", ".join(o.server.name for o, _, _ in live))
        for n in range(repeat):
            for outcome, pid, port in live:
                if outcome.error:
                    continue
                try:
                    body = request_body(tokens, outcome.server.options)
                    result, cpu, writes = _one_run(pid, port, body, tokens, timeout)
                except (BenchError, OSError) as exc:
                    outcome.error = f"{type(exc).__name__}: {exc}"
                    continue
                outcome.runs.append(result)
                outcome.server_cpu.append(cpu)
                outcome.server_writes.append(writes)
                progress(f"run {n + 1}/{repeat} {outcome.server.name}: {result.rate:,.0f} events/s")
    return outcomes


# --- reporting ----------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": f"{os.cpu_count()} ({usable} usable by this process)",
        "CPU": model,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "uvicorn": _version("uvicorn"),
        "granian": _version("granian"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "starlette": _version("starlette"),
        "fastapi": _version("fastapi"),
        "sse-starlette": _version("sse-starlette"),
        "tokenrelay": _version("tokenrelay"),
    }


def _ratio(a: Outcome | None, b: Outcome | None, *, steady: bool = False) -> float | None:
    if a is None or b is None or not a.ok or not b.ok:
        return None

    def rate(r: StreamResult) -> float:
        return r.steady_rate if steady else r.rate

    return a.median(rate) / b.median(rate)


def _fractions(load: tuple[float, float] | None) -> str:
    if load is None:
        return "unknown (no /proc/stat)"
    return f"CPU busy {load[0]:.0%}, stolen by the hypervisor {load[1]:.0%}"


def _events_per_write(o: Outcome) -> float | None:
    """Median SSE events per write syscall of the server (None without /proc)."""
    ratios = [r.events / w for r, w in zip(o.runs, o.server_writes) if w]
    return statistics.median(ratios) if ratios else None


def table(outcomes: list[Outcome]) -> str:
    bare = next((o for o in outcomes if o.server.name == "bare"), None)
    rows = [
        "| server | events/s (median) | min – max | × bare | steady events/s | first delta (ms) "
        "| events/send | events/write() | server CPU | client CPU |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for o in outcomes:
        name = f"`{o.server.name}`"
        if o.skipped:
            rows.append(f"| {name} | skipped: {o.skipped} | | | | | | | | |")
            continue
        if not o.ok:
            reason = (o.error or "no runs").splitlines()[0]
            rows.append(f"| {name} | failed: {reason} | | | | | | | | |")
            continue
        rates = [r.rate for r in o.runs]
        ratio = _ratio(o, bare)
        server_cpu = statistics.median(c / r.total for c, r in zip(o.server_cpu, o.runs))
        client_cpu = o.median(lambda r: r.client_cpu / r.total)
        per_write = _events_per_write(o)
        rows.append(
            f"| {name} | {statistics.median(rates):,.0f} | {min(rates):,.0f} – {max(rates):,.0f} "
            f"| {'–' if ratio is None else f'{ratio:.2f}×'} "
            f"| {o.median(lambda r: r.steady_rate):,.0f} "
            f"| {o.median(lambda r: r.first_delta) * 1000:,.1f} "
            f"| {o.median(lambda r: r.events_per_chunk):,.1f} "
            f"| {'–' if per_write is None else f'{per_write:,.1f}'} "
            f"| {server_cpu:.0%} | {client_cpu:.0%} |"
        )
    return "\n".join(rows)


def verdict(outcomes: list[Outcome]) -> list[str]:
    by_name = {o.server.name: o for o in outcomes}
    lines = []
    vs_bare = _ratio(by_name.get("tokenrelay"), by_name.get("bare"))
    vs_sse = _ratio(by_name.get("tokenrelay"), by_name.get("sse-starlette"))
    if vs_bare is not None:
        met = "met" if vs_bare >= GOAL else "NOT met"
        lines.append(f"tokenrelay / bare = {vs_bare:.2f}× (goal ≥ {GOAL}×: {met})")
    if vs_sse is not None:
        lines.append(f"tokenrelay / sse-starlette = {vs_sse:.2f}×")
    redis = _ratio(by_name.get("tokenrelay-redis"), by_name.get("tokenrelay"))
    if redis is not None:
        lines.append(f"tokenrelay-redis / tokenrelay = {redis:.2f}× (every event also to Redis)")
    trickle = _ratio(by_name.get("tokenrelay-trickle"), by_name.get("bare"))
    if trickle is not None:
        lines.append(f"tokenrelay-trickle / bare = {trickle:.2f}× (no coalescing at the source)")
    trickle_sse = _ratio(by_name.get("tokenrelay-trickle"), by_name.get("sse-starlette"))
    if trickle_sse is not None:
        lines.append(f"tokenrelay-trickle / sse-starlette = {trickle_sse:.2f}×")
    steady = _ratio(by_name.get("tokenrelay"), by_name.get("bare"), steady=True)
    if steady is not None:
        lines.append(f"steady state (first delta to end): tokenrelay / bare = {steady:.2f}×")
    for a, b, why in (("bare-granian", "bare", "granian / uvicorn, bare"),
                      ("tokenrelay-granian", "tokenrelay", "granian / uvicorn"),
                      ("tokenrelay-granian", "bare-granian", "both on granian")):
        ratio = _ratio(by_name.get(a), by_name.get(b))
        if ratio is not None:
            lines.append(f"{a} / {b} = {ratio:.2f}× ({why})")
    return lines


def command(argv: list[str]) -> str:
    python = sys.executable
    if python.startswith(str(ROOT)):
        python = os.path.relpath(python, ROOT)
    return " ".join([python, "-m", "benchmarks.relay", *map(shlex.quote, argv)])


#: benchmarks/local.py's section of RESULTS.md, which `--write` here keeps as it is
LOCAL_HEADING = "## Local model"
#: benchmarks/many.py's section, kept likewise
MANY_HEADING = "## Many streams"
HELD_HEADING = "## Held streams"
#: benchmarks/ttft.py's section, kept likewise
TTFT_HEADING = "## Added time to first token"
#: the sections other modules write, which `--write` here keeps, in this order (the
#: order `python -m benchmarks` runs them in)
KEPT_HEADINGS = (MANY_HEADING, HELD_HEADING, TTFT_HEADING, LOCAL_HEADING)

#: one line at the top of RESULTS.md, which every writer keeps (or adds)
PREAMBLE = ("Regenerate this whole page with `.venv/bin/python -m benchmarks` (one run of "
            "every module below; `--quick` for a smoke run that leaves this page alone); "
            "the PNG charts go to `charts/` next to it, their figures to `results/*.json`. "
            "Where a goal is not met, [PROFILE.md](PROFILE.md) has the profile that says why.")
#: set by `python -m benchmarks` for the modules it runs: its own command line
SUITE_ENV = "BENCHMARKS_SUITE_COMMAND"


def with_preamble(text: str) -> str:
    """`text` with PREAMBLE as the line after its `# ` title (or first), once."""
    lines = text.splitlines(keepends=True)
    if any(line.rstrip("\n") == PREAMBLE for line in lines):
        return text
    if lines and lines[0].startswith("# "):
        rest = "".join(lines[1:]).lstrip("\n")
        return lines[0] + "\n" + PREAMBLE + "\n\n" + rest
    return PREAMBLE + "\n\n" + text


def suite_note() -> str:
    """A note for the Command line when `python -m benchmarks` started this module."""
    suite = os.environ.get(SUITE_ENV)
    return f" (a step of `{suite}`)" if suite else ""


def selected_servers(parser: argparse.ArgumentParser, raw: str,
                     names: Iterable[str]) -> list[str]:
    """The comma-separated `--servers` value, checked against the known names."""
    known = set(names)
    selected = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = set(selected) - known
    if unknown:
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}: "
                     f"choose from {', '.join(sorted(known))}")
    return selected


def add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR",
        help="with --write: write DIR/RESULTS.md and DIR/results/*.json instead of benchmarks/ "
             "(default benchmarks/; with --quick, a new temporary directory)")


def resolve_out(args: argparse.Namespace, name: str) -> Path:
    """The directory `--write` writes to: `--out`, else benchmarks/, except that a
    `--quick` run gets a temporary directory of its own (the full figures stay)."""
    if args.out is None:
        if getattr(args, "quick", False) and getattr(args, "write", False):
            args.out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-quick-"))
        else:
            args.out = BENCH_DIR
    args.out = args.out.resolve()
    return args.out


def results_md(out: Path) -> Path:
    return out / "RESULTS.md"


def write_json(out: Path, name: str, data: dict[str, object]) -> Path:
    """out/results/<name>.json: the figures a section shows, for benchmarks/charts.py."""
    def clean(value: object) -> object:  # JSON has no NaN: a figure not measured is null
        if isinstance(value, float):
            return finite(value, 6)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path = out / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(data), indent=1, ensure_ascii=False, default=str) + "\n")
    return path


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside, else absolute."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def finite(value: float | None, digits: int = 3) -> float | None:
    """A float for JSON: rounded, None for NaN or infinity."""
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return round(float(value), digits)


def write_section(results: Path, heading: str, text: str) -> None:
    """Put `text` (the section under `heading`) in `results`, last, keeping every other
    section and the preamble."""
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    rest, _ = split_sections(old, heading)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(with_preamble(rest.rstrip("\n") + "\n\n" + text))


def split_sections(text: str, heading: str) -> tuple[str, str]:
    """(`text` without the section under `heading`, that section): the section runs from
    its `## ` heading line to the next `# ` or `## ` heading, or to the end."""
    lines = text.splitlines(keepends=True)
    begin = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if begin is None:
        return text, ""
    end = next((i for i in range(begin + 1, len(lines))
                if lines[i].startswith(("# ", "## "))), len(lines))
    return "".join(lines[:begin] + lines[end:]), "".join(lines[begin:end])


def _why(outcomes: list[Outcome]) -> str:
    """Why tokenrelay can beat the bare loop, and what the trickle row shows, in plain
    words, with this run's figures where it has them."""
    by_name = {o.server.name: o for o in outcomes if o.ok}

    def per_write(name: str, before: str = " (", after: str = ")") -> str:
        o = by_name.get(name)
        value = _events_per_write(o) if o else None
        return "" if value is None else f"{before}here {value:,.1f} events per `write()`{after}"

    def ratio(a: str, b: str, steady: bool = False) -> float | None:
        return _ratio(by_name.get(a), by_name.get(b), steady=steady)

    vs_bare, steady = ratio("tokenrelay", "bare"), ratio("tokenrelay", "bare", True)
    trickle, trickle_steady = ratio("tokenrelay-trickle", "bare"), ratio(
        "tokenrelay-trickle", "bare", True)
    bare = by_name.get("bare")
    sentences = [
        "The bare loop does one ASGI `send` per event, which uvicorn hands to the socket as "
        f"one chunk in one `write()` syscall ({per_write('bare', '', '; ')}uvloop would join "
        "chunks only if the socket backed up); that per-event I/O is what bounds it.",
        "tokenrelay's scripted provider hands its deltas over as a burst, as an upstream "
        "does when one network read holds many tokens; the generation appends them to the "
        "stream log and yields the loop at least every 1 ms (and right after the first "
        "delta), and all the events that piled up meanwhile go out as one chunk, one "
        f"`send` and one syscall{per_write('tokenrelay')}, written through to the caught-up "
        "reader's socket once per loop pass (issue 16).",
        "The client gets the same event stream, byte for byte once the chunked framing is "
        "removed (same events, ids and order), only in fewer, larger pieces, and no token "
        "is held back by more than about 1 ms.",
    ]
    if vs_bare is not None and steady is not None and bare is not None:
        sentences.append(
            f"Part of the end-to-end {vs_bare:.2f}× is `bare`'s own design, which encodes "
            "every event before its first send (first delta after "
            f"{bare.median(lambda r: r.first_delta) * 1000:,.0f} ms): the steady rates, "
            f"{steady:.2f}× here, compare the write paths alone.")
    figure = ""
    if trickle is not None:
        figure = f": {trickle:.2f}× `bare` end to end"
        if trickle_steady is not None:
            figure += f", {trickle_steady:.2f}× in steady state"
    sentences.append(
        "`tokenrelay-trickle` makes the provider suspend on a timer after every delta "
        "(delay_ms 0.001), as when tokens arrive one per network read, so nothing piles up "
        f"and about one event at a time is written{per_write('tokenrelay-trickle')}"
        f"{figure}; that is the honest cost of tokenrelay's machinery (the provider's "
        "timer, the generation's task step, encoding, the log append and the write per "
        "event, against the bare loop's pre-encoded sends) when coalescing cannot help.")
    return " ".join(sentences)


def write_results(outcomes: list[Outcome], args: argparse.Namespace, argv: list[str],
                  ceiling: float) -> None:
    info = machine()
    when = dt.datetime.now(dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body_kb = len(request_body(args.tokens)) / 1024
    # The ceiling is for one event per chunk, the client's costliest case; streams
    # joined into large chunks cost it far less per event (see the client CPU column).
    best = max((o.median(lambda r: r.rate) for o in outcomes
                if o.ok and o.median(lambda r: r.events_per_chunk) < 2), default=0.0)
    client_note = (f"Client ceiling (this client decoding an in-memory chunked stream of the same "
                   f"events, one per chunk): {ceiling:,.0f} events/s, "
                   + ("over 3× the fastest server that sends one event per chunk, so the client "
                      "does not limit the figures; joined chunks cost it less still (client CPU)."
                      if ceiling > 3 * best
                      else "close to the servers: the client may limit them."))
    text = f"""# Relay benchmark results

{PREAMBLE}

Written by `benchmarks/relay.py --write`; rerun it to refresh this page (it keeps the
"Many streams", "Added time to first token" and "Local model" sections, which
`benchmarks/many.py`, `benchmarks/ttft.py` and `benchmarks/local.py --write` write).

- Date: {when}
- Command: `{command(argv)}`{suite_note()}
- Machine load, both cores: {_fractions(args.idle_load)} in an idle second before the
  run (other work); {_fractions(args.run_load)} during the runs (benchmark included)
- Stream: {args.tokens:,} `delta` events per run (request body {body_kb:,.0f} KiB),
  one warm-up run per server, then {args.repeat} measured rounds in turns
  (bare, tokenrelay, ... , bare, tokenrelay, ...); medians shown.

## Machine

{chr(10).join(f"- {k}: {v}" for k, v in info.items())}

## Results

{table(outcomes)}

{chr(10).join(f"**{line}**  " for line in verdict(outcomes))}

{client_note}

## Why tokenrelay can beat the bare loop

{_why(outcomes)}

## How to read it

- **events/s**: `delta` events received over the whole request, from connect to the
  terminal chunk, over its wall time; time to the first delta included. **× bare**
  divides the medians by the bare app's.
- **steady events/s**: the rate from the first delta to the end.
- **first delta**: client-side time from connect to the first complete `delta` event
  (each server parses the ~{body_kb:,.0f} KiB request body and cuts the text first).
- **events/send**: SSE events per HTTP chunk the client received; uvicorn frames each
  ASGI `send` as one chunk. **events/write()**: SSE events per write syscall of the
  server's event-loop thread (`syscw` in /proc/PID/task/PID/io, over the run; the
  store's thread is not counted); uvloop hands each chunk to the socket with one
  `write()` unless the socket is backed up, when it buffers and later writes several
  chunks at once.
- **server CPU** / **client CPU**: CPU time of the server process (all threads, from
  /proc/PID/task/*/schedstat) and of the client, over the run's wall time; a server at
  ~100% is CPU-bound on its core.
- All servers run uvicorn with uvloop and httptools at log level warning, each in its
  own process on 127.0.0.1; the client is a blocking socket in the benchmark process.
  Every server gets the same request and sends the same kind of event
  (`id`, `event: delta`, `data: {{"text":"word "}}`); tokenrelay also sends `retry`,
  `start` and `done`, sse-starlette ends lines with CRLF (its default).
- Differences in kind: `bare` encodes every event before its loop (its first delta
  waits for that, which its end-to-end rate pays); `tokenrelay` runs the scripted
  provider in its own generation task, appends each event to the stream log, keeps the
  answer in its default store (SQLite, in a temporary file per server; flushed in the
  background every 0.5 s), and its response is a reader of the log that writes all
  pending events at once; `tokenrelay-trickle` is the same with
  options.delay_ms = 0.001 (the peers ignore it); `tokenrelay-redis` is `tokenrelay`
  with `--redis` to a redis-server of its own (no persistence), to which the stream
  log also sends every event (pipelined `XADD`s); `sse-starlette` and `fastapi-sse`
  encode in the response path and run ping and disconnect machinery of their own.
"""
    results = results_md(args.out)
    old = results.read_text() if results.exists() else ""
    own = {line.rstrip() for line in text.splitlines() if line.startswith("## ")}
    # The other modules' sections, in their order, then every other section there
    # (the issues' before-and-after notes, written by hand) as it was.
    others = [line.rstrip() for line in old.splitlines()
              if line.startswith("## ") and line.rstrip() not in own
              and line.rstrip() not in KEPT_HEADINGS]
    kept = [split_sections(old, heading)[1] for heading in (*KEPT_HEADINGS, *others)]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text + "".join("\n" + section for section in kept if section))
    write_json(args.out, "relay", figures(outcomes, args, argv, info, when))


def figures(outcomes: list[Outcome], args: argparse.Namespace, argv: list[str],
            info: dict[str, str], when: str) -> dict[str, object]:
    """What the Results table shows, for benchmarks/charts.py."""
    bare = next((o for o in outcomes if o.server.name == "bare"), None)
    rows: list[dict[str, object]] = []
    for o in outcomes:
        row: dict[str, object] = {"server": o.server.name}
        if o.skipped or not o.ok:
            row["skipped" if o.skipped else "error"] = (
                o.skipped or (o.error or "no runs").splitlines()[0])
            rows.append(row)
            continue
        rates = [r.rate for r in o.runs]
        row.update(
            events_per_s=finite(statistics.median(rates), 1),
            min=finite(min(rates), 1), max=finite(max(rates), 1),
            x_bare=finite(_ratio(o, bare)),
            steady_events_per_s=finite(o.median(lambda r: r.steady_rate), 1),
            first_delta_ms=finite(o.median(lambda r: r.first_delta) * 1000),
            events_per_send=finite(o.median(lambda r: r.events_per_chunk)),
            events_per_write=finite(_events_per_write(o)),
            server_cpu=finite(statistics.median(c / r.total for c, r in zip(o.server_cpu, o.runs))),
            client_cpu=finite(o.median(lambda r: r.client_cpu / r.total)),
        )
        rows.append(row)
    return {"name": "relay", "title": "Single-stream relay", "date": when,
            "command": command(argv) + suite_note(), "machine": info,
            "tokens": args.tokens, "repeat": args.repeat, "goal_x_bare": GOAL,
            "verdict": verdict(outcomes), "rows": rows}


# --- command line -------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=100_000,
                        help="delta events per stream (default 100000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="measured runs per server (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run for CI: 2000 tokens, 1 run (overrides --tokens/--repeat)")
    parser.add_argument("--servers", default=",".join(s.name for s in SERVERS if not s.variant),
                        help="comma-separated subset of: " + ", ".join(s.name for s in SERVERS))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per stream")
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    add_out_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.tokens, args.repeat = 2_000, 1
    if args.tokens < 1 or args.repeat < 1:
        parser.error("--tokens and --repeat must be at least 1")
    args.selected = selected_servers(parser, args.servers, (s.name for s in SERVERS))
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    ceiling = client_ceiling(max(args.tokens, 50_000))
    print(f"{args.tokens:,} deltas per stream, 1 warm-up + {args.repeat} runs per server; "
          f"client ceiling {ceiling:,.0f} events/s", flush=True)
    args.idle_load = _machine_load()
    if args.idle_load is not None and (args.idle_load[0] > 0.1 or args.idle_load[1] > 0.05):
        print(f"warning: before the run the machine was {_fractions(args.idle_load)}: other work "
              "skews the figures", file=sys.stderr)
    before = MachineCpu.now()
    outcomes = measure([s for s in SERVERS if s.name in args.selected], args.tokens, args.repeat,
                       args.timeout, progress=lambda line: print("  " + line, flush=True))
    for outcome in outcomes:
        if outcome.skipped:
            print(f"  {outcome.server.name}: skipped ({outcome.skipped})")
        elif outcome.error:
            print(f"  {outcome.server.name}: FAILED\n{outcome.error}")
    after = MachineCpu.now()
    args.run_load = after.since(before) if before and after else None
    print()
    print(f"machine during the runs: {_fractions(args.run_load)}\n")
    print(table(outcomes))
    for line in verdict(outcomes):
        print(line)
    if args.write:
        resolve_out(args, "relay")
        write_results(outcomes, args, argv, ceiling)
        print(f"wrote {shown(results_md(args.out))} and "
              f"{shown(args.out / 'results' / 'relay.json')}")
    return 0 if all(o.ok or o.skipped for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
