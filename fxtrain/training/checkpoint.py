"""Checkpoints: the full run state after an epoch, so that ``--resume`` continues bit for bit.

A checkpoint is one file, ``checkpoint.npz``, replaced atomically: the state arrays
and a ``meta`` JSON text (settings, epoch, version, and a hash chain over the
history). The per-epoch history goes to ``history.jsonl``, one line appended per
epoch *before* the checkpoint is replaced, so each epoch costs the same however
long the run. A kill at any point leaves either the previous or the new
checkpoint, and a history with at least as many whole lines; resuming keeps the
lines the checkpoint vouches for and drops the rest.

Before any work, a resumed checkpoint is checked against its own settings: the
names, dtypes and shapes of its arrays, the range of its weights, its grid
exponents and its history. Anything edited or damaged is one clear error.
"""
import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._version import __version__
from .._files import npz_bytes, read_input, read_text_input, write_bytes_atomic
from ..engine.network import init_exponents, parse_arch, weight_dtype
from ..engine.numbers import qmax
from ..errors import ConfigError
from ..limits import ARRAY_BYTES, RECORD_BYTES
from .artifacts import CHECKPOINT, HISTORY
from .config import TrainConfig, parse_momentum
from .run import Run, TrainState
from .start import check_fitted_exponents

FORMAT = 2
OLD_META = "checkpoint.json"  # format 1 (fxtrain 0.1) kept its metadata beside the arrays


def chain(prev, line):
    """The history hash after one more line: sha256(previous hash + line), hex."""
    return hashlib.sha256((prev + line).encode()).hexdigest()


def history_line(record):
    return json.dumps(record)


def save_checkpoint(run, out_dir, history_hash):
    """Replace ``out_dir/checkpoint.npz`` with the run's state after ``run.state.epoch`` epochs."""
    meta = {"format": FORMAT, "config": asdict(run.cfg), "arch": run.arch, "epoch": run.state.epoch,
            "history_sha256": history_hash, "fxtrain_version": __version__,
            "input_scale": run.data.scale, "fitted_grid": run.state.fitted_grid}
    if run.data.mean is not None:  # JSON floats round-trip exactly: a resumed run standardises as before
        meta["input_mean"], meta["input_std"] = run.data.mean.tolist(), run.data.std.tolist()
    arrays = dict(run.state.arrays(), meta=np.array(json.dumps(meta)))
    write_bytes_atomic(Path(out_dir) / CHECKPOINT, npz_bytes(arrays))


def _fail(ckpt_dir, why):
    # the same words whether --resume, export, verify or measure read the checkpoint
    raise ConfigError(f"run folder {ckpt_dir}: {why}")


