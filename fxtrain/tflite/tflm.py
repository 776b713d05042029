"""Run a ``.tflite`` in TensorFlow Lite Micro's own interpreter and compare its bytes with fxtrain's.

The interpreter is the ``tflite-micro`` wheel (TFLM's C++ kernels behind a Python
binding). It cannot resize the batch, so inputs go through one at a time (about
10 microseconds each for the default net). TFLM crashes the process, rather than
raising, when its tensor arena is too small, so the host runs get a generous arena
and the size a device needs is read from TFLM's RecordingMicroAllocator instead.
"""
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MissingExtraError, ToolchainError
from ..firmware.verify import MAX_REPORTED, check_manifest
from .flatbuffer import INSTALL_HINT

MODEL_FILE = "model.tflite"
VECTORS_FILE = "vectors.npz"  # int8 inputs and fxtrain's expected outputs, for verify
HOST_ARENA_SLACK = 1 << 20  # bytes beyond 10x the model: ample for the MCU-sized nets fxtrain trains


def require_tflm():
    """``tflite_micro``'s runtime module, or MissingExtraError naming the pip command."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise MissingExtraError(f"running a .tflite needs the tflite-micro package; install it with: "
                                f"{INSTALL_HINT}") from None
    return runtime


def interpreter(blob):
    """A TFLM interpreter over the flatbuffer ``blob`` (bytes), with a host-sized arena."""
    runtime = require_tflm()
    try:
        return runtime.Interpreter.from_bytes(blob, arena_size=10 * len(blob) + HOST_ARENA_SLACK)
    except (RuntimeError, ValueError) as exc:
        raise ToolchainError(f"tflite-micro refused the model: {str(exc).strip().splitlines()[0]}") from None


def run(blob, X):
    """Outputs of TFLM for every input.

    Parameters
    ----------
    blob : bytes of a ``.tflite`` with one int8 input and one int8 output.
    X : int8 ndarray ``[N, *input_shape]`` (the input tensor's shape without its batch of 1).

    Returns
    -------
    int8 ndarray ``[N, n_out]``, at the output tensor's exponent.
    """
    it = interpreter(blob)
    X = np.ascontiguousarray(X, dtype=np.int8)
    rows = []
    for x in X:
        it.set_input(x[None], 0)
        it.invoke()
        rows.append(np.array(it.get_output(0), dtype=np.int8).reshape(-1))
    n_out = int(np.prod(it.get_output_details(0)["shape"]))
    return np.array(rows, dtype=np.int8).reshape(len(X), n_out)


def arena_bytes(blob, x):
    """Tensor-arena bytes TFLM allocated for ``blob`` after one inference on ``x`` (int8, one sample).

    Read from TFLM's RecordingMicroAllocator, which prints to the C stderr; this is the
    64-bit host's figure (its pointers and structs are wider than a Cortex-M's).
    """
    it = interpreter(blob)
    it.set_input(np.ascontiguousarray(x, dtype=np.int8)[None], 0)
    it.invoke()
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    if m is None:
        raise ToolchainError("tflite-micro did not report its arena allocation")
    return int(m.group(1))


def compare(got, out, cls):
    """Byte-by-byte comparison of TFLM's outputs with fxtrain's.

    Returns
    -------
    dict: ``n_vectors``, ``n_mismatch`` (vectors with any differing byte or class),
    ``n_bytes``, ``n_diff_bytes``, ``max_abs_diff``, ``mismatches`` (the first few).
    """
    got_cls = np.argmax(got, axis=1) if got.size else np.zeros(0, np.int64)
    diff = got.astype(np.int64) - out.astype(np.int64)
    bad = np.flatnonzero((diff != 0).any(axis=1) | (got_cls != cls))
    mismatches = [{"index": int(i), "expected_cls": int(cls[i]), "got_cls": int(got_cls[i]),
                   "expected_out": out[i].tolist(), "got_out": got[i].tolist()} for i in bad[:MAX_REPORTED]]
    return {"n_vectors": len(out), "n_mismatch": len(bad), "n_bytes": int(out.size),
            "n_diff_bytes": int(np.count_nonzero(diff)), "max_abs_diff": int(np.abs(diff).max(initial=0)),
            "mismatches": mismatches}


def verify_tflite(export_dir, target=None):
    """Run an ``--to tflite`` export in tflite-micro and compare every output byte.

    The export's ``vectors.npz`` holds fxtrain's deployed predictions (rounding "tflm")
    for the export vectors and for the whole test set; TFLM must give the same bytes.
    A ``target`` is refused: the export runs on the host, not on a board.

    Returns
    -------
    {"results": [(where, result dict)], "target": None, "ok": bool}; each result as
    :func:`compare`, plus ``seconds`` and, for the test set, TFLM's ``accuracy``.
    """
    if target:
        raise ConfigError(f"{export_dir} is a TFLite export, which tflite-micro runs on the host; "
                          "--target applies to C exports")
    folder = Path(export_dir)
    check_manifest(folder)
    try:
        blob = (folder / MODEL_FILE).read_bytes()
        with np.load(folder / VECTORS_FILE) as npz:
            saved = {k: npz[k] for k in ("vec_x", "vec_out", "vec_cls", "test_x", "test_out", "test_cls", "test_y")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{folder} is not a readable TFLite export ({exc}); export the run again") from None
    results = []
    for where, key in (("tflite-micro, export vectors", "vec"), ("tflite-micro, test set", "test")):
        if saved[f"{key}_x"].shape[0] == 0:
            continue
        t0 = time.perf_counter()
        got = run(blob, saved[f"{key}_x"])
        res = compare(got, saved[f"{key}_out"], saved[f"{key}_cls"])
        res["seconds"] = time.perf_counter() - t0
        if key == "test":
            res["accuracy"] = float(np.mean(np.argmax(got, axis=1) == saved["test_y"]))
        results.append((where, res))
    if not results:
        raise ConfigError(f"{folder} holds no vectors to compare; export again with --vectors 32")
    return {"results": results, "target": None, "ok": all(r["n_mismatch"] == 0 for _, r in results)}
