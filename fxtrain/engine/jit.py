"""Hooks into numba's compilation: tell the user once when kernels are being compiled.

numba fires a ``numba:compile`` event only on a cache miss, so a listener that
reacts to the first one speaks exactly when a cold cache costs time, and stays
silent on every later run that loads the kernels from disk.
"""
import os
import re

from numba.core import event


class _FirstCompile(event.Listener):
    def __init__(self, callback):
        self.callback = callback
        self.fired = False

    def on_start(self, ev):
        if not self.fired:
            self.fired = True
            self.callback()

    def on_end(self, ev):
        pass


def on_first_compile(callback):
    """Call ``callback()`` at the first numba compilation in this process (a cache miss), once."""
    event.register("numba:compile", _FirstCompile(callback))


def cache_dir():
    """Where the compiled kernels are cached (numba's NUMBA_CACHE_DIR)."""
    return os.environ.get("NUMBA_CACHE_DIR", "(numba's default, beside the sources)")


# LLVM instructions and intrinsics that compute in floating point.
_FLOAT_OPS = re.compile(r"\b(fadd|fsub|fmul|fdiv|frem|fcmp|fneg|fptosi|fptoui|sitofp|uitofp|fpext|fptrunc)\b"
                        r"|@llvm\.(log|log2|log10|exp|exp2|floor|ceil|trunc|round|rint|pow|sqrt|fabs|fma|fmuladd)"
                        r"\.f(16|32|64)")


def float_ops(llvm_ir):
    """{function name: sorted float operations it contains} for LLVM IR text (empty if none).

    Used on numba's ``inspect_llvm()`` of a compiled epoch, which includes every
    function it calls: the proof that the sr and r training steps are integer only.
    """
    found = {}
    for body in re.split(r"\n(?=define )", llvm_ir):
        if not body.startswith("define "):
            continue
        name = re.search(r"@([\w.$\"]+)\(", body)
        ops = {m.group(1) or f"llvm.{m.group(2)}" for m in _FLOAT_OPS.finditer(body)}
        if ops:
            found[name.group(1) if name else body[:60]] = sorted(ops)
    return found
