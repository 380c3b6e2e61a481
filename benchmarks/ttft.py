"""Added time to first token: what tokenrelay adds between a provider's first token
and the client reading it.

    .venv/bin/python -m benchmarks.ttft [--requests 1000] [--quick] [--write] [--out DIR]

The scripted provider with delay_ms 0 yields its first token the moment the generation
starts, so from the client's side "request sent -> first `delta` event read" is all
overhead tokenrelay adds (HTTP parsing, validation, store writes, the generation task's
start, the relay through the stream log) on top of a provider that answers at once.
The servers, each in its own process on a free 127.0.0.1 port (benchmarks/relay.py
starts them):

- `bare`: a framework-less ASGI app on uvicorn (benchmarks._peers:first_event) that
  reads the body and writes the response head and a pre-encoded first `delta` at once:
  the floor of loopback + uvicorn + this client;
- `tokenrelay-memory`: `tokenrelay serve --model scripted --database memory`;
- `tokenrelay`: the same with its default store (SQLite), in a file in a temporary
  directory.

One client (a blocking raw socket, HTTP/1.1 with keep-alive: one connection per server,
as benchmarks/_client.py does it) sends `--requests` sequential POST /api/chat requests
to each, after `--warmup` unmeasured ones, in blocks of 50 taking turns between the
servers (so a drift of the machine weighs on all alike), the client's garbage collector
off within a block. Each request times, from just before the request is written to the
socket, the read that completes the first `delta` event; then it reads the rest of the
answer, so the next request starts on a quiet connection. Reported: p50, p99 and max per
server, and "added": tokenrelay's p50 (p99) minus the bare app's p50 (p99).

Issue goal: added p50 <= 1 ms, p99 <= 5 ms. `--write` keeps a "## Added time to first
token" section in benchmarks/RESULTS.md (the other sections stay as they are) and its
figures in benchmarks/results/ttft.json (for benchmarks/charts.py); `--out DIR` writes
to DIR instead, and a `--quick` run (100 requests) writes to a temporary directory
unless given one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import math
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks._client import BenchError, ChunkedBody, _headers
from benchmarks.relay import (
    HOST,
    PATH,
    ROOT,
    TTFT_HEADING,
    MachineCpu,
    Server,
    _fractions,
    _machine_load,
    _tokenrelay,
    _tokenrelay_without_store,
    _uvicorn,
    add_out_option,
    finite,
    machine,
    resolve_out,
    selected_servers,
    results_md,
    running,
    shown,
    suite_note,
    write_json,
    write_section,
)

GOAL_P50_MS = 1.0
GOAL_P99_MS = 5.0
BLOCK = 50  # requests to one server before the next takes its turn
TEXT = "The quick brown fox jumps over the lazy dog. "  # nine deltas, the first "The "
_DELTA = b"event: delta"
_RECV = 65536

SERVERS = [
    Server("bare", _uvicorn("benchmarks._peers:first_event")),
    Server("tokenrelay-memory", _tokenrelay_without_store),
    Server("tokenrelay", _tokenrelay),  # relay.running gives it SQLite in a temporary file
]


def request(port: int) -> bytes:
    """The request every server gets, HTTP/1.1 with keep-alive (the default)."""
    body = json.dumps({
        "messages": [{"role": "user", "content": "ttft"}],
        "model": "scripted",
        "options": {"text": TEXT, "delay_ms": 0},
    }, separators=(",", ":")).encode()
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class _Stale(Exception):
    """A kept connection turned out closed before any byte of the answer."""


class Connection:
    """One keep-alive connection; `first_delta()` runs one request over it."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.sock: socket.socket | None = None
        self.opened = 0  # connections opened (1 unless the server closed one)

    def _open(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def first_delta(self, data: bytes) -> float:
        """Send `data`; return the seconds from sending it to the read that completed
        the first `delta` event; read the answer to its end before returning. A kept
        connection the server has closed meanwhile (uvicorn closes idle ones after 5 s)
        is opened anew and the request sent again, timed from then."""
        if self.sock is not None:
            try:
                return self._once(data, reused=True)
            except _Stale:
                pass
        return self._once(data, reused=False)

    def _once(self, data: bytes, reused: bool) -> float:
        if self.sock is None:
            self.sock = self._open()
        sock = self.sock
        try:
            t0 = time.perf_counter()
            sock.sendall(data)
            raw = sock.recv(_RECV)
            now = time.perf_counter()
            if not raw and reused:
                raise _Stale
            while b"\r\n\r\n" not in raw:
                more = sock.recv(_RECV)
                now = time.perf_counter()
                if not more:
                    raise BenchError(f"connection closed before the headers: {raw[:200]!r}")
                raw += more
            head, _, rest = raw.partition(b"\r\n\r\n")
            status, headers = _headers(head)
            if status != 200:
                raise BenchError(f"HTTP {status}: {rest[:300]!r}")
            if "chunked" not in headers.get("transfer-encoding", "").lower():
                raise BenchError(f"expected a chunked body, got headers {headers}")
            parser, used, seen = ChunkedBody(), 0, b""
            first: float | None = None
            while True:
                parser.feed(rest)
                if first is None and used < len(parser.payloads):
                    seen += b"".join(parser.payloads[used:])
                    used = len(parser.payloads)
                    at = seen.find(_DELTA)
                    if at >= 0 and seen.find(b"\n\n", at) >= 0:
                        first = now
                if parser.done:
                    break
                rest = sock.recv(_RECV)
                now = time.perf_counter()
                if not rest:
                    raise BenchError("connection closed before the last chunk")
        except TimeoutError:
            self.close()
            raise BenchError(f"no bytes for {self.timeout:.0f}s") from None
        except (BrokenPipeError, ConnectionResetError):
            self.close()
            if reused:  # the server closed the kept connection as the request went out
                raise _Stale from None
            raise
        except BaseException:
            self.close()
            raise
        if first is None:
            raise BenchError(f"no delta event in the answer: {b''.join(parser.payloads)[:300]!r}")
        if headers.get("connection", "").lower() == "close":
            self.close()
        return first - t0


@dataclass(slots=True)
class Outcome:
    server: Server
    samples: list[float] = field(default_factory=list)  # seconds, in the order measured
    connections: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    def quantile(self, q: float) -> float:
        return quantile(sorted(self.samples), q)


def quantile(ordered: list[float], q: float) -> float:
    """Nearest rank: the smallest sample with at least q of them at or below it."""
    if not ordered:
        return math.nan
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def measure(servers: list[Server], requests: int, warmup: int, timeout: float,
            progress: Callable[[str], None] = lambda _: None) -> list[Outcome]:
    """Start every server, warm each up over its connection, then measure in blocks
    taking turns, until each has `requests` samples."""
    outcomes = [Outcome(s) for s in servers]
    live: list[tuple[Outcome, Connection, bytes]] = []
    with contextlib.ExitStack() as stack:
        for outcome in outcomes:
            own = contextlib.ExitStack()
            try:
                _, port = own.enter_context(running(outcome.server))
                conn = Connection(port, timeout)
                own.callback(conn.close)
                data = request(port)
                for _ in range(warmup):
                    conn.first_delta(data)
            except (BenchError, OSError) as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
                own.close()
                continue
            except BaseException:
                own.close()
                raise
            stack.push(own.__exit__)
            live.append((outcome, conn, data))
        for outcome, conn, data in live:  # the first ones' connections sat idle meanwhile
            try:
                for _ in range(min(warmup, 5)):
                    conn.first_delta(data)
            except (BenchError, OSError) as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
        progress(f"started and warmed up ({warmup} requests each): "
                 + ", ".join(o.server.name for o, _, _ in live))
        turn = 0
        while any(o.error is None and len(o.samples) < requests for o, _, _ in live):
            order = live if turn % 2 == 0 else live[::-1]
            turn += 1
            for outcome, conn, data in order:
                todo = min(BLOCK, requests - len(outcome.samples))
                if outcome.error or todo <= 0:
                    continue
                gc.collect()
                gc.disable()
                try:
                    for _ in range(todo):
                        outcome.samples.append(conn.first_delta(data))
                except (BenchError, OSError) as exc:
                    outcome.error = f"{type(exc).__name__}: {exc}"
                finally:
                    gc.enable()
        for outcome, conn, _ in live:
            outcome.connections = conn.opened
            if outcome.ok:
                progress(f"{outcome.server.name}: {len(outcome.samples)} requests, p50 "
                         f"{outcome.quantile(0.5) * 1000:.2f} ms, p99 "
                         f"{outcome.quantile(0.99) * 1000:.2f} ms")
    return outcomes


# --- reporting -------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:,.2f}"


def added(outcome: Outcome, bare: Outcome | None, q: float) -> float | None:
    """outcome's q-quantile minus bare's, in seconds (None without both)."""
    if bare is None or not bare.ok or not outcome.ok or outcome is bare:
        return None
    return outcome.quantile(q) - bare.quantile(q)


def _bare(outcomes: list[Outcome]) -> Outcome | None:
    return next((o for o in outcomes if o.server.name == "bare"), None)


def table(outcomes: list[Outcome]) -> str:
    bare = _bare(outcomes)
    rows = [
        "| server | requests | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | added p50 vs bare (ms) "
        "| added p99 vs bare (ms) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for o in outcomes:
        name = f"`{o.server.name}`"
        if not o.ok:
            reason = (o.error or "no samples").splitlines()[0]
            rows.append(f"| {name} | failed: {reason} | | | | | | |")
            continue
        rows.append(
            f"| {name} | {len(o.samples):,} | {_ms(o.quantile(0.5))} | {_ms(o.quantile(0.9))} "
            f"| {_ms(o.quantile(0.99))} | {_ms(max(o.samples))} "
            f"| {_ms(added(o, bare, 0.5))} | {_ms(added(o, bare, 0.99))} |")
    return "\n".join(rows)


def verdict(outcomes: list[Outcome]) -> list[str]:
    bare = _bare(outcomes)
    lines = []
    for o in outcomes:
        p50, p99 = added(o, bare, 0.5), added(o, bare, 0.99)
        if p50 is None or p99 is None:
            continue
        ok50, ok99 = p50 * 1000 <= GOAL_P50_MS, p99 * 1000 <= GOAL_P99_MS
        lines.append(
            f"{o.server.name}: added p50 {p50 * 1000:.2f} ms (goal ≤ {GOAL_P50_MS:g} ms: "
            f"{'met' if ok50 else 'NOT met'}), added p99 {p99 * 1000:.2f} ms "
            f"(goal ≤ {GOAL_P99_MS:g} ms: {'met' if ok99 else 'NOT met'})")
    return lines


def command(argv: list[str]) -> str:
    python = sys.executable
    if python.startswith(str(ROOT)):
        python = os.path.relpath(python, ROOT)
    return " ".join([python, "-m", "benchmarks.ttft", *map(shlex.quote, argv)])


def _when() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def section(outcomes: list[Outcome], args: argparse.Namespace, argv: list[str]) -> str:
    info = machine()
    lines = "\n".join(f"**{line}**  " for line in verdict(outcomes))
    reconnects = [f"`{o.server.name}` {o.connections}" for o in outcomes
                  if o.ok and o.connections > 1]
    conns = ("one keep-alive connection per server"
             + (f" (the server closed some: connections opened {', '.join(reconnects)})"
                if reconnects else ""))
    return f"""{TTFT_HEADING}

Written by `benchmarks/ttft.py --write`; rerun it to refresh this section.

- Date: {_when()}
- Command: `{command(argv)}`{suite_note()}
- Machine: cores {info["cores"]}, {info["CPU"]}, {info["OS"]}, Python {info["Python"]},
  uvicorn {info["uvicorn"]}, uvloop {info["uvloop"]}
- Machine load: {_fractions(args.idle_load)} in an idle second before the run;
  {_fractions(args.run_load)} during it (benchmark included)
- Requests: {args.requests:,} measured per server after {args.warmup} unmeasured, sequential,
  {conns}, in blocks of {BLOCK} taking turns between the servers; each a POST /api/chat for
  the scripted provider with options.text "{TEXT.strip()}" (nine deltas) and delay_ms 0.

{table(outcomes)}

{lines}

- **p50 / p90 / p99 / max**: client-side time from just before the request is written to
  the socket to the return of the read that completes the first `delta` event (nearest
  rank over the requests). The scripted provider yields its first token the moment its
  generation starts, so for tokenrelay this is all overhead on top of a provider that
  answers at once: HTTP parsing, routing and validation, the store's writes for the new
  conversation, starting the generation task, the stream log and the response's reader.
- **added vs bare**: tokenrelay's p50 (p99) minus `bare`'s: `bare` reads the body and
  writes the response head and a pre-encoded first delta at once, so its figures are the
  floor of loopback, uvicorn (uvloop, httptools) and this client on this machine.
  Issue goal: added p50 ≤ {GOAL_P50_MS:g} ms, p99 ≤ {GOAL_P99_MS:g} ms.
- `tokenrelay-memory` keeps conversations in memory (`--database memory`); `tokenrelay`
  uses its default store, SQLite, in a file in a temporary directory: the difference is
  what the store costs before the first token. The client's garbage collector is off
  within each block of {BLOCK} (collected between blocks), so its pauses are not counted.
"""


def figures(outcomes: list[Outcome], args: argparse.Namespace,
            argv: list[str]) -> dict[str, object]:
    """What the section's table shows, for benchmarks/charts.py (times in ms)."""
    bare = _bare(outcomes)
    rows: list[dict[str, object]] = []
    for o in outcomes:
        row: dict[str, object] = {"server": o.server.name}
        if not o.ok:
            row["error"] = (o.error or "no samples").splitlines()[0]
        else:
            p50, p99 = added(o, bare, 0.5), added(o, bare, 0.99)
            row.update(
                requests=len(o.samples),
                p50_ms=finite(o.quantile(0.5) * 1000, 4), p90_ms=finite(o.quantile(0.9) * 1000, 4),
                p99_ms=finite(o.quantile(0.99) * 1000, 4), max_ms=finite(max(o.samples) * 1000, 4),
                added_p50_ms=None if p50 is None else finite(p50 * 1000, 4),
                added_p99_ms=None if p99 is None else finite(p99 * 1000, 4),
                connections=o.connections)
        rows.append(row)
    return {"name": "ttft", "title": "Added time to first token", "date": _when(),
            "command": command(argv) + suite_note(), "machine": machine(),
            "requests": args.requests, "warmup": args.warmup,
            "goal": {"added_p50_ms": GOAL_P50_MS, "added_p99_ms": GOAL_P99_MS},
            "verdict": verdict(outcomes), "rows": rows}


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ttft",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="measured requests per server (default 1000)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="unmeasured requests per server first (default requests / 10, "
                             "at least 20)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 requests (overrides --requests)")
    parser.add_argument("--servers", default=",".join(s.name for s in SERVERS),
                        help="comma-separated subset of: " + ", ".join(s.name for s in SERVERS))
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per read")
    parser.add_argument("--write", action="store_true",
                        help="write the Added time to first token section of benchmarks/RESULTS.md")
    add_out_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = 100
    if args.warmup is None:
        args.warmup = max(20, args.requests // 10)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be at least 1 and --warmup at least 0")
    args.selected = selected_servers(parser, args.servers, (s.name for s in SERVERS))
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    print(f"time to first delta: {args.warmup} warm-up + {args.requests:,} requests per server, "
          f"one keep-alive connection each", flush=True)
    args.idle_load = _machine_load()
    if args.idle_load is not None and (args.idle_load[0] > 0.1 or args.idle_load[1] > 0.05):
        print(f"warning: before the run the machine was {_fractions(args.idle_load)}: other work "
              "skews the figures", file=sys.stderr)
    before = MachineCpu.now()
    outcomes = measure([s for s in SERVERS if s.name in args.selected], args.requests,
                       args.warmup, args.timeout, progress=lambda line: print("  " + line,
                                                                             flush=True))
    after = MachineCpu.now()
    args.run_load = after.since(before) if before and after else None
    for outcome in outcomes:
        if outcome.error:
            print(f"  {outcome.server.name}: FAILED\n{outcome.error}")
    print()
    print(f"machine during the run: {_fractions(args.run_load)}\n")
    print(table(outcomes))
    for line in verdict(outcomes):
        print(line)
    if args.write:
        out = resolve_out(args, "ttft")
        write_section(results_md(out), TTFT_HEADING, section(outcomes, args, argv))
        path = write_json(out, "ttft", figures(outcomes, args, argv))
        print(f"wrote the {TTFT_HEADING[3:]} section of {shown(results_md(out))} and {shown(path)}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
