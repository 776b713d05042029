"""The files of a TFLite export: ``model.tflite``, ``model_data.cc``/``.h``, vectors, manifest.

:func:`export_run` exports a saved run (``fxtrain export --to tflite``).
:func:`tflite_files` computes every file first and :func:`write_files` writes them,
each atomically, so a refused export writes nothing. ``vectors.npz`` holds fxtrain's
deployed predictions (rounding "tflm") on the export vectors and on the whole test
set; ``fxtrain verify`` runs the ``.tflite`` in tflite-micro and compares every byte.
"""
import hashlib
import re

import numpy as np

from .._version import __version__
from .._files import npz_bytes
from ..errors import ConfigError
from ..firmware.calibration import deployed_accuracy, from_run_dir
from ..firmware.codegen import ROUNDING_NOTES, c_double, model_hash, write_export
from ..firmware.export import check_target, standardisation
from ..firmware.reference import predict
from ..firmware.templates import render
from ..training.artifacts import load_run_dir
from .flatbuffer import AVERAGE_POOL_2D, CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, RESHAPE, Graph, require_flatbuffers, \
    tflite_bytes
from .tflm import MODEL_FILE, VECTORS_FILE, arena_bytes, require_tflm

DATA_CC, DATA_H = "model_data.cc", "model_data.h"
# TFLM's registration call for each builtin op, in the order the README lists them.
RESOLVER = {FULLY_CONNECTED: ("FULLY_CONNECTED", "AddFullyConnected"), CONV_2D: ("CONV_2D", "AddConv2D"),
            MAX_POOL_2D: ("MAX_POOL_2D", "AddMaxPool2D"), AVERAGE_POOL_2D: ("AVERAGE_POOL_2D", "AddAveragePool2D"),
            RESHAPE: ("RESHAPE", "AddReshape")}


def _expected(model, X):
    """(X int8 [N, *input_shape], out int8 [N, n_out], cls [N]) by ``reference.predict``."""
    X = np.asarray(X).reshape(-1, *model.input_shape).astype(np.int8)
    if len(X) == 0:
        return X, np.zeros((0, model.n_classes), np.int8), np.zeros(0, np.int64)
    return (X, *predict(model, X))


def _summary(model, digest):
    meta = model.meta
    lines = [f"method: {meta.get('method', '?')}   bits: {meta.get('bits', '?')}   arch: {meta.get('arch', '?')}",
             f"content hash: {digest}   rounding: {ROUNDING_NOTES[model.rounding]}"]
    lines += [f"layer {i}: {L.kind} {L.in_shape} -> {L.out_shape}, exponent {L.in_exponent} -> {L.out_exponent}"
              for i, L in enumerate(model.layers)]
    return "\n".join(f"// {s}" for s in lines)


def _standardisation(model, standardisation, prefix):
    """model_data.h's lines of a sensor-window run's input constants (empty for other data)."""
    if standardisation is None:
        return ""
    mean, std, scale = standardisation
    return render("model_data_input.h.in", prefix=prefix, input_exponent=model.input_exponent, channels=len(mean),
                  mean=", ".join(map(c_double, mean)), std=", ".join(map(c_double, std)), scale=c_double(scale))


def _data_sources(model, blob, arena, prefix, standardisation=None):
    """Texts of model_data.h and model_data.cc."""
    codes = [c for c in RESOLVER if c in {op.code for op in Graph(model).ops}]
    body = ",\n".join("    " + ", ".join(f"0x{b:02x}" for b in blob[i:i + 12]) for i in range(0, len(blob), 12))
    common = dict(prefix=prefix, P=prefix.upper(), size=len(blob))
    header = render(DATA_H + ".in", summary=_summary(model, model_hash(model)), arena=arena,
                    ops=", ".join(RESOLVER[c][0] for c in codes), n_ops=len(codes),
                    resolver="".join(f"//     resolver.{RESOLVER[c][1]}();\n" for c in codes),
                    input_shape=", ".join(map(str, (1, *model.input_shape))), input_exponent=model.input_exponent,
                    output_shape=f"1, {model.n_classes}", output_exponent=model.output_exponent,
                    standardisation=_standardisation(model, standardisation, prefix), **common)
    source = render(DATA_CC + ".in", bytes=body, sha256=hashlib.sha256(blob).hexdigest(), **common)
    return header, source


