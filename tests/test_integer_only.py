"""The compiled sr and r training steps contain no floating-point instruction at all.

numba's LLVM IR of each epoch includes every function it calls, so scanning it
covers the whole step. The scan runs in a fresh process with an empty numba cache,
because numba keeps no IR for functions it loads from the cache.
"""
import json
import subprocess
import sys

import pytest

from fxtrain.engine.jit import float_ops

CHILD = r"""
import json, sys
import numpy as np
from numba import njit
from fxtrain import api
from fxtrain.engine.epoch import compiled
from fxtrain.engine.jit import float_ops
from fxtrain.engine.updates import BC, R, SR

api.train(epochs=1, method="sr")
api.train(epochs=1, method="r", momentum="0.75", optimizer="momentum")
api.train(epochs=1, method="sr", arch="conv:2:3,pool:2,dense:10", bits=4)
api.train(epochs=1, method="bc")
api.train(epochs=1, method="sr", arch="dense:128,dense:10")
out = {}
# keys: method, conv/pool layers, momentum (r's run above has it), fast kernels (conv and dense:128 nets)
for name, key in (("sr", (SR, False, False, False)), ("r", (R, False, True, False)),
                  ("sr conv", (SR, True, False, True)), ("sr wide", (SR, False, False, True)),
                  ("bc", (BC, False, False, False))):
    fn = compiled("int", *key)
    irs = list(fn.inspect_llvm().values())
    out[name] = {"n_ir": len(irs), "float": {k: v for ir in irs for k, v in float_ops(ir).items()}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path_factory.mktemp("numba-cold"))}
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["sr", "r", "sr conv", "sr wide"])
def test_integer_epochs_hold_no_float_instruction(scan, name):
    # one compiled signature was scanned, and not one fadd, sitofp, llvm.log ... appears in it
    assert scan[name]["n_ir"] == 1 and scan[name]["float"] == {}


def test_the_scan_sees_bcs_float_update(scan):
    # the same scan on bc's epoch finds its float32 shadow update: the scan can fail
    ops = {op for fn_ops in scan["bc"]["float"].values() for op in fn_ops}
    assert {"fmul", "fsub", "llvm.floor"} <= ops


def test_the_scan_flags_a_planted_float():
    ir = ("define i64 @int_only(i64 %a) {\n  %b = add i64 %a, 1\n  ret i64 %b\n}\n"
          "define i64 @planted(i64 %a) {\n  %f = sitofp i64 %a to double\n  %l = call double @llvm.log.f64(double %f)\n"
          "  %r = fptosi double %l to i64\n  ret i64 %r\n}\n")
    assert float_ops(ir) == {"planted": ["fptosi", "llvm.log", "sitofp"]}


def test_the_cost_model_counts_float_ops_exactly_where_the_code_has_them(scan):
    from fxtrain.device.cost import account
    from fxtrain.engine.network import parse_arch
    layers = parse_arch(None, (8, 8, 1), 10)
    for method in ("sr", "r", "bc"):
        flops = account(layers, method, 8, 16, 1437, 64, 10).float_ops_per_step
        # 0 float ops in the accounting exactly when the compiled epoch has no float instruction
        assert (flops == 0) == (scan[method]["float"] == {}), method
