"""The SRAM a training run declares on the device, buffer by buffer, as the C training runtime does.

Each buffer's ``name`` is the suffix of its symbol in the exported runtime
(``PREFIX_buf_NAME`` in ``PREFIX_train.h``), so the sizes the linker reports can be
held against these formulas one by one (``fxtrain verify --train-step``).
Notation: B = batch, n_l = values per sample in layer l's output, widest = the
largest per-sample tensor (the input, or any layer's input or output), W_l / Nb_l =
layer l's weights / biases, N = training samples, F = features, L = layers.

    weights      sum ceil(W_l * slot / 8)  packed: b bits in a slot of 1, 2, 4, 8 or 16 bits,
                                           each layer starting on a byte (4 * sum W_l for float)
    biases       4 * sum Nb_l              int32 (float32 for float)
    shadow       4 * sum W_l               bc only: the float32 shadow weights
    momentum     2 * sum W_l               int16 velocity for sr/r; 4 * sum W_l float32 for bc, float
    adam         8 * sum W_l + 4           Adam's two float32 moments and a step count (bc and float,
                                           in the simulator only: the C runtime has no Adam)
    act<l>       B * n_l                   int8 output of layer l, kept for the backward pass
    input        B * F                     int8 input batch
    labels       B                         uint8
    acc          a * B * widest            a = 4 (int32) or 8 where a sum needs int64 (engine/bounds.py)
    err          2 * B * widest            int8 error ping-pong
    grad         g * max fan_in            one output row of a layer's weight gradient, applied before
                                           the next row; g = 4 (int32) or 8 (int64)
    gbias        g * max Nb_l              the layer's bias gradient
    probs        4 * classes               Q15 softmax probabilities
    exponents    4 * (L + 1)               per-tensor activation exponents
    perm         2 * N                     uint16 shuffle index (4 * N above 65,536 samples)
    rng          4                         xorshift32 state
    counters     4 * 5 * L                 saturation counters per layer and kind

``float`` keeps activations, errors and gradients in float32 and has no
accumulator, exponents or counters.
"""
import math
from dataclasses import dataclass

from ..engine.numbers import storage_bits

SAT_KINDS = 5  # engine.requant.SAT_NAMES, without importing numba here


@dataclass(frozen=True)
class Buffer:
    """One static buffer of the training runtime: symbol suffix, what a table calls it, bytes."""
    name: str
    label: str
    bytes: int


def weight_bytes(layers, bits):
    """Packed training weights: each layer ``ceil(W_l * slot / 8)`` bytes, slot = storage_bits(bits)."""
    slot = storage_bits(bits)
    return sum(math.ceil(s.n_weights * slot / 8) for s in layers)


def widest(layers, n_features):
    return max([n_features] + [math.prod(s.in_shape) for s in layers] + [math.prod(s.out_shape) for s in layers])


def buffers(layers, method, bits, batch, n_train, n_features, n_classes, momentum, plan, adam=False):
    """The ordered list of :class:`Buffer` a run of ``method`` declares (``plan``: engine.bounds)."""
    is_float = method == "float"
    vb = 4 if is_float else 1  # bytes per activation, error and input value
    n_w, n_b = sum(s.n_weights for s in layers), sum(s.n_bias for s in layers)
    wide = widest(layers, n_features)
    out = [Buffer("weights", "weights (float32)", 4 * n_w) if is_float else
           Buffer("weights", f"weights ({storage_bits(bits)}-bit slots, packed)", weight_bytes(layers, bits)),
           Buffer("biases", "biases", 4 * n_b)]
    if method == "bc":
        out.append(Buffer("shadow", "shadow weights (float32)", 4 * n_w))
    if momentum:
        q = method in ("sr", "r")
        out.append(Buffer("momentum", f"momentum ({'int16' if q else 'float32'})", (2 if q else 4) * n_w))
    if adam:
        out.append(Buffer("adam", "adam moments (2 x float32)", 8 * n_w + 4))
    out += [Buffer(f"act{i}", f"activations[{i}] {s.token()}", vb * batch * math.prod(s.out_shape))
            for i, s in enumerate(layers)]
    out += [Buffer("input", "input batch", vb * batch * n_features), Buffer("labels", "labels", batch)]
    if not is_float:
        out.append(Buffer("acc", f"accumulator (int{8 * plan.acc_bytes})", plan.acc_bytes * batch * wide))
    gb = 4 if is_float else plan.grad_bytes
    out += [Buffer("err", "error ping-pong", 2 * vb * batch * wide),
            Buffer("grad", "gradient row", gb * max(s.fan_in for s in layers if s.n_weights)),
            Buffer("gbias", "bias gradient", gb * max(s.n_bias for s in layers)),
            Buffer("probs", "softmax scratch", 4 * n_classes)]
    if not is_float:
        out.append(Buffer("exponents", "exponents", 4 * (len(layers) + 1)))
    out += [Buffer("perm", "shuffle index", (2 if n_train <= 65536 else 4) * n_train),
            Buffer("rng", "generator state", 4)]
    if not is_float:
        out.append(Buffer("counters", "saturation counters", 4 * SAT_KINDS * len(layers)))
    return out
