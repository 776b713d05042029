"""One cell of the ``adapt`` experiment: pretrain in float, quantize through ``--init``, adapt to a new sensor.

The cell takes the route a user takes, through run folders in a temporary directory:

1. ``fxtrain train --method float --data digits --out pre`` (the source domain);
2. the digits as a second sensor sees them (:func:`target_digits`) written as an NPZ;
3. ``fxtrain train --init pre --data target.npz --method M --bits B --train-layers N --out run``,
   which quantizes the float weights onto the run's grid and reuses the source's input scale;
4. ``fxtrain measure run --target T --steps 2`` for each target the cell names.

The pretrained folder depends only on (arch, seed, epochs, lr, batch), so each process keeps its
files in memory and writes them again for the next cell of the same seed: a cache, never a change
of result.
"""
import tempfile
from pathlib import Path

import numpy as np

from .._files import write_bytes_atomic
from ..data import load_dataset, load_digits
from ..device.fit import fit_for
from ..device.profiles import load_target
from ..errors import FxtrainError
from ..training.config import TrainConfig
from ..training.job import output_folder, prepare, train_job

SENSOR_SEED = 2017
GAIN = (0.6, 1.2)      # per-pixel gain, uniform
OFFSET = (0.0, 3.0)    # per-pixel offset in pixel units (the digits' pixels run 0..16), uniform
SHIFT = 1              # pixels to the right; the left column reads 0 before gain and offset
MEASURE_STEPS = 2
_PRETRAINED = {}


def sensor():
    """The second sensor's fixed per-pixel (gain, offset), each (8, 8, 1): the same on every run."""
    rng = np.random.default_rng(SENSOR_SEED)
    return rng.uniform(*GAIN, (8, 8, 1)), rng.uniform(*OFFSET, (8, 8, 1))


def target_digits():
    """(X, y): every digit as the second sensor reads it, ``gain * shifted + offset``.

    Values above 16 are kept: the adapted run reuses the source's input scale (16), so they
    saturate at +-127 and the run counts them."""
    X, y = load_digits()
    shifted = np.zeros_like(X)
    shifted[:, :, SHIFT:, :] = X[:, :, :-SHIFT, :]
    gain, offset = sensor()
    return gain * shifted + offset, y


def _pretrained_files(cell, folder):
    key = (cell["arch"], cell["seed"], cell["pre_epochs"], cell["lr"], cell["batch"])
    if key not in _PRETRAINED:
        cfg = TrainConfig(arch=cell["arch"], method="float", epochs=cell["pre_epochs"], batch=cell["batch"],
                          lr=cell["lr"], seed=cell["seed"], data="digits")
        run = prepare(cfg)
        with output_folder(folder, run) as out:
            train_job(run, out)
        _PRETRAINED[key] = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
        return
    Path(folder).mkdir()
    for name, data in _PRETRAINED[key].items():
        write_bytes_atomic(Path(folder) / name, data)


def _measured(run_dir, targets, batch):
    """{target: cycles per training sample} and the first error (None when every target measured)."""
    from ..measuring.measure import measure
    cycles = {}
    for t in targets:
        try:
            cycles[t] = measure(run_dir, t, MEASURE_STEPS)["per_step"]["cycles"] / batch
        except FxtrainError as exc:
            return cycles, f"{t}: {exc}"
    return cycles, None


def _sram(cfg, data):
    shape = (data.input_shape, data.n_classes, len(data.y_train))
    fit = fit_for(cfg.arch, cfg.method, cfg.bits, cfg.batch, shape, load_target("cortex-m4"),
                  train_layers=cfg.train_layers)
    return fit.cost.total_bytes, fit.cost.sram_saved_bytes


def run_adapt_cell(cell):
    """Pretrain, quantize, adapt and measure one cell; ``(report, None)``."""
    with tempfile.TemporaryDirectory(prefix="fxtrain-adapt-") as tmp:
        tmp = Path(tmp)
        _pretrained_files(cell, tmp / "pre")
        X, y = target_digits()
        np.savez(tmp / "target.npz", X=X, y=y)
        cfg = TrainConfig(arch=cell["arch"], method=cell["method"], bits=cell["bits"], epochs=cell["epochs"],
                          batch=cell["batch"], lr=cell["lr"], seed=cell["seed"], data=str(tmp / "target.npz"),
                          train_layers=cell["train_layers"], init=str(tmp / "pre"))
        run = prepare(cfg)
        # the source's test split: the same images as the target's (same labels, same seed)
        source = load_dataset("digits", cell["seed"], run.data.scale)
        before = (run.accuracy(run.data.X_test, run.data.y_test), run.accuracy(source.X_test, source.y_test))
        with output_folder(tmp / "run", run) as out:
            report = train_job(run, out)
        cycles, error = _measured(tmp / "run", cell["measure"], cell["batch"])
        sram, saved = _sram(cfg, run.data)
    return {"before": before[0], "after": report["test_accuracy"], "source_before": before[1],
            "source_after": run.accuracy(source.X_test, source.y_test), "saturated": run.data.saturated,
            "history": report["history"], "sram_bytes": sram, "sram_saved_bytes": saved,
            "cycles_per_sample": cycles, "measure_error": error}, None
