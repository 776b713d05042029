"""A linked Cortex-M ELF as measured cost needs it: segments, functions, and which phase owns each address.

A phase is a root: a function named in ``roots`` (``fx_forward`` ...), or the code
the compiler inlined from one (``fx_train_epoch_step`` inlined into ``main``),
found in the DWARF of a ``-g`` build (``-g`` leaves the code unchanged). A function
a root reaches through direct calls (a libgcc helper, memcpy, a static function
kept out of line) belongs to no phase of its own: it runs in the context of
whichever phase called it. Everything else is the harness (``main``, printf).
"""
import bisect
from dataclasses import dataclass

from .classify import helper_kind

HARNESS = "harness"


@dataclass
class Image:
    """A linked ELF: loadable segments, functions sorted by address, and the phase of each root range."""
    segments: list          # (load address, run address, bytes, memory size, writable)
    starts: list            # function start addresses, sorted
    functions: list         # (start, end, name), in the same order
    symbols: dict           # name -> address (Thumb bit cleared)
    roots: list = None      # (start, end, label), smallest first
    inherit: frozenset = frozenset()  # starts of functions that run in their caller's context
    subs: list = ()         # (start, end, part): inlined code that is one part of a phase
    sub_names: dict = None  # function base name -> part, for a part the compiler kept out of line

    def function_at(self, addr):
        """(start, end, name) of the function holding ``addr``, or None."""
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.functions[i][1]:
            return self.functions[i]
        return None

    def code(self, addr, size):
        for load, _, data, _, _ in self.segments:
            if load <= addr and addr + size <= load + len(data):
                return data[addr - load:addr - load + size]
        raise ValueError(f"no code at {addr:#x}")

    def label_at(self, addr):
        """Who owns ``addr``: a phase ("forward"), or one part of it ("forward.dense"); "&part" in a
        part kept out of line; "@name" in a libgcc or libm helper; None in other code that runs in
        its caller's context (memcpy); else "harness"."""
        for lo, hi, label in self.roots or ():
            if lo <= addr < hi:
                part = next((p for a, b, p in self.subs if a <= addr < b), None) if label != HARNESS else None
                return f"{label}.{part}" if part else label
        f = self.function_at(addr)
        if f is None or f[0] not in self.inherit:
            return HARNESS if f else None
        base = f[2].split(".")[0]
        if base in (self.sub_names or {}):
            return "&" + self.sub_names[base]
        return "@" + f[2] if helper_kind(f[2]) or f[2].startswith("__") else None


def load_image(path):
    """Read an ELF's PT_LOAD segments and its function symbols (pyelftools)."""
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        segs = [(s["p_paddr"], s["p_vaddr"], s.data(), s["p_memsz"], bool(s["p_flags"] & 2))
                for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        starts, symbols = {}, {}
        for sym in elf.get_section_by_name(".symtab").iter_symbols():
            if sym["st_info"]["type"] == "STT_FUNC" and sym.name:
                start = sym["st_value"] & ~1
                symbols[sym.name] = start
                # of two names for one routine, keep the one with a size, then the EABI one
                old = starts.get(start)
                if old is None or (sym["st_size"], sym.name.startswith("__aeabi")) > \
                        (old[0], old[1].startswith("__aeabi")):
                    starts[start] = (sym["st_size"], sym.name)
    # libgcc's assembly routines carry no size: they end where the next function starts
    order = sorted(starts)
    ordered = [(a, a + (starts[a][0] or (order[i + 1] - a if i + 1 < len(order) else 2)), starts[a][1])
               for i, a in enumerate(order)]
    return Image(segs, [f[0] for f in ordered], ordered, symbols)


def _origin_name(die):
    while "DW_AT_abstract_origin" in die.attributes:
        die = die.get_DIE_from_attribute("DW_AT_abstract_origin")
    name = die.attributes.get("DW_AT_name")
    return name.value.decode() if name else None


def _die_ranges(die, cu, range_lists):
    a = die.attributes
    if "DW_AT_low_pc" in a:
        lo, hi = a["DW_AT_low_pc"].value, a["DW_AT_high_pc"]
        return [(lo, lo + hi.value if hi.form != "DW_FORM_addr" else hi.value)]
    if "DW_AT_ranges" not in a or a["DW_AT_ranges"].form != "DW_FORM_sec_offset":
        return []
    top = cu.get_top_DIE().attributes
    base, out = top["DW_AT_low_pc"].value if "DW_AT_low_pc" in top else 0, []
    for entry in range_lists.get_range_list_at_offset(a["DW_AT_ranges"].value, cu=cu):
        if hasattr(entry, "base_address"):
            base = entry.base_address
        elif entry.is_absolute:
            out.append((entry.begin_offset, entry.end_offset))
        else:
            out.append((base + entry.begin_offset, base + entry.end_offset))
    return [r for r in out if r[1] > r[0]]


def inlined_ranges(path, names, unit):
    """[(start, end, name)] where a function in ``names`` was inlined, from the DWARF of compile unit ``unit``."""
    from elftools.elf.elffile import ELFFile
    out = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            return out
        dwarf = elf.get_dwarf_info()
        range_lists = dwarf.range_lists()
        for cu in dwarf.iter_CUs():
            name = cu.get_top_DIE().attributes.get("DW_AT_name")
            if not name or not name.value.decode().endswith(unit):
                continue
            for die in cu.iter_DIEs():
                if die.tag == "DW_TAG_inlined_subroutine" and (fn := _origin_name(die)) in names:
                    out += [(lo, hi, fn) for lo, hi in _die_ranges(die, cu, range_lists)]
    return out


def _insns(md, code, start):
    """Every instruction capstone can decode in ``code``, stepping over literal pools (which stop it)."""
    off = 0
    while off < len(code):
        for insn in md.disasm(code[off:], start + off):
            off = insn.address + insn.size - start
            yield insn
        if off < len(code):
            off += 2  # an undecodable halfword: data in the code


def assign_phases(image, md, roots, inlined=(), parts=None):
    """Give ``image`` its root ranges, the parts of its phases, and the functions that inherit a context.

    ``roots`` maps a function's base name (before any ``.constprop``/``.part``
    suffix) to its phase, ``parts`` an inlined function's name to the part of a
    phase it is (``{"fx_dense_fwd": "dense"}``); ``inlined`` lists (start, end,
    name) from :func:`inlined_ranges`, for the names of both.
    """
    from capstone.arm import ARM_OP_IMM
    parts = parts or {}
    ranges = [(s, e, roots[n.split(".")[0]]) for s, e, n in image.functions if n.split(".")[0] in roots]
    ranges += [(s, e, roots[n]) for s, e, n in inlined if n in roots]
    image.subs = sorted(((s, e, parts[n]) for s, e, n in inlined if n in parts), key=lambda r: r[1] - r[0])
    image.sub_names = parts
    image.roots = sorted(ranges, key=lambda r: r[1] - r[0])
    inherit, todo = set(), [(s, e) for s, e, _ in ranges]
    while todo:
        start, end = todo.pop()
        own = image.function_at(start)
        for insn in _insns(md, image.code(start, end - start), start):
            if insn.insn_name() in ("bl", "b", "blx") and insn.operands and insn.operands[0].type == ARM_OP_IMM:
                callee = image.function_at(insn.operands[0].imm)
                if callee and callee != own and callee[0] not in inherit and image.label_at(callee[0]) == HARNESS:
                    inherit.add(callee[0])
                    todo.append(callee[:2])
    image.inherit = frozenset(inherit)
    return image
