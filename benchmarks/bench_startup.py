"""Start-up costs: ``fxtrain --help`` wall time, whether the CLI imports numba, and JIT compile time.

Everything runs in fresh subprocesses. The compile overhead compares a first and a
second ``Run(...).step_epoch()`` in a process whose NUMBA_CACHE_DIR is an empty temp
folder (cold: every kernel compiles) with a second process reusing that folder
(warm: kernels load from the on-disk cache).

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

# Runs in the child: times the import, the set-up and two epochs, prints one JSON line.
EPOCH_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from fxtrain.data import load_dataset
from fxtrain.train import Run, TrainConfig
t1 = time.perf_counter()
d = load_dataset("digits", 0)
run = Run(TrainConfig(method=sys.argv[1], bits=8, batch=16, lr="0.0625", arch=sys.argv[2], seed=0), d)
t2 = time.perf_counter()
run.step_epoch()
t3 = time.perf_counter()
run.step_epoch()
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "setup": t2 - t1, "epoch1": t3 - t2, "epoch2": t4 - t3}))
"""

# Runs in the child: imports the CLI module and reports what that pulled in.
IMPORT_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
try:
    import fxtrain.cli
    ok = True
except ModuleNotFoundError as exc:
    ok = False
t1 = time.perf_counter()
print(json.dumps({"ok": ok, "seconds": t1 - t0, "numba": "numba" in sys.modules,
                  "numpy": "numpy" in sys.modules, "sklearn": "sklearn" in sys.modules}))
"""

# ``fxtrain --help`` through click, reporting at exit whether numba was imported on the way.
HELP_CHILD = r"""
import atexit, sys
atexit.register(lambda: sys.stderr.write("NUMBA_LOADED=%d\n" % ("numba" in sys.modules)))
sys.argv = ["fxtrain", "--help"]
from fxtrain.cli import main
main()
"""


def child_env(**extra):
    env = dict(os.environ)
    env.update(extra)
    return env


def wall(cmd, env=None):
    """(seconds, CompletedProcess) of one subprocess run."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, p


def median_wall(cmd, reps):
    return statistics.median(wall(cmd)[0] for _ in range(reps))


def help_command():
    """The installed console script if there is one, else the same entry point via python."""
    exe = shutil.which("fxtrain")
    return ([exe, "--help"], "fxtrain --help") if exe else (
        [sys.executable, "-c", "from fxtrain.cli import main; main()", "--help"], "python -c main() --help")


def cli_rows(reps):
    """Rows for the CLI start-up table; degrades to a note when fxtrain.cli does not exist."""
    rows = [["python -c pass", f"{median_wall([sys.executable, '-c', 'pass'], reps) * 1e3:.0f}", ""],
            ["python -c 'import numpy'", f"{median_wall([sys.executable, '-c', 'import numpy'], reps) * 1e3:.0f}", ""],
            ["python -c 'import numba'", f"{median_wall([sys.executable, '-c', 'import numba'], reps) * 1e3:.0f}", ""]]
    _, p = wall([sys.executable, "-c", IMPORT_CHILD])
    info = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None
    if info is None or not info["ok"]:
        why = "fxtrain.cli does not exist yet" if info is not None else f"import failed: {p.stderr.strip()[-200:]}"
        rows.append(["fxtrain --help", "-", why])
        return rows
    loaded = [m for m in ("numpy", "numba", "sklearn") if info[m]]
    rows.append(["import fxtrain.cli", f"{info['seconds'] * 1e3:.0f} (in-process)",
                 "imports " + (", ".join(loaded) if loaded else "none of numpy, numba, sklearn")])
    cmd, label = help_command()
    secs = median_wall(cmd, reps)
    _, p = wall([sys.executable, "-c", HELP_CHILD, "--help"])
    numba_loaded = "NUMBA_LOADED=1" in p.stderr
    status = "exit 0" if p.returncode == 0 else f"exit {p.returncode}"
    rows.append([label, f"{secs * 1e3:.0f}", f"{status}; numba imported: {'yes' if numba_loaded else 'no'}"])
    return rows


def epoch_times(method, arch, cache_dir):
    _, p = wall([sys.executable, "-c", EPOCH_CHILD, method, arch], env=child_env(NUMBA_CACHE_DIR=cache_dir))
    if p.returncode != 0:
        raise SystemExit(f"child failed for {method} {arch}:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def compile_rows(cases):
    rows = []
    for method, arch in cases:
        with tempfile.TemporaryDirectory(prefix="fxtrain-numba-") as cache:
            cold = epoch_times(method, arch, cache)
            warm = epoch_times(method, arch, cache)
        for phase in ("import", "setup", "epoch1", "epoch2"):
            rows.append([f"{method} {arch}", phase, f"{cold[phase]:.3f}", f"{warm[phase]:.3f}"])
        overhead = (cold["epoch1"] - cold["epoch2"], warm["epoch1"] - warm["epoch2"])
        rows.append([f"{method} {arch}", "epoch1 - epoch2", f"{overhead[0]:.3f}", f"{overhead[1]:.3f}"])
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, one compile case (CI smoke test)")
    args = ap.parse_args(argv)
    reps = 3 if args.quick else 9
    cases = [("sr", "dense:32,dense:10")] if args.quick else [
        ("sr", "dense:32,dense:10"), ("float", "dense:32,dense:10"), ("sr", "conv:8:3,pool:2,dense:10")]
    print(f"CLI start-up, wall time of a fresh process, median of {reps}")
    print(tabulate(cli_rows(reps), headers=["command", "ms", "note"], colalign=("left", "right", "left")))
    print()
    print("JIT compile overhead, seconds in fresh processes (cold: empty NUMBA_CACHE_DIR; warm: reused)")
    print(tabulate(compile_rows(cases), headers=["run", "phase", "cold cache", "warm cache"],
                   colalign=("left", "left", "right", "right")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
