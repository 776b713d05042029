"""Reference integer inference: the deployed arithmetic that ``fx_runtime.h`` reproduces bit for bit.

The arithmetic is CMSIS-NN's legacy q7 one (``arm_fully_connected_q7``,
``arm_convolve_HWC_q7_basic``), with static shifts fixed once by :func:`fxtrain.firmware.calibration.calibrate`::

    acc = (bias << bias_shift) + NN_ROUND(out_shift) + sum(x * w)      # int32 in C
    out = SSAT8(acc >> out_shift)        NN_ROUND(s) = (1 << s) >> 1
    if relu: out = max(out, 0)

That is the default ``rounding="cmsis"``. With ``rounding="tflm"`` the same int32
accumulator (without ``NN_ROUND``) is rounded by TensorFlow Lite Micro's rule
(:mod:`fxtrain.firmware.rounding`), so a ``.tflite`` export gives the same bytes in TFLM.

Activations are int8 with one exponent per layer: the value of ``q`` is ``q * 2**e``.
Layers are ``dense`` (weights ``[out][in]``), ``conv`` (weights ``[out][ky][kx][in]``,
HWC input, stride 1, zero padding 0 or k//2 per axis), ``pool`` (max ph x pw, stride the window) and
``gap`` (TFLite's rounded average over all positions).
A dense layer reads its input in HWC order, which is the implicit flatten.
"""
from dataclasses import dataclass

import numpy as np

from ..engine.numbers import INT8_MAX, INT8_MIN
from ..errors import ConfigError
from ..layers import by_name
from .rounding import round_shift

# Samples per int64 matrix product: a wide layer over the whole training set would
# otherwise hold an int64 accumulator of N x width (1.1 GB for 1,438 x 100,000).
CHUNK = 256


# eq=False: the fields hold numpy arrays, whose == is elementwise, so equality is identity.
@dataclass(frozen=True, eq=False)
class DeployLayer:
    """One layer of a deployed network, as the C runtime runs it.

    ``weights`` is int8 (``[out][in]`` for dense, ``[out][kh][kw][in]`` for conv) and
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
    # a non-square conv or pool: kernel, pad or pool are then the rows', these the columns' (None: square)
    kernel_w: int | None = None
    pad_w: int | None = None
    pool_w: int | None = None

    @property
    def kernel_hw(self):
        """(rows, columns) of a conv kernel."""
        return self.kernel, self.kernel if self.kernel_w is None else self.kernel_w

    @property
    def pad_hw(self):
        """(rows, columns) of zero padding on each side."""
        return self.pad, self.pad if self.pad_w is None else self.pad_w

    @property
    def pool_hw(self):
        """(rows, columns) of a max-pool window, also its stride."""
        return self.pool, self.pool if self.pool_w is None else self.pool_w

    @property
    def square(self):
        """Every window is K x K with the same padding on each side (the text of earlier exports)."""
        return self.kernel_w is None and self.pad_w is None and self.pool_w is None


@dataclass(frozen=True, eq=False)
class DeployedModel:
    """A calibrated integer network: layers, input shape/exponent, free-form ``meta`` and the
    requantisation ``rounding`` ("cmsis" or "tflm", also recorded in ``meta``)."""

    layers: tuple
    input_shape: tuple
    input_exponent: int
    n_classes: int
    meta: dict
    rounding: str = "cmsis"

    @property
    def output_exponent(self):
        """Exponent of the int8 output vector."""
        return self.layers[-1].out_exponent


def frozen(a, dtype):
    a = np.ascontiguousarray(a, dtype=dtype)
    a.flags.writeable = False
    return a


def accumulate(layer, x):
    """int32-valued accumulator without the rounding constant: bias<<bias_shift + sum x*w (the kind's sums)."""
    return (layer.bias.astype(np.int64) << layer.bias_shift) + by_name(layer.kind).reference(layer, x)


def accumulator_max(layer, x):
    """max |accumulate(layer, x)| over all samples, ``CHUNK`` samples at a time."""
    return max((int(np.abs(accumulate(layer, x[i:i + CHUNK])).max(initial=0))
                for i in range(0, x.shape[0], CHUNK)), default=0)


def requantize(acc, s, relu, rounding="cmsis"):
    """SSAT8(round_shift(acc, s)) by the ``rounding`` rule, then ReLU; int64 in, int8 out.

    ``acc`` excludes the rounding constant (see :func:`accumulate`); for "cmsis" this is
    SSAT8((acc + NN_ROUND(s)) >> s).
    """
    out = np.clip(round_shift(acc, s, rounding), INT8_MIN, INT8_MAX)
    if relu:
        out = np.maximum(out, 0)
    return out.astype(np.int8)


def layer_forward(layer, x, rounding="cmsis"):
    """Run one layer.

    Parameters
    ----------
    layer : DeployLayer
    x : int8 ndarray, shape ``[N, *layer.in_shape]`` (or flat ``[N, n]`` for dense),
        exponent ``layer.in_exponent``.
    rounding : "cmsis" or "tflm", the requantisation rule.

    Returns
    -------
    int8 ndarray, shape ``[N, *layer.out_shape]``, exponent ``layer.out_exponent``.
    """
    kind = by_name(layer.kind)
    if not kind.weighted:
        return kind.reference(layer, x)  # the kind's own int8 output (pooling: nothing to requantise)
    out = np.empty((x.shape[0], *layer.out_shape), dtype=np.int8)
    for i in range(0, x.shape[0], CHUNK):
        out[i:i + CHUNK] = requantize(accumulate(layer, x[i:i + CHUNK]), layer.out_shift, layer.relu, rounding)
    return out


def predict(model, X):
    """Integer inference, the reference that the C runtime (and TFLM, for "tflm") must equal bit for bit.

    Parameters
    ----------
    model : DeployedModel
    X : int8 ndarray, shape ``[N, *model.input_shape]``, exponent ``model.input_exponent``.

    Returns
    -------
    out : int8 ndarray, shape ``[N, n_out]``, exponent ``model.output_exponent``.
    cls : int64 ndarray, shape ``[N]``: argmax of ``out``, first index on ties.
    """
    x = check_input(X, model.input_shape)
    for layer in model.layers:
        x = layer_forward(layer, x, model.rounding)
    out = x.reshape(x.shape[0], -1)
    return out, np.argmax(out, axis=1).astype(np.int64)


def check_input(X, shape):
    X = np.asarray(X)
    if X.ndim != len(shape) + 1 or tuple(X.shape[1:]) != tuple(shape):
        raise ConfigError(f"inputs have shape {X.shape[1:]} per sample, the model expects {tuple(shape)}")
    if not np.issubdtype(X.dtype, np.integer) or X.min(initial=0) < INT8_MIN or X.max(initial=0) > INT8_MAX:
        raise ConfigError("inputs must be int8 values in [-128, 127]")
    return X.astype(np.int8, copy=False)
