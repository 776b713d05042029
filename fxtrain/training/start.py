"""Starting a run from float weights instead of the generator: an imported model, or ``--init RUN``.

The float weights get the integer state a run trains from: one power-of-two exponent per
layer, fitted to the layer's weights (the grid is fixed from then on, as always), b-bit
codes and int32 biases on the usual grid ``BIAS_EXTRA_BITS`` finer. Such a run makes no
initialisation draws: its generator starts at the seed's state. It records that its
exponents were fitted (a checkpoint's exponents are otherwise held to those the arch
fixes) and the input scale of the data the weights were made for.
"""
import math
from dataclasses import dataclass

import numpy as np

from ..engine.network import BIAS_EXTRA_BITS, weight_dtype
from ..engine.numbers import qmax
from ..errors import ConfigError
from .artifacts import load_run_dir

# The weight exponents a fitted grid may take: far beyond any trained net's, and every shift the
# passes derive from them stays well inside int64.
FITTED_EXPONENTS = (-48, 16)
INT32 = np.iinfo(np.int32)


@dataclass(frozen=True)
class Start:
    """Float weights a run starts from, flat in fxtrain's layout (layer by layer, HWC order), and the
    input ``scale`` of the data they were made for (``Dataset.scale``). ``shadow_on_grid``: a bc run's
    shadow starts from the dequantized grid weights, as a fresh bc run's does (``--init``), instead of
    from the float weights themselves (an import, whose float weights are the real values)."""
    w: np.ndarray
    b: np.ndarray
    scale: float
    shadow_on_grid: bool = False


def weight_exponent(w, bits):
    """The grid exponent of one layer's float weights ``w``.

    For b >= 2 the smallest ``e`` whose grid covers the largest weight, ``q_max * 2**e >= max|w|``:
    nothing saturates, and the step is as fine as that allows. For b = 1 (codes +-1) the power of
    two nearest mean|w|, the magnitude that best fits the weights in the mean (BinaryConnect's and
    XNOR-Net's scale). None when every weight is zero.
    """
    mags = np.abs(np.asarray(w, np.float64))
    if not mags.any():
        return None
    if bits == 1:
        return round(math.log2(float(mags.mean())))
    top, q = float(mags.max()), qmax(bits)
    e = math.ceil(math.log2(top / q))
    while q * 2.0 ** (e - 1) >= top:  # log2 of a near power of two can land a step off
        e -= 1
    while q * 2.0 ** e < top:
        e += 1
    return e


def _codes(w, e, bits):
    if bits == 1:
        return np.where(w >= 0, 1, -1).astype(weight_dtype(bits))
    q = qmax(bits)
    return np.clip(np.rint(w * 2.0 ** -e), -q, q).astype(weight_dtype(bits))


def fit_grid(layers, bits, w, b):
    """(wq, bq, e_w, e_b, clipped) of float weights ``w`` and biases ``b`` (flat, fxtrain's layout).

    ``e_w`` per layer from :func:`weight_exponent` (a layer without weights, or all zero, keeps 0), biases
    rounded to nearest at ``e_b = e_w - BIAS_EXTRA_BITS`` and saturated to int32; ``clipped`` counts
    the saturated biases.
    """
    n_l = len(layers)
    e_w = np.zeros(n_l, np.int64)
    wq = np.zeros(len(w), weight_dtype(bits))
    bq = np.zeros(len(b), np.int32)
    w_off = b_off = clipped = 0
    for i, s in enumerate(layers):
        ws, bs = slice(w_off, w_off + s.n_weights), slice(b_off, b_off + s.n_bias)
        e = weight_exponent(w[ws], bits) if s.n_weights else None
        if e is not None:
            if not FITTED_EXPONENTS[0] <= e <= FITTED_EXPONENTS[1]:
                raise ConfigError(f"layer {i}'s weights need the grid exponent {e}, outside the "
                                  f"{FITTED_EXPONENTS[0]} .. {FITTED_EXPONENTS[1]} fxtrain allows")
            e_w[i] = e
        wq[ws] = _codes(np.asarray(w[ws], np.float64), e_w[i], bits)
        codes = np.rint(np.asarray(b[bs], np.float64) * 2.0 ** -(e_w[i] - BIAS_EXTRA_BITS))
        clipped += int(np.count_nonzero((codes < INT32.min) | (codes > INT32.max)))
        bq[bs] = np.clip(codes, INT32.min, INT32.max)
        w_off, b_off = w_off + s.n_weights, b_off + s.n_bias
    return wq, bq, e_w, e_w - BIAS_EXTRA_BITS, clipped


