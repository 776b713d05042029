"""The benchmark scripts run end to end in --quick mode (a smoke test: no timing is asserted)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script,expect", [
    ("bench_engine.py", "sr / PyTorch"),
    ("bench_scaling.py", "exponent"),
])
def test_benchmark_quick_mode_prints_its_table(script, expect):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expect in proc.stdout, proc.stdout
