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
(6 int ops a weight for sr/r, 2 fmul + 1 fadd for bc and float), Adam, int64
accumulators (``int_mac_wide - int_mac`` a MAC) and 32x32 -> 64 update multiplies
(``mul_wide`` a weight and bias: always for a batch that is not a power of two, whose
step has a 24-bit mantissa), and float's float work (an fadd and an fmul a MAC and an
update). The shuffle runs once per epoch: a step pays ``1 / steps_per_epoch`` of it.

Operation counts, reported beside the cycles, are read off the same units and surcharges,
so they count what the cycles price. A step's counts take its phases; the shuffle (one
unit a sample) enters only the epoch's int ops. A *MAC* is one trip through a MAC unit
(:data:`work.MAC_UNITS`: a dense, input-error or gradient MAC, or a conv tap, which is
one channel's MAC); a *wide MAC* is one of them into an int64 accumulator (the
``wide_mac`` surcharge), an *int MAC* any other. An *int op* is one trip through any
other unit, however many instructions it takes (an activation rounded and stored, a
value scanned for its shift, an error rounded and sent below, a softmax output, a weight
or bias updated, a weight unpacked or repacked, an input byte copied), plus momentum's
6 integer operations a weight (sr, r). *Wide multiplies* are the ``mul_wide``
surcharge. *Float ops* are the floats a unit computes (:data:`work.UNIT_FLOATS`: bc's
update, 2 fmul and 4 fadd-class a weight), the surcharges' fmul and fadd, and one fmul
and one fadd per ``fmac``. ``float`` runs r's loops with its float arithmetic on top,
and is counted so, except that its MACs are float ops (no int MACs) and it has no
int64 sums or wide multiplies.
"""
import math
from dataclasses import dataclass

from ..engine.bounds import plan_accumulators
from .memory import buffers as declared_buffers
from .work import MAC_UNITS, PHASES, STEP_PHASES, UNIT_FLOATS, UPDATE_UNITS, by_phase, dsp_paths, unit_price, work

# Momentum per weight and step: sr/r's int16 velocity takes a decay shift, an add, a saturation and a
# second rounding; bc's and float's float32 velocity 2 fmul and 1 fadd.
MOMENTUM_INT_OPS = 6
MOMENTUM_FLOPS = {"fmul": 2, "fadd": 1}
# Adam per weight and step: moments 5 fmul + 2 fadd, bias corrections 2 fmul, sqrt, add, divide, scale.
ADAM_FLOPS = {"fmul": 10, "fadd": 3}


def _summed(by_phase_counts, phases):
    """{key: count} over ``phases`` of a {phase: {key: count}} table."""
    out = {}
    for phase in phases:
        for key, n in by_phase_counts.get(phase, {}).items():
            out[key] = out.get(key, 0) + n
    return out


def _total(counts, keys):
    return sum(counts.get(k, 0) for k in keys)


@dataclass(frozen=True)
class Cost:
    """Bytes, work and operations of one run configuration, independent of any chip (a DSP core's
    ``work`` names some units apart, with the same counts).

    ``buffers`` maps each SRAM buffer's name (its symbol suffix in the C runtime) to
    bytes, ``labels`` the same names to what a table shows. ``work`` is the step's
    {part: {unit: count}} (:func:`work.work`), ``extra`` its {phase: {surcharge: count}},
    priced at the per-operation ``[cycles]``. The operation counts (int) are derived
    from the two, as the module docstring defines them.
    """
    buffers: dict
    flash: dict
    steps_per_epoch: int
    work: dict
    extra: dict
    labels: dict = None
    frozen_layers: int = 0      # layers under the lowest that trains (forward only, weights in flash)
    full_bytes: int = None      # with frozen layers: the SRAM training every layer would take

    @property
    def total_bytes(self):
        return sum(self.buffers.values())

    @property
    def sram_saved_bytes(self):
        """SRAM that freezing the trunk saves against training every layer (0 when every layer trains)."""
        return self.full_bytes - self.total_bytes if self.frozen_layers else 0

    @property
    def _step_units(self):
        return _summed(by_phase(self.work), STEP_PHASES)

    @property
    def _step_extra(self):
        return _summed(self.extra, STEP_PHASES)

    @property
    def wide_macs_per_step(self):
        return self._step_extra.get("wide_mac", 0)

    @property
    def int_macs_per_step(self):
        if self._step_extra.get("fmac"):
            return 0  # float: its MACs are float multiply-adds, counted as float ops
        return _total(self._step_units, MAC_UNITS) - self.wide_macs_per_step

    @property
    def wide_muls_per_step(self):
        return self._step_extra.get("mul_wide", 0)

    @property
    def int_ops_per_step(self):
        units = self._step_units
        return sum(units.values()) - _total(units, MAC_UNITS) + self._step_extra.get("int_op", 0)

    @property
    def int_ops_per_epoch(self):
        return self.int_ops_per_step * self.steps_per_epoch + sum(self.work.get("shuffle", {}).values())

    def _floats(self, kind):
        units, extra = self._step_units, self._step_extra
        per_unit = sum(n * UNIT_FLOATS.get(u, {}).get(kind, 0) for u, n in units.items())
        return per_unit + extra.get(kind, 0) + extra.get("fmac", 0)

    @property
    def fadd_per_step(self):
        return self._floats("fadd")

    @property
    def fmul_per_step(self):
        return self._floats("fmul")

    @property
    def float_ops_per_step(self):
        return self.fadd_per_step + self.fmul_per_step


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


def _charge(table, key, n):
    table[key] = table.get(key, 0) + n


def _surcharges(parts, method, momentum, adam, plan):
    """{phase: {surcharge: count}}: the work the fitted units leave out (see the module docstring), counted
    on :func:`work.work`'s ``parts``, so that a MAC or a weight is one number in both models."""
    phases = by_phase(parts)
    macs = {p: _total(phases[p], MAC_UNITS) for p in PHASES}
    n_w, n_b = _total(phases["update"], UPDATE_UNITS), phases["update"].get("bias", 0)
    ext = {p: {} for p in PHASES}
    upd = ext["update"]
    if momentum and method in ("bc", "float"):
        for op, n in MOMENTUM_FLOPS.items():
            _charge(upd, op, n * n_w)
    elif momentum:
        _charge(upd, "int_op", MOMENTUM_INT_OPS * n_w)
    if adam and method in ("bc", "float"):
        for op, n in ADAM_FLOPS.items():
            _charge(upd, op, n * n_w)
    if method != "float":  # integer sums only: float32 has no accumulator to widen
        ext["forward"]["wide_mac"] = macs["forward"] * plan.acc_wide
        ext["backward"]["wide_mac"] = macs["backward"] * plan.acc_wide
        upd["wide_mac"] = macs["update"] * plan.grad_wide
        upd["mul_wide"] = ((n_w if method != "bc" else 0) + n_b) * plan.update_wide
    else:  # every MAC and update in float32 on top of the same loops
        ext["forward"]["fmac"] = macs["forward"]
        ext["backward"]["fmac"] = macs["backward"]
        upd["fmac"] = macs["update"] + n_w + n_b
    return {p: {k: v for k, v in d.items() if v} for p, d in ext.items()}


