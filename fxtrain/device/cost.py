"""What a training run costs on the device: bytes per buffer, operations, cycles per phase.

Every count follows from the arch, the batch, the bit width and the data size.
The SRAM buffers are listed, with their formulas, in :mod:`fxtrain.device.memory`;
the C training runtime declares exactly those buffers, and ``fxtrain verify
--train-step`` holds the linked ELF's symbol sizes to them.

Flash: weights packed at b bits (``ceil(W_l * b / 8)`` per layer), biases, and the
training set (N * F + N bytes) that on-device training reads every epoch.

Cycles: the step's work in units per phase (:mod:`fxtrain.device.work`: dense MACs,
conv taps, activations, softmax outputs, weight updates, unpacking a weight from a
sub-byte slot, ...) at the profile's price per unit, plus surcharges at its
per-operation ``[cycles]`` prices for what the fitted units do not cover: momentum
(6 int ops a weight for sr/r, 2 fmul + 1 fadd for bc), Adam, int64
accumulators (``int_mac_wide - int_mac`` a MAC) and 32x32 -> 64 update multiplies
(``mul_wide`` a weight and bias: always for a batch that is not a power of two, whose
step has a 24-bit mantissa), and float's float work (an fadd and an fmul a MAC and an
update). The shuffle runs once per epoch: a step pays ``1 / steps_per_epoch`` of it.

Operation counts, reported beside the cycles. MACs: forward sum_l B*M_l, weight
gradient the same, input error the same without layer 0 (M_l = W_l for dense, W_l *
out_h * out_w for conv). Other integer ops per value: 4 per forward activation, 9 per
stochastically rounded error, 2 per ReLU mask, 12 per sr weight update, 5 per r
update, 2 per bc update, 30 per softmax output, plus unpacking and repacking. bc float
ops per weight per step: 2 fmul and 4 fadd-class (sub, 2 compares, add, floor).
``float`` does every MAC as 1 fmul + 1 fadd and every update as 1 fmul + 1 fadd. A
MAC into an int64 accumulator (SMLAL) is counted apart from an int32 one.
"""
import math
from dataclasses import dataclass

from ..engine.bounds import plan_accumulators
from ..engine.network import CONV, POOL
from ..engine.numbers import storage_bits
from .memory import buffers as declared_buffers
from .work import PHASES, STEP_PHASES, by_phase, unit_price, work

INT_OPS = {"act": 4, "err_sr": 9, "relu": 2, "softmax": 30, "unpack": 3, "repack": 4}
UPDATE_INT_OPS = {"sr": 12, "r": 5, "bc": 2, "float": 0}
BC_FLOPS = {"fmul": 2, "fadd": 4}
# Adam per weight and step: moments 5 fmul + 2 fadd, bias corrections 2 fmul, sqrt, add, divide, scale.
ADAM_FLOPS = {"fmul": 10, "fadd": 3}


@dataclass(frozen=True)
class Cost:
    """Bytes and operations of one run configuration, independent of any chip.

    ``buffers`` maps each SRAM buffer's name (its symbol suffix in the C runtime) to
    bytes, ``labels`` the same names to what a table shows.
    """
    buffers: dict
    flash: dict
    int_macs_per_step: int
    int_ops_per_step: int
    fadd_per_step: int
    fmul_per_step: int
    steps_per_epoch: int
    wide_macs_per_step: int = 0
    wide_muls_per_step: int = 0
    labels: dict = None
    work: dict = None    # {part: {unit: count}} (fxtrain.device.work)
    extra: dict = None   # {phase: {surcharge: count}}, priced at the per-operation [cycles]

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


def memory(layers, method, bits, batch, n_train, n_features, n_classes, momentum=False, plan=None, adam=False):
    """Ordered {buffer name: bytes} for the SRAM a run declares (``plan``: engine.bounds.AccumulatorPlan)."""
    plan = plan or plan_accumulators(layers, bits, batch, 1)
    return {b.name: b.bytes for b in declared_buffers(layers, method, bits, batch, n_train, n_features, n_classes,
                                                      momentum, plan, adam)}


