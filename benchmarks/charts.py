"""PNG charts of the benchmark figures, drawn with matplotlib (Agg, no display).

    .venv/bin/python -m benchmarks.charts [--out DIR]

Reads the JSON files the benchmark modules write with `--write` (DIR/results/relay.json,
many.json, ttft.json, local.json; DIR defaults to benchmarks/) and draws, into
DIR/charts/:

- relay.png: single-stream relay events/s per server, each bar labelled with its
  multiple of the bare loop's;
- many.png: inter-token lateness p99 and delivered / offered tokens/s against the
  number of concurrent streams, one line per server;
- ttft.png: time to first token p50 / p99 per server, and what tokenrelay adds to the
  bare loop's, against the issue's goals;
- local.png: the bundled model's tokens/s and TTFT through the server and alone.

Every chart carries, in its footer, the command and the machine (cores, CPU model) its
JSON records. A missing JSON skips its chart (and says so).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
NAMES = ("relay", "many", "ttft", "local")

Data = dict[str, Any]

# One colour per server, the same in every chart.
_COLOURS = {
    "bare": "#7f7f7f",
    "bare-granian": "#c7c7c7",
    "tokenrelay-granian": "#d62728",
    "tokenrelay": "#1f77b4",
    "tokenrelay-memory": "#17becf",
    "tokenrelay-nostore": "#17becf",
    "tokenrelay-redis": "#9467bd",
    "tokenrelay-trickle": "#aec7e8",
    "sse-starlette": "#ff7f0e",
    "fastapi-sse": "#2ca02c",
    "server": "#1f77b4",
    "alone": "#7f7f7f",
}


def _colour(name: str) -> str:
    return _COLOURS.get(name, "#bcbd22")


def footer(data: Data) -> str:
    """The command and the machine a figure came from, for the chart's foot."""
    machine = data.get("machine") or {}
    cores = str(machine.get("cores", "?")).split(" ")[0]
    return (f"Command: {data.get('command', '?')}\n"
            f"Machine: {cores} cores, {machine.get('CPU', 'unknown CPU')}, "
            f"{machine.get('OS', '')}, Python {machine.get('Python', '?')}; "
            f"{data.get('date', '')}")


def _finish(fig: Figure, data: Data, title: str, path: Path) -> Path:
    fig.suptitle(title, fontsize=12, fontweight="bold")
    lines = [textwrap.fill(line, 150) for line in footer(data).splitlines()]
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, color="#444444", va="bottom",
             ha="left", family="monospace")
    extra = 0.035 * len("\n".join(lines).splitlines())
    fig.tight_layout(rect=(0, extra + 0.01, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _runs(n: object) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _ok(rows: list[Data], key: str) -> list[Data]:
    return [r for r in rows if r.get(key) is not None and not r.get("error")
            and not r.get("skipped")]


def _bar_labels(ax: Any, bars: Any, labels: list[str]) -> None:
    for bar, label in zip(bars, labels):
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                    fontsize=8)


def _not_measured(ax: Any, rows: list[Data], name: Callable[[Data], str],
                  top: bool = False) -> None:
    """List, in a corner of `ax`, the rows that were skipped or failed."""
    lines = [f"{name(r)}: {r.get('skipped') or r.get('error')}" for r in rows
             if r.get("skipped") or r.get("error")]
    if lines:
        ax.text(0.99, 0.97 if top else 0.03,
                "not measured:\n" + "\n".join(textwrap.shorten(s, 70) for s in lines),
                transform=ax.transAxes, ha="right", va="top" if top else "bottom", fontsize=7,
                color="#aa0000", bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})


# --- the charts ------------------------------------------------------------------------------


def relay_chart(data: Data, path: Path) -> Path:
    rows = _ok(data["rows"], "events_per_s")
    fig, ax = plt.subplots(figsize=(10, 5.6))
    names = [r["server"] for r in rows]
    values = [r["events_per_s"] for r in rows]
    bars = ax.bar(names, values, color=[_colour(n) for n in names])
    if rows:
        lows = [r["events_per_s"] - r.get("min", r["events_per_s"]) for r in rows]
        highs = [r.get("max", r["events_per_s"]) - r["events_per_s"] for r in rows]
        ax.errorbar(range(len(rows)), values, yerr=[lows, highs], fmt="none", ecolor="black",
                    capsize=3, linewidth=0.8)
    _bar_labels(ax, bars, [
        f"{r['events_per_s']:,.0f}\n"
        + ("" if r.get("x_bare") is None else f"{r['x_bare']:.2f}× bare")
        for r in rows])
    _not_measured(ax, data["rows"], lambda r: r["server"], top=True)
    ax.set_ylabel("delta events/s, one stream (median)")
    ax.set_ylim(0, max(values, default=1) * (1.22 if len(rows) == len(data["rows"]) else 1.45))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, data, f"Single-stream relay: {data.get('tokens', 0):,} deltas per "
                              f"stream, median of {_runs(data.get('repeat'))}", path)


