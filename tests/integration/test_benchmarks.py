"""The benchmark harnesses still run (a seconds-long smoke; speed is measured in
benchmarks/, never asserted here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import ROOT


@pytest.mark.parametrize("argv", [
    ["benchmarks.relay", "--quick", "--servers", "bare,tokenrelay"],
    ["benchmarks.many", "--quick", "--servers", "tokenrelay"],
    ["benchmarks.many", "--held", "--quick", "--servers", "tokenrelay"],
])
def test_a_benchmark_runs_and_every_stream_completes(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "tokenrelay" in result.stdout