def flash(layers, bits, method, n_train, n_features):
    """Flash bytes: packed weights, biases and the stored training set."""
    if method == "float":
        w = 4 * sum(s.n_weights for s in layers)
    else:
        w = sum(math.ceil(s.n_weights * bits / 8) for s in layers)
    return {"weights (packed)": w, "biases": 4 * sum(s.n_bias for s in layers),
            "training set": n_train * n_features + n_train}


def _surcharges(layers, method, batch, momentum, adam, plan):
    """{phase: {surcharge: count}}: the work the fitted units leave out (see the module docstring)."""
    macs_fwd = sum(_macs(s) for s in layers)
    macs_back = macs_fwd - _macs(layers[0])
    n_w, n_b = sum(s.n_weights for s in layers), sum(s.n_bias for s in layers)
    ext = {p: {} for p in PHASES}
    upd = ext["update"]
    if momentum:
        if method in ("bc", "float"):
            upd["fmul"], upd["fadd"] = 2 * n_w, n_w
        else:
            upd["int_op"] = upd.get("int_op", 0) + 6 * n_w
    if adam and method in ("bc", "float"):
        upd["fmul"] = upd.get("fmul", 0) + ADAM_FLOPS["fmul"] * n_w
        upd["fadd"] = upd.get("fadd", 0) + ADAM_FLOPS["fadd"] * n_w
    ext["forward"]["wide_mac"] = batch * macs_fwd * plan.acc_wide
    ext["backward"]["wide_mac"] = batch * macs_back * plan.acc_wide
    upd["wide_mac"] = batch * macs_fwd * plan.grad_wide
    upd["mul_wide"] = ((n_w if method != "bc" else 0) + n_b) * plan.update_wide
    if method == "float":  # every MAC and update in float32 on top of the same loops
        ext["forward"]["fmac"] = batch * macs_fwd
        ext["backward"]["fmac"] = batch * macs_back
        upd["fmac"] = batch * macs_fwd + n_w + n_b
    return {p: {k: v for k, v in d.items() if v} for p, d in ext.items()}


