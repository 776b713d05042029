"""What a training run costs on the device: bytes per buffer, operations, cycles.

Every count follows from the arch, the batch, the bit width and the data size,
by the formulas below; a C training runtime is held to the byte counts exactly.
Notation: B = batch, L = number of layers, n_l = values per sample in layer l's
output, widest = max over the input and every layer's input/output of values per
sample, W_l / Nb_l = layer l's weights / biases, N = training samples, F = features.

SRAM buffers (integer methods; ``wb`` = 1 byte per weight for b <= 8, else 2):
    weights          wb * sum W_l                  (unpacked: training writes them)
    biases           4 * sum Nb_l                  (int32)
    activations[l]   B * n_l                       (int8, kept for the backward pass)
    input batch      B * F                         (int8)
    labels           B                             (uint8)
    accumulator      a * B * widest                (int32 scratch, a = 4; int64, a = 8, for b > 8)
    error ping-pong  2 * B * widest                (int8)
    gradient         4 * max fan_in_l + 4 * max Nb_l  (int32: one output row of one layer's
                                                   weight gradient at a time, applied before the
                                                   next row, plus the layer's bias gradient)
    softmax scratch  4 * classes                   (Q15 probabilities)
    exponents        4 * (L + 1)                   (per-tensor activation exponents)
    shuffle index    2 * N                         (uint16 permutation)
    generator state  4                             (xorshift32)
bc adds ``shadow weights 4 * sum W_l`` (float32) as its own line. Optimizer state
exists only with momentum: ``momentum 2 * sum W_l`` (int16 velocity) for sr/r,
``4 * sum W_l`` (float32) for bc and float; Adam (bc and float only) keeps
``adam moments 8 * sum W_l + 4`` (two float32 per weight and a step counter).
``float`` keeps every tensor in float32: 4 bytes per value and no exponents or
generator beyond the shuffle's.

Flash: weights packed at b bits (``ceil(W_l * b / 8)`` per layer), biases, and the
training set (N * F + N bytes) that on-device training reads every epoch.

Operations per step (one batch). MACs: forward sum_l B*M_l, weight gradient the
same, input error the same without layer 0 (M_l = W_l for dense, W_l * out_h * out_w
for conv). Other integer ops per value: 4 per forward activation (bias add, round,
shift, saturate), 9 per stochastically rounded error (xorshift 6, add, shift,
saturate), 2 per ReLU mask, 12 per sr weight update (mul, xorshift 6, add, shift,
sub, 2 saturate), 5 per r update, 2 per bc update, 30 per softmax output.
bc float ops per weight per step: 2 fmul and 4 fadd-class (sub, 2 compares, add,
floor). ``float`` does every MAC as 1 fmul + 1 fadd and every update as 1 fmul + 1 fadd.
"""
import math
from dataclasses import dataclass

from ..engine.network import CONV, POOL

INT_OPS = {"act": 4, "err_sr": 9, "relu": 2, "softmax": 30}
UPDATE_INT_OPS = {"sr": 12, "r": 5, "bc": 2, "float": 0}
BC_FLOPS = {"fmul": 2, "fadd": 4}
# Adam per weight and step: moments 5 fmul + 2 fadd, bias corrections 2 fmul, sqrt, add, divide, scale.
ADAM_FLOPS = {"fmul": 10, "fadd": 3}


@dataclass(frozen=True)
class Cost:
    """Bytes and operations of one run configuration, independent of any chip."""
    buffers: dict
    flash: dict
    int_macs_per_step: int
    int_ops_per_step: int
    fadd_per_step: int
    fmul_per_step: int
    steps_per_epoch: int

    @property
    def total_bytes(self):
        return sum(self.buffers.values())

    @property
    def float_ops_per_step(self):
        return self.fadd_per_step + self.fmul_per_step


def _macs(s):
    if s.kind == POOL:
        return 0
    return s.n_weights * (s.out_shape[0] * s.out_shape[1] if s.kind == CONV else 1)


def _values(shape):
    return math.prod(shape)


def memory(layers, method, bits, batch, n_train, n_features, n_classes, momentum=False, adam=False):
    """Ordered {buffer name: bytes} for the SRAM a run declares."""
    is_float = method == "float"
    wb = 4 if is_float else (1 if bits <= 8 else 2)
    vb = 4 if is_float else 1  # bytes per activation / error value
    n_w, n_b = sum(s.n_weights for s in layers), sum(s.n_bias for s in layers)
    widest = max([n_features] + [_values(s.in_shape) for s in layers] + [_values(s.out_shape) for s in layers])
    buf = {"weights": wb * n_w, "biases": 4 * n_b}
    if method == "bc":
        buf["shadow weights (float32)"] = 4 * n_w
    if momentum:
        buf["momentum (int16)" if method in ("sr", "r") else "momentum (float32)"] = \
            (2 if method in ("sr", "r") else 4) * n_w
    if adam:
        buf["adam moments (2 x float32)"] = 8 * n_w + 4
    for i, s in enumerate(layers):
        buf[f"activations[{i}] {s.token()}"] = vb * batch * _values(s.out_shape)
    buf["input batch"] = vb * batch * n_features
    buf["labels"] = batch
    if not is_float:
        buf["accumulator (int32)" if bits <= 8 else "accumulator (int64)"] = (4 if bits <= 8 else 8) * batch * widest
    buf["error ping-pong"] = 2 * vb * batch * widest
    buf["gradient"] = 4 * max(s.fan_in for s in layers if s.n_weights) + 4 * max(s.n_bias for s in layers)
    buf["softmax scratch"] = 4 * n_classes
    if not is_float:
        buf["exponents"] = 4 * (len(layers) + 1)
    buf["shuffle index"] = 2 * n_train
    buf["generator state"] = 4
    return buf