def tflite_files(model, prefix="fx", vectors=None, test=None, standardisation=None):
    """Every file of a TFLite export, computed and checked, nothing written.

    Parameters
    ----------
    model : DeployedModel calibrated with ``rounding="tflm"``.
    prefix : C identifier for ``g_PREFIX_model_data`` and friends.
    vectors : int8 ndarray ``[N, *input_shape]`` (or None): export vectors, expected outputs by ``predict``.
    test : (X int8 ``[M, *input_shape]``, y int ``[M]``) or None: the test set.
    standardisation : (mean float64 [C], std float64 [C], scale) of a sensor-window run, or None: written
        into model_data.h and the manifest.

    Returns
    -------
    (files, info): ``{name: bytes}`` and ``{"hash", "tflite_bytes", "arena_bytes", "n_vectors", "n_test"}``.
    """
    if model.rounding != "tflm":
        raise ConfigError("a .tflite runs TFLM's rounding; calibrate the model with rounding='tflm'")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ConfigError(f"prefix must be a C identifier, got {prefix!r}")
    blob = tflite_bytes(model)
    vec = _expected(model, vectors if vectors is not None else np.zeros((0, *model.input_shape), np.int8))
    tx, ty = test if test is not None else (np.zeros((0, *model.input_shape), np.int8), np.zeros(0, np.int64))
    tst = _expected(model, tx)
    probe = vec[0][0] if len(vec[0]) else np.zeros(model.input_shape, np.int8)
    arena = arena_bytes(blob, probe)
    header, source = _data_sources(model, blob, arena, prefix, standardisation)
    arrays = {"vec_x": vec[0], "vec_out": vec[1], "vec_cls": vec[2], "test_x": tst[0], "test_out": tst[1],
              "test_cls": tst[2], "test_y": np.asarray(ty, np.int64)}
    files = {MODEL_FILE: blob, DATA_H: header.encode(), DATA_CC: source.encode(), VECTORS_FILE: npz_bytes(arrays)}
    info = {"hash": model_hash(model), "tflite_bytes": len(blob), "arena_bytes": arena, "n_vectors": len(vec[0]),
            "n_test": len(tst[0])}
    if standardisation is not None:
        mean, std, scale = standardisation
        info["input_standardisation"] = {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
                                         "scale": float(scale)}
    return files, info


def write_files(out_dir, files, info, prefix):
    """Write ``files`` into ``out_dir`` (created if missing), then the manifest; returns the paths."""
    manifest = {"fxtrain_version": __version__, "model_hash": info["hash"], "prefix": prefix, "format": "tflite",
                "rounding": "tflm", "arena_bytes": info["arena_bytes"]}
    if "input_standardisation" in info:
        manifest["input_standardisation"] = info["input_standardisation"]
    return write_export(out_dir, files, manifest)


def export_run(run_dir, out, prefix="fx", target=None, n_vectors=32):
    """Calibrate the run in ``run_dir`` with TFLM's rounding and export it to ``out`` as a ``.tflite``.

    The summary has the keys of :func:`fxtrain.firmware.export.export_run`'s (flash
    bytes: the ``.tflite`` file; scratch bytes: TFLM's tensor arena) plus ``arena_bytes``
    and ``tflite_bytes``. The settings are checked first by ``firmware.export.export_settings``.
    """
    require_flatbuffers()  # before any work: the writer needs flatbuffers, the arena measurement tflite-micro
    require_tflm()
    model, data = from_run_dir(run_dir, "tflm", path="tflite")
    _, report, _ = load_run_dir(run_dir)
    X = data.X_test.reshape(-1, *model.input_shape)
    files, info = tflite_files(model, prefix, X[:n_vectors], (X, data.y_test), standardisation(data))
    if target:
        # the whole flatbuffer sits in flash; the arena holds activations and TFLM's own state
        check_target(info["tflite_bytes"], info["arena_bytes"], target)
    paths = write_files(out, files, info, prefix)
    return {"files": paths, "hash": info["hash"], "flash_bytes": info["tflite_bytes"],
            "flash_bytes_unpacked": info["tflite_bytes"], "flash_bytes_packed": info["tflite_bytes"],
            "scratch_bytes": info["arena_bytes"], "n_vectors": info["n_vectors"], "arena_bytes": info["arena_bytes"],
            "tflite_bytes": info["tflite_bytes"], "deployed_test_accuracy": deployed_accuracy(model, data),
            "test_accuracy": report["test_accuracy"], "packed": False, "to": "tflite", "rounding": "tflm",
            "train_files": []}
