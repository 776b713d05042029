"""What a run leaves on disk: the one module that names ``model.npz``, ``report.json`` and
the checkpoint files, builds their contents and reads a run folder back.

``report.json`` records the sha256 of the ``model.npz`` it describes, so a folder
whose two files come from different runs (a crash between the two writes, or a
hand edit) is refused instead of exported.
"""
import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._version import __version__
from .._files import read_input
from ..errors import ConfigError
from ..limits import ARRAY_BYTES, RECORD_BYTES
from .config import parse_lr

MODEL_FILE = "model.npz"
REPORT_FILE = "report.json"
CHECKPOINT = "checkpoint.npz"
HISTORY = "history.jsonl"


def build_report(run):
    """The keys promised in README: settings, accuracies, history and sizes."""
    cfg, hist = run.cfg, run.state.history
    m, k = parse_lr(cfg.lr)
    last = hist[-1] if hist else {"train_accuracy": None, "test_accuracy": None}
    return {
        "method": cfg.method, "bits": cfg.bits, "seed": cfg.seed, "arch": run.arch,
        "epochs": run.state.epoch, "batch": cfg.batch, "lr": cfg.lr, "data": cfg.data,
        "lr_fixed": {"m": m, "k": k}, "step_fixed": {"m": run.m, "k": run.k},
        "train_accuracy": last["train_accuracy"], "test_accuracy": last["test_accuracy"],
        "history": hist, "n_weights": run.n_weights,
        "n_biases": sum(s.n_bias for s in run.layers), "fxtrain_version": __version__,
        "config": asdict(cfg), **_input_report(run.data),
    }


def _input_report(data):
    """The input scale, how many input values it saturated (only a scale inherited from other data can),
    and for sensor windows the per-channel standardisation."""
    out = {"input_scale": data.scale}
    if data.saturated:
        out["input_saturations"] = data.saturated
    if data.mean is not None:
        out["input_mean"], out["input_std"] = data.mean.tolist(), data.std.tolist()
    return out


def model_standardisation(arrays):
    """(mean, std) of a run's model arrays (None when it was not trained on sensor windows): a run started
    from it (``--init``) standardises its data with them, as its first layer expects."""
    if "input_mean" not in arrays:
        return None
    return np.asarray(arrays["input_mean"], np.float64), np.asarray(arrays["input_std"], np.float64)


def model_arrays(run):
    """Per-layer arrays named by what they hold: ``*_q`` integers, ``*_exp`` exponents,
    ``*_shadow_float32`` (bc only) and ``*_float32`` (float method only)."""
    st, out = run.state, {}
    out["method"], out["arch"] = np.array(run.cfg.method), np.array(run.arch)
    out["bits"], out["input_exponent"] = np.array(run.cfg.bits), np.array(run.data.e_x)
    out["input_shape"], out["n_classes"] = np.array(run.data.input_shape), np.array(run.data.n_classes)
    out["input_scale"] = np.array(run.data.scale)  # what --init and export quantise this run's data with
    if run.data.mean is not None:  # windows: the per-channel constants applied before that scale
        out["input_mean"], out["input_std"] = run.data.mean, run.data.std
    w_off = b_off = 0
    for i, s in enumerate(run.layers):
        out[f"layer{i}_kind"] = np.array(s.layer_kind.name)
        if not s.n_weights:
            continue
        w, b = slice(w_off, w_off + s.n_weights), slice(b_off, b_off + s.n_bias)
        shape = s.layer_kind.weight_shape(s)
        if run.cfg.method == "float":
            out[f"layer{i}_weight_float32"] = st.wf[w].reshape(shape)
            out[f"layer{i}_bias_float32"] = st.bf[b]
        else:
            out[f"layer{i}_weight_q"] = st.wq[w].reshape(shape)
            out[f"layer{i}_weight_exp"] = np.array(st.e_w[i])
            out[f"layer{i}_bias_q"] = st.bq[b]
            out[f"layer{i}_bias_exp"] = np.array(st.e_b[i])
            if st.shadow is not None:
                out[f"layer{i}_weight_shadow_float32"] = st.shadow[w].reshape(shape)
        w_off, b_off = w_off + s.n_weights, b_off + s.n_bias
    return out


def check_run_dir(run_dir):
    """``run_dir`` as a Path if it is a folder, else one ConfigError line saying what it is."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is not a folder" if run_dir.exists() else "does not exist"
        raise ConfigError(f"run folder '{run_dir}' {what}; pass the --out folder of 'fxtrain train'")
    return run_dir


def load_run_dir(run_dir):
    """(arrays, report, config dict) of a ``--out`` folder, or a ConfigError saying what is wrong."""
    run_dir = check_run_dir(run_dir)
    try:
        report = json.loads(read_input(run_dir / REPORT_FILE, "run report", RECORD_BYTES, ConfigError))
        model = read_input(run_dir / MODEL_FILE, "model file", ARRAY_BYTES, ConfigError)
        digest = hashlib.sha256(model).hexdigest()
        with np.load(io.BytesIO(model), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        cfg = report["config"]
        for key in ("method", "bits", "arch", "input_exponent"):
            arrays[key]
    except FileNotFoundError as exc:
        raise ConfigError(f"run folder '{run_dir}' lacks {Path(exc.filename).name}; "
                          f"it must hold {MODEL_FILE} and {REPORT_FILE} from 'fxtrain train --out'") from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"run folder '{run_dir}' is corrupted ({type(exc).__name__}: {exc}); "
                          "train again with --out") from None
    if report.get("fxtrain_version") != __version__:
        raise ConfigError(f"run folder '{run_dir}' was written by fxtrain {report.get('fxtrain_version')}, "
                          f"this is {__version__}; train it again with this version")
    if report.get("model_sha256") != digest:
        raise ConfigError(f"run folder '{run_dir}': {MODEL_FILE} is not the model {REPORT_FILE} describes "
                          "(an interrupted run or an edit); finish it with 'fxtrain train --resume' or train again")
    return arrays, report, cfg
