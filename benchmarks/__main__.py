"""Every benchmark in one run, then the charts.

    .venv/bin/python -m benchmarks [--quick]
        [--only relay,many,held,ttft,objects,request_path,local] [--out DIR]

Runs, in this order, each as `python -m benchmarks.<module> ... --write`:

1. relay: single-stream relay events/s, tokenrelay vs the bare uvicorn loop,
   sse-starlette and FastAPI's EventSourceResponse (and tokenrelay's variants);
2. many: 1,000, 3,000, 6,000 and 10,000 concurrent streams at 10 tokens/s each,
   tokenrelay and the bare loop in the same run;
3. held: 10,000 streams open at once at 1 token/s each (`many --held`): memory per
   open stream;
4. ttft: added time to first token over 1,000 requests;
5. objects: what one open stream holds, by allocation site (tracemalloc, 1,000 streams);
6. request_path: CPU per started stream in-process, FastAPI's path and the fast path;
7. local: the bundled model through the server vs llama-cpp-python alone (skipped, with
   a note, when llama-cpp-python or the bundled model is not installed);

then benchmarks/charts.py. Each module writes its section of benchmarks/RESULTS.md and
its figures to benchmarks/results/<step>.json; the charts go to benchmarks/charts/.
A failing step is reported and the others still run.

`--quick` is a smoke run (tiny sizes, seconds per step, no waiting for a quiet machine):
its RESULTS.md, JSON and charts go to a new temporary directory (or `--out DIR`), so
the full figures in benchmarks/ stay as they are.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SUITE_ENV = "BENCHMARKS_SUITE_COMMAND"  # = benchmarks.relay.SUITE_ENV

#: step -> (module, arguments of the full run, arguments of --quick); --write (and
#: --out) added
STEPS: dict[str, tuple[str, list[str], list[str]]] = {
    "relay": ("relay", [], ["--quick", "--servers", "bare,tokenrelay,sse-starlette,fastapi-sse"]),
    "many": ("many", ["--streams", "1000,3000,6000,10000"],
             ["--quick", "--servers", "bare,tokenrelay"]),
    "held": ("many", ["--held", "--streams", "10000"],
             ["--held", "--quick", "--servers", "bare,tokenrelay"]),
    "ttft": ("ttft", ["--requests", "1000"], ["--quick"]),
    "objects": ("objects", ["--streams", "1000"], ["--quick"]),
    "request_path": ("request_path", [], ["--quick"]),
    "local": ("local", [], ["--quick"]),
}


@dataclass(slots=True)
class Step:
    name: str
    status: str = "not run"
    seconds: float = 0.0
    failed: bool = False


def local_model_missing() -> str | None:
    """Why the local step cannot run, or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed"
    try:
        from tokenrelay.providers.local import bundled_model_path

        path = bundled_model_path()
    except Exception as exc:  # noqa: BLE001 - InvalidRequest, or an import problem
        return str(exc).replace("\n", " ") or f"the bundled model is not usable: {exc!r}"
    if not path.exists():
        return f"the bundled model is not installed ({path} is missing)"
    return None


def _python() -> str:
    python = sys.executable
    return os.path.relpath(python, ROOT) if python.startswith(str(ROOT)) else python


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny sizes, written to a temporary directory")
    parser.add_argument("--only", default=",".join(STEPS),
                        help="comma-separated subset of: " + ", ".join(STEPS)
                             + " (run in that order)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write RESULTS.md, results/ and charts/ to DIR (default "
                             "benchmarks/; with --quick a new temporary directory)")
    args = parser.parse_args(argv)
    chosen = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = chosen - set(STEPS)
    if unknown or not chosen:
        parser.error(f"--only takes a comma-separated subset of {', '.join(STEPS)}")
    args.steps = [name for name in STEPS if name in chosen]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.out is None:
        out = Path(tempfile.mkdtemp(prefix="tokenrelay-bench-quick-")) if args.quick else BENCH_DIR
    else:
        out = args.out.resolve()
        out.mkdir(parents=True, exist_ok=True)
    suite = " ".join([_python(), "-m", "benchmarks", *map(shlex.quote, argv)])
    env = {**os.environ, SUITE_ENV: suite}
    print(f"{suite}: {', '.join(args.steps)}, then the charts; writing to {_shown(out)}",
          flush=True)
    started = time.monotonic()
    steps: list[Step] = []
    for name in args.steps:
        step = Step(name)
        steps.append(step)
        module, full, quick = STEPS[name]
        if name == "local" and (why := local_model_missing()):
            step.status = f"skipped: {why}"
            print(f"\n== local: {step.status}" + (
                "; RESULTS.md keeps its earlier Local model section" if out == BENCH_DIR else ""),
                flush=True)
            continue
        cmd = [sys.executable, "-m", f"benchmarks.{module}", *(quick if args.quick else full),
               "--write"]
        if args.quick or out != BENCH_DIR:
            cmd += ["--out", str(out)]
        print(f"\n== {name}: {' '.join([_python(), *map(shlex.quote, cmd[1:])])}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
        step.seconds = time.monotonic() - t0
        step.failed = rc != 0
        step.status = f"FAILED (exit {rc})" if rc else "ok"

    print("\n== charts", flush=True)
    charts: list[Path] = []
    t0 = time.monotonic()
    chart_step = Step("charts")
    try:
        from benchmarks.charts import NAMES as CHART_NAMES
        from benchmarks.charts import draw
    except ImportError as exc:
        chart_step.status = f"skipped: {exc} (pip install 'matplotlib>=3.8,<4', the bench extra)"
        print(f"  {chart_step.status}")
    else:
        try:
            charts = draw(out, tuple(name for name in args.steps if name in CHART_NAMES))
            chart_step.status = "ok"
        except Exception as exc:  # noqa: BLE001 - a bad JSON should not hide the rest
            chart_step.status = f"FAILED: {type(exc).__name__}: {exc}"
            chart_step.failed = True
            print(f"  {chart_step.status}")
    chart_step.seconds = time.monotonic() - t0
    steps.append(chart_step)

    print(f"\n== done in {time.monotonic() - started:.0f} s")
    for step in steps:
        took = f" ({step.seconds:.1f} s)" if step.seconds else ""
        print(f"  {step.name:7} {step.status}{took}")
    results = out / "RESULTS.md"
    print(f"results: {_shown(results)}" + ("" if results.exists() else " (not written)"))
    figures = sorted((out / "results").glob("*.json")) if (out / "results").is_dir() else []
    print(f"figures: {', '.join(_shown(p) for p in figures) or 'none'}")
    print(f"charts:  {', '.join(_shown(p) for p in charts) or 'none'}")
    if args.quick and args.out is None:
        print("(a --quick run: benchmarks/RESULTS.md and benchmarks/charts/ are untouched)")
    return 1 if any(step.failed for step in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
