"""Many streams at once: thousands of concurrent streams at a model's pace.

    .venv/bin/python -m benchmarks.many [--streams 1000,3000] [--tokens-per-stream 30]
        [--rate 10] [--quick] [--write]

For each N in `--streams`, and for each server, started fresh for that N:

- `bare`: a framework-less ASGI app on uvicorn (benchmarks._peers:paced) that sleeps
  1/rate before each pre-encoded event and sends it: what uvicorn itself costs per
  stream;
- `tokenrelay`: `tokenrelay serve --model scripted --database memory` (the in-process
  stream log; conversations in memory, so the store is not what is measured);
- `tokenrelay-redis`: the same plus `--redis` to a redis-server started for it (free
  port, no persistence): every event also goes to a Redis stream;
- run only when named: `tokenrelay-inline` and `tokenrelay-gc-default` (issue 12: one
  framework workaround turned off), `bare-granian` and `tokenrelay-granian` (issue 16:
  `bare` and `tokenrelay` on granian instead of uvicorn, each embedded in the measured
  process: benchmarks/_granian.py, `tokenrelay serve --server granian`).

N streams are opened, ramped up over `--ramp` seconds (default N/2000, between 1 and
2 s) so the accept queue is not the bottleneck, each a POST /api/chat for the scripted
provider with `--tokens-per-stream` deltas at `--rate` tokens/s. The load comes from
separate processes (benchmarks/_load.py: uvloop, raw sockets, chunked decoding), two of
them from 3,000 streams on (`--clients`). Measured:

- delivered tokens/s: the best 1-s window of delta arrivals over all streams (offered:
  N x rate, when all streams are open at once), and the whole run's average;
- lateness: for delta k (k = 0, 1, ...) of a stream, arrival_k - (arrival_0 + k/rate),
  as the client sees it; p50 and p99 over all deltas k >= 1 of all streams;
- server RSS per stream: (VmHWM after the run - VmRSS idle, after a warm-up) / N, from
  /proc/PID/status; for tokenrelay-redis also redis-server's RSS;
- server (and redis-server, and client) CPU over the run, from /proc schedstat, and
  the server's CPU per delivered token: its CPU seconds over the run / the deltas the
  clients received, in µs, and that as a multiple of `bare`'s at the same N;
- errors (HTTP errors, refused or dropped connections) and incomplete streams.

Before each measurement it waits (up to 15 min) until no other heavy process runs
(chromium, vite, vitest, pytest) and records /proc/loadavg; `--no-wait` measures at
once (compare the servers within such a run). It exits 1 only for a broken run: a case
it could not measure, an HTTP error, a malformed or short answer. Streams a saturated
server took too late or reset are a result, counted in the table. `--quick` is a smoke run
for CI (100 streams of 10 tokens). `--write` keeps a "## Many streams" section in
benchmarks/RESULTS.md, leaving the other sections as they are, and writes its figures
to benchmarks/results/many.json (for benchmarks/charts.py); `--out DIR` writes to DIR
instead (a `--quick` run's `--write` goes to a temporary directory unless given one).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import math
import os
import resource
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._client import BenchError
from benchmarks.relay import (
    HOST,
    GRANIAN_MISSING,
    HELD_HEADING,
    MANY_HEADING,
    RESULTS,
    ROOT,
    MachineCpu,
    Server,
    _cpu_seconds,
    _granian,
    _tokenrelay,
    _uvicorn,
    add_out_option,
    finite,
    machine,
    process_tree,
    redis_server,
    resolve_out,
    selected_servers,
    results_md,
    running,
    shown,
    split_sections,
    suite_note,
    with_preamble,
    write_json,
)

HEAVY = "chromium|vite|vitest|pytest"
QUIET_POLL = 15.0
QUIET_MAX = 15 * 60.0
SAMPLE_EVERY = 0.05
ATTEMPTS = 5  # measurements of a case when another heavy process disturbs one
WARMUP = (20, 3, 100.0)  # streams, tokens, rate: pays first-request costs before "idle"


def _memory(port: int) -> list[str]:
    return [*_tokenrelay(port), "--database", "memory"]


SERVER_NAMES = ["bare", "tokenrelay", "tokenrelay-redis"]
#: run only when named, each tokenrelay with these settings: issue 12's A/B (one
#: framework workaround turned off) and issue 16's (granian instead of uvicorn)
VARIANTS = {"tokenrelay-inline": {"TOKENRELAY_DETACH_BODIES": "0"},
            "tokenrelay-gc-default": {"TOKENRELAY_TUNE_GC": "0"},
            "tokenrelay-granian": {"TOKENRELAY_SERVER": "granian"}}
#: issue 16: `bare` on granian, embedded as tokenrelay runs it (run when named)
PEERS = {"bare-granian": _granian("benchmarks._peers:paced")}
#: issue 16: `tokenrelay-redis` with `--workers N` processes on one socket (run when
#: named); CPU and RSS are summed over the server's process tree
WORKERS = {"tokenrelay-redis-2w": 2}
#: every server, in the order a run measures them
ALL_NAMES = [*SERVER_NAMES, *VARIANTS, *PEERS, *WORKERS]


# --- the machine and processes -------------------------------------------------------------


def heavy_processes() -> list[str]:
    """Other heavy work on the machine (browsers, front-end builds, test runs)."""
    found = subprocess.run(["pgrep", "-fa", HEAVY], capture_output=True, text=True,
                           check=False).stdout
    me = os.getpid()
    return [line for line in found.splitlines() if line and int(line.split()[0]) != me]


def wait_until_quiet(log: Callable[[str], None] = print) -> float:
    """Wait (poll every 15 s, up to 15 minutes) until no heavy process runs; return the
    seconds waited. Past 15 minutes it goes on and says so."""
    if shutil.which("pgrep") is None:
        return 0.0
    start = time.monotonic()
    while True:
        busy = heavy_processes()
        if not busy:
            return time.monotonic() - start
        if time.monotonic() - start > QUIET_MAX:
            log(f"    still busy after {QUIET_MAX / 60:.0f} min, measuring anyway: {busy[0][:100]}")
            return time.monotonic() - start
        log(f"    waiting for a quiet machine: {busy[0][:100]}")
        time.sleep(QUIET_POLL)


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def status_kib(pid: int, key: str, members: list[int] | None = None) -> int:
    """A `kB` line of /proc/PID/status (VmRSS, VmHWM), summed over the process and its
    descendants (a `--workers` server's workers: `members`, if the caller has found
    them already); 0 if unreadable."""
    total = 0
    for member in members if members is not None else process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
                    break
    return total


def _raise_open_files(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


# --- one load ------------------------------------------------------------------------------


@dataclass(slots=True)
class Load:
    """What the client processes saw, and what the processes under test used."""

    streams: list[dict] = field(default_factory=list)
    go: float = 0.0  # CLOCK_MONOTONIC instant stream 0 was due
    wall: float = 0.0  # go -> the last client finished
    client_cpu: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # name -> CPU seconds over `wall`
    peak_rss: dict[str, int] = field(default_factory=dict)  # name -> max sampled VmRSS KiB
    disturbed: str | None = None  # a heavy process seen during the run


def _read_ready(procs: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        assert proc.stdout is not None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("client process not ready in time")
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
            if ready:
                line = proc.stdout.readline()
                if line.strip() == "ready":
                    break
                if not line:
                    raise BenchError(f"client process exited with {proc.wait(5)}")
            elif proc.poll() is not None:
                raise BenchError(f"client process exited with {proc.returncode}")


def load(port: int, streams: int, tokens: int, rate: float, ramp: float, clients: int,
         watch: dict[str, int], slack: float = 20.0) -> Load:
    """Run `streams` streams from `clients` processes against 127.0.0.1:`port`, sampling
    the RSS and CPU of the processes in `watch` (name -> pid) meanwhile."""
    out = Load()
    with tempfile.TemporaryDirectory(prefix="many-bench-") as tmp:
        files = [Path(tmp) / f"client{n}.json" for n in range(clients)]
        procs: list[subprocess.Popen[str]] = []
        try:
            for n, path in enumerate(files):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "benchmarks._load", "--host", HOST, "--port", str(port),
                     "--streams", str(streams), "--index", str(n), "--of", str(clients),
                     "--tokens", str(tokens), "--rate", str(rate), "--ramp", str(ramp),
                     "--slack", str(slack), "--out", str(path)],
                    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            _read_ready(procs, 30.0)
            # Found once: the sampling below runs on the machine being measured, and a
            # walk of /proc per sample would take its CPU (workers start with the server).
            trees = {name: process_tree(pid) for name, pid in watch.items()}
            cpu0 = {name: _cpu_seconds(pid, trees[name]) for name, pid in watch.items()}
            peak = {name: status_kib(pid, "VmRSS", trees[name]) for name, pid in watch.items()}
            out.go = time.monotonic() + 0.2
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(f"{out.go!r}\n")
                proc.stdin.flush()
            limit = out.go + ramp + tokens / rate * 3 + slack + 15
            next_check = time.monotonic()
            while any(p.poll() is None for p in procs) and time.monotonic() < limit:
                for name, pid in watch.items():
                    peak[name] = max(peak[name], status_kib(pid, "VmRSS", trees[name]))
                if watch and out.disturbed is None and time.monotonic() >= next_check:
                    busy = heavy_processes()  # another helper's browser or build started?
                    out.disturbed = busy[0][:100] if busy else None
                    next_check = time.monotonic() + 1.0
                time.sleep(SAMPLE_EVERY)
            out.wall = time.monotonic() - out.go
            out.cpu = {name: _cpu_seconds(pid, trees[name]) - cpu0[name]
                       for name, pid in watch.items()}
            out.peak_rss = peak
            if any(p.poll() is None for p in procs):
                raise BenchError("client processes did not finish in time")
            for proc, path in zip(procs, files):
                if proc.returncode != 0 or not path.exists():
                    raise BenchError(f"client process failed with {proc.returncode}")
                result = json.loads(path.read_text())
                out.streams.extend(result["streams"])
                out.client_cpu.append(result["cpu"])
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
    return out


# --- one case: a server at N streams ---------------------------------------------------------


@dataclass(slots=True)
class Case:
    server: str
    streams: int
    tokens: int
    rate: float
    ramp: float
    clients: int
    loadavg: str = ""
    waited: float = 0.0
    attempts: int = 0
    disturbed: str | None = None  # a heavy process ran during the measurement kept
    error: str | None = None
    ok: int = 0
    failed: int = 0  # HTTP errors, refused or dropped connections, time-outs
    incomplete: int = 0  # ended cleanly but with fewer deltas
    errors: dict[str, int] = field(default_factory=dict)
    deltas: int = 0
    concurrent: int = 0  # most streams between their first and last delta at one time
    peak_rate: float = 0.0
    mean_rate: float = 0.0
    late_p50: float = math.nan
    late_p99: float = math.nan
    late_max: float = math.nan
    step_p50: float = math.nan
    step_p99: float = math.nan
    first_p50: float = math.nan
    first_p99: float = math.nan
    rss_idle: dict[str, int] = field(default_factory=dict)  # KiB
    rss_peak: dict[str, int] = field(default_factory=dict)  # KiB
    cpu: dict[str, float] = field(default_factory=dict)  # fraction of one core
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # over the run
    client_cpu: list[float] = field(default_factory=list)  # per process, fraction of a core
    machine_busy: float = math.nan  # both cores, during the load

    @property
    def offered(self) -> float:
        return self.streams * self.rate

    def cpu_per_token(self, name: str = "server") -> float:
        """CPU seconds of process `name` per delta the clients received (issue 16)."""
        if name not in self.cpu_seconds or not self.deltas:
            return math.nan
        return self.cpu_seconds[name] / self.deltas

    def rss_per_stream(self, name: str = "server") -> float:
        """KiB per stream: peak minus idle, over N."""
        if name not in self.rss_peak or name not in self.rss_idle:
            return math.nan
        return (self.rss_peak[name] - self.rss_idle[name]) / self.streams


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _best_window(times: list[float], width: float = 1.0) -> float:
    """Most arrivals in any `width`-second window, per second."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / width


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """Most of the [start, end] spans open at one instant."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans],
                   key=lambda e: (e[0], -e[1]))
    most = open_now = 0
    for _, change in edges:
        open_now += change
        most = max(most, open_now)
    return most


def summarize(case: Case, result: Load) -> None:
    arrivals: list[float] = []
    lateness: list[float] = []
    steps: list[float] = []
    first: list[float] = []
    step = 1 / case.rate
    for s in result.streams:
        times = s["times"]
        if s["error"]:
            case.failed += 1
            reason = s["error"].split("(")[0]  # e.g. "connection lost: ConnectionResetError"
            case.errors[reason] = case.errors.get(reason, 0) + 1
        elif len(times) != case.tokens:
            case.incomplete += 1
        else:
            case.ok += 1
        arrivals.extend(times)
        if times:
            first.append(times[0] - s["connect"])
            t0 = times[0]
            lateness.extend(t - (t0 + k * step) for k, t in enumerate(times) if k)
            steps.extend(b - a - step for a, b in zip(times, times[1:]))
    case.failed += case.streams - len(result.streams)  # never even scheduled (time-out)
    case.concurrent = _most_at_once([(s["times"][0], s["times"][-1])
                                     for s in result.streams if s["times"]])
    arrivals.sort()
    lateness.sort()
    steps.sort()
    first.sort()
    case.deltas = len(arrivals)
    case.peak_rate = _best_window(arrivals)
    case.mean_rate = len(arrivals) / (arrivals[-1] - result.go) if arrivals else 0.0
    case.late_p50, case.late_p99 = _quantile(lateness, 0.5), _quantile(lateness, 0.99)
    case.late_max = lateness[-1] if lateness else math.nan
    case.step_p50, case.step_p99 = _quantile(steps, 0.5), _quantile(steps, 0.99)
    case.first_p50, case.first_p99 = _quantile(first, 0.5), _quantile(first, 0.99)
    wall = max(result.wall, 1e-9)
    case.cpu = {name: cpu / wall for name, cpu in result.cpu.items()}
    case.cpu_seconds = dict(result.cpu)
    case.client_cpu = [c / wall for c in result.client_cpu]


@contextlib.contextmanager
def started(name: str) -> Iterator[dict[str, int]]:
    """Start server `name` fresh (and its redis-server); yield {"server": pid, ["redis":
    pid], "port": port}; stop them after."""
    with contextlib.ExitStack() as stack:
        pids: dict[str, int] = {}
        if name == "bare":
            server = Server(name, _uvicorn("benchmarks._peers:paced"))
        elif name in PEERS:
            server = Server(name, PEERS[name])
        elif name == "tokenrelay":
            server = Server(name, _memory)
        elif name in VARIANTS:
            server = Server(name, _memory, env=VARIANTS[name])
        elif name == "tokenrelay-redis" or name in WORKERS:
            redis_pid, redis_port = stack.enter_context(redis_server())
            pids["redis"] = redis_pid
            url = f"redis://{HOST}:{redis_port}/0"
            workers = ["--workers", str(WORKERS[name])] if name in WORKERS else []
            server = Server(name, lambda port: [*_memory(port), "--redis", url, *workers])
        else:
            raise ValueError(name)
        pid, port = stack.enter_context(running(server))
        yield {"server": pid, **pids, "port": port}


def measure(name: str, n: int, args: argparse.Namespace,
            log: Callable[[str], None] = print) -> Case:
    ramp = args.ramp if args.ramp is not None else (
        n / HELD_OPENS_PER_S if args.held else min(2.0, max(1.0, n / 2000)))
    if args.quick and args.ramp is None:
        ramp = 0.3
    clients = args.clients or (2 if n >= 3000 else 1)
    case = Case(name, n, args.tokens_per_stream, args.rate, ramp, clients)
    if name.startswith("tokenrelay-redis") and shutil.which("redis-server") is None:
        case.error = "skipped: redis-server is not installed"
        return case
    if name.endswith("-granian") and importlib.util.find_spec("granian") is None:
        case.error = f"skipped: {GRANIAN_MISSING}"
        return case
    for attempt in range(1, ATTEMPTS + 1):
        case = Case(name, n, args.tokens_per_stream, args.rate, ramp, clients,
                    waited=case.waited, attempts=attempt)
        if not (args.quick or args.no_wait):  # a smoke (CI, under pytest) checks that it runs
            case.waited += wait_until_quiet(log)
        case.loadavg = loadavg()
        _measure_once(case, args)
        if case.disturbed is None or case.error or args.quick or args.no_wait:
            break
        log(f"    disturbed by {case.disturbed}" + ("; measuring again" if attempt < ATTEMPTS else ""))
    return case


def _measure_once(case: Case, args: argparse.Namespace) -> None:
    name, n, ramp, clients = case.server, case.streams, case.ramp, case.clients
    try:
        with started(name) as pids:
            port = pids.pop("port")
            streams, tokens, rate = WARMUP
            warm = load(port, streams, tokens, rate, 0.05, 1, {})
            bad = [s for s in warm.streams if s["error"] or len(s["times"]) != tokens]
            if bad or len(warm.streams) != streams:
                raise BenchError(f"warm-up failed: {bad[0]['error'] if bad else 'missing'}")
            time.sleep(0.5)
            case.rss_idle = {k: status_kib(pid, "VmRSS") for k, pid in pids.items()}
            before = MachineCpu.now()
            result = load(port, n, args.tokens_per_stream, args.rate, ramp, clients, pids)
            after = MachineCpu.now()
            if before and after:
                case.machine_busy = after.since(before)[0]
            # VmHWM: the exact peak (the sampling above may miss a short one)
            case.rss_peak = {k: max(result.peak_rss.get(k, 0), status_kib(pid, "VmHWM"))
                             for k, pid in pids.items()}
            summarize(case, result)
            after_run = heavy_processes()
            case.disturbed = result.disturbed or (after_run[0][:100] if after_run else None)
    except (BenchError, OSError) as exc:
        case.error = f"{type(exc).__name__}: {exc}"


# --- reporting -------------------------------------------------------------------------------


def _ms(seconds: float, digits: int = 0) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1000:,.{digits}f}"


def _us(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1e6:,.1f}"


def _times(ratio: float) -> str:
    return "–" if math.isnan(ratio) else f"{ratio:.2f}×"


def cpu_x_bare(case: Case, cases: list[Case], reference: str = "bare") -> float:
    """`case`'s server CPU per token over `reference`'s at the same N (NaN when that
    did not run, or measured nothing)."""
    for other in cases:
        if other.server == reference and other.streams == case.streams and not other.error:
            theirs = other.cpu_per_token()
            return case.cpu_per_token() / theirs if theirs > 0 else math.nan
    return math.nan


def _mib(kib: int | None) -> str:
    return "–" if not kib else f"{kib / 1024:,.0f}"


def tables(cases: list[Case]) -> str:
    flow = [
        "| N | server | ok / N | failed | incomplete | streaming at once (most) "
        "| tokens/s, best 1 s | offered (N × rate) | run average | lateness p50 (ms) | p99 (ms) | max (ms) | gap − 1/rate p50 / p99 (ms) "
        "| first delta p50 / p99 (ms) |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    cost = [
        "| N | server | server RSS idle → peak (MiB) | server KiB / stream | server CPU "
        "| server CPU µs / token | × bare "
        "| redis-server RSS idle → peak (MiB) | redis KiB / stream | redis CPU "
        "| client CPU (per process) | machine busy | loadavg before |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in cases:
        head = f"| {c.streams:,} | `{c.server}` "
        if c.error:
            flow.append(head + f"| {c.error.splitlines()[0]} | | | | | | | | | | | |")
            cost.append(head + "| | | | | | | | | | | |")
            continue
        flow.append(
            head + f"| {c.ok:,} | {c.failed:,} | {c.incomplete:,} | {c.concurrent:,} "
            f"| {c.peak_rate:,.0f} "
            f"| {c.offered:,.0f} | {c.mean_rate:,.0f} | {_ms(c.late_p50)} | {_ms(c.late_p99)} "
            f"| {_ms(c.late_max)} | {_ms(c.step_p50, 1)} / {_ms(c.step_p99, 1)} "
            f"| {_ms(c.first_p50)} / {_ms(c.first_p99)} |")
        redis = "redis" in c.rss_peak
        cost.append(
            head + f"| {_mib(c.rss_idle.get('server'))} → {_mib(c.rss_peak.get('server'))} "
            f"| {c.rss_per_stream('server'):,.1f} | {c.cpu.get('server', math.nan):.0%} "
            f"| {_us(c.cpu_per_token())} | {_times(cpu_x_bare(c, cases))} "
            + (f"| {_mib(c.rss_idle.get('redis'))} → {_mib(c.rss_peak.get('redis'))} "
               f"| {c.rss_per_stream('redis'):,.1f} | {c.cpu.get('redis', math.nan):.0%} "
               if redis else "| – | – | – ")
            + f"| {' + '.join(f'{x:.0%}' for x in c.client_cpu)} | {c.machine_busy:.0%} "
            f"| {c.loadavg} |")
    errors = [f"- N = {c.streams:,}, `{c.server}`: "
              + ", ".join(f"{k} × {v:,}" for k, v in sorted(c.errors.items()))
              for c in cases if c.errors]
    text = "### Flow\n\n" + "\n".join(flow) + "\n\n### Cost\n\n" + "\n".join(cost) + "\n"
    if errors:
        text += "\nFailures by kind:\n\n" + "\n".join(errors) + "\n"
    disturbed = [f"- N = {c.streams:,}, `{c.server}`: measured {c.attempts} times; another heavy "
                 f"process ran during the last: `{c.disturbed}`"
                 for c in cases if c.disturbed and not c.error]
    retried = [f"- N = {c.streams:,}, `{c.server}`: measured {c.attempts} times (another heavy "
               "process ran during the earlier ones); the quiet one is shown"
               for c in cases if c.attempts > 1 and not c.disturbed and not c.error]
    if disturbed or retried:
        text += "\nDisturbances:\n\n" + "\n".join(disturbed + retried) + "\n"
    verdicts = summary_lines(cases)
    if verdicts:
        text += "\n" + "\n".join(f"**{line}**  " for line in verdicts) + "\n"
    return text


def summary_lines(cases: list[Case]) -> list[str]:
    """Per server: the share of the offered rate it delivered at each N, and its most."""
    lines = []
    for name in ALL_NAMES:
        mine = [c for c in cases if c.server == name and not c.error]
        if not mine:
            continue
        best = max(mine, key=lambda c: c.peak_rate)
        shares = " / ".join(f"{c.peak_rate / c.offered:.0%}" for c in mine)
        counts = " / ".join(f"{c.streams:,}" for c in mine)
        lines.append(f"{name}: delivered {shares} of the offered tokens/s (best 1 s) at "
                     f"N = {counts}; at most {best.peak_rate:,.0f} tokens/s")
        lines.extend(_cpu_lines(name, mine, cases))
        held = [c for c in mine if c.concurrent == c.streams]
        if held:
            most = max(held, key=lambda c: c.streams)
            kb = most.rss_per_stream() * 1.024  # KiB -> kB
            lines.append(f"{name}: held {most.streams:,} streams at once at "
                         f"{most.rss_per_stream():,.1f} KiB ({kb:,.1f} kB) each "
                         f"(issue 7's goal at 10,000: ≤ 20 kB; {'met' if kb <= 20 else 'NOT met'} here)")
    return lines


def _cpu_lines(name: str, mine: list[Case], cases: list[Case]) -> list[str]:
    """Server CPU per delivered token as a multiple of `bare`'s at each N where both
    ran; for a granian server also of its uvicorn twin's (issue 16)."""
    references = ["bare"]
    twin = name.removesuffix("-granian")
    if twin != name and twin != "bare":
        references.append(twin)
    lines = []
    for reference in references:
        if name == reference:
            continue
        pairs = [(c, cpu_x_bare(c, cases, reference)) for c in mine]
        pairs = [(c, x) for c, x in pairs if not math.isnan(x)]
        if pairs:
            ratios = " / ".join(f"{x:.2f}×" for _, x in pairs)
            counts = " / ".join(f"{c.streams:,}" for c, _ in pairs)
            lines.append(f"{name}: CPU per token {ratios} {reference}'s at N = {counts}")
    return lines


