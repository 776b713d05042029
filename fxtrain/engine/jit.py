"""Hooks into numba's compilation: tell the user once when kernels are being compiled.

numba fires a ``numba:compile`` event only on a cache miss, so a listener that
reacts to the first one speaks exactly when a cold cache costs time, and stays
silent on every later run that loads the kernels from disk.
"""
import os

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