def flash(layers, bits, method, n_train, n_features):
    """Flash bytes: packed weights, biases and the stored training set."""
    if method == "float":
        w = 4 * sum(s.n_weights for s in layers)
    else:
        w = sum(math.ceil(s.n_weights * bits / 8) for s in layers)
    return {"weights (packed)": w, "biases": 4 * sum(s.n_bias for s in layers),
            "training set": n_train * n_features + n_train}


def account(layers, method, bits, batch, n_train, n_features, n_classes, momentum=False, adam=False):
    """The :class:`Cost` of training ``layers`` with ``method`` at ``bits`` bits.

    Momentum adds per weight and step: 6 int ops (sr/r: decay shift, add, saturate,
    second rounding), or 2 fmul + 1 fadd (bc, float). Adam (bc, float) adds
    ADAM_FLOPS per weight and step; its division and square root are counted
    as fmul, which understates them on a core without an FPU.
    """
    mem = memory(layers, method, bits, batch, n_train, n_features, n_classes, momentum, adam)
    macs_fwd = sum(_macs(s) for s in layers)
    macs_back = macs_fwd - _macs(layers[0])
    macs = batch * (2 * macs_fwd + macs_back)
    acts = batch * sum(_values(s.out_shape) for s in layers if s.kind != POOL)
    errs_below = batch * sum(_values(s.in_shape) for s in layers[1:])
    n_w, n_b = sum(s.n_weights for s in layers), sum(s.n_bias for s in layers)
    relus = batch * sum(_values(s.out_shape) for s in layers if s.relu)
    steps = n_train // batch
    if method == "float":
        upd = n_w + n_b
        mom_mul, mom_add = (2 * n_w, n_w) if momentum else (0, 0)
        if adam:
            mom_mul, mom_add = ADAM_FLOPS["fmul"] * n_w, ADAM_FLOPS["fadd"] * n_w
        return Cost(mem, flash(layers, bits, method, n_train, n_features), 0,
                    INT_OPS["softmax"] * batch * layers[-1].out_shape[2],
                    macs + upd + acts + mom_add, macs + upd + mom_mul, steps)
    ops = (INT_OPS["act"] * acts + INT_OPS["err_sr"] * errs_below + INT_OPS["relu"] * relus
           + INT_OPS["softmax"] * batch * layers[-1].out_shape[2]
           + UPDATE_INT_OPS[method] * n_w + UPDATE_INT_OPS["sr" if method == "sr" else "r"] * n_b)
    fadd = (BC_FLOPS["fadd"] + (1 if momentum else 0)) * n_w if method == "bc" else 0
    fmul = (BC_FLOPS["fmul"] + (2 if momentum else 0)) * n_w if method == "bc" else 0
    if adam and method == "bc":
        fadd, fmul = fadd + ADAM_FLOPS["fadd"] * n_w, fmul + ADAM_FLOPS["fmul"] * n_w
    if momentum and method != "bc":
        ops += 6 * n_w
    return Cost(mem, flash(layers, bits, method, n_train, n_features), macs, ops, fadd, fmul, steps)


@dataclass(frozen=True)
class Fit:
    """A :class:`Cost` held against one target."""
    cost: Cost
    target: object

    @property
    def cycles_per_step(self):
        c, cy = self.cost, self.target.cycles
        # every MAC also loads its two int8 operands (one load counted: they pair up)
        return (c.int_macs_per_step * (cy.int_mac + cy.load_store) + c.int_ops_per_step * cy.int_op
                + c.fadd_per_step * cy.fadd + c.fmul_per_step * cy.fmul)

    @property
    def seconds_per_epoch(self):
        return self.cycles_per_step * self.cost.steps_per_epoch / self.target.clock_hz

    @property
    def sram_fits(self):
        return self.cost.total_bytes <= self.target.usable_sram_bytes

    @property
    def time_fits(self):
        return self.seconds_per_epoch <= self.target.budget_seconds_per_epoch

    @property
    def sram_percent(self):
        return 100.0 * self.cost.total_bytes / self.target.sram_bytes

    def memory_report(self):
        return {"buffers": dict(self.cost.buffers), "total_bytes": self.cost.total_bytes,
                "sram_bytes": self.target.sram_bytes, "usable_sram_bytes": self.target.usable_sram_bytes,
                "fits": self.sram_fits, "flash": dict(self.cost.flash),
                "flash_bytes": self.target.flash_bytes}

    def compute_report(self):
        c = self.cost
        return {"int_macs_per_epoch": c.int_macs_per_step * c.steps_per_epoch,
                "int_ops_per_epoch": c.int_ops_per_step * c.steps_per_epoch,
                "float_ops_per_epoch": c.float_ops_per_step * c.steps_per_epoch,
                "cycles_per_epoch": self.cycles_per_step * c.steps_per_epoch,
                "est_seconds_per_epoch": self.seconds_per_epoch,
                "budget_seconds": self.target.budget_seconds_per_epoch, "fits": self.time_fits}