def account(layers, method, bits, batch, n_train, n_features, n_classes, *, momentum=False, step_m=1, adam=False,
            low=0, dsp=False):
    """The :class:`Cost` of training ``layers`` with ``method`` at ``bits`` bits; the layers under ``low`` are
    frozen (their weights in flash, their forward pass alone); ``dsp``: the core has the DSP extension,
    so the runtime's DSP paths are counted under their own units (the same counts, other prices).

    ``step_m`` is the integer mantissa of the per-sample step ``alpha / batch``.
    Momentum adds per weight and step MOMENTUM_INT_OPS (sr/r) or MOMENTUM_FLOPS (bc,
    float). Adam (bc, float; the simulator's only, the C runtime has none) adds
    ADAM_FLOPS per weight and step; its division and square root are counted as fmul,
    which understates them on a core without an FPU.
    """
    plan = plan_accumulators(layers, bits, batch, step_m)
    declared = declared_buffers(layers, method, bits, batch, n_train, n_features, n_classes, momentum, plan, adam,
                                low)
    paths = dsp_paths(dsp and method != "float", bits, plan.acc_wide)  # float has no C runtime
    parts = work(layers, method, bits, batch, n_train, n_features, n_classes, low, paths)
    full = sum(b.bytes for b in declared_buffers(layers, method, bits, batch, n_train, n_features, n_classes,
                                                 momentum, plan, adam)) if low else None
    return Cost(buffers={b.name: b.bytes for b in declared}, flash=flash(layers, bits, method, n_train, n_features),
                steps_per_epoch=n_train // batch, work=parts, extra=_surcharges(parts, method, momentum, adam, plan),
                labels={b.name: b.label for b in declared}, frozen_layers=low, full_bytes=full)


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
                "flash_bytes": self.target.flash_bytes, "frozen_layers": self.cost.frozen_layers,
                "sram_saved_bytes": self.cost.sram_saved_bytes}

    def compute_report(self):
        c = self.cost
        return {"int_macs_per_epoch": c.int_macs_per_step * c.steps_per_epoch,
                "wide_macs_per_epoch": c.wide_macs_per_step * c.steps_per_epoch,
                "wide_muls_per_epoch": c.wide_muls_per_step * c.steps_per_epoch,
                "int_ops_per_epoch": c.int_ops_per_epoch,
                "float_ops_per_epoch": c.float_ops_per_step * c.steps_per_epoch,
                "cycles_per_epoch": self.cycles_per_step * c.steps_per_epoch,
                "cycles_per_phase": self.phase_cycles,
                "est_seconds_per_epoch": self.seconds_per_epoch,
                "budget_seconds": self.target.budget_seconds_per_epoch, "fits": self.time_fits}
