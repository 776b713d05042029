"""Calibration: from trained integer weights to a :class:`DeployedModel` with static shifts.

Deployment swaps the per-batch exponents of training for static shifts fixed once
on the training set, the worst case, so nothing saturates there (see
:mod:`fxtrain.firmware.reference` for the arithmetic). This module also reports
the deployed accuracy beside the training-mode one.
"""
from pathlib import Path

import numpy as np

from .._version import __version__
from .._files import write_json_atomic
from ..data import load_dataset
from ..engine.fixedpoint import bitlen, round_shift, sat
from ..engine.network import parse_arch
from ..engine.numbers import EXPORT_MAX_BITS, INT8_MAX, INT8_MIN, INT32_MAX, WEIGHT_BITS, qmax
from ..errors import ConfigError
from ..layers import by_name, check_export
from ..training.artifacts import REPORT_FILE, load_run_dir, model_arrays, model_standardisation
from .reference import DeployedModel, DeployLayer, accumulator_max, check_input, frozen, layer_forward, predict
from .rounding import TFLM_S0_LIMIT, check_rounding

# int8 magnitudes reach 128 (-128); the worst-case accumulator bound uses it.
X_ABS_MAX = 128


def check_exportable(method, bits):
    """Raise ConfigError unless a run of ``method`` at ``bits`` can be exported (integer, <= 8 bits)."""
    if method == "float":
        raise ConfigError("a float run has no integer weights to export; train with --method sr, r or bc")
    if bits not in WEIGHT_BITS:
        raise ConfigError(f"bits must be one of {WEIGHT_BITS}, got {bits}")
    if bits > EXPORT_MAX_BITS:
        raise ConfigError(f"export supports weights of at most {EXPORT_MAX_BITS} bits (CMSIS-NN q7); this run "
                          f"has {bits}; retrain with --bits {EXPORT_MAX_BITS} or fewer")


def _check_weights(i, spec, bits):
    w = np.asarray(spec["weights"])
    check_exportable("integer", bits)
    if not np.issubdtype(w.dtype, np.integer):
        raise ConfigError(f"layer {i}: weights must be integers, got {w.dtype}")
    lim = qmax(bits)
    if w.size and (np.abs(w.astype(np.int64)).max() > lim or (bits == 1 and (w == 0).any())):
        raise ConfigError(f"layer {i}: weights fall outside the {bits}-bit range")
    return w.astype(np.int8)


def _kind(i, spec):
    try:
        return by_name(spec["kind"])
    except ConfigError as e:
        raise ConfigError(f"layer {i}: {e}") from None


def _q7_bias(i, bias, b_exponent, e_acc):
    """Bias at the accumulator exponent, split into int8 values and a left shift."""
    s = e_acc - b_exponent
    # Python ints for left shifts (a coarse bias must not wrap int64 before the check below);
    # past 40 bits an int32 bias rounds to 0 whatever the shift, so capping s changes nothing.
    b_acc = [int(b) << -s if s <= 0 else round_shift(int(b), min(s, 40)) for b in bias]
    big = max(map(abs, b_acc), default=0)
    if big > INT32_MAX:
        raise ConfigError(f"layer {i}: the bias reaches {big} at the accumulator exponent {e_acc}, beyond int32; "
                          "its exponent is too coarse for this layer")
    bias_shift = max(0, bitlen(big) - 7)
    q7 = [sat(round_shift(b, bias_shift), INT8_MIN, INT8_MAX) for b in b_acc]
    return np.array(q7, dtype=np.int8), bias_shift


