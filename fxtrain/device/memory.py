"""The SRAM a training run declares on the device, buffer by buffer, as the C training runtime does.

Each buffer's ``name`` is the suffix of its symbol in the exported runtime
(``PREFIX_buf_NAME`` in ``PREFIX_train.h``), so the sizes the linker reports can be
held against these formulas one by one (``fxtrain verify --train-step``).
Notation: B = batch, n_l = values per sample in layer l's output, widest = the
largest per-sample tensor (the input, or any layer's input or output), W_l / Nb_l =
layer l's weights / biases, N = training samples, F = features, L = layers.

    weights      sum R_l * rowbytes_l      packed: b bits in a slot of 1, 2, 4, 8 or 16 bits, R_l rows
                                           (dense outputs or conv filters) of fan_in slots, each
                                           padded to a whole word (4 * sum W_l for float)
    biases       4 * sum Nb_l              int32 (float32 for float)
    shadow       4 * sum W_l               bc only: the float32 shadow weights
    momentum     2 * sum W_l               int16 velocity for sr/r; 4 * sum W_l float32 for bc, float
    adam         8 * sum W_l + 4           Adam's two float32 moments and a step count (bc and float,
                                           in the simulator only: the C runtime has no Adam)
    act<l>       B * n_l                   int8 output of layer l, kept for the backward pass
    trunk        h * pad4(max B * n_l)     fine-tuning only: the outputs of the frozen layers under the
                                           lowest trained layer's input, h = 1 or 2 ping-pong halves
    input        B * F                     int8 input batch
    labels       B                         uint8
    acc          a * B * widest            a = 4 (int32) or 8 where a sum needs int64 (engine/bounds.py)
    err          2 * pad4(B * widest)      int8 error ping-pong, each half on a word
    grad         g * max(fan_in, conv W_l) one output row of a dense layer's weight gradient, applied
                                           before the next row, or a conv layer's whole gradient;
                                           g = 4 (int32) or 8 (int64)
    gbias        g * max Nb_l              the layer's bias gradient (and, in the forward pass, its bias
                                           terms: over every layer, frozen ones too)
    opa, opb     see scratch_lengths       int8 word-aligned operands of the kernels: transposed
                                           activations and errors for the gradient, im2col columns
    rows         see scratch_lengths       unpacked sub-byte weight rows, transposed weight blocks, a
                                           small conv layer's filters as bias terms and SXTB16 pairs
                                           (int8; int16 for 16-bit slots)
    probs        4 * classes               Q15 softmax probabilities
    exponents    4 * (L + 1)               per-tensor activation exponents
    perm         2 * N                     uint16 shuffle index (4 * N above 65,536 samples)
    rng          4                         xorshift32 state
    counters     4 * 5 * L                 saturation counters per layer and kind

With frozen layers (under ``low``, the lowest that trains), W_l and Nb_l in weights, biases,
shadow and momentum count the trained layers only; the frozen ones are ``const``, in flash, and
the error ping-pong takes the widest of the trained layers' tensors.
``float`` keeps activations, errors and gradients in float32 and has no
accumulator, exponents or counters.
"""
import math
from dataclasses import dataclass

from ..engine.numbers import storage_bits
from ..layers import pad4

SAT_KINDS = 5  # engine.requant.SAT_NAMES, without importing numba here
GRAD_CHUNK = 64  # output positions a conv gradient transposes at a time (FX_GRAD_CHUNK in the C runtime)


@dataclass(frozen=True)
class Buffer:
    """One static buffer of the training runtime: symbol suffix, what a table calls it, bytes."""
    name: str
    label: str
    bytes: int


