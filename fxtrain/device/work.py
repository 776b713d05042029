"""The work of one training step, phase by phase, in units a core has a price for.

The C training runtime runs a step as phases (``fx_forward``, ``fx_loss``,
``fx_backward``, ``fx_update``, the step's own code, and once per epoch
``fx_shuffle``), and each phase as loops. A *unit* is one trip through such a loop:
a dense MAC, a conv kernel tap, an activation rounded and stored, a softmax output,
a weight updated. :func:`work` counts the units of each phase from the arch, the
batch and the data size (B batch, W_l weights, n_in/n_out values per sample, N
training samples, F features, M_l a layer's MACs per sample); the counts are exact
trips, except that the loops
that skip a zero error (backward and gradient MACs) are counted as if none were
zero, so their prices absorb the share of zero errors of the run they were fitted
on.

Where a core has the DSP extension, the runtime takes faster paths for some loops (a conv
whose taps fit one column, pooling four channels a word); those loops are counted under
their own units (``dsp_tap``, ``pool_word``, ...), one for one with the portable loop's, so
only their prices differ from core to core.

A profile prices units in ``[unit_cycles]``: cycles per unit fitted to the
instructions ``fxtrain measure`` counts on the core. A unit a profile does not
price falls back to a proxy (``profiles.UNIT_PROXY``), then to its operations in
the profile's ``[unit_ops]`` (multiplies, loads and stores, everything else) priced
at its ``[cycles]`` per-operation prices.
"""
from dataclasses import dataclass

from ..engine.numbers import storage_bits
from .profiles import UNIT_OPS, priced_as

PHASES = ("forward", "loss", "backward", "update", "step", "shuffle")
STEP_PHASES = PHASES[:-1]  # every step runs these; the shuffle runs once per epoch

# unit: what one trip through its loop is. What it costs is a chip fact, in the profile:
# [unit_cycles], or [unit_ops] (fxtrain.device.profiles).
UNITS = {
    "mac": "a dense MAC: two int8 loads, unpack, multiply-accumulate, loop",
    "conv_tap": "a conv kernel position: bounds checks, addresses, one channel's MAC",
    "pool": "one input compared by max pooling, forward",
    "scan": "one value scanned for the tensor's shift (requant.tensor_shift)",
    "act": "one output value: bias added, rounded, saturated, stored",
    "softmax": "one softmax output: exp2 table, int64 division, error, saturation",
    "relu": "one error masked by the ReLU",
    "err": "one error sent below: a draw, stochastic rounding to int8",
    "back_mac": "an input-error MAC (dense), counted as if no error were zero",
    "back_tap": "an input-error kernel position (conv), as if no error were zero",
    "pool_back": "one input compared by max pooling, backward (the error routed)",
    "grad_mac": "a weight-gradient MAC (dense), counted as if no error were zero",
    "grad_tap": "a weight-gradient kernel position (conv), as if no error were zero",
    "update_sr": "one weight's SR update: 64-bit step, a draw, rounding, saturation, repack",
    "update_r": "one weight's R update: 64-bit step, rounding half up, saturation, repack",
    "update_bc": "one weight's BinaryConnect update in float32, re-quantised",
    "bias": "one bias update, int64 with a draw",
    "unpack": "a weight read from a sub-byte slot (forward and input-error MACs): shift, mask, sign",
    "repack": "a weight updated in a sub-byte slot: read, unpack, merge into its byte",
    "copy": "one input byte copied into the batch",
    "step_loop": "the step's own code, once a step: the calls, the loop over the layers, exponents, counters",
    "shuffle": "one sample shuffled: a draw, a 32-bit modulo, a swap",
    # The DSP paths, counted only where a core takes them (Dsp below); each replaces a portable
    # loop unit for unit, so the counts, MACs and ops are the same on every core, only the prices differ.
    "dsp_tap": "a conv kernel position on the DSP column path (fan-in <= 12, filters in pairs): SMLAD pairs",
    "dsp_mac": "a conv MAC of a kernel position's other channels, on the DSP column path",
    "dsp_scan": "one conv output on the DSP column path, for the tensor's shift: its magnitude rides the sums",
    "dsp_act": "one conv output on the DSP column path: rounded, saturated, stored (its bias rode the sums)",
    "pool_word": "one input compared by max pooling, forward, four channels a word (SSUB8, SEL)",
    "pool_back_word": "one input compared by max pooling, backward, four channels a word (SSUB8, SEL)",
    "pool_back_2x2": "one input of a 2x2 max-pooling window, backward, byte by byte (the window written out)",
    "gap_add": "one input added into its channel's sum by global average pooling",
    "gap_err": "one error sent below global average pooling: a draw, a high product, a compare",
}
# The units that multiply-accumulate one weight (a conv tap does one channel's MAC, the
# others of its channels are "mac" units); every other unit counts as one integer op.
MAC_UNITS = ("mac", "conv_tap", "dsp_tap", "dsp_mac", "back_mac", "back_tap", "grad_mac", "grad_tap")
UPDATE_UNITS = ("update_sr", "update_r", "update_bc")  # one a weight, whichever the method
# Float32 operations per trip, from the runtime's code (chip-independent): bc's update computes
# its step with 2 fmul and 4 fadd-class ops (sub, 2 compares, add, floor) a weight.
UNIT_FLOATS = {"update_bc": {"fmul": 2, "fadd": 4}}


