"""Run a Cortex-M ELF under the Unicorn engine and count how often each basic block executes.

The ELF's PT_LOAD segments go where the linker put them (the load addresses: the
startup code copies ``.data`` to RAM itself), RAM is mapped up to the initial stack
pointer, and the system control space 0xE000E000-0xE000EFFF is mapped too, because
the hard-float startup enables the FPU by writing CPACR there. Output comes back
through semihosting (BKPT 0xAB), caught with an interrupt hook.

Counting is per block: a Python hook per instruction costs about 1.5 us, one per
block about 6x less, and a block's instructions are classified once
(:mod:`classify`). The hook also keeps the *context* (the phase whose code last
ran, see :mod:`elfimage`) and whether a conditional branch fell through.
"""
import struct
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import TargetError, ToolchainError
from .elfimage import HARNESS

PAGE = 0x1000
SCS = (0xE000E000, 0x1000)
BKPT_SEMIHOST = b"\xab\xbe"  # Thumb BKPT 0xAB
# newlib's exit reason for a normal exit (ADP_Stopped_ApplicationExit)
APP_EXIT = 0x20026
_CORES = {"cortex-m0plus": "M0", "cortex-m0": "M0", "cortex-m3": "M3", "cortex-m4": "M4", "cortex-m7": "M7"}


def core_of(target):
    """The Unicorn core ("M0", "M3", "M4", "M7") for a profile, from its ``-mcpu=``; TargetError otherwise.

    Unicorn has no Cortex-M0+ model: the M0 has the same ARMv6-M instruction set.
    """
    mcpu = next((f.split("=", 1)[1] for f in target.cflags if f.startswith("-mcpu=")), None)
    if not target.isa.startswith("ARM"):
        raise TargetError(f"{target.name} is {target.isa}, not a Cortex-M core: its instructions cannot be "
                          "measured (fxtrain measure runs ARM Cortex-M0+, M3, M4 and M7 code under Unicorn)")
    if mcpu is None:
        raise TargetError(f"profile {target.name} has no -mcpu= in its cflags, so the core to compile for and "
                          "emulate is unknown; add e.g. cflags = [\"-mcpu=cortex-m4\", \"-mthumb\"]")
    if mcpu not in _CORES:
        raise TargetError(f"profile {target.name} compiles for -mcpu={mcpu}, which fxtrain measure cannot run: "
                          "it emulates the Cortex-M0+, M0, M3, M4 and M7 under Unicorn")
    return _CORES[mcpu]


def cpu_model(target):
    """Unicorn's CPU model constant for a profile (see :func:`core_of`)."""
    from unicorn import arm_const
    return getattr(arm_const, f"UC_CPU_ARM_CORTEX_{core_of(target)}")


@dataclass
class Trace:
    """What one run executed: block counts and fall-throughs keyed ``context << 48 | size << 32 | address``.

    ``contexts[context]`` is a (phase, helper or None) pair.
    """
    blocks: dict
    falls: dict
    stdout: str
    exit_ok: bool
    contexts: tuple
    per_instruction: dict = field(default_factory=dict)