def _check_int32(i, layer, rounding):
    """Refuse a layer whose int32 accumulator could overflow for some int8 input.

    "cmsis" starts the accumulator at NN_ROUND(out_shift); "tflm" adds no constant, but
    TFLM doubles the accumulator in int32 when out_shift is 0, so it must stay below 2**30.
    """
    w = np.abs(layer.weights.astype(np.int64)).reshape(layer.weights.shape[0], -1)
    worst = (np.abs(layer.bias.astype(np.int64)) << layer.bias_shift) + X_ABS_MAX * w.sum(axis=1)
    worst = int(worst.max())
    limit, what = INT32_MAX, "int32"
    if rounding == "cmsis":
        worst += (1 << layer.out_shift) >> 1
    elif layer.out_shift == 0:
        limit, what = TFLM_S0_LIMIT - 1, "2^30 - 1, what TFLM scales without a shift"
    if worst > limit:
        raise ConfigError(f"layer {i}: the accumulator can reach {worst}, beyond {what}; "
                          "use fewer inputs per unit, smaller weights or a smaller bias")


def _calibrate_layer(i, spec, in_shape, e_in, x, rounding):
    """Build layer i from its spec, fixing shifts on the calibration activations ``x``."""
    bits = int(spec.get("bits", 8))
    kind = _kind(i, spec)
    w = _check_weights(i, spec, bits) if kind.weighted else None
    given = spec.get("in_shape")
    if given is not None and int(np.prod(given)) != int(np.prod(in_shape)):
        raise ConfigError(f"layer {i}: spec says input {tuple(given)}, the previous layer gives {in_shape}")
    in_shape, out_shape, window = kind.deploy_geometry(i, spec, in_shape, w)
    geo = dict(kind=kind.name, in_shape=in_shape, out_shape=out_shape, **window)
    if not kind.weighted:
        return DeployLayer(weights=None, bias=None, bias_shift=0, out_shift=0, relu=False,
                           in_exponent=e_in, out_exponent=e_in, **geo)
    e_acc = e_in + int(spec["w_exponent"])
    bias = spec.get("bias")
    bias = np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    if bias.shape != (w.shape[0],):
        raise ConfigError(f"layer {i}: bias has shape {bias.shape}, expected ({w.shape[0]},)")
    q7, bias_shift = _q7_bias(i, bias, int(spec.get("b_exponent", e_acc)), e_acc)
    probe = DeployLayer(weights=frozen(w, np.int8), bias=frozen(q7, np.int8), bias_shift=bias_shift,
                        out_shift=0, relu=bool(spec.get("relu", False)), bits=bits, **geo)
    acc_max = accumulator_max(probe, x)
    out_shift = max(0, bitlen(acc_max) - 7)
    layer = DeployLayer(weights=probe.weights, bias=probe.bias, bias_shift=bias_shift, out_shift=out_shift,
                        relu=probe.relu, bits=bits, in_exponent=e_in, out_exponent=e_acc + out_shift, **geo)
    _check_int32(i, layer, rounding)
    return layer


