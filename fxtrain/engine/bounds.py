"""Worst-case bounds of every integer sum, fixed when a run is configured, so that none can wrap.

Each sum's bound follows from the arch, the batch and the bit width alone:
inputs and activations are int8 in [-127, 127] (inputs are clipped to +-127, hidden
activations pass a ReLU), errors are int8 in [-128, 127], weights are at most
``qmax(bits)`` and a re-exponented bias term is clamped to ``BIAS_TERM_LIMIT``. Where a bound
fits int32 the sum is accumulated in int32, as a Cortex-M does with MLA; where it
does not, in int64 (SMLAL). The simulator and the C runtime make the same choice,
and the cost model counts it.

Sums, per weighted layer l with ``P`` output positions per sample (1 for dense):

    forward     B_f = fan_in * 127 * qmax + BIAS_TERM_LIMIT      into ``acc``
    input error B_e = fan_out * 128 * qmax                        into ``acc``
    weight grad B_g = batch * P * 128 * 127                       into ``grad``
    bias grad   B_b = batch * P * 128                             into ``grad``

``fan_out`` is the number of products summed into one input error: the layer's
outputs for dense, ``out_channels * k * k`` for conv. The update multiplies the
step mantissa ``m`` (up to 24 bits) by a gradient in int64, which must stay below
2**62 so the stochastic rounding's addend cannot overflow either.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .numbers import INT32_MAX, qmax

ABS_ACT = 127  # inputs and activations
ABS_ERR = 128  # errors reach -128
# A bias enters the forward sum shifted to the accumulator's exponent and clamped here:
# half the int32 range, so a layer with fan_in * 128 * qmax below 2**30 keeps an int32 sum.
BIAS_TERM_LIMIT = 2**30
INT64_SAFE = 2**62


@dataclass(frozen=True)
class LayerBounds:
    """Worst-case magnitudes of one layer's sums (0 for a layer without weights: a pool sums nothing, and
    gap's sums, at most 128 * h * w, are held to int32 when it is parsed)."""
    forward: int
    input_error: int
    weight_grad: int
    bias_grad: int


@dataclass(frozen=True)
class AccumulatorPlan:
    """Bounds per layer and the accumulator types they force for the whole run."""
    layers: tuple
    acc_wide: bool       # int64 forward / input-error accumulator
    grad_wide: bool      # int64 weight and bias gradients
    update_wide: bool    # m * G needs a 32x32 -> 64 multiply

    @property
    def acc_dtype(self):
        return np.int64 if self.acc_wide else np.int32

    @property
    def grad_dtype(self):
        return np.int64 if self.grad_wide else np.int32

    @property
    def acc_bytes(self):
        return 8 if self.acc_wide else 4

    @property
    def grad_bytes(self):
        return 8 if self.grad_wide else 4

    def describe(self):
        """One line per sum that needs int64, naming the layer, the sum and its bound."""
        out = []
        for i, b in enumerate(self.layers):
            for name, v in (("forward", b.forward), ("input error", b.input_error),
                            ("weight gradient", b.weight_grad), ("bias gradient", b.bias_grad)):
                if v > INT32_MAX:
                    out.append(f"layer {i} {name}: |sum| <= {v:,} > int32, accumulated in int64")
        return out


def layer_bounds(spec, bits, batch):
    """The :class:`LayerBounds` of one ``LayerSpec`` (its kind says how many products meet in an input error)."""
    if not spec.n_weights:
        return LayerBounds(0, 0, 0, 0)
    q, positions, fan_out = qmax(bits), spec.positions, spec.layer_kind.fan_out(spec)
    return LayerBounds(forward=spec.fan_in * ABS_ACT * q + BIAS_TERM_LIMIT,
                       input_error=fan_out * ABS_ERR * q,
                       weight_grad=batch * positions * ABS_ERR * ABS_ACT,
                       bias_grad=batch * positions * ABS_ERR)


def plan_accumulators(layers, bits, batch, step_m):
    """Choose int32 or int64 for each kind of sum; refuse a run whose update could leave int64.

    Parameters
    ----------
    layers : list of LayerSpec; bits : weight bits; batch : samples per step;
    step_m : the per-sample step's integer mantissa m (``alpha / batch = m * 2**-k``).
    """
    bounds = tuple(layer_bounds(s, bits, batch) for s in layers)
    acc = max(max(b.forward, b.input_error) for b in bounds)
    grad = max(max(b.weight_grad, b.bias_grad) for b in bounds)
    if step_m * grad >= INT64_SAFE:
        raise ConfigError(f"the weight update m*G can reach {step_m * grad:,}, beyond int64 "
                          f"(step mantissa {step_m} times a gradient bound of {grad:,}); use a smaller batch "
                          "or a learning rate with a shorter mantissa")
    return AccumulatorPlan(bounds, acc > INT32_MAX, grad > INT32_MAX, step_m * grad > INT32_MAX)