def row_bytes(s, bits):
    """Bytes of one packed weight row of layer ``s`` (a dense output or a conv filter), word-padded."""
    return pad4(-(-s.fan_in * storage_bits(bits) // 8)) if s.n_weights else 0


def weight_bytes(layers, bits):
    """Packed training weights: per layer, its rows (out_c) times :func:`row_bytes`."""
    return sum(s.out_shape[2] * row_bytes(s, bits) for s in layers if s.n_weights)


def acc_bytes(layers, batch, n_features, plan):
    """The accumulator: one sum per value of the widest tensor of the batch, int32 or int64."""
    return plan.acc_bytes * batch * widest(layers, n_features)


def scratch_lengths(layers, bits, batch, acc):
    """Elements of the C runtime's kernel scratch: ``opa``, ``opb`` (int8), ``rows`` (weight values)
    and ``grad`` (gradient sums), each the largest any layer needs (at least a word); ``acc``: the
    accumulator's bytes.

    A dense layer copies an input sample (one at a time) or its error batch to words only when
    its rows are not whole words, unpacks four sub-byte weight rows at a time, and gathers four columns of weights
    for the error below. A conv layer takes the im2col columns of one output row (12 bytes a column
    for up to 12 taps) and the filter bank's transpose, and for up to 12 taps its filters as 7 words
    each (the DSP kernel's bias term and SXTB16 pairs). For the gradient, a dense layer transposes its inputs and errors and a conv
    layer GRAD_CHUNK positions of taps and errors; those go into the accumulator, which the
    update does not use, when they fit it, and into opa and opb otherwise.
    """
    out = {"opa": 4, "opb": 4, "rows": 4, "grad": 1}  # a word at least: a kernel may read one
    sub_byte = storage_bits(bits) < 8

    def need(name, n):
        out[name] = max(out[name], n)
    for l, s in enumerate(layers):
        if not s.n_weights:
            continue
        # the kind fills its own needs and says how big its gradient's two transposed operands are
        grad_a, grad_b = s.layer_kind.sram_scratch(need, l, s, batch, sub_byte, GRAD_CHUNK)
        if grad_a + grad_b > acc:
            need("opa", grad_a)
            need("opb", grad_b)
    return out


def widest(layers, n_features):
    return max([n_features] + [math.prod(s.in_shape) for s in layers] + [math.prod(s.out_shape) for s in layers])


def error_width(layers, n_features, low):
    """Values per sample of the widest tensor an error takes: the trained layers' inputs and outputs
    (every tensor, the input included, when every layer trains)."""
    return widest(layers[low:], n_features if low == 0 else 0)


def trunk_halves(layers, batch, low, vb=1):
    """Bytes of each half of the frozen trunk's ping-pong (none, one or two halves): the outputs under the
    lowest trained layer's input, each read once by the next forward step. Output ``i`` goes to half
    ``i % 2``, so each half is as wide as the widest output it takes, word-aligned."""
    sizes = [vb * batch * math.prod(s.out_shape) for s in layers[:max(low - 1, 0)]]
    return [pad4(max(sizes[h::2])) for h in range(min(len(sizes), 2))]


def _activations(layers, batch, vb, low):
    """The activation buffers: one per layer output a backward pass reads (the outputs of the lowest
    layer that trains and above, and its input), and the frozen trunk's ping-pong halves."""
    keep = [Buffer(f"act{i}", f"activations[{i}] {s.token()}", vb * batch * math.prod(s.out_shape))
            for i, s in enumerate(layers) if i >= low - 1]
    halves = trunk_halves(layers, batch, low, vb)
    return ([Buffer("trunk", "frozen trunk's activations (ping-pong)", sum(halves))] if halves else []) + keep


def buffers(layers, method, bits, batch, n_train, n_features, n_classes, momentum, plan, adam=False, low=0):
    """The ordered list of :class:`Buffer` a run of ``method`` declares (``plan``: engine.bounds); the
    layers under ``low`` are frozen: their weights and biases are ``const`` in flash, not here."""
    is_float = method == "float"
    vb = 4 if is_float else 1  # bytes per activation, error and input value
    trained = layers[low:]
    n_w, n_b = sum(s.n_weights for s in trained), sum(s.n_bias for s in trained)
    wide = error_width(layers, n_features, low)
    out = [Buffer("weights", "weights (float32)", 4 * n_w) if is_float else
           Buffer("weights", f"weights ({storage_bits(bits)}-bit slots, packed)", weight_bytes(trained, bits)),
           Buffer("biases", "biases", 4 * n_b)]
    if method == "bc":
        out.append(Buffer("shadow", "shadow weights (float32)", 4 * n_w))
    if momentum:
        q = method in ("sr", "r")
        out.append(Buffer("momentum", f"momentum ({'int16' if q else 'float32'})", (2 if q else 4) * n_w))
    if adam:
        out.append(Buffer("adam", "adam moments (2 x float32)", 8 * n_w + 4))
    out += _activations(layers, batch, vb, low)
    out += [Buffer("input", "input batch", vb * batch * n_features), Buffer("labels", "labels", batch)]
    if not is_float:
        out.append(Buffer("acc", f"accumulator (int{8 * plan.acc_bytes})", acc_bytes(layers, batch, n_features, plan)))
    gb = 4 if is_float else plan.grad_bytes
    if is_float:
        out += [Buffer("err", "error ping-pong", 2 * vb * batch * wide),
                Buffer("grad", "gradient row", gb * max(s.fan_in for s in trained if s.n_weights))]
    else:
        scratch = scratch_lengths(layers, bits, batch, acc_bytes(layers, batch, n_features, plan))
        out += [Buffer("err", "error ping-pong", 2 * pad4(batch * wide)),
                Buffer("grad", "gradient row or conv gradient", gb * scratch["grad"])]
    # every layer's: the forward pass puts a layer's bias terms there, frozen layers' too
    out.append(Buffer("gbias", "bias gradient", gb * max(s.n_bias for s in layers)))
    if not is_float:
        out += [Buffer("opa", "operand scratch (inputs, im2col)", scratch["opa"]),
                Buffer("opb", "operand scratch (errors)", scratch["opb"]),
                Buffer("rows", "weight-row scratch", (2 if storage_bits(bits) == 16 else 1) * scratch["rows"])]
    out.append(Buffer("probs", "softmax scratch", 4 * n_classes))
    if not is_float:
        out.append(Buffer("exponents", "exponents", 4 * (len(layers) + 1)))
    out += [Buffer("perm", "shuffle index", (2 if n_train <= 65536 else 4) * n_train),
            Buffer("rng", "generator state", 4)]
    if not is_float:
        out.append(Buffer("counters", "saturation counters", 4 * SAT_KINDS * len(layers)))
    return out
