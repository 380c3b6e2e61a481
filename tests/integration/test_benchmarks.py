"""The benchmark harnesses still run and still measure what they claim (a seconds-long
smoke, `--quick`; speed is measured in benchmarks/, never asserted here). Each writes
its figures with `--write --out` to a temp directory: the recorded ones stay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT


def _run(module: str, *args: str, out: Path) -> tuple[str, dict[str, Any]]:
    """Run a benchmark; returns its stdout and the results JSON it wrote."""
    result = subprocess.run([sys.executable, "-m", module, *args, "--write", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    written = list((out / "results").glob("*.json"))
    assert len(written) == 1, written
    assert (out / "RESULTS.md").exists()
    return result.stdout, json.loads(written[0].read_text())


def test_the_relay_benchmark_delivers_every_delta_on_each_server(tmp_path: Path) -> None:
    notes = "## Issue 99: before and after\n\nwritten by hand, kept by every writer\n"
    (tmp_path / "RESULTS.md").write_text("# Relay benchmark results\n\n" + notes)
    stdout, figures = _run("benchmarks.relay", "--quick", "--servers", "bare,tokenrelay",
                           out=tmp_path)
    assert notes in (tmp_path / "RESULTS.md").read_text()  # a rewrite dropped them once
    assert figures["name"] == "relay" and figures["tokens"] == 2_000
    rows = {row["server"]: row for row in figures["rows"]}
    assert list(rows) == ["bare", "tokenrelay"]
    for name, row in rows.items():
        # A row with figures is a run whose stream carried exactly `tokens` deltas (the
        # harness records a short or broken stream as the row's `error`).
        assert "error" not in row and "skipped" not in row, (name, row)
        for figure in ("events_per_s", "steady_events_per_s", "first_delta_ms", "server_cpu"):
            assert row[figure] > 0, (name, figure, row)
        assert row["events_per_send"] >= 1 and row["min"] <= row["events_per_s"] <= row["max"]
    assert rows["bare"]["x_bare"] == 1.0 and rows["tokenrelay"]["x_bare"] > 0
    assert any(line.startswith("tokenrelay / bare = ") for line in figures["verdict"])
    assert "tokenrelay" in stdout and "bare" in stdout


@pytest.mark.parametrize(("held", "tokens"), [(False, 10), (True, 3)], ids=["many", "held"])
def test_the_many_streams_benchmark_completes_every_stream(tmp_path: Path, held: bool,
                                                          tokens: int) -> None:
    args = ["--quick", "--servers", "tokenrelay", *(["--held"] if held else [])]
    stdout, figures = _run("benchmarks.many", *args, out=tmp_path)
    assert figures["name"] == ("held" if held else "many")
    assert figures["tokens_per_stream"] == tokens
    [row] = figures["rows"]
    assert row["server"] == "tokenrelay" and "error" not in row, row
    # Every one of the 100 streams got all its deltas: none failed, none came up short.
    assert (row["streams"], row["ok"], row["failed"], row["incomplete"]) == (100, 100, 0, 0)
    assert row["concurrent"] > 1, "the streams ran at the same time"
    assert row["delivered_best_1s"] > 0 and row["run_average"] > 0
    assert row["first_p50_ms"] > 0 and row["server_kib_per_stream"] is not None
    assert row["server_cpu_us_per_token"] > 0
    assert row["server_cpu_per_token_x_bare"] is None  # bare did not run
    assert "ok 100/100" in stdout


def test_the_many_streams_benchmark_runs_on_granian_and_prices_a_token(tmp_path: Path) -> None:
    pytest.importorskip("granian")
    stdout, figures = _run("benchmarks.many", "--quick", "--servers", "bare,tokenrelay-granian",
                           out=tmp_path)
    rows = {row["server"]: row for row in figures["rows"]}
    assert list(rows) == ["bare", "tokenrelay-granian"]
    for name, row in rows.items():
        assert "error" not in row and (row["ok"], row["failed"]) == (100, 0), (name, row)
        # CPU per delivered token: the server's CPU seconds / the deltas received.
        assert row["server_cpu_us_per_token"] > 0, (name, row)
    assert rows["bare"]["server_cpu_per_token_x_bare"] == 1.0
    ratio = rows["tokenrelay-granian"]["server_cpu_per_token_x_bare"]
    assert ratio == pytest.approx(rows["tokenrelay-granian"]["server_cpu_us_per_token"]
                                  / rows["bare"]["server_cpu_us_per_token"], rel=0.01)
    line = f"tokenrelay-granian: CPU per token {ratio:.2f}× bare's at N = 100"
    assert line in figures["verdict"]
    assert "server CPU µs / token" in stdout


def test_the_objects_benchmark_counts_what_an_open_stream_holds(tmp_path: Path) -> None:
    stdout, figures = _run("benchmarks.objects", "--quick", out=tmp_path)
    assert figures["name"] == "objects" and figures["streams"] == 100
    # 100 open streams added to the heap, and tokenrelay's own code is part of it
    assert figures["bytes_per_stream"] > 1000 and figures["blocks_per_stream"] > 10
    packages = {row["site"]: row["bytes"] for row in figures["rows"]}
    assert packages["tokenrelay/…"] > 0 and packages["uvicorn/…"] > 0
    assert "## Objects per open stream" in (tmp_path / "RESULTS.md").read_text()


def test_the_request_path_benchmark_measures_both_paths(tmp_path: Path) -> None:
    stdout, figures = _run("benchmarks.request_path", "--quick", out=tmp_path)
    assert figures["fastapi_us"] > 0 and figures["fast_path_us"] > 0
    assert figures["ratio"] == pytest.approx(figures["fast_path_us"] / figures["fastapi_us"],
                                             rel=1e-3)
    assert "the fast path / FastAPI's path" in stdout
