"""Instruction classes of Thumb code, for measured cost: what each executed basic block is made of.

A basic block is disassembled once with capstone and reduced to a count per
instruction class, so that counting how often each block runs (the emulator's
block hook) counts every executed instruction by class. The classes:

``alu``        data processing, moves, compares, shifts, extends, IT
``mul``        MUL and the 16x16 DSP multiplies; ``mac``: MLA, MLS, SMLAxy
``mul_long``   SMULL, UMULL; ``mac_long``: SMLAL, UMLAL (int64 results)
``div``        SDIV, UDIV
``sat``        SSAT, USAT and the saturating adds
``load``, ``store``   one register (LDR*, STR*, VLDR, VSTR)
``multiple``   LDM, STM, PUSH, POP, LDRD, STRD, VPUSH, VPOP: one each, plus their
               registers in ``registers``
``branch``     B, BX, CBZ, TBB (taken or not is decided at run time); ``call``: BL, BLX
``pc_load``    a POP, LDM or LDR that writes PC (a return): its pipeline refill
``fpu_add``    VADD, VSUB, VCMP, VABS, VNEG; ``fpu_mul``: VMUL, VNMUL;
``fpu_mac``    VMLA, VFMA and kin; ``fpu_div``: VDIV, VSQRT; ``fpu_cvt``: VCVT, VRINT;
``fpu_move``   VMOV, VMRS, VMSR
``other``      BKPT, barriers, hints

Calls into libgcc are named here too (:data:`SOFT_FLOAT`, :data:`INT_HELPERS`):
their instructions run in the helper but count against the phase that called it.
"""
from dataclasses import dataclass

from ..device.profiles import INSTRUCTION_CLASSES

# A block's static classes; whether its last branch was taken is known only at run time, and
# the tally moves the fall-throughs from "branch" to "branch_not_taken".
CLASSES = tuple(c for c in INSTRUCTION_CLASSES if c != "branch_not_taken")

_NAMES = {
    "mul": "mul smulbb smulbt smultb smultt smulwb smulwt smmul smmulr smuad smuadx smusd smusdx",
    "mac": "mla mls smlabb smlabt smlatb smlatt smlawb smlawt smlad smladx smlsd smlsdx smmla smmlar smmls "
           "smmlsr usada8",
    "mul_long": "smull umull",
    "mac_long": "smlal umlal umaal smlalbb smlalbt smlaltb smlaltt smlald smlaldx smlsld smlsldx",
    "div": "sdiv udiv",
    "sat": "ssat usat ssat16 usat16 qadd qsub qdadd qdsub",
    "multiple": "ldm ldmdb ldmia ldmib ldmda stm stmdb stmia stmib stmda push pop ldrd strd vpush vpop vldmia "
                "vldmdb vstmia vstmdb",
    "branch": "b bx cbz cbnz tbb tbh",
    "call": "bl blx",
    "fpu_add": "vadd vsub vcmp vcmpe vabs vneg",
    "fpu_mul": "vmul vnmul",
    "fpu_mac": "vmla vmls vnmla vnmls vfma vfms vfnma vfnms",
    "fpu_div": "vdiv vsqrt",
    "fpu_cvt": "vcvt vcvtr vcvta vcvtn vcvtp vcvtm vcvtb vcvtt vrinta vrintn vrintp vrintm vrintr vrintx vrintz",
    "fpu_move": "vmov vmrs vmsr",
    "other": "bkpt svc dsb dmb isb nop wfi wfe sev yield cpsid cpsie mrs msr udf",
}
_CLASS_OF = {name: cls for cls, names in _NAMES.items() for name in names.split()}

# libgcc's soft-float routines (and newlib's float libm) on a core without an FPU.
SOFT_FLOAT = frozenset((
    "__aeabi_fadd __aeabi_fsub __aeabi_frsub __aeabi_fmul __aeabi_fdiv __aeabi_fcmpeq __aeabi_fcmplt "
    "__aeabi_fcmple __aeabi_fcmpge __aeabi_fcmpgt __aeabi_fcmpun __aeabi_f2iz __aeabi_f2uiz __aeabi_i2f "
    "__aeabi_ui2f __aeabi_l2f __aeabi_ul2f __aeabi_f2lz __aeabi_f2ulz __aeabi_f2d __aeabi_d2f __aeabi_dadd "
    "__aeabi_dsub __aeabi_dmul __aeabi_ddiv __aeabi_dcmpeq __aeabi_dcmplt __aeabi_dcmple __aeabi_dcmpge "
    "__aeabi_dcmpgt __aeabi_dcmpun __aeabi_d2iz __aeabi_i2d __aeabi_ui2d __aeabi_l2d __addsf3 __subsf3 "
    "__mulsf3 __divsf3 __floatsisf __floatunsisf __floatdisf __fixsfsi __fixunssfsi __fixsfdi __extendsfdf2 "
    "__truncdfsf2 __adddf3 __subdf3 __muldf3 __divdf3 __fixdfsi __floatsidf __eqsf2 __nesf2 __ltsf2 __lesf2 "
    "__gtsf2 __gesf2 __cmpsf2 __unordsf2 __aeabi_cfcmpeq __aeabi_cfcmple __aeabi_cfrcmple floorf ldexpf ldexp "
    "scalbnf scalbn").split())
