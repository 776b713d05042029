"""Executed instructions by phase: a :class:`emulate.Trace` summed into class counts per phase.

A phase's tally holds everything executed in its context, libgcc's helpers included;
per helper it also keeps the helper's own share (its callees included) and how often
the phase's code called it. A translation block that runs from one phase's code into
another's (a harness line into an inlined step) is split where the owner changes.
"""
from dataclasses import dataclass, field

from .classify import CLASSES, classify_block, helper_kind, price

# classes that price part of an instruction counted elsewhere: the registers of a LDM/POP, a refill
SURCHARGES = ("registers", "pc_load")
# The runtime's inlined loops, each one part of a phase: where inside a phase the cycles go.
PARTS = {"fx_dense_fwd": "dense", "fx_conv_fwd": "conv", "fx_pool_fwd": "pool", "fx_dense_back": "dense",
         "fx_conv_back": "conv", "fx_pool_back": "pool", "fx_gradient_row": "gradient",
         "fx_gradient_operands": "gradient", "fx_gradient_conv": "gradient", "fx_gradient_rows": "gradient",
         "fx_update_row": "weights", "fx_bc_update_row": "weights", "fx_tensor_shift": "shift",
         "fx_conv_fwd_dsp": "conv", "fx_pool_fwd_dsp": "pool", "fx_pool_back_dsp": "pool",
         "fx_gap_fwd": "gap", "fx_gap_back": "gap"}


@dataclass
class Tally:
    """Executed instructions of one phase, by class; and per libgcc helper it called, the same with
    the helper's own callees included, and the number of calls."""
    classes: dict = field(default_factory=dict)
    helpers: dict = field(default_factory=dict)   # name -> {class: n}
    calls: dict = field(default_factory=dict)     # name -> calls from the phase's code

    @property
    def instructions(self):
        return count_instructions(self.classes)

    def cycles(self, table):
        return price(self.classes, table)

    def helper_instructions(self, kind):
        """Instructions executed inside helpers of one kind ("soft-float" or "integer")."""
        return sum(count_instructions(c) for name, c in self.helpers.items() if helper_kind(name) == kind)


def count_instructions(classes):
    """Instructions in a class tally (the surcharges price parts of instructions counted elsewhere)."""
    return sum(n for c, n in classes.items() if c not in SURCHARGES)


def _add(classes, block, n, fell):
    for cls, k in zip(CLASSES, block.classes):
        if k:
            classes[cls] = classes.get(cls, 0) + k * n
    if block.ends == "conditional" and fell:
        classes["branch"] -= fell
        classes["branch_not_taken"] = classes.get("branch_not_taken", 0) + fell


def _segments(image, md, addr, size):
    """[(label, Block)] of one translation block, split where the owning phase changes."""
    whole = classify_block(md, image.code(addr, size), addr)
    labels = [image.label_at(a) for a in whole.addrs]
    if len(set(labels)) == 1:
        return [(labels[0], whole)]
    cuts = [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]] + [len(labels)]
    out, lo = [], 0
    for hi in cuts:
        a, b = whole.addrs[lo], (whole.addrs[hi] if hi < len(labels) else addr + size)
        out.append((labels[lo], classify_block(md, image.code(a, b - a), a)))
        lo = hi
    return out


def tally(trace, image, md):
    """{phase: :class:`Tally`} from a :class:`emulate.Trace` (every context, the harness included)."""
    out, cache = {}, {}
    for key, n in trace.blocks.items():
        phase, helper = trace.contexts[key >> 48]
        size, addr = (key >> 32) & 0xFFFF, key & 0xFFFFFFFF
        segs = cache.get((addr, size)) or cache.setdefault((addr, size), _segments(image, md, addr, size))
        fell = trace.falls.get(key, 0)
        for i, (label, block) in enumerate(segs):
            own = label if label and label[0] not in "@&" else phase
            t = out.setdefault(own, Tally())
            last = fell if i == len(segs) - 1 else 0
            _add(t.classes, block, n, last)
            if helper and own == phase:
                _add(t.helpers.setdefault(helper, {}), block, n, last)
        if helper and image.symbols.get(helper) == addr:
            t = out[phase]
            t.calls[helper] = t.calls.get(helper, 0) + n
    return out


def by_phase(tallies):
    """{phase: Tally} with each phase's parts ("forward.dense", ...) merged into it."""
    out = {}
    for name, t in tallies.items():
        m = out.setdefault(name.split(".")[0], Tally())
        for cls, n in t.classes.items():
            m.classes[cls] = m.classes.get(cls, 0) + n
        for h, classes in t.helpers.items():
            mh = m.helpers.setdefault(h, {})
            for cls, n in classes.items():
                mh[cls] = mh.get(cls, 0) + n
        for h, n in t.calls.items():
            m.calls[h] = m.calls.get(h, 0) + n
    return out