def command(argv: list[str]) -> str:
    python = sys.executable
    if python.startswith(str(ROOT)):
        python = os.path.relpath(python, ROOT)
    return " ".join([python, "-m", "benchmarks.many", *map(shlex.quote, argv)])


def section(cases: list[Case], args: argparse.Namespace, argv: list[str]) -> str:
    info = machine()
    when = dt.datetime.now(dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    ramps = sorted({(c.streams, c.ramp, c.clients) for c in cases})
    waited = sum(c.waited for c in cases)
    return f"""{args.heading}

Written by `benchmarks/many.py {"--held " if args.held else ""}--write`; rerun it to refresh this section.
{HELD_NOTE if args.held else ""}
- Date: {when}
- Command: `{command(argv)}`{suite_note()}
- Machine: cores {info["cores"]}, {info["CPU"]}, {info["OS"]}, Python {info["Python"]},
  uvicorn {info["uvicorn"]}, uvloop {info["uvloop"]}, granian {info["granian"]},
  redis-server {redis_version()}
- Load: N concurrent streams, each a POST /api/chat for the scripted provider with
  {args.tokens_per_stream} deltas of `"w "` at {args.rate:g} tokens/s (options.delay_ms {1000 / args.rate:g}).
- Streams opened over a ramp: {"; ".join(
      f"N = {n:,} over {r:g} s from {k} client process{'es' if k > 1 else ''}"
      for n, r, k in ramps)}.
- Every server started fresh for each N, warmed up with {WARMUP[0]} short streams, then
  measured once. {_quiet_note(args, waited)}; `loadavg before` is /proc/loadavg's
  1/5/15-minute averages at the start of each measurement.

{tables(cases)}
- **tokens/s, best 1 s**: `delta` events received by all clients in the best 1-second
  window; with every stream open at once it should reach **offered**, N × rate.
  **run average**: all deltas over the time from the first request to the last delta
  (ramp and the streams' ends included, so below offered by design).
- **lateness**: for delta k of a stream (k = 1 … {args.tokens_per_stream - 1}),
  arrival_k − (arrival_0 + k / rate), as the client sees it: how far the stream falls
  behind the provider's schedule after its first delta. The scripted provider (and
  `bare`) sleeps 1/rate before each delta without catching up, so timer rounding and
  any event-loop lag accumulate over a stream's {args.tokens_per_stream} deltas; `bare`
  shows the floor of that on this stack. **gap − 1/rate**: the same per step,
  (arrival_k − arrival_(k−1)) − 1/rate: the delay each delta adds, not accumulated.
- **streaming at once**: the most streams between their first and last delta at one
  instant. Below N when a saturated server accepts new connections only as old
  streams end (the rest wait in the accept queue: see **first delta**).
- **first delta**: from opening the connection to the first delta (which the provider
  sends after one 1/rate sleep), accept queue and request handling included.
- **server KiB / stream**: (VmHWM after the run − VmRSS when idle after the warm-up) / N,
  from /proc/PID/status: the memory N streams cost at their peak (divided by N even
  where fewer were streaming at once, so a saturated server's figure is too low).
  tokenrelay keeps finished streams for resume (`--retention`, 600 s) and, with
  `--database memory`, the conversations in memory, so its peak includes those. **redis KiB / stream**:
  the same for redis-server (the Redis streams, kept `--retention` after their end).
- **CPU**: CPU time over the run's wall time (from the first request due to the last
  client done), all threads, from /proc/PID/task/*/schedstat; 100% is one core. The
  server's event loop is one thread: near 100% it is saturated (granian does its I/O
  on a thread of its own besides, so its servers can pass 100%). **server CPU µs /
  token**: the server's CPU seconds over the run / the deltas the clients received,
  and **× bare** that over `bare`'s at the same N: what one delivered token costs,
  whatever the share delivered. **machine busy**: both
  cores, everything included (servers, redis-server, clients), from /proc/stat.
- All on one 2-core machine over loopback: the clients and redis-server take CPU from
  the same two cores the server runs on.
"""


def _quiet_note(args: argparse.Namespace, waited: float) -> str:
    if args.no_wait:
        return ("With `--no-wait`, measured at once, other heavy processes or not: compare "
                "the servers within this run")
    return (f"Before each measurement the run waited until no {HEAVY.replace('|', '/')} "
            f"process was running ({waited:,.0f} s waited in all), and measured again if one "
            "started during it")


def redis_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        text = subprocess.run([binary, "--version"], capture_output=True, text=True,
                              timeout=10).stdout
        for part in text.split():
            if part.startswith("v="):
                return part[2:]
    return "unknown"


def write_section(text: str, results: Path = RESULTS, heading: str = MANY_HEADING) -> None:
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    rest, _ = split_sections(old, heading)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(with_preamble(rest.rstrip("\n") + "\n\n" + text))


def figures(cases: list[Case], args: argparse.Namespace, argv: list[str]) -> dict[str, object]:
    """What the section's tables show, for benchmarks/charts.py (times in ms)."""
    rows: list[dict[str, object]] = []
    for c in cases:
        row: dict[str, object] = {"server": c.server, "streams": c.streams}
        if c.error:
            row["error"] = c.error.splitlines()[0]
            rows.append(row)
            continue
        row.update(
            ok=c.ok, failed=c.failed, incomplete=c.incomplete, concurrent=c.concurrent,
            offered=finite(c.offered, 1), delivered_best_1s=finite(c.peak_rate, 1),
            delivered_share=finite(c.peak_rate / c.offered if c.offered else None),
            run_average=finite(c.mean_rate, 1),
            late_p50_ms=finite(c.late_p50 * 1000), late_p99_ms=finite(c.late_p99 * 1000),
            late_max_ms=finite(c.late_max * 1000),
            first_p50_ms=finite(c.first_p50 * 1000), first_p99_ms=finite(c.first_p99 * 1000),
            server_kib_per_stream=finite(c.rss_per_stream("server"), 2),
            redis_kib_per_stream=finite(c.rss_per_stream("redis"), 2),
            server_cpu=finite(c.cpu.get("server")), redis_cpu=finite(c.cpu.get("redis")),
            server_cpu_us_per_token=finite(c.cpu_per_token() * 1e6, 2),
            server_cpu_per_token_x_bare=finite(cpu_x_bare(c, cases)),
            machine_busy=finite(c.machine_busy), attempts=c.attempts, disturbed=c.disturbed,
            loadavg=c.loadavg,
        )
        rows.append(row)
    when = dt.datetime.now(dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return {"name": args.name, "title": args.heading[3:], "date": when,
            "command": command(argv) + suite_note(), "machine": machine(),
            "tokens_per_stream": args.tokens_per_stream, "rate": args.rate,
            "verdict": summary_lines(cases), "rows": rows}


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.many",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default="1000,3000",
                        help="comma-separated counts of concurrent streams (default 1000,3000)")
    parser.add_argument("--tokens-per-stream", type=int, default=None,
                        help="deltas per stream (default 30; 40 with --held)")
    parser.add_argument("--rate", type=float, default=None,
                        help="tokens/s per stream (default 10; 1 with --held)")
    parser.add_argument("--held", action="store_true",
                        help="hold N streams open at once at a low rate (1 token/s), opened "
                             f"at {HELD_OPENS_PER_S} a second: the memory each costs "
                             "(the Held streams section)")
    parser.add_argument("--ramp", type=float, default=None,
                        help="seconds over which the streams are opened (default N/2000, 1 to 2)")
    parser.add_argument("--clients", type=int, default=0,
                        help="client processes (default 1, 2 from 3000 streams)")
    parser.add_argument("--servers", default=",".join(SERVER_NAMES),
                        help="comma-separated subset of: " + ", ".join(ALL_NAMES))
    parser.add_argument("--quick", action="store_true",
                        help="smoke run for CI: 100 streams of 10 tokens")
    parser.add_argument("--write", action="store_true",
                        help="write the Many streams section of benchmarks/RESULTS.md")
    parser.add_argument("--no-wait", action="store_true",
                        help="measure at once, even while other heavy processes run (compare "
                             "the servers within one run; the table records the load)")
    add_out_option(parser)
    args = parser.parse_args(argv)
    args.name, args.heading = ("held", HELD_HEADING) if args.held else ("many", MANY_HEADING)
    if args.tokens_per_stream is None:
        args.tokens_per_stream = 40 if args.held else 30
    if args.rate is None:
        args.rate = 1.0 if args.held else 10.0
    if args.quick:
        args.streams, args.tokens_per_stream = "100", (3 if args.held else 10)
    try:
        args.counts = [int(x) for x in args.streams.split(",") if x.strip()]
    except ValueError:
        parser.error("--streams takes comma-separated integers")
    if not args.counts or min(args.counts) < 1 or args.tokens_per_stream < 2 or args.rate <= 0:
        parser.error("need at least 1 stream, 2 tokens per stream and a positive rate")
    args.selected = selected_servers(parser, args.servers, ALL_NAMES)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    _raise_open_files(max(args.counts) * 2 + 1024)  # the servers inherit it
    cases: list[Case] = []
    for n in args.counts:
        for name in [s for s in ALL_NAMES if s in args.selected]:
            print(f"N = {n:,}, {name} ...", flush=True)
            case = measure(name, n, args)
            cases.append(case)
            if case.error:
                print(f"    {case.error}", flush=True)
            else:
                print(f"    ok {case.ok:,}/{n:,}, best {case.peak_rate:,.0f} tokens/s "
                      f"(offered {case.offered:,.0f}), lateness p50 {_ms(case.late_p50)} ms "
                      f"p99 {_ms(case.late_p99)} ms, server CPU {case.cpu.get('server', 0):.0%} "
                      f"({_us(case.cpu_per_token())} µs/token), "
                      f"{case.rss_per_stream():,.1f} KiB/stream, loadavg {case.loadavg}",
                      flush=True)
    print()
    print(tables(cases))
    if args.write:
        out = resolve_out(args, args.name)
        write_section(section(cases, args, argv), results_md(out), args.heading)
        path = write_json(out, args.name, figures(cases, args, argv))
        print(f"wrote the {args.heading[3:]} section of {shown(results_md(out))} and {shown(path)}")
    broken = [c for c in cases if real_errors(c)]
    for c in broken:
        print(f"error: N = {c.streams:,}, {c.server}: {real_errors(c)}", file=sys.stderr)
    return 1 if broken else 0


#: --held opens this many streams a second: slow enough for every server here, so that
#: all N are open at once (each lives tokens / rate = 40 s, longer than the ramp)
HELD_OPENS_PER_S = 500
HELD_NOTE = """
Issue 7's memory goal: 10,000 concurrent streams held by one process at ≤ 20 KB RSS per
stream. At 10 tokens/s each no server here can hold 10,000 (100,000 tokens/s: see Many
streams), so here each stream gets 1 token/s and lives longer than the ramp: every
stream is open at once (**streaming at once** = N), and **server KiB / stream** is what
one open stream costs.
"""

#: how a saturated server fails a client: it takes the connection too late, or drops it
#: from a full accept queue. A measured result (the table shows it), not a broken run.
SATURATION = ("timed out", "connection lost: ConnectionResetError", "connect: ")


def real_errors(case: Case) -> str:
    """What says the run or the server is broken, as opposed to saturated: the case
    could not be measured, a stream got an HTTP error or a malformed or short answer."""
    if case.error:
        return case.error.splitlines()[0]
    wrong = {k: v for k, v in case.errors.items() if not k.startswith(SATURATION)}
    if case.incomplete:
        wrong["incomplete"] = case.incomplete
    return ", ".join(f"{k} × {v:,}" for k, v in sorted(wrong.items()))


if __name__ == "__main__":
    sys.exit(main())