def many_chart(data: Data, path: Path) -> Path:
    rows = _ok(data["rows"], "late_p99_ms")
    fig, (late, share) = plt.subplots(1, 2, figsize=(11, 5.2))
    servers = list(dict.fromkeys(r["server"] for r in rows))
    for name in servers:
        mine = sorted((r for r in rows if r["server"] == name), key=lambda r: r["streams"])
        xs = [r["streams"] for r in mine]
        late.plot(xs, [r["late_p99_ms"] for r in mine], marker="o", label=f"{name} p99",
                  color=_colour(name))
        late.plot(xs, [r.get("late_p50_ms") for r in mine], marker=".", linestyle="--",
                  linewidth=0.8, label=f"{name} p50", color=_colour(name), alpha=0.6)
        share.plot(xs, [100 * (r.get("delivered_share") or 0) for r in mine], marker="o",
                   label=name, color=_colour(name))
    counts = sorted({r["streams"] for r in rows})
    for ax in (late, share):
        ax.set_xlabel("concurrent streams (N)")
        ax.set_xticks(counts)
        ax.set_xticklabels([f"{n:,}" for n in counts], fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    late.set_ylabel("inter-token lateness p99 (ms)")
    late.set_title("Inter-token lateness p99 (dashed: p50; lower is better)", fontsize=10)
    late.set_ylim(0, max((r["late_p99_ms"] for r in rows), default=1) * 1.15)
    share.set_ylabel("delivered / offered tokens/s, best 1 s (%)")
    share.set_title("Delivered / offered (100% = keeps up)", fontsize=10)
    share.set_ylim(0, 110)
    share.axhline(100, color="black", linewidth=0.6, linestyle=":")
    _not_measured(share, data["rows"], lambda r: f"N = {r['streams']:,} {r['server']}")
    return _finish(fig, data, f"Many streams at {data.get('rate', 10):g} tokens/s each, "
                              f"{data.get('tokens_per_stream', '?')} tokens per stream", path)


def ttft_chart(data: Data, path: Path) -> Path:
    rows = _ok(data["rows"], "p50_ms")
    goal = data.get("goal") or {}
    fig, (whole, extra) = plt.subplots(1, 2, figsize=(11, 5.2),
                                       gridspec_kw={"width_ratios": [3, 2]})
    width = 0.38
    xs = range(len(rows))
    for offset, key, label, alpha in ((-width / 2, "p50_ms", "p50", 1.0),
                                      (width / 2, "p99_ms", "p99", 0.55)):
        bars = whole.bar([x + offset for x in xs], [r[key] for r in rows], width, label=label,
                         color=[_colour(r["server"]) for r in rows], alpha=alpha,
                         edgecolor="black", linewidth=0.4)
        _bar_labels(whole, bars, [f"{r[key]:.2f}" for r in rows])
    whole.set_xticks(list(xs))
    whole.set_xticklabels([r["server"] for r in rows], fontsize=8)
    whole.set_ylabel("request sent → first delta read (ms)")
    whole.set_title("Time to first delta (solid p50, light p99)", fontsize=10)
    whole.grid(axis="y", alpha=0.3)
    whole.set_ylim(0, max((r["p99_ms"] for r in rows), default=1) * 1.2)

    added = [r for r in rows if r.get("added_p50_ms") is not None]
    axs = range(len(added))
    for offset, key, label, alpha in ((-width / 2, "added_p50_ms", "added p50", 1.0),
                                      (width / 2, "added_p99_ms", "added p99", 0.55)):
        bars = extra.bar([x + offset for x in axs], [r[key] for r in added], width, label=label,
                         color=[_colour(r["server"]) for r in added], alpha=alpha,
                         edgecolor="black", linewidth=0.4)
        _bar_labels(extra, bars, [f"{r[key]:.2f}" for r in added])
    if "added_p50_ms" in goal:
        extra.axhline(goal["added_p50_ms"], color="#d62728", linestyle="--", linewidth=0.9,
                      label=f"goal p50 ≤ {goal['added_p50_ms']:g} ms")
    if "added_p99_ms" in goal:
        extra.axhline(goal["added_p99_ms"], color="#d62728", linestyle=":", linewidth=0.9,
                      label=f"goal p99 ≤ {goal['added_p99_ms']:g} ms")
    extra.set_xticks(list(axs))
    extra.set_xticklabels([r["server"] for r in added], fontsize=8)
    extra.set_ylabel("added vs bare (ms)")
    extra.set_title("Added by tokenrelay (solid p50, light p99)", fontsize=10)
    extra.grid(axis="y", alpha=0.3)
    top = max([r["added_p99_ms"] for r in added] + [goal.get("added_p99_ms", 0)], default=1)
    extra.set_ylim(min(0, *[r["added_p50_ms"] for r in added]), top * 1.25)
    extra.legend(fontsize=7, loc="upper left")
    return _finish(fig, data, f"Added time to first token: {data.get('requests', 0):,} "
                              "sequential requests per server, scripted provider (delay 0)",
                   path)


def local_chart(data: Data, path: Path) -> Path:
    rows = _ok(data["rows"], "tokens_per_s")
    fig, (rate, ttft) = plt.subplots(1, 2, figsize=(10, 5.0))
    names = [r["path"] for r in rows]
    colours = [_colour(n) for n in names]
    bars = rate.bar(names, [r["tokens_per_s"] for r in rows], color=colours)
    _bar_labels(rate, bars, [f"{r['tokens_per_s']:.1f}" for r in rows])
    rate.set_ylabel("tokens/s after the first (median)")
    ratio = data.get("ratio")
    rate.set_title("Tokens/s" + ("" if ratio is None else f": server / alone = {ratio:.3f}×"),
                   fontsize=10)
    rate.set_ylim(0, max((r["tokens_per_s"] for r in rows), default=1) * 1.2)
    bars = ttft.bar(names, [r["ttft_ms"] for r in rows], color=colours)
    _bar_labels(ttft, bars, [f"{r['ttft_ms']:.1f}" for r in rows])
    ttft.set_ylabel("time to first token (ms, median)")
    ttft.set_title("TTFT", fontsize=10)
    ttft.set_ylim(0, max((r["ttft_ms"] for r in rows), default=1) * 1.2)
    for ax in (rate, ttft):
        ax.grid(axis="y", alpha=0.3)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(["tokenrelay serve" if n == "server" else "llama-cpp-python alone"
                            for n in names], fontsize=8)
    return _finish(fig, data, f"Local model ({data.get('model', '?')}): "
                              f"max_tokens {data.get('max_tokens', '?')}, "
                              f"{_runs(data.get('runs'))} per path", path)


CHARTS: dict[str, Callable[[Data, Path], Path]] = {
    "relay": relay_chart, "many": many_chart, "ttft": ttft_chart, "local": local_chart,
}


def draw(out: Path, names: tuple[str, ...] = NAMES,
         log: Callable[[str], None] = print) -> list[Path]:
    """Draw the chart of every JSON present in out/results into out/charts."""
    drawn = []
    for name in names:
        source = out / "results" / f"{name}.json"
        if not source.exists():
            log(f"  {name}: no {_shown(source)} (run benchmarks.{name} with --write): skipped")
            continue
        data = json.loads(source.read_text())
        path = CHARTS[name](data, out / "charts" / f"{name}.png")
        drawn.append(path)
        log(f"  {name}: {_shown(path)}")
    return drawn


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.charts",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=BENCH_DIR, metavar="DIR",
                        help="read DIR/results/*.json, draw into DIR/charts (default benchmarks/)")
    parser.add_argument("--only", default=",".join(NAMES),
                        help="comma-separated subset of: " + ", ".join(NAMES))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    names = tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = set(names) - set(NAMES)
    if unknown:
        parser.error(f"unknown chart(s): {', '.join(sorted(unknown))}")
    print(f"charts from {_shown(args.out / 'results')}:")
    draw(args.out.resolve(), names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
