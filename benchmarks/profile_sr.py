"""Where an sr 8-bit epoch spends its time: evaluation share, then jitted functions by samples.

1. Wall time of ``Run.step_epoch`` against the training-only epoch: the evaluation share.
2. If Linux ``perf`` is installed: samples of training-only epochs (``--full``: whole
   ``Run.step_epoch`` calls, evaluation included) attributed to each jitted function.
   Numba's code has no symbols perf can see, so this process compiles
   the kernels itself (into an empty NUMBA_CACHE_DIR, so expect ~15 s of compiling) and
   writes ``/tmp/perf-<pid>.map`` naming every function of the compiled sr epoch.
   Percentages are of all samples in the process while epochs run; LLVM may inline a
   small helper into its caller, whose share then includes it.

    python benchmarks/profile_sr.py                 # every case: default, wide, conv, wide-2048
    python benchmarks/profile_sr.py --case wide     # one case (repeat --case for more)
    python benchmarks/profile_sr.py --quick         # default arch, short sampling
"""
import os
import tempfile

os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fxtrain-profile-")

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import common  # noqa: E402
from tabulate import tabulate  # noqa: E402

from fxtrain.engine.epoch import compiled  # noqa: E402
from fxtrain.engine.updates import SR  # noqa: E402

CASES = [("default", "dense:32,dense:10", 16, 8), ("wide", "dense:256,dense:10", 64, 4),
         ("conv", "conv:8:3,pool:2,dense:10", 16, 2), ("wide-2048", "dense:256,dense:10", 2048, 8)]
RUNTIME = {"NRT_incref": "numba runtime (refcounts, views)", "NRT_decref": "numba runtime (refcounts, views)",
           "numba_attempt_nocopy_reshape": "numba runtime (refcounts, views)"}


def demangle(sym):
    """``_ZN7fxtrain7kernels9dense_fwdB3v55...`` -> ``fxtrain.kernels.dense_fwd``."""
    if not sym.startswith("_ZN"):
        return sym
    parts, i = [], 3
    while i < len(sym) and sym[i].isdigit():
        j = i
        while sym[j].isdigit():
            j += 1
        n = int(sym[i:j])
        parts.append(sym[j:j + n])
        i = j + n
    return ".".join(parts) or sym


def write_perf_map():
    """Name every compiled function of the sr epochs (and what they linked in) for perf."""
    entries = []
    fns = [compiled(kind, *key) for spatial in (False, True)
           for fast in (False, True)
           for kind, key in (("int", (SR, spatial, False, fast)), ("predict", (spatial, False, fast)))]
    for cres in [c for fn in fns for c in fn.overloads.values()]:
        lib = cres.library
        for fn in lib._final_module.functions:  # numba internals: may move between releases
            if fn.is_declaration:
                continue
            addr = lib.get_pointer_to_function(fn.name)
            if addr:
                entries.append((addr, fn.name))
    entries.sort()
    path = f"/tmp/perf-{os.getpid()}.map"
    with open(path, "w") as f:
        for (addr, name), nxt in zip(entries, entries[1:] + [(entries[-1][0] + 4096, "")]):
            f.write(f"{addr:x} {min(nxt[0] - addr, 1 << 20):x} {demangle(name)}\n")
    return path


def perf_profile(fn, seconds):
    """{symbol: percent of samples} while ``fn`` runs repeatedly for ``seconds``."""
    fd, data = tempfile.mkstemp(suffix=".perf")
    os.close(fd)
    rec = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-o", data, "-p", str(os.getpid())],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # let perf attach
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
    rec.send_signal(signal.SIGINT)
    rec.wait()
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "sym"],
                         capture_output=True, text=True)
    os.unlink(data)
    shares = defaultdict(float)
    for line in rep.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
        if m:
            name = m.group(2)
            shares[RUNTIME.get(name, name)] += float(m.group(1))
    return shares


def eval_rows(cases, reps):
    rows = []
    for name, arch, batch, tile in cases:
        tile = 1 if batch <= 1438 else tile  # digits has 1,438 training samples
        run = common.make_run(common.digits(tile), "sr", arch, batch)
        full = common.median_time(common.full_epoch_fn(run), reps)
        train_run = common.make_run(common.digits(tile), "sr", arch, batch)
        train = common.median_time(common.epoch_fn(train_run), reps)
        rows.append([name, arch, batch, f"{full * 1e3:.2f}", f"{train * 1e3:.2f}",
                     f"{(full - train) / full * 100:.0f}%"])
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="default arch only, 1 s of sampling")
    ap.add_argument("--seconds", type=float, default=5.0, help="sampling time per arch")
    ap.add_argument("--case", action="append", choices=[c[0] for c in CASES], help="only this case (repeatable)")
    ap.add_argument("--full", action="store_true", help="profile Run.step_epoch, evaluation included")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if c[0] in args.case] if args.case else CASES[:1] if args.quick else CASES
    seconds = 1.0 if args.quick else args.seconds
    print("Evaluation share of Run.step_epoch on digits x1 (x8 for batch 2048; median of 7)")
    print(tabulate(eval_rows(cases, 7), headers=["case", "arch", "batch", "step_epoch ms", "training ms",
                                                 "evaluation"], colalign=("left", "left", "right", "right",
                                                                          "right", "right")))
    if shutil.which("perf") is None:
        print("\nperf is not installed: no per-function profile (apt-get install linux-perf)")
        return 0
    map_path = None
    try:
        for name, arch, batch, tile in cases:
            run = common.make_run(common.digits(tile), "sr", arch, batch)
            fn = common.full_epoch_fn(run) if args.full else common.epoch_fn(run)
            fn()
            map_path = write_perf_map()
            shares = perf_profile(fn, seconds)
            top = sorted(shares.items(), key=lambda kv: -kv[1])
            rows = [[sym, f"{pct:.1f}%"] for sym, pct in top if pct >= 0.5]
            rest = sum(pct for _, pct in top if pct < 0.5)
            rows.append(["(each below 0.5%)", f"{rest:.1f}%"])
            what = "epochs with evaluation" if args.full else "training epochs"
            print(f"\n{name}: {arch}, batch {batch}, digits x{tile}, sr 8-bit, {seconds:.0f} s of {what}")
            print(tabulate(rows, headers=["function", "samples"], colalign=("left", "right")))
    finally:
        if map_path and os.path.exists(map_path):
            os.unlink(map_path)
        shutil.rmtree(os.environ["NUMBA_CACHE_DIR"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
