"""What one open stream holds: tracemalloc's count of the server's allocations per
open stream, by where they were made (issue 16: "count them with tracemalloc and show
the table before and after").

    .venv/bin/python -m benchmarks.objects [--streams 1000] [--top 20] [--quick]
        [--write] [--out DIR]

Starts `tokenrelay serve --model scripted --database memory` under tracemalloc (one
frame: where each block was allocated), warms it up, takes a snapshot, opens
`--streams` streams at 1 token/s (benchmarks/_load.py, as `many --held` does) and takes
a second snapshot once all are open; prints, per allocation site, the bytes and blocks
the open streams added, divided by the number of streams. tracemalloc counts the
Python heap only (not the allocator's slack, nor the kernel's socket buffers), so the
total is below `many --held`'s RSS per stream; it says *what* the memory is.
`--write` keeps an "## Objects per open stream" section in benchmarks/RESULTS.md and
its figures in benchmarks/results/objects.json (`--out DIR` instead; `--quick`, 100
streams, to a temporary directory). Run it with PYTHONPATH=<a worktree of another
commit>/src for the "before" table.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from benchmarks.relay import add_out_option, resolve_out, results_md, suite_note, write_json

HEADING = "## Objects per open stream"
TOKENS, RATE = 40, 1.0


def serve(snapshots: Path, argv: list[str]) -> None:
    """The server's side: tracemalloc on, a snapshot to `snapshots/N.snap` on SIGUSR1,
    then `python -m tokenrelay <argv>`."""
    tracemalloc.start(1)
    taken = 0

    def snapshot(*_: object) -> None:
        nonlocal taken
        tracemalloc.take_snapshot().dump(str(snapshots / f"{taken}.snap"))
        taken += 1
        (snapshots / f"{taken}.done").touch()

    signal.signal(signal.SIGUSR1, snapshot)
    sys.argv = ["tokenrelay", *argv]
    runpy.run_module("tokenrelay", run_name="__main__")


def _site(trace: tracemalloc.StatisticDiff) -> str:
    frame = trace.traceback[0]
    parts = Path(frame.filename).parts
    for root in ("tokenrelay", "uvicorn", "asyncio", "starlette", "fastapi", "uvloop"):
        if root in parts:
            return "/".join(parts[parts.index(root):]) + f":{frame.lineno}"
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _take(pid: int, snapshots: Path, n: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not (snapshots / f"{n + 1}.done").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server took no snapshot")
        time.sleep(0.1)
    return tracemalloc.Snapshot.load(str(snapshots / f"{n}.snap"))


def measure(streams: int, top: int) -> tuple[list[tuple[str, float, float]], float, float]:
    """(site, bytes per stream, blocks per stream) for the `top` sites, and the totals."""
    from benchmarks.many import _memory, load
    from benchmarks.relay import Server, running

    with tempfile.TemporaryDirectory(prefix="objects-bench-") as tmp:
        snapshots = Path(tmp)
        prefix = [sys.executable, "-m", "benchmarks.objects", "--serve", str(snapshots), "--"]
        server = Server("tokenrelay", lambda port: _memory(port)[3:])  # after `-m tokenrelay`
        with running(server, prefix) as (pid, port):
            load(port, 20, 3, 100.0, 0.05, 1, {})
            # `running` waited until the server is idle (its SDK imports done); the
            # first snapshot imports what dumps need, which the second would count
            _take(pid, snapshots, 0)
            idle = _take(pid, snapshots, 1)
            ramp = streams / 500
            done = threading.Event()
            worker = threading.Thread(target=lambda: (load(port, streams, TOKENS, RATE, ramp, 1,
                                                           {}), done.set()))
            worker.start()
            time.sleep(0.2 + ramp + 3.0)  # all open, each 40 s long
            held = _take(pid, snapshots, 2)
            worker.join()
    diff = held.compare_to(idle, "lineno")
    rows = [(_site(d), d.size_diff / streams, d.count_diff / streams) for d in diff[:top]]
    packages: dict[str, list[float]] = {}
    for d in diff:
        site = _site(d)
        package = site.split("/")[0] if "/" in site else "other"
        sums = packages.setdefault(f"{package}/…", [0.0, 0.0])
        sums[0] += d.size_diff / streams
        sums[1] += d.count_diff / streams
    rows += [(name, size, count) for name, (size, count)
             in sorted(packages.items(), key=lambda item: -item[1][0])]
    total = sum(d.size_diff for d in diff) / streams
    blocks = sum(d.count_diff for d in diff) / streams
    return rows, total, blocks


def table(rows: list[tuple[str, float, float]], total: float, blocks: float) -> str:
    lines = ["| where allocated | bytes / stream | blocks / stream |", "|---|--:|--:|"]
    lines += [f"| `{site}` | {size:,.0f} | {count:,.1f} |" for site, size, count in rows]
    lines.append(f"| **all sites** | **{total:,.0f}** | **{blocks:,.1f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(Path(argv[1]), argv[3:])
        return 0
    from benchmarks.many import write_section

    parser = argparse.ArgumentParser(prog="python -m benchmarks.objects",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 streams")
    parser.add_argument("--write", action="store_true")
    add_out_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.streams = 100
    rows, total, blocks = measure(args.streams, args.top)
    text = table(rows, total, blocks)
    print(text)
    if args.write:
        out = resolve_out(args, "objects")
        write_section(f"{HEADING}\n\nWritten by `python -m benchmarks.objects --streams "
                      f"{args.streams} --write` ({time.strftime('%Y-%m-%d')}){suite_note()}: "
                      f"the Python heap {args.streams:,} open streams added, per stream, by "
                      "allocation site (tracemalloc, one frame), then by package.\n\n" + text,
                      results_md(out), heading=HEADING)
        write_json(out, "objects", {
            "name": "objects", "streams": args.streams, "bytes_per_stream": total,
            "blocks_per_stream": blocks,
            "rows": [{"site": site, "bytes": size, "blocks": count}
                     for site, size, count in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
