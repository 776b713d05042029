"""Deployment mode: the integer inference that ``fx_runtime.h`` reproduces bit for bit.

The arithmetic is CMSIS-NN's legacy q7 one (``arm_fully_connected_q7``,
``arm_convolve_HWC_q7_basic``), with static shifts fixed once by :func:`calibrate`::

    acc = (bias << bias_shift) + NN_ROUND(out_shift) + sum(x * w)      # int32 in C
    out = SSAT8(acc >> out_shift)        NN_ROUND(s) = (1 << s) >> 1
    if relu: out = max(out, 0)

Activations are int8 with one exponent per layer: the value of ``q`` is ``q * 2**e``.
Layers are ``dense`` (weights ``[out][in]``), ``conv`` (weights ``[out][ky][kx][in]``,
HWC input, stride 1, zero padding 0 or k//2) and ``pool`` (max p x p, stride p).
A dense layer reads its input in HWC order, which is the implicit flatten.
"""
from dataclasses import dataclass

import numpy as np

from . import __version__
from .errors import ConfigError
from .fixedpoint import INT8_MAX, INT8_MIN, WEIGHT_BITS, bitlen, round_shift, sat

KINDS = ("dense", "conv", "pool")
INT32_MAX = 2**31 - 1
# int8 magnitudes reach 128 (-128); the worst-case accumulator bound uses it.
X_ABS_MAX = 128


# eq=False: the fields hold numpy arrays, whose == is elementwise, so equality is identity.
@dataclass(frozen=True, eq=False)
class DeployLayer:
    """One layer of a deployed network, as the C runtime runs it.

    ``weights`` is int8 (``[out][in]`` for dense, ``[out][k][k][in]`` for conv) and
    ``bias`` int8 (q7) of length ``out``, read-only; both are ``None`` for pool.
    ``in_exponent``/``out_exponent`` are the exponents of the int8 activations.
    """

    kind: str
    in_shape: tuple
    out_shape: tuple
    weights: np.ndarray | None
    bias: np.ndarray | None
    bias_shift: int
    out_shift: int
    relu: bool
    kernel: int = 0
    pad: int = 0
    pool: int = 0
    bits: int = 8
    in_exponent: int = 0
    out_exponent: int = 0


@dataclass(frozen=True, eq=False)
class DeployedModel:
    """A calibrated integer network: layers, input shape/exponent and free-form ``meta``."""

    layers: tuple
    input_shape: tuple
    input_exponent: int
    n_classes: int
    meta: dict

    @property
    def output_exponent(self):
        """Exponent of the int8 output vector."""
        return self.layers[-1].out_exponent


def _frozen(a, dtype):
    a = np.ascontiguousarray(a, dtype=dtype)
    a.flags.writeable = False
    return a