class _Semihost:
    """The semihosting calls newlib's rdimon makes: open, istty, write, read, exit and kin."""

    def __init__(self, uc):
        self.uc, self.out, self.exit_ok, self.error = uc, bytearray(), None, None

    def word(self, addr):
        return struct.unpack("<I", self.uc.mem_read(addr, 4))[0]

    def __call__(self, uc, intno, _):
        from unicorn.arm_const import UC_ARM_REG_PC, UC_ARM_REG_R0, UC_ARM_REG_R1
        pc = uc.reg_read(UC_ARM_REG_PC)
        if bytes(uc.mem_read(pc, 2)) != BKPT_SEMIHOST:
            self.error = f"the program faulted (exception {intno}) at {pc:#x}"
            uc.emu_stop()
            return
        op, arg = uc.reg_read(UC_ARM_REG_R0), uc.reg_read(UC_ARM_REG_R1)
        ret = self.call(op, arg)
        if self.exit_ok is not None or self.error:
            uc.emu_stop()
            return
        uc.reg_write(UC_ARM_REG_R0, ret & 0xFFFFFFFF)
        uc.reg_write(UC_ARM_REG_PC, (pc + 2) | 1)

    def call(self, op, arg):
        if op == 0x01:  # SYS_OPEN: only the console (":tt") exists
            name = bytes(self.uc.mem_read(self.word(arg), self.word(arg + 8)))
            return 1 if name == b":tt" else -1
        if op in (0x05, 0x06):  # SYS_WRITE keeps the bytes; SYS_READ reads nothing (end of file)
            buf, n = self.word(arg + 4), self.word(arg + 8)
            if op == 0x05:
                self.out += self.uc.mem_read(buf, n)
                return 0
            return n
        if op == 0x03:  # SYS_WRITEC
            self.out += self.uc.mem_read(arg, 1)
        elif op == 0x04:  # SYS_WRITE0
            while (c := self.uc.mem_read(arg, 1)) != b"\0":
                self.out += c
                arg += 1
        elif op in (0x18, 0x20):  # SYS_EXIT, SYS_EXIT_EXTENDED
            reason = arg if op == 0x18 else self.word(arg)
            self.exit_ok = reason == APP_EXIT and (op == 0x18 or self.word(arg + 4) == 0)
        elif op == 0x16:  # SYS_HEAPINFO: zeros let newlib keep its linker-script heap
            for i in range(4):
                self.uc.mem_write(self.word(arg) + 4 * i, b"\0\0\0\0")
        elif op == 0x09:  # SYS_ISTTY
            return 1
        elif op not in (0x02, 0x0A, 0x0C, 0x10, 0x11, 0x13):  # close, seek, flen, clock, time, errno
            self.error = f"unsupported semihosting call {op:#x}"
        return 0