@dataclass(frozen=True)
class Dsp:
    """The C training runtime's DSP paths a core takes (``fx_train_passes.h``): ``bytes``, SSUB8 and
    SEL on four int8 channels at once (``FX_DSP``: max pooling); ``weights``, SMLAD on 8-bit weight
    slots into int32 sums (``FX_WV_SIMD && !FX_ACC_WIDE``: the conv column path)."""
    bytes: bool = False
    weights: bool = False


PORTABLE = Dsp()


def dsp_paths(dsp, bits, acc_wide):
    """:class:`Dsp` of a core with (``dsp``) or without the DSP extension, at ``bits``-bit weights."""
    return Dsp(dsp, dsp and storage_bits(bits) != 16 and not acc_wide)


def _size(shape):
    return shape[0] * shape[1] * shape[2]


def _add(parts, part, unit, n):
    if n:
        units = parts.setdefault(part, {})
        units[unit] = units.get(unit, 0) + n


def _layer(parts, l, s, method, b, packed, low, dsp):
    """Units of layer ``l`` in the forward, backward and update phases (``b``: batch; ``packed``: the
    weights sit in sub-byte slots, so every MAC's weight read unpacks and every update repacks; ``low``:
    the lowest layer that trains, so the layers under it run forward only and it sends no error below;
    ``dsp``: the :class:`Dsp` paths the core takes). The kind counts its own loops (``work``); what
    every weighted layer does is counted here, under the output units the kind names."""
    kind = s.layer_kind
    own = kind.work(s, b, dsp)
    scan, act = own.get("outputs", ("scan", "act"))
    fwd, back = f"forward.{kind.name}", f"backward.{kind.name}"
    for unit, n in own["forward"].items():
        _add(parts, fwd, unit, n)
    if not kind.weighted and l >= low:
        for unit, n in own["backward"].items():
            _add(parts, back, unit, n)
    if not kind.weighted:
        return
    n_in, n_out, macs = _size(s.in_shape), _size(s.out_shape), own["macs"]
    _add(parts, fwd, "unpack", macs * packed)
    _add(parts, "forward.shift", scan, b * n_out)
    _add(parts, "forward", act, b * n_out)
    if l < low:  # frozen: its forward pass alone
        return
    if s.relu:
        _add(parts, "backward", "relu", b * n_out)
    if l > low:  # the lowest layer that trains sends no error below
        _add(parts, "backward.shift", "scan", b * n_in)
        _add(parts, "backward", "err", b * n_in)
        for unit, n in own["backward"].items():
            _add(parts, back, unit, n)
        _add(parts, back, "unpack", macs * packed)
    for unit, n in own["gradient"].items():
        _add(parts, "update.gradient", unit, n)
    _add(parts, "update.weights", f"update_{method}", s.n_weights)
    _add(parts, "update.weights", "repack", s.n_weights * packed)
    _add(parts, "update", "bias", s.n_bias)


def work(layers, method, bits, batch, n_train, n_features, n_classes, low=0, dsp=PORTABLE):
    """{part: {unit: count}} of one training step; ``"shuffle"`` counts one epoch's shuffle; the layers
    under ``low`` are frozen (forward only); ``dsp``: the :class:`Dsp` paths the core takes.

    A part is a phase (``"forward"``) or one loop of it (``"forward.dense"``), as
    ``fxtrain measure`` attributes instructions; :func:`by_phase` merges them.
    ``method`` "float" is counted as "r" (the same loops; cost.py adds its float work).
    """
    parts, packed = {}, int(storage_bits(bits) < 8 and method != "float")
    for l, s in enumerate(layers):
        _layer(parts, l, s, "r" if method == "float" else method, batch, packed, low, dsp)
    _add(parts, "loss", "softmax", batch * n_classes)
    _add(parts, "step", "copy", batch * n_features)
    _add(parts, "step", "step_loop", 1)
    _add(parts, "shuffle", "shuffle", n_train)
    return parts


def by_phase(parts):
    """{phase: {unit: count}} from :func:`work`'s parts."""
    out = {p: {} for p in PHASES}
    for part, units in parts.items():
        phase = out[part.split(".")[0]]
        for u, n in units.items():
            phase[u] = phase.get(u, 0) + n
    return out


def unit_price(target, unit):
    """Cycles of one ``unit`` on ``target``: fitted (its own or its proxy's), or else its ``[unit_ops]``
    (its own or its proxy's) at the op prices."""
    fitted = dict(target.unit_cycles)
    if priced_as(unit, fitted) is not None:
        return fitted[priced_as(unit, fitted)]
    # load_target refuses a profile that prices a unit neither way
    ops = dict(target.unit_ops)
    return sum(n * getattr(target.cycles, op) for op, n in zip(UNIT_OPS, ops[priced_as(unit, ops)]))