# libgcc's integer routines: division and 64-bit arithmetic the core has no instruction for.
INT_HELPERS = frozenset((
    "__aeabi_uidiv __aeabi_uidivmod __aeabi_idiv __aeabi_idivmod __aeabi_ldivmod __aeabi_uldivmod __aeabi_lmul "
    "__aeabi_llsl __aeabi_llsr __aeabi_lasr __aeabi_lcmp __aeabi_ulcmp __udivsi3 __divsi3 __umodsi3 __modsi3 "
    "__divdi3 __udivdi3 __moddi3 __umoddi3 __udivmoddi4 __muldi3 __ashldi3 __lshrdi3 __ashrdi3 __clzsi2 "
    "__clzdi2 __ctzsi2 __aeabi_idiv0 __aeabi_ldiv0 __gnu_ldivmod_helper __gnu_uldivmod_helper").split())


def helper_kind(name):
    """"soft-float", "integer" or None: which libgcc helper family a function name belongs to."""
    base = name.split(".")[0]
    if base in SOFT_FLOAT:
        return "soft-float"
    if base in INT_HELPERS:
        return "integer"
    return None


@dataclass(frozen=True)
class Block:
    """One basic block, classified: its instruction addresses, a count per class, and how it ends.

    ``classes`` is a tuple in :data:`CLASSES` order. ``ends`` is "none", "branch"
    (always taken), "conditional" (taken unless the next block is the fall-through)
    or "call".
    """
    addrs: tuple
    classes: tuple
    ends: str

    @property
    def n(self):
        return len(self.addrs)


def disassembler():
    """A capstone Thumb M-class disassembler with operand details (FPU and DSP included)."""
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.detail = True
    return md


def _writes_pc(insn):
    from capstone.arm import ARM_OP_REG, ARM_REG_PC
    name = insn.insn_name()
    if name in ("pop", "ldm", "ldmdb", "ldmia") or name.startswith("ldr"):
        return any(op.type == ARM_OP_REG and op.reg == ARM_REG_PC for op in insn.operands)
    return name in ("mov", "add") and insn.operands and insn.operands[0].type == ARM_OP_REG \
        and insn.operands[0].reg == ARM_REG_PC


def classify_insn(insn, counts):
    """Add one capstone instruction to ``counts`` ({class: n}); returns its class."""
    name = insn.insn_name()
    cls = _CLASS_OF.get(name)
    if cls is None:
        cls = "load" if name.startswith(("ldr", "vldr")) else "store" if name.startswith(("str", "vstr")) \
            else "alu"
    counts[cls] = counts.get(cls, 0) + 1
    if cls == "multiple":
        regs = len(insn.operands) - (1 if name.startswith(("ldm", "stm", "vldm", "vstm")) else 0)
        counts["registers"] = counts.get("registers", 0) + (2 if name in ("ldrd", "strd") else regs)
    if cls not in ("branch", "call") and _writes_pc(insn):
        counts["pc_load"] = counts.get("pc_load", 0) + 1
        cls = "pc_load"
    return cls


def classify_block(md, code, addr):
    """The :class:`Block` of the Thumb bytes ``code`` at ``addr`` (one emulator translation block)."""
    from capstone.arm import ARM_CC_AL, ARM_CC_INVALID
    counts, addrs, last, size = {}, [], None, 0
    for insn in md.disasm(code, addr):
        addrs.append(insn.address)
        last = (insn, classify_insn(insn, counts))
        size += insn.size
    if size != len(code):
        raise ValueError(f"block at {addr:#x}: capstone decoded {size} of {len(code)} bytes")
    ends = "none"
    if last and last[1] in ("branch", "pc_load", "call"):
        insn, cls = last
        conditional = insn.cc not in (ARM_CC_AL, ARM_CC_INVALID) or insn.insn_name() in ("cbz", "cbnz")
        ends = "call" if cls == "call" else "conditional" if conditional and cls == "branch" else "branch"
    return Block(tuple(addrs), tuple(counts.get(c, 0) for c in CLASSES), ends)


def price(tally, table):
    """Cycles of a class tally ({class or branch outcome: n}) under one core's ``table``.

    Raises KeyError naming the class if the core's table has no price for an executed class.
    """
    total = 0
    for cls, n in tally.items():
        if n:
            total += n * table[cls]
    return total