def check_fitted_exponents(e_w, e_b):
    """Why fitted exponents cannot be a fitted grid's, or None."""
    lo, hi = FITTED_EXPONENTS
    if np.any(e_w < lo) or np.any(e_w > hi):
        return f"the grid exponents lie outside {lo} .. {hi}"
    if not np.array_equal(e_b, e_w - BIAS_EXTRA_BITS):
        return f"the bias exponents are not the weight exponents - {BIAS_EXTRA_BITS}"
    return None


def dequantized(layers, codes, exponents, counts):
    """float64 values of flat ``codes``: each layer's slice times ``2**exponents[layer]``;
    ``counts(spec)`` is the slice's length (weights or biases)."""
    scale = np.concatenate([np.full(counts(s), 2.0 ** e) for s, e in zip(layers, exponents)] or [np.zeros(0)])
    return codes.astype(np.float64) * scale


def start_arrays(layers, cfg, start):
    """The state arrays of a ``cfg.method`` run starting from ``start``: wf/bf for float, else the
    fitted grid's wq, bq, e_w, e_b (and bc's shadow)."""
    if cfg.method == "float":
        return {"wf": np.asarray(start.w, np.float32).copy(), "bf": np.asarray(start.b, np.float32).copy()}
    wq, bq, e_w, e_b, _ = fit_grid(layers, cfg.bits, start.w, start.b)
    out = {"wq": wq, "bq": bq, "e_w": e_w, "e_b": e_b}
    if cfg.method == "bc":
        grid = dequantized(layers, wq, e_w, lambda s: s.n_weights)
        limit = dequantized(layers, np.full(len(wq), qmax(cfg.bits)), e_w, lambda s: s.n_weights)
        # clipped to the grid's range, as every bc update clips it
        out["shadow"] = (grid if start.shadow_on_grid else np.clip(start.w, -limit, limit)).astype(np.float32)
    return out


def read_init_run(path):
    """The model arrays of the run folder ``path`` that ``--init`` starts from (checked as export checks it)."""
    arrays, _, _ = load_run_dir(path)
    return arrays


def init_scale(arrays):
    """The input scale the init run's data had (None for a run that did not record it: the data's own)."""
    return float(arrays["input_scale"]) if "input_scale" in arrays else None


def _layer_values(arrays, i, s, part):
    """Float values of layer ``i``'s ``part`` ("weight" or "bias"), flat: the float run's, bc's shadow
    (its real-valued weights), or the dequantized codes."""
    names = [f"layer{i}_{part}_float32", f"layer{i}_{part}_shadow_float32"]
    for name in names:
        if name in arrays:
            return np.asarray(arrays[name], np.float64).reshape(-1)
    return np.asarray(arrays[f"layer{i}_{part}_q"], np.float64).reshape(-1) * 2.0 ** int(arrays[f"layer{i}_{part}_exp"])


def check_init_data(path, arrays, data):
    """Refuse, in one line, an init run made for data of another shape than ``data``."""
    shape, classes = tuple(int(v) for v in arrays["input_shape"]), int(arrays["n_classes"])
    if shape != tuple(data.input_shape) or classes != data.n_classes:
        raise ConfigError(f"--init {path}: that run was made for inputs {shape} in {classes} classes, but "
                          f"{data.name} has inputs {tuple(data.input_shape)} in {data.n_classes} classes")


def start_from_run(path, arrays, layers, arch, data):
    """The :class:`Start` of ``--init path`` for a run of ``arch`` (canonical) on ``data`` (of the init run's
    shape: :func:`check_init_data`); refuses a run of another arch in one line."""
    theirs = str(arrays["arch"])
    if theirs != arch:
        raise ConfigError(f"--init {path}: that run's arch is '{theirs}', this run's is '{arch}'; "
                          f"pass --arch '{theirs}'")
    try:
        w = [_layer_values(arrays, i, s, "weight") for i, s in enumerate(layers) if s.n_weights]
        b = [_layer_values(arrays, i, s, "bias") for i, s in enumerate(layers) if s.n_weights]
    except KeyError as exc:
        raise ConfigError(f"--init {path}: its model.npz lacks {exc}; it is corrupted, train it again") from None
    return Start(np.concatenate(w), np.concatenate(b), data.scale, shadow_on_grid=True)