def _read(ckpt_dir):
    path = Path(ckpt_dir) / CHECKPOINT
    if not path.is_file():
        if (Path(ckpt_dir) / OLD_META).is_file():
            _fail(ckpt_dir, "the checkpoint was written by fxtrain 0.1, whose format this version cannot read; "
                            "train the run again from the start")
        _fail(ckpt_dir, f"not a checkpoint folder (expected {CHECKPOINT} written by 'fxtrain train --out')")
    try:
        with np.load(io.BytesIO(read_input(path, "checkpoint", ARRAY_BYTES, ConfigError)), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
        version, fmt = meta["fxtrain_version"], meta["format"]
    except ConfigError as exc:
        _fail(ckpt_dir, str(exc))
    except Exception as exc:  # zip, npy, JSON or key errors: the file is not a checkpoint we wrote
        _fail(ckpt_dir, f"{CHECKPOINT} is unreadable ({type(exc).__name__}); train the run again from the start")
    if fmt != FORMAT or version != __version__:
        _fail(ckpt_dir, f"the checkpoint was written by fxtrain {version}, this is {__version__}; "
                        "bit-identical resumption needs the same version: train the run again from the start")
    return meta, arrays


def _expected_arrays(cfg, layers):
    """{name: (dtype, shape)} of the state a run of ``cfg`` saves."""
    n_w, n_b, n_l = sum(s.n_weights for s in layers), sum(s.n_bias for s in layers), len(layers)
    if cfg.method == "float":
        want = {"wf": (np.float32, (n_w,)), "bf": (np.float32, (n_b,))}
    else:
        want = {"wq": (weight_dtype(cfg.bits), (n_w,)), "bq": (np.int32, (n_b,)),
                "e_w": (np.int64, (n_l,)), "e_b": (np.int64, (n_l,))}
        if cfg.method == "bc":
            want["shadow"] = (np.float32, (n_w,))
    want["rng"] = (np.uint32, (1,))
    if cfg.optimizer == "adam":  # both moments, then the step counter (engine/adam.py)
        want["mom"] = (np.float32, (2 * n_w + 1,))
    elif parse_momentum(cfg.momentum):
        want["mom"] = (np.int16 if cfg.method in ("sr", "r") else np.float32, (n_w,))
    return want


def _check_exponents(ckpt_dir, cfg, layers, arrays, fitted):
    """Fixed by the arch, or (a run started from float weights) a fitted grid's."""
    if fitted:
        why = check_fitted_exponents(arrays["e_w"], arrays["e_b"])
        if why:
            _fail(ckpt_dir, why)
        return
    e_w, e_b, _ = init_exponents(layers, cfg.bits)
    if not (np.array_equal(arrays["e_w"], e_w) and np.array_equal(arrays["e_b"], e_b)):
        _fail(ckpt_dir, "the grid exponents differ from those this arch and bit width fix at initialisation")


def _check_arrays(ckpt_dir, cfg, layers, arrays, fitted):
    want = _expected_arrays(cfg, layers)
    if set(arrays) != set(want):
        _fail(ckpt_dir, f"it holds arrays {sorted(arrays)} but a {cfg.method} run saves {sorted(want)}")
    for name, (dtype, shape) in want.items():
        a = arrays[name]
        if a.dtype != dtype or a.shape != shape:
            _fail(ckpt_dir, f"array '{name}' is {a.dtype}{list(a.shape)}, expected {np.dtype(dtype)}{list(shape)}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            _fail(ckpt_dir, f"array '{name}' holds NaN or infinity")
    if arrays["rng"][0] == 0:
        _fail(ckpt_dir, "the generator state is 0, which xorshift32 never leaves")
    if cfg.method != "float":
        q, w = qmax(cfg.bits), arrays["wq"].astype(np.int64)
        if np.abs(w).max(initial=0) > q or (cfg.bits == 1 and np.any(w == 0)):
            _fail(ckpt_dir, f"weights lie outside the {cfg.bits}-bit grid (|q| <= {q})")
        _check_exponents(ckpt_dir, cfg, layers, arrays, fitted)


def _read_history(ckpt_dir, epoch, expected_hash):
    """The first ``epoch`` records of history.jsonl, checked against the checkpoint's hash chain."""
    path = Path(ckpt_dir) / HISTORY
    text = read_text_input(path, "history", RECORD_BYTES, ConfigError) if path.is_file() else ""
    lines = text.split("\n")
    h, records = "", []
    for i, line in enumerate(lines[:epoch], start=1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break
        if rec.get("epoch") != i:
            break
        h = chain(h, line)
        records.append(rec)
    if len(records) < epoch or h != expected_hash:
        _fail(ckpt_dir, f"{HISTORY} does not match the checkpoint at epoch {epoch} (edited or damaged); "
                        "train the run again from the start")
    return records


def checkpoint_digest(folder):
    """sha256 of the checkpoint file in ``folder`` (None if there is none): to notice a change."""
    path = Path(folder) / CHECKPOINT
    return hashlib.sha256(read_input(path, "checkpoint", ARRAY_BYTES, ConfigError)).hexdigest() \
        if path.is_file() else None


def saved_input_scale(ckpt_dir):
    """The input scale the run in ``ckpt_dir`` was built with (None when it recorded none: the data's own),
    so a resumed run quantises its data exactly as before, whatever data it adapts on."""
    meta, _ = _read(ckpt_dir)
    scale = meta.get("input_scale")
    if scale is not None and not (isinstance(scale, (int, float)) and 0 < scale < float("inf")):
        _fail(ckpt_dir, f"its input scale {scale!r} is not a positive number; train the run again from the start")
    return scale


def saved_standardisation(ckpt_dir):
    """(mean, std) float64 [C] the run in ``ckpt_dir`` standardised its sensor windows with (None for other
    data), so a resumed run standardises its data exactly as before."""
    meta, _ = _read(ckpt_dir)
    mean, std = meta.get("input_mean"), meta.get("input_std")
    if mean is None and std is None:
        return None
    try:
        mean, std = np.array(mean, np.float64), np.array(std, np.float64)
    except (TypeError, ValueError):  # not lists of numbers
        mean = std = np.zeros(0)
    if mean.ndim != 1 or mean.size == 0 or mean.shape != std.shape or not np.all(np.isfinite(mean)) \
            or not np.all(np.isfinite(std) & (std > 0)):
        _fail(ckpt_dir, "its input standardisation (one mean and one positive deviation per channel) is damaged; "
                        "train the run again from the start")
    return mean, std


def resume(ckpt_dir, cfg, data):
    """The :class:`Run` saved in ``ckpt_dir``; every setting but ``epochs`` must match ``cfg``,
    and ``cfg.epochs`` may not be below the saved epoch."""
    meta, arrays = _read(ckpt_dir)
    try:
        saved = TrainConfig(**meta["config"])
        epoch = int(meta["epoch"])
    except (TypeError, KeyError, ValueError):
        _fail(ckpt_dir, "the checkpoint's settings are unreadable; train the run again from the start")
    diff = [f"{k}={getattr(saved, k)!r} (now {getattr(cfg, k)!r})" for k in asdict(cfg)
            if k != "epochs" and getattr(saved, k) != getattr(cfg, k)]
    if diff:
        _fail(ckpt_dir, f"made with other settings: {', '.join(diff)}")
    if cfg.epochs < epoch:
        _fail(ckpt_dir, f"the checkpoint is at epoch {epoch}, past --epochs {cfg.epochs}; "
                        f"pass --epochs {epoch} or more")
    layers = parse_arch(cfg.arch, data.input_shape, data.n_classes)
    fitted = meta.get("fitted_grid") is True
    _check_arrays(ckpt_dir, cfg, layers, arrays, fitted)
    history = _read_history(ckpt_dir, epoch, meta["history_sha256"])
    state = TrainState(**arrays, epoch=epoch, history=history, history_hash=meta["history_sha256"],
                       fitted_grid=fitted)
    return Run(cfg, data, state)