def account(layers, method, bits, batch, n_train, n_features, n_classes, momentum=False, step_m=1, adam=False):
    """The :class:`Cost` of training ``layers`` with ``method`` at ``bits`` bits.

    ``step_m`` is the integer mantissa of the per-sample step ``alpha / batch``.
    Momentum adds per weight and step: 6 int ops (sr/r: decay shift, add, saturate,
    second rounding), or 2 fmul + 1 fadd (bc, float). Adam (bc, float; the
    simulator's only, the C runtime has none) adds ADAM_FLOPS per weight and step;
    its division and square root are counted as fmul, which understates them on a
    core without an FPU.
    """
    plan = plan_accumulators(layers, bits, batch, step_m)
    declared = declared_buffers(layers, method, bits, batch, n_train, n_features, n_classes, momentum, plan, adam)
    mem, labels = {b.name: b.bytes for b in declared}, {b.name: b.label for b in declared}
    steps, fl = n_train // batch, flash(layers, bits, method, n_train, n_features)
    units = work(layers, method, bits, batch, n_train, n_features, n_classes)
    extra = _surcharges(layers, method, batch, momentum, adam, plan)
    macs_fwd = sum(_macs(s) for s in layers)
    macs_back = macs_fwd - _macs(layers[0])
    macs = batch * (2 * macs_fwd + macs_back)
    acts = batch * sum(_values(s.out_shape) for s in layers if s.kind != POOL)
    errs_below = batch * sum(_values(s.in_shape) for s in layers[1:])
    n_w, n_b = sum(s.n_weights for s in layers), sum(s.n_bias for s in layers)
    relus = batch * sum(_values(s.out_shape) for s in layers if s.relu)
    if method == "float":
        upd = n_w + n_b
        mom_mul, mom_add = (2 * n_w, n_w) if momentum else (0, 0)
        if adam:
            mom_mul, mom_add = ADAM_FLOPS["fmul"] * n_w, ADAM_FLOPS["fadd"] * n_w
        return Cost(mem, fl, 0, INT_OPS["softmax"] * batch * layers[-1].out_shape[2],
                    macs + upd + acts + mom_add, macs + upd + mom_mul, steps, labels=labels, work=units, extra=extra)
    ops = (INT_OPS["act"] * acts + INT_OPS["err_sr"] * errs_below + INT_OPS["relu"] * relus
           + INT_OPS["softmax"] * batch * layers[-1].out_shape[2]
           + UPDATE_INT_OPS[method] * n_w + UPDATE_INT_OPS["sr" if method == "sr" else "r"] * n_b)
    fadd = (BC_FLOPS["fadd"] + (1 if momentum else 0)) * n_w if method == "bc" else 0
    fmul = (BC_FLOPS["fmul"] + (2 if momentum else 0)) * n_w if method == "bc" else 0
    if adam and method == "bc":
        fadd, fmul = fadd + ADAM_FLOPS["fadd"] * n_w, fmul + ADAM_FLOPS["fmul"] * n_w
    if momentum and method != "bc":
        ops += 6 * n_w
    if storage_bits(bits) < 8:  # sub-byte slots: unpack at every weight read, repack at every write
        ops += INT_OPS["unpack"] * (batch * (macs_fwd + macs_back) + n_w) + INT_OPS["repack"] * n_w
    wide = batch * ((macs_fwd + macs_back) * plan.acc_wide + macs_fwd * plan.grad_wide)
    wide_muls = ((n_w if method != "bc" else 0) + n_b) * plan.update_wide
    return Cost(mem, fl, macs - wide, ops, fadd, fmul, steps, wide, wide_muls, labels, units, extra)


def surcharge_price(cycles, key):
    """Cycles of one surcharge: an op's price, or for "wide_mac" what SMLAL costs over a MAC, for "fmac" a
    float MAC."""
    if key == "wide_mac":
        return max(0, cycles.int_mac_wide - cycles.int_mac)
    if key == "fmac":
        return cycles.fadd + cycles.fmul
    return getattr(cycles, key)


@dataclass(frozen=True)
class Fit:
    """A :class:`Cost` held against one target."""
    cost: Cost
    target: object

    @property
    def phase_cycles(self):
        """{phase: cycles}: a step's phases, and ``"shuffle"`` once per epoch (see :mod:`work`)."""
        t, c, out = self.target, self.cost, {}
        for phase, units in by_phase(c.work).items():
            cyc = sum(n * unit_price(t, u) for u, n in units.items())
            out[phase] = cyc + sum(n * surcharge_price(t.cycles, k) for k, n in (c.extra or {}).get(phase, {}).items())
        return out

    @property
    def cycles_per_step(self):
        """A step's phases plus its share of the epoch's shuffle."""
        ph = self.phase_cycles
        return sum(ph[p] for p in STEP_PHASES) + ph["shuffle"] / max(self.cost.steps_per_epoch, 1)

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
                "wide_macs_per_epoch": c.wide_macs_per_step * c.steps_per_epoch,
                "wide_muls_per_epoch": c.wide_muls_per_step * c.steps_per_epoch,
                "int_ops_per_epoch": c.int_ops_per_step * c.steps_per_epoch,
                "float_ops_per_epoch": c.float_ops_per_step * c.steps_per_epoch,
                "cycles_per_epoch": self.cycles_per_step * c.steps_per_epoch,
                "cycles_per_phase": self.phase_cycles,
                "est_seconds_per_epoch": self.seconds_per_epoch,
                "budget_seconds": self.target.budget_seconds_per_epoch, "fits": self.time_fits}