def _map(uc, image):
    from unicorn import UC_PROT_ALL
    spans = [(load, load + len(data)) for load, _, data, _, _ in image.segments]
    sp, reset = struct.unpack("<II", image.code(0, 8))
    ram = min((run for _, run, _, _, w in image.segments if w), default=sp - PAGE)
    spans += [(ram, sp), (SCS[0], SCS[0] + SCS[1])]
    lo_hi = sorted((s // PAGE * PAGE, -(-e // PAGE) * PAGE) for s, e in spans)
    merged = [list(lo_hi[0])]
    for s, e in lo_hi[1:]:
        if s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    for s, e in merged:
        uc.mem_map(s, e - s, UC_PROT_ALL)
    for load, _, data, _, _ in image.segments:
        uc.mem_write(load, data)
    return sp, reset


class _Contexts:
    """Contexts (phase, helper) by number: the phase whose code runs, and the libgcc helper it called.

    A block's label moves the context: a phase's code sets (phase, None), a helper
    ("@name") keeps the phase and, called from the phase's own code, names itself
    (so the helper's callees count as that call's), a part of a phase kept out of
    line ("&part") names that part, and other shared code (None: memcpy) keeps the
    phase alone.
    """

    def __init__(self):
        self.items, self.index, self.labels, self.moves = [], {}, {}, {}

    def id(self, ctx):
        if ctx not in self.index:
            self.index[ctx] = len(self.items)
            self.items.append(ctx)
        return self.index[ctx]

    def label_id(self, label):
        return self.labels.setdefault(label, len(self.labels))

    def move(self, c, label_id, label):
        key = c * 4096 + label_id
        m = self.moves.get(key)
        if m is None:
            phase, helper = self.items[c]
            if label is None or label.startswith("&"):  # shared code, or a part kept out of line
                new = (phase if label is None else phase.split(".")[0] + "." + label[1:], None)
            elif label.startswith("@"):
                new = (phase, helper or label[1:])
            else:
                new = (label, None)
            m = self.moves[key] = self.id(new)
        return m


def _block_hook(image, ctxs, blocks, falls):
    """The block hook: count (context, address, size) and the fall-throughs of the previous block.

    The context moves with the label of a block's first instruction, and after the
    block with its last one's (a block may run from a harness line into an inlined
    phase). This runs once per executed block, so it is written for speed: one
    dictionary look-up per move, none when a block's two labels agree.
    """
    ends, moves = {}, ctxs.moves
    ctx, prev_end, prev_key = ctxs.id((HARNESS, None)), -1, None

    def label(a):
        lab = image.label_at(a)
        return ctxs.label_id(lab), lab

    def hook(uc, addr, size, _):
        nonlocal ctx, prev_end, prev_key
        key = (size << 32) | addr
        e = ends.get(key)
        if e is None:
            first, last = label(addr), label(addr + size - 1)
            e = ends[key] = (first[0], first[1], -1 if first == last else last[0], last[1])
        c = moves.get(ctx * 4096 + e[0])
        if c is None:
            c = ctxs.move(ctx, e[0], e[1])
        k = key | (c << 48)
        blocks[k] += 1
        if addr == prev_end:
            falls[prev_key] += 1
        if e[2] >= 0:
            c = ctxs.move(c, e[2], e[3])
        ctx, prev_end, prev_key = c, addr + size, k
    return hook


def _stopped(image, target, pc, exc):
    """One line on why Unicorn stopped; a double-precision FPU instruction gets its own explanation."""
    from .classify import disassembler
    f = image.function_at(pc)
    where = f"{pc:#x}" + (f" in {f[2]}" if f else "")
    insn = next(disassembler().disasm(image.code(pc, 4), pc), None)
    if insn and insn.mnemonic.startswith("v") and (".f64" in insn.mnemonic or " d" in f" {insn.op_str}"):
        return (f"Unicorn's Cortex-M models have no double-precision FPU, and the {target.name} build "
                f"(-mfpu with double precision) runs '{insn.mnemonic} {insn.op_str}' at {where}: it cannot be "
                "measured (BinaryConnect's update uses double for its step; sr and r use no float)")
    return f"Unicorn stopped the {target.name} program at {where}: {exc}"


def run_elf(image, target, per_instruction=False, timeout_s=900):
    """Run ``image`` to its semihosting exit under Unicorn as ``target``'s core; returns a :class:`Trace`.

    ``image`` is an :class:`elfimage.Image` with its phases assigned. With
    ``per_instruction``, a per-instruction hook also counts every executed address,
    to check the block method against (it skips an IT block's instruction whose
    condition failed, which the block count keeps: the core spends its issue slot).
    """
    from unicorn import UC_ARCH_ARM, UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INTR, UC_MODE_MCLASS, UC_MODE_THUMB, \
        Uc, UcError
    from unicorn.arm_const import UC_ARM_REG_PC, UC_ARM_REG_SP
    uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(cpu_model(target))
    sp, reset = _map(uc, image)
    uc.reg_write(UC_ARM_REG_SP, sp)
    semi, blocks, falls, per_insn, ctxs = _Semihost(uc), defaultdict(int), defaultdict(int), {}, _Contexts()
    uc.hook_add(UC_HOOK_INTR, semi)
    uc.hook_add(UC_HOOK_BLOCK, _block_hook(image, ctxs, blocks, falls))
    if per_instruction:
        uc.hook_add(UC_HOOK_CODE, lambda u, a, s, _: per_insn.__setitem__(a, per_insn.get(a, 0) + 1))
    try:
        uc.emu_start(reset | 1, 0xFFFFFFFF, timeout=int(timeout_s * 1e6))
    except UcError as exc:
        raise ToolchainError(_stopped(image, target, uc.reg_read(UC_ARM_REG_PC), exc)) from None
    if semi.error or semi.exit_ok is None:
        raise ToolchainError(f"the {target.name} program under Unicorn "
                             + (semi.error or f"did not exit within {timeout_s} s"))
    out = semi.out.decode("utf-8", "replace")
    return Trace(dict(blocks), dict(falls), out, semi.exit_ok, tuple(ctxs.items), per_insn)
