"""Checkpoints: the full run state after an epoch, saved so that ``--resume`` continues bit for bit."""
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import __version__
from .._files import write_json_atomic, write_npz_atomic
from ..errors import ConfigError
from .artifacts import CHECKPOINT, CHECKPOINT_META
from .config import TrainConfig
from .run import Run, TrainState


def save_checkpoint(run, out_dir):
    """State arrays, then the metadata that names them: each file atomically."""
    out_dir = Path(out_dir)
    write_npz_atomic(out_dir / CHECKPOINT, run.state.arrays())
    meta = {"config": asdict(run.cfg), "arch": run.arch, "epoch": run.state.epoch,
            "history": run.state.history, "fxtrain_version": __version__}
    write_json_atomic(out_dir / CHECKPOINT_META, meta)


def resume(ckpt_dir, cfg, data):
    """The :class:`Run` saved in ``ckpt_dir``; every setting but ``epochs`` must match ``cfg``."""
    ckpt_dir = Path(ckpt_dir)
    meta_p, arr_p = ckpt_dir / CHECKPOINT_META, ckpt_dir / CHECKPOINT
    if not (meta_p.is_file() and arr_p.is_file()):
        raise ConfigError(f"--resume {ckpt_dir}: not a checkpoint folder (expected {CHECKPOINT_META} "
                          f"and {CHECKPOINT} written by 'fxtrain train --out')")
    try:
        meta = json.loads(meta_p.read_text())
        with np.load(arr_p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        saved = TrainConfig(**meta["config"])
    except Exception as exc:
        raise ConfigError(f"--resume {ckpt_dir}: checkpoint is unreadable ({exc})") from None
    diff = [f"{k}={getattr(saved, k)!r} (now {getattr(cfg, k)!r})" for k in asdict(cfg)
            if k != "epochs" and getattr(saved, k) != getattr(cfg, k)]
    if diff:
        raise ConfigError(f"--resume {ckpt_dir}: made with other settings: {', '.join(diff)}")
    try:
        state = TrainState(**arrays, epoch=int(meta["epoch"]), history=list(meta["history"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise ConfigError(f"--resume {ckpt_dir}: checkpoint does not match this fxtrain version ({exc})") from None
    return Run(cfg, data, state)
