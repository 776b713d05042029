"""``fxtrain import``: an ONNX model into a run folder at epoch 0, which ``train --resume``, ``simulate``,
``export``, ``verify`` and ``measure`` take like any run.

Order: read and check the model and the data (nothing is written before every check has
passed), fold the data's input scale into the first weighted layer, run the float check,
fit the grid, evaluate, then write the folder as ``fxtrain train`` writes one.
"""
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..data import load_dataset
from ..errors import ModelError
from ..training.config import TRAIN_DEFAULTS, TrainConfig
from ..training.job import output_folder, write_start
from ..training.run import Run, check_plan
from ..training.start import Start, fit_grid
from .check import check_input_shape, float_check
from .graph import read_graph
from .onnx_file import constants, graph_input, load_model


@dataclass
class Imported:
    """The imported run and what the import measured: max |diff| of the float check, the float and the
    quantized test accuracy (before any training), biases saturated to int32, and the report."""
    run: object
    float_check_max_diff: float
    float_test_accuracy: float
    test_accuracy: float
    clipped_biases: int
    report: dict
    out: Path = None


def read_model(path):
    """(ModelProto, ImportedNet, sha256 of the file) of the ONNX file ``path``."""
    model, digest = load_model(path)
    consts = constants(model)
    return model, read_graph(model, consts, graph_input(model, consts)), digest


def folded_start(net, data):
    """The net's weights flat in fxtrain's layout, the data's input scale folded into the first weighted
    layer: the ONNX model reads raw values, fxtrain's engine ``raw / raw_per_unit``. On sensor windows
    raw = z * std_c + mean_c of the standardised z, so W'[o, .., c] = W * std_c and b' = b + sum W * mean_c."""
    weighted = [layer for layer in net.layers if layer.w is not None]
    w, b = [layer.w for layer in weighted], [layer.b for layer in weighted]
    if data.mean is not None:
        w[0], b[0] = unstandardised(weighted[0], data)
    w[0] = w[0] * data.raw_per_unit  # pools before it commute with a positive scale
    return Start(np.concatenate([a.reshape(-1) for a in w]), np.concatenate(b), data.scale)


def unstandardised(layer, data):
    """(weights, bias) of the first weighted ``layer`` reading standardised z where the ONNX one reads raw
    values: exact where every tap reads the window (a max pool before it commutes with z -> z * std + mean,
    std > 0), not where a 'same' conv pads, since ONNX pads the raw value 0 and fxtrain pads z = 0."""
    if layer.token.endswith(":same"):
        raise ModelError(f"{layer.node} pads its input, but the first layer on windows must be 'valid' (no pads): "
                         "the per-channel standardisation folds into it exactly only where no tap reads padding")
    c = len(data.mean)
    rows = layer.w.reshape(layer.w.shape[0], -1, c)  # the channel is the last axis of every fxtrain layout
    return (rows * data.std).reshape(layer.w.shape), layer.b + (rows * data.mean).sum(axis=(1, 2))


def import_model(model_path, data, bits, method="sr", batch=None, lr=None, seed=None, out=None, train_layers=None):
    """Import ``model_path`` for training on ``data``; returns :class:`Imported` (written into ``out``).
    ``train_layers`` (the last N weight layers train) is part of the run's configuration."""
    model, net, digest = read_model(model_path)
    kw = {k: v for k, v in dict(batch=batch, lr=lr, seed=seed, train_layers=train_layers).items() if v is not None}
    cfg = TrainConfig(**dict(TRAIN_DEFAULTS, arch=net.arch, method=method, bits=bits, data=data, **kw)).check()
    dataset = load_dataset(cfg.data, cfg.seed)
    check_input_shape(net, dataset)
    check_plan(cfg, dataset)
    start = folded_start(net, dataset)
    float_run = Run(replace(cfg, method="float"), dataset, start=start)
    diff = float_check(model, net, float_run, dataset)
    run = float_run if method == "float" else Run(cfg, dataset, start=start)
    clipped = 0 if method == "float" else fit_grid(run.layers, bits, start.w, start.b)[4]
    accuracies = {"train_accuracy": run.accuracy(dataset.X_train, dataset.y_train),
                  "test_accuracy": run.accuracy(dataset.X_test, dataset.y_test)}
    float_acc = float_run.accuracy(dataset.X_test, dataset.y_test)
    source = {"onnx": str(model_path), "sha256": digest, "float_check_max_diff": diff,
              "float_test_accuracy": float_acc, "clipped_biases": clipped}
    with output_folder(out, run) as folder:
        report = write_start(run, folder, **accuracies, imported=source)
    return Imported(run, diff, float_acc, accuracies["test_accuracy"], clipped, report, folder)
