"""From a trained run (in memory or a ``--out`` folder) to a calibrated DeployedModel.

Deployment mode swaps the per-batch exponents of training for static shifts
calibrated on the training set (see :mod:`fxtrain.deploy`); this module feeds it
the trained integer arrays and reports the deployed accuracy beside the
training-mode one.
"""
import json
from pathlib import Path

import numpy as np

from .data import load_dataset
from .deploy import calibrate, predict
from .errors import ConfigError
from .model import CONV, KIND_NAMES, POOL, parse_arch
from .store import write_json_atomic

MODEL_FILE, REPORT_FILE = "model.npz", "report.json"


def _specs(layers, arrays, bits):
    specs = []
    for i, s in enumerate(layers):
        spec = {"kind": KIND_NAMES[s.kind], "relu": s.relu, "bits": bits, "pool": s.k if s.kind == POOL else 0,
                "kernel": s.k if s.kind == CONV else 0, "pad": s.pad}
        if s.kind != POOL:
            spec.update(weights=arrays[f"layer{i}_weight_q"], w_exponent=int(arrays[f"layer{i}_weight_exp"]),
                        bias=arrays[f"layer{i}_bias_q"], b_exponent=int(arrays[f"layer{i}_bias_exp"]))
        specs.append(spec)
    return specs


def deployable(method, bits):
    """Raise ConfigError unless a run of ``method`` at ``bits`` can be exported."""
    if method == "float":
        raise ConfigError("a float run has no integer weights to export; train with --method sr, r or bc")
    if bits > 8:
        raise ConfigError(f"export supports weights of at most 8 bits (CMSIS-NN q7); this run has {bits}; "
                          "retrain with --bits 8 or fewer")


def _calibrated(layers, arrays, data, meta):
    X = data.X_train
    if layers[0].kind != CONV and layers[0].kind != POOL:
        X = X.reshape(len(X), -1)  # a dense first layer reads the HWC-flattened input
    return calibrate(_specs(layers, arrays, meta["bits"]), X, data.e_x, meta)


def from_run(run):
    """DeployedModel of an in-memory :class:`train.Run` (integer methods, b <= 8)."""
    from .runner import model_arrays
    deployable(run.cfg.method, run.cfg.bits)
    meta = {"method": run.cfg.method, "bits": run.cfg.bits, "arch": run.arch, "seed": run.cfg.seed}
    return _calibrated(run.layers, model_arrays(run), run.data, meta)


def load_run_dir(run_dir):
    """(arrays, report) of a ``--out`` folder, or a ConfigError saying what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder '{run_dir}' does not exist; pass the --out folder of 'fxtrain train'")
    try:
        report = json.loads((run_dir / REPORT_FILE).read_text())
        with np.load(run_dir / MODEL_FILE, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        cfg = report["config"]
        for key in ("method", "bits", "arch", "input_exponent"):
            arrays[key]
    except FileNotFoundError as exc:
        raise ConfigError(f"run folder '{run_dir}' lacks {Path(exc.filename).name}; "
                          "it must hold model.npz and report.json from 'fxtrain train --out'") from None
    except Exception as exc:
        raise ConfigError(f"run folder '{run_dir}' is corrupted ({type(exc).__name__}: {exc}); "
                          "train again with --out") from None
    return arrays, report, cfg


def from_run_dir(run_dir):
    """(DeployedModel, Dataset) for a saved run; the data are reloaded from its config."""
    arrays, report, cfg = load_run_dir(run_dir)
    deployable(str(arrays["method"]), int(arrays["bits"]))
    data = load_dataset(cfg["data"], cfg["seed"])
    try:
        layers = parse_arch(str(arrays["arch"]), data.input_shape, data.n_classes)
        meta = {"method": str(arrays["method"]), "bits": int(arrays["bits"]), "arch": str(arrays["arch"]),
                "seed": cfg["seed"]}
        return _calibrated(layers, arrays, data, meta), data
    except KeyError as exc:
        raise ConfigError(f"run folder '{run_dir}': model.npz lacks {exc}; it is corrupted, train again") from None


def deployed_accuracy(model, data):
    """Test accuracy of the static-shift deployment arithmetic."""
    X = data.X_test.reshape(len(data.X_test), *model.input_shape)
    return float(np.mean(predict(model, X)[1] == data.y_test))


def add_deployed_accuracy(run, report, out=None):
    """Add ``deployed_test_accuracy`` (None where a run cannot be deployed) and rewrite report.json."""
    try:
        report["deployed_test_accuracy"] = deployed_accuracy(from_run(run), run.data)
    except ConfigError as exc:
        report["deployed_test_accuracy"] = None
        report["deployed_note"] = str(exc)
    if out:
        write_json_atomic(Path(out) / REPORT_FILE, report)
    return report
