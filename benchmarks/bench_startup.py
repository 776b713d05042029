"""Start-up costs: how long the CLI takes with a cold and a warm numba cache, and where compile time goes.

Every timing is the wall time of a fresh process. "cold" runs with an empty
NUMBA_CACHE_DIR (every kernel compiles); "warm" reuses that folder (kernels load
from disk). The last table lists numba's compilations in a cold ``simulate`` job,
by exclusive seconds (own typing, lowering and LLVM time, without callees').

    python benchmarks/bench_startup.py            # full measurement
    python benchmarks/bench_startup.py --quick    # smoke test: fewer repetitions
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tabulate import tabulate

# Runs in the child: records numba's compile events of one simulate job, prints them as JSON.
COMPILE_CHILD = r"""
import json
from numba.core import event
records, stack = [], []

class Rec(event.Listener):
    def on_start(self, ev):
        stack.append([ev.data["dispatcher"].py_func.__qualname__, event.time.perf_counter(), 0.0])

    def on_end(self, ev):
        name, t0, child = stack.pop()
        total = event.time.perf_counter() - t0
        if stack:
            stack[-1][2] += total
        records.append((name, total - child))

event.register("numba:compile", Rec())
import fxtrain
fxtrain.simulate("cortex-m4", epochs=1)
print(json.dumps(records))
"""


def fxtrain_cmd(*args):
    exe = shutil.which("fxtrain")
    return [exe, *args] if exe else [sys.executable, "-c", "from fxtrain.cli import main; main()", *args]


def wall(cmd, env=None):
    """Seconds of one subprocess run; raises with its stderr if it fails."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def median_wall(cmd, reps, env=None):
    return statistics.median(wall(cmd, env) for _ in range(reps))


def env_with_cache(cache):
    return dict(os.environ, NUMBA_CACHE_DIR=cache)


def baseline_rows(reps):
    rows = []
    for label, cmd in [("python -c pass", [sys.executable, "-c", "pass"]),
                       ("python -c 'import numba'", [sys.executable, "-c", "import numba"]),
                       ("fxtrain --help", fxtrain_cmd("--help"))]:
        rows.append([label, f"{median_wall(cmd, reps):.3f}"])
    probe = subprocess.run([sys.executable, "-c", "import sys, fxtrain.cli; print('numba' in sys.modules)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    rows[-1].append("imports numba" if probe == "True" else "does not import numba")
    return rows


def command_rows(reps, work):
    """Cold (first run, empty cache) and warm (median of ``reps``) wall seconds per CLI command."""
    run_dir, fw = os.path.join(work, "run"), os.path.join(work, "fw")
    jobs = [("fxtrain train --epochs 1", fxtrain_cmd("train", "--epochs", "1", "--out", run_dir)),
            ("fxtrain simulate --target cortex-m4", fxtrain_cmd("simulate", "--target", "cortex-m4")),
            ("fxtrain export RUN --out FW", fxtrain_cmd("export", run_dir, "--out", fw))]
    numba_s = median_wall([sys.executable, "-c", "import numba"], reps)
    rows = []
    for label, cmd in jobs:
        cache = tempfile.mkdtemp(prefix="fxtrain-numba-", dir=work)
        cold = wall(cmd, env_with_cache(cache))
        warm = median_wall(cmd, reps, env_with_cache(cache))
        rows.append([label, f"{cold:.2f}", f"{warm:.3f}", f"{warm / numba_s:.1f}x"])
    return rows


def compile_rows(top):
    cache = tempfile.mkdtemp(prefix="fxtrain-numba-")
    try:
        p = subprocess.run([sys.executable, "-c", COMPILE_CHILD], capture_output=True, text=True,
                           env=env_with_cache(cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    by_name = {}
    for name, secs in json.loads(p.stdout.strip().splitlines()[-1]):
        n, s = by_name.get(name, (0, 0.0))
        by_name[name] = (n + 1, s + secs)
    total = sum(s for _, s in by_name.values())
    rows = sorted(([name, n, f"{s:.2f}", f"{100 * s / total:.0f}%"] for name, (n, s) in by_name.items()),
                  key=lambda r: -float(r[2]))
    return rows[:top] + [["total", sum(n for n, _ in by_name.values()), f"{total:.2f}", "100%"]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke test)")
    args = ap.parse_args(argv)
    reps = 2 if args.quick else 5
    print(f"Baselines, wall seconds of a fresh process, median of {reps}")
    print(tabulate(baseline_rows(reps), headers=["command", "seconds", "note"], colalign=("left", "right")))
    print()
    with tempfile.TemporaryDirectory(prefix="fxtrain-startup-") as work:
        print(f"CLI commands: cold = first run with an empty numba cache; warm = median of {reps} later runs")
        print(tabulate(command_rows(reps, work), headers=["command", "cold s", "warm s", "warm / import numba"],
                       colalign=("left", "right", "right", "right")))
    print()
    print("Where a cold simulate job's compile time goes (numba compilations, exclusive seconds)")
    print(tabulate(compile_rows(8 if args.quick else 20), headers=["function", "signatures", "seconds", "share"],
                   colalign=("left", "right", "right", "right")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