def _out_shape(kind, in_shape, weights, kernel, pad, pool):
    if kind == "dense":
        return (int(weights.shape[0]),)
    h, w, c = in_shape
    if kind == "conv":
        return (h + 2 * pad - kernel + 1, w + 2 * pad - kernel + 1, int(weights.shape[0]))
    return (h // pool, w // pool, c)


def _macs(layer, x):
    """Sum of x*w per output, without bias: int64 ``[N, *out_shape]``."""
    n = x.shape[0]
    w = layer.weights.astype(np.int64)
    if layer.kind == "dense":
        return x.reshape(n, -1).astype(np.int64) @ w.T
    k, p = layer.kernel, layer.pad
    xp = np.pad(x.astype(np.int64), ((0, 0), (p, p), (p, p), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # [N,oh,ow,c,k,k]
    oh, ow, c = win.shape[1], win.shape[2], win.shape[3]
    # weights [o][ky][kx][c] -> [o][c][ky][kx] to match the window's axis order
    cols = win.reshape(n * oh * ow, c * k * k)
    acc = cols @ w.transpose(0, 3, 1, 2).reshape(w.shape[0], -1).T
    return acc.reshape(n, oh, ow, w.shape[0])


def _acc(layer, x):
    """int32-valued accumulator without the rounding constant: bias<<bias_shift + sum x*w."""
    return (layer.bias.astype(np.int64) << layer.bias_shift) + _macs(layer, x)


def _requant(acc, s, relu):
    """SSAT8((acc + NN_ROUND(s)) >> s), then ReLU; int64 in, int8 out."""
    out = np.clip((acc + ((1 << s) >> 1)) >> s, INT8_MIN, INT8_MAX)
    if relu:
        out = np.maximum(out, 0)
    return out.astype(np.int8)


def layer_forward(layer, x):
    """Run one layer.

    Parameters
    ----------
    layer : DeployLayer
    x : int8 ndarray, shape ``[N, *layer.in_shape]`` (or flat ``[N, n]`` for dense),
        exponent ``layer.in_exponent``.

    Returns
    -------
    int8 ndarray, shape ``[N, *layer.out_shape]``, exponent ``layer.out_exponent``.
    """
    if layer.kind == "pool":
        n, (h, w, c), p = x.shape[0], layer.in_shape, layer.pool
        oh, ow = h // p, w // p
        blocks = x[:, : oh * p, : ow * p, :].reshape(n, oh, p, ow, p, c)
        return blocks.max(axis=(2, 4)).astype(np.int8)
    return _requant(_acc(layer, x), layer.out_shift, layer.relu)


def predict(model, X):
    """Integer inference, the reference that the C runtime must equal bit for bit.

    Parameters
    ----------
    model : DeployedModel
    X : int8 ndarray, shape ``[N, *model.input_shape]``, exponent ``model.input_exponent``.

    Returns
    -------
    out : int8 ndarray, shape ``[N, n_out]``, exponent ``model.output_exponent``.
    cls : int64 ndarray, shape ``[N]``: argmax of ``out``, first index on ties.
    """
    x = _check_input(X, model.input_shape)
    for layer in model.layers:
        x = layer_forward(layer, x)
    out = x.reshape(x.shape[0], -1)
    return out, np.argmax(out, axis=1).astype(np.int64)


def _check_input(X, shape):
    X = np.asarray(X)
    if X.ndim != len(shape) + 1 or tuple(X.shape[1:]) != tuple(shape):
        raise ConfigError(f"inputs have shape {X.shape[1:]} per sample, the model expects {tuple(shape)}")
    if not np.issubdtype(X.dtype, np.integer) or X.min(initial=0) < INT8_MIN or X.max(initial=0) > INT8_MAX:
        raise ConfigError("inputs must be int8 values in [-128, 127]")
    return X.astype(np.int8, copy=False)


def _check_weights(i, spec, bits):
    w = np.asarray(spec["weights"])
    if bits > 8:
        raise ConfigError(f"export supports weights of at most 8 bits; layer {i} has {bits}-bit weights "
                          "(retrain with --bits 8 or less)")
    if bits not in WEIGHT_BITS:
        raise ConfigError(f"layer {i}: bits must be one of {WEIGHT_BITS}, got {bits}")
    if not np.issubdtype(w.dtype, np.integer):
        raise ConfigError(f"layer {i}: weights must be integers, got {w.dtype}")
    lim = 1 if bits == 1 else 2 ** (bits - 1) - 1
    if w.size and (np.abs(w.astype(np.int64)).max() > lim or (bits == 1 and (w == 0).any())):
        raise ConfigError(f"layer {i}: weights fall outside the {bits}-bit range")
    return w.astype(np.int8)


def _layer_geometry(i, spec, in_shape, w):
    """Validate one spec's shapes against the running shape; return (in_shape, k, pad, pool)."""
    kind = spec["kind"]
    k, pad, pool = (int(spec.get(key, 0)) for key in ("kernel", "pad", "pool"))
    if kind not in KINDS:
        raise ConfigError(f"layer {i}: kind must be one of {KINDS}, got {kind!r}")
    if kind == "dense":
        in_shape = (int(np.prod(in_shape)),)
        if w.ndim != 2 or w.shape[1] != in_shape[0]:
            raise ConfigError(f"layer {i}: dense weights {w.shape} do not take {in_shape[0]} inputs")
        return in_shape, 0, 0, 0
    if len(in_shape) != 3:
        raise ConfigError(f"layer {i}: {kind} needs an (h, w, c) input, got {in_shape}")
    if kind == "pool":
        if pool < 1 or pool > min(in_shape[:2]):
            raise ConfigError(f"layer {i}: pool size {pool} does not fit input {in_shape}")
        return in_shape, 0, 0, pool
    if w.ndim != 4 or w.shape[1] != k or w.shape[2] != k or w.shape[3] != in_shape[2]:
        raise ConfigError(f"layer {i}: conv weights {w.shape} do not match k={k} and input {in_shape}")
    if pad not in (0, k // 2) or (pad and k % 2 == 0):
        raise ConfigError(f"layer {i}: pad must be 0 (valid) or k//2 with odd k (same), got {pad}")
    if min(in_shape[:2]) + 2 * pad < k:
        raise ConfigError(f"layer {i}: kernel {k} does not fit input {in_shape}")
    return in_shape, k, pad, 0


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


def _check_int32(i, layer):
    """Refuse a layer whose int32 accumulator could overflow for some int8 input."""
    w = np.abs(layer.weights.astype(np.int64)).reshape(layer.weights.shape[0], -1)
    worst = (np.abs(layer.bias.astype(np.int64)) << layer.bias_shift) + X_ABS_MAX * w.sum(axis=1)
    worst = int(worst.max()) + ((1 << layer.out_shift) >> 1)
    if worst > INT32_MAX:
        raise ConfigError(f"layer {i}: the accumulator can reach {worst}, beyond int32; "
                          "use fewer inputs per unit, smaller weights or a smaller bias")


def _calibrate_layer(i, spec, in_shape, e_in, x):
    """Build layer i from its spec, fixing shifts on the calibration activations ``x``."""
    bits = int(spec.get("bits", 8))
    kind = spec["kind"]
    w = _check_weights(i, spec, bits) if kind != "pool" else None
    given = spec.get("in_shape")
    if given is not None and int(np.prod(given)) != int(np.prod(in_shape)):
        raise ConfigError(f"layer {i}: spec says input {tuple(given)}, the previous layer gives {in_shape}")
    in_shape, k, pad, pool = _layer_geometry(i, spec, in_shape, w)
    out_shape = _out_shape(kind, in_shape, w, k, pad, pool)
    geo = dict(kind=kind, in_shape=in_shape, out_shape=out_shape, kernel=k, pad=pad, pool=pool)
    if kind == "pool":
        return DeployLayer(weights=None, bias=None, bias_shift=0, out_shift=0, relu=False,
                           in_exponent=e_in, out_exponent=e_in, **geo)
    e_acc = e_in + int(spec["w_exponent"])
    bias = spec.get("bias")
    bias = np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    if bias.shape != (w.shape[0],):
        raise ConfigError(f"layer {i}: bias has shape {bias.shape}, expected ({w.shape[0]},)")
    q7, bias_shift = _q7_bias(i, bias, int(spec.get("b_exponent", e_acc)), e_acc)
    probe = DeployLayer(weights=_frozen(w, np.int8), bias=_frozen(q7, np.int8), bias_shift=bias_shift,
                        out_shift=0, relu=bool(spec.get("relu", False)), bits=bits, **geo)
    acc_max = int(np.abs(_acc(probe, x)).max(initial=0))
    out_shift = max(0, bitlen(acc_max) - 7)
    layer = DeployLayer(weights=probe.weights, bias=probe.bias, bias_shift=bias_shift, out_shift=out_shift,
                        relu=probe.relu, bits=bits, in_exponent=e_in, out_exponent=e_acc + out_shift, **geo)
    _check_int32(i, layer)
    return layer


def calibrate(layer_specs, X_cal, input_exponent, meta=None):
    """Fix every layer's static shifts so that nothing saturates on the calibration set.

    Parameters
    ----------
    layer_specs : list of dict
        From the training side, in order: ``kind`` ("dense" | "conv" | "pool"),
        ``weights`` (int8 within the ``bits`` range; dense ``[out][in]``, conv
        ``[out][k][k][in]``), ``w_exponent``, ``bias`` (int32 ``[out]``, or None),
        ``b_exponent``, ``relu``, ``kernel``, ``pad`` (0 or k//2), ``pool``, ``bits``.
        ``in_shape`` is optional; its size must match what the previous layer gives.
    X_cal : int8 ndarray, shape ``[N, *input_shape]``, exponent ``input_exponent``.
    input_exponent : int
    meta : dict, optional
        Free-form facts (method, bits, arch); ``fxtrain_version`` is added.

    Returns
    -------
    DeployedModel

    Raises
    ------
    ConfigError
        On weights wider than 8 bits, inconsistent shapes, or an accumulator that
        could leave int32.
    """
    if not layer_specs:
        raise ConfigError("a deployed model needs at least one layer")
    X = np.asarray(X_cal)
    x = _check_input(X, X.shape[1:])
    if len(x) == 0:
        raise ConfigError("the calibration set is empty; pass the int8 training inputs")
    shape, e, layers = tuple(int(d) for d in X.shape[1:]), int(input_exponent), []
    for i, spec in enumerate(layer_specs):
        layer = _calibrate_layer(i, spec, shape, e, x)
        layers.append(layer)
        x = layer_forward(layer, x.reshape(x.shape[0], *layer.in_shape))
        shape, e = layer.out_shape, layer.out_exponent
    meta = dict(meta or {})
    meta.setdefault("fxtrain_version", __version__)
    return DeployedModel(layers=tuple(layers), input_shape=tuple(int(d) for d in X.shape[1:]),
                         input_exponent=int(input_exponent), n_classes=int(np.prod(shape)), meta=meta)
