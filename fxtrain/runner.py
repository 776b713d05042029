"""A whole training job: data, run, per-epoch checkpoints, ``model.npz`` and ``report.json``.

The CLI calls :func:`train_job`; nothing is written until every input has been
checked, and every file is replaced atomically.
"""
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import __version__
from .data import load_dataset
from .methods import FLOAT
from .model import CONV, KIND_NAMES, POOL
from .store import write_json_atomic, write_npz_atomic
from .train import Run, parse_lr

MODEL_FILE = "model.npz"
REPORT_FILE = "report.json"


def prepare(cfg, resume=None):
    """Load the data and build the run (fresh, or resumed from ``resume``); writes nothing."""
    data = load_dataset(cfg.data, cfg.seed)
    run = Run.resume(resume, cfg, data) if resume else Run(cfg, data)
    return run


def train_job(run, out=None, on_epoch=None):
    """Train ``run`` up to ``run.cfg.epochs``; checkpoint each epoch into ``out``.

    Returns the report dict (also written to ``out/report.json`` with ``out/model.npz``).
    """
    while run.state.epoch < run.cfg.epochs:
        record = run.step_epoch()
        if out:
            run.save_checkpoint(out)
        if on_epoch:
            on_epoch(record)
    report = build_report(run)
    if out:
        write_npz_atomic(Path(out) / MODEL_FILE, model_arrays(run))
        write_json_atomic(Path(out) / REPORT_FILE, report)
    return report


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
        "config": asdict(cfg),
    }


def model_arrays(run):
    """Per-layer arrays named by what they hold: ``*_q`` integers, ``*_exp`` exponents,
    ``*_shadow_float32`` (bc only) and ``*_float32`` (float method only)."""
    st, out = run.state, {}
    out["method"], out["arch"] = np.array(run.cfg.method), np.array(run.arch)
    out["bits"], out["input_exponent"] = np.array(run.cfg.bits), np.array(run.data.e_x)
    out["input_shape"], out["n_classes"] = np.array(run.data.input_shape), np.array(run.data.n_classes)
    w_off = b_off = 0
    for i, s in enumerate(run.layers):
        out[f"layer{i}_kind"] = np.array(KIND_NAMES[s.kind])
        if s.kind == POOL:
            continue
        w, b = slice(w_off, w_off + s.n_weights), slice(b_off, b_off + s.n_bias)
        shape = (s.out_shape[2], s.k, s.k, s.in_shape[2]) if s.kind == CONV else \
            (s.out_shape[2], s.n_weights // s.out_shape[2])
        if run.method == FLOAT:
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