def calibrate(layer_specs, X_cal, input_exponent, meta=None, rounding="cmsis"):
    """Fix every layer's static shifts so that nothing saturates on the calibration set.

    Parameters
    ----------
    layer_specs : list of dict
        From the training side, in order: ``kind`` ("dense" | "conv" | "pool" | "gap"),
        ``weights`` (int8 within the ``bits`` range; dense ``[out][in]``, conv
        ``[out][kh][kw][in]``), ``w_exponent``, ``bias`` (int32 ``[out]``, or None),
        ``b_exponent``, ``relu``, ``kernel``, ``pad`` (0 or k//2), ``pool``, ``bits``; a
        non-square conv adds ``kernel_w`` and ``pad_w``, a non-square pool ``pool_w`` (the
        columns'; ``kernel``, ``pad`` and ``pool`` are then the rows').
        ``in_shape`` is optional; its size must match what the previous layer gives.
    X_cal : int8 ndarray, shape ``[N, *input_shape]``, exponent ``input_exponent``.
    input_exponent : int
    meta : dict, optional
        Free-form facts (method, bits, arch); ``fxtrain_version`` and ``rounding`` are added.
    rounding : "cmsis" (CMSIS-NN's NN_ROUND) or "tflm" (TensorFlow Lite Micro's rule),
        the requantisation the deployed model runs; each layer's input on the
        calibration set comes from the previous layers under this rule.

    Returns
    -------
    DeployedModel

    Raises
    ------
    ConfigError
        On weights wider than 8 bits, inconsistent shapes, an accumulator that
        could leave int32, or an unknown rounding.
    """
    check_rounding(rounding)
    if not layer_specs:
        raise ConfigError("a deployed model needs at least one layer")
    X = np.asarray(X_cal)
    x = check_input(X, X.shape[1:])
    if len(x) == 0:
        raise ConfigError("the calibration set is empty; pass the int8 training inputs")
    shape, e, layers = tuple(int(d) for d in X.shape[1:]), int(input_exponent), []
    for i, spec in enumerate(layer_specs):
        layer = _calibrate_layer(i, spec, shape, e, x, rounding)
        layers.append(layer)
        x = layer_forward(layer, x.reshape(x.shape[0], *layer.in_shape), rounding)
        shape, e = layer.out_shape, layer.out_exponent
    meta = dict(meta or {})
    meta.setdefault("fxtrain_version", __version__)
    meta["rounding"] = rounding
    return DeployedModel(layers=tuple(layers), input_shape=tuple(int(d) for d in X.shape[1:]),
                         input_exponent=int(input_exponent), n_classes=int(np.prod(shape)), meta=meta,
                         rounding=rounding)


def _specs(layers, arrays, bits):
    specs = []
    for i, s in enumerate(layers):
        spec = {"kind": s.layer_kind.name, "relu": s.relu, "bits": bits, **s.layer_kind.deploy_params(s)}
        if s.n_weights:
            spec.update(weights=arrays[f"layer{i}_weight_q"], w_exponent=int(arrays[f"layer{i}_weight_exp"]),
                        bias=arrays[f"layer{i}_bias_q"], b_exponent=int(arrays[f"layer{i}_bias_exp"]))
        specs.append(spec)
    return specs


def _calibrated(layers, arrays, data, meta, rounding, path="inference"):
    # every inference export (C, TFLite) and the deployed accuracy come here; a TFLite export also asks its own path
    for p in dict.fromkeys(("inference", path)):
        check_export(layers, p)
    X = data.X_train
    if layers[0].layer_kind.flat_input:
        X = X.reshape(len(X), -1)  # a dense first layer reads the HWC-flattened input
    return calibrate(_specs(layers, arrays, meta["bits"]), X, data.e_x, meta, rounding)


def from_run(run, rounding="cmsis"):
    """DeployedModel of an in-memory :class:`fxtrain.training.run.Run` (integer methods, b <= 8)."""
    check_exportable(run.cfg.method, run.cfg.bits)
    meta = {"method": run.cfg.method, "bits": run.cfg.bits, "arch": run.arch, "seed": run.cfg.seed}
    return _calibrated(run.layers, model_arrays(run), run.data, meta, rounding)


def from_run_dir(run_dir, rounding="cmsis", path="inference"):
    """(DeployedModel, Dataset) for a saved run, deployed with ``rounding`` for export ``path`` ("inference" or
    "tflite": :func:`fxtrain.layers.check_export`); the data are reloaded from its config."""
    check_rounding(rounding)
    arrays, report, cfg = load_run_dir(run_dir)
    check_exportable(str(arrays["method"]), int(arrays["bits"]))
    # the run's own input scale (an imported run's, or one inherited through --init), not the data's
    data = load_dataset(cfg["data"], cfg["seed"], float(arrays["input_scale"]) if "input_scale" in arrays else None,
                        standardise=model_standardisation(arrays))
    try:
        layers = parse_arch(str(arrays["arch"]), data.input_shape, data.n_classes)
        meta = {"method": str(arrays["method"]), "bits": int(arrays["bits"]), "arch": str(arrays["arch"]),
                "seed": cfg["seed"]}
        return _calibrated(layers, arrays, data, meta, rounding, path), data
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
