"""Network description and integer initialisation.

A network is parsed from an arch string (``"dense:32,dense:10"``,
``"conv:8:3,pool:2,dense:10"``) into :class:`LayerSpec` records. The jitted code
sees it as one int64 table ``desc[layer, field]`` plus flat weight and bias
arrays, the same flat layout a C training runtime declares, so one jitted call
can run any architecture without Python objects in the loop.
"""
import dataclasses
import math

import numpy as np
from numba import njit

from ..errors import ConfigError
from ..layers import ARCH_HELP, KINDS, LayerSpec, by_code, parse_token, size as _size  # noqa: F401 (re-exported)
from ..layers import conv as _conv, dense as _dense, gap as _gap, pool as _pool
from .fixedpoint import xorshift32
from .numbers import qmax

# The kinds' codes, as the jitted passes compare them (the registry, fxtrain.layers, owns them).
DENSE, CONV, POOL, GAP = _dense.KIND.code, _conv.KIND.code, _pool.KIND.code, _gap.KIND.code
KIND_NAMES = {k.code: k.name for k in KINDS}
# Columns of the desc table: shapes are (h, w, c), a dense layer sees (1, 1, features); a conv kernel
# or a pool window is KH rows by KW columns, a conv pads PAD_H rows above and below, PAD_W columns
# left and right; N_IN / N_OUT are values per sample, N_W the layer's weight count. KW and PAD_W came
# last, so the columns before them kept their numbers.
KIND, IN_H, IN_W, IN_C, OUT_H, OUT_W, OUT_C, KH, PAD_H, RELU, W_OFF, B_OFF, N_IN, N_OUT, N_W, KW, PAD_W = range(17)
N_FIELDS = 17
# Biases sit on a grid 2**8 finer than the weights: a bias step as coarse as a
# weight step would freeze the biases of low-bit nets.
BIAS_EXTRA_BITS = 8

def parse_arch(arch, input_shape, n_classes):
    """Parse an arch string into layer specs; ReLU follows every hidden dense/conv layer.

    Parameters
    ----------
    arch : str or None
        None means the default ``dense:32,dense:<n_classes>``.
    input_shape : tuple
        (features,) or (h, w, c).
    n_classes : int
        The last layer must be dense with this many outputs.
    """
    if arch is None:
        arch = f"dense:32,dense:{n_classes}"
    shape = tuple(input_shape) if len(input_shape) == 3 else (1, 1, _size(input_shape))
    layers = []
    for tok in arch.split(","):
        if not tok.strip():
            raise ConfigError(f"arch '{arch}' has an empty token; {ARCH_HELP}")
        spec = parse_token(tok, shape, layers[-1].layer_kind if layers else None)
        if spec is not None:  # flatten adds no layer
            layers.append(spec)
            shape = spec.out_shape
    if not layers or layers[-1].kind != DENSE:
        raise ConfigError(f"arch '{arch}' must end with a dense layer of {n_classes} outputs (one per class)")
    if layers[-1].out_shape[2] != n_classes:
        raise ConfigError(f"arch '{arch}' ends with {layers[-1].token()} but the data has {n_classes} classes; "
                          f"end it with dense:{n_classes}")
    last_weighted = max(i for i, s in enumerate(layers) if s.n_weights)
    return [dataclasses.replace(s, relu=(s.n_weights > 0 and i != last_weighted)) for i, s in enumerate(layers)]


def arch_string(layers):
    """The canonical arch string of ``layers`` (round-trips through parse_arch)."""
    return ",".join(s.token() for s in layers)


def build_desc(layers):
    """The int64 ``desc`` table the jitted passes read, with flat weight/bias offsets."""
    desc = np.zeros((len(layers), N_FIELDS), dtype=np.int64)
    w_off = b_off = 0
    for i, s in enumerate(layers):
        desc[i, KIND] = by_code(s.kind).code  # refuses a code no kind registered
        desc[i, IN_H:IN_C + 1] = s.in_shape
        desc[i, OUT_H:OUT_C + 1] = s.out_shape
        desc[i, KH], desc[i, KW], desc[i, PAD_H], desc[i, PAD_W] = s.kh, s.kw, s.pad_h, s.pad_w
        desc[i, RELU] = int(s.relu)
        desc[i, W_OFF], desc[i, B_OFF] = w_off, b_off
        desc[i, N_IN], desc[i, N_OUT], desc[i, N_W] = _size(s.in_shape), _size(s.out_shape), s.n_weights
        w_off += s.n_weights
        b_off += s.n_bias
    return desc


def weight_dtype(bits):
    """The simulator's host array for weights: int8 for b <= 8, int16 otherwise."""
    return np.int8 if bits <= 8 else np.int16


def init_exponents(layers, bits):
    """Per-layer weight exponent: the grid covers twice the He-uniform init range.

    Returns (e_w, e_b, init_codes): int64 arrays, and the largest init code per layer.
    For b = 1 the single magnitude 2**e_w matches the He-uniform standard deviation.
    """
    e_w = np.zeros(len(layers), dtype=np.int64)
    codes = np.zeros(len(layers), dtype=np.int64)
    for i, s in enumerate(layers):
        if not s.n_weights:
            continue
        limit = math.sqrt(6.0 / s.fan_in)
        if bits == 1:
            e_w[i] = round(math.log2(limit / math.sqrt(3.0)))
            codes[i] = 1
        else:
            e_w[i] = math.ceil(math.log2(2.0 * limit / qmax(bits)))
            codes[i] = min(max(round(limit / 2.0 ** e_w[i]), 1), qmax(bits))
    return e_w, e_w - BIAS_EXTRA_BITS, codes


@njit(cache=True)
def _draw_codes(rng, n, limit, binary, out):
    for j in range(n):
        r = xorshift32(rng)
        out[j] = (r & 1) * 2 - 1 if binary else r % (2 * limit + 1) - limit


def init_weights(layers, bits, rng):
    """Integer weights drawn from the generator, layer by layer in weight order.

    Returns (wq, bq, e_w, e_b): flat weights (int8 for b <= 8, else int16), zero int32
    biases, and the int64 exponent arrays. Consumes one draw per weight.
    """
    e_w, e_b, codes = init_exponents(layers, bits)
    wq = np.zeros(sum(s.n_weights for s in layers), dtype=weight_dtype(bits))
    off = 0
    for i, s in enumerate(layers):
        n = s.n_weights
        _draw_codes(rng, n, int(codes[i]), bits == 1, wq[off:off + n])
        off += n
    bq = np.zeros(sum(s.n_bias for s in layers), dtype=np.int32)
    return wq, bq, e_w, e_b


@njit(cache=True)
def _draw_uniform(rng, limit, out):
    for j in range(out.shape[0]):
        out[j] = np.float32((xorshift32(rng) / 2.0**32 * 2.0 - 1.0) * limit)


def init_float_weights(layers, rng):
    """float32 He-uniform weights from the same generator (one draw each), zero biases."""
    wf = np.zeros(sum(s.n_weights for s in layers), dtype=np.float32)
    off = 0
    for s in layers:
        n = s.n_weights
        if n:
            _draw_uniform(rng, math.sqrt(6.0 / s.fan_in), wf[off:off + n])
        off += n
    return wf, np.zeros(sum(s.n_bias for s in layers), dtype=np.float32)
