"""One chunk of generator draws from a vector of lanes, stored in order through register transposes.

:func:`fxtrain.engine.draws.fill_draws` steps LANES copies of xorshift32, each started
STEPS draws after the one before, so after step t lane k holds draw ``k*STEPS + t``.
Written in numba, each of those values is stored on its own, 128 bytes from the last:
the stores, not the shifts, set the pace. Here the lanes are one LLVM vector of
BLOCK = 16 lanes: 16 steps give a 16 x 16 block (rows are steps, columns lanes), four
rounds of two-register shuffles transpose it, and row k is then lane k's next 16 draws,
stored whole. LLVM lowers the shuffles for whatever CPU it compiles for (one
``vpermt2d`` each with AVX-512), so nothing here is specific to x86. Integer only.
"""
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

BLOCK = 16  # lanes per vector, and steps per transposed block
_I32 = ir.IntType(32)
_VEC = ir.VectorType(_I32, BLOCK)


def _step(builder, v):
    """xorshift32 on every lane: x ^= x << 13; x ^= x >> 17; x ^= x << 5."""
    for op, by in (("shl", 13), ("lshr", 17), ("shl", 5)):
        v = builder.xor(v, getattr(builder, op)(v, ir.Constant(_VEC, [by] * BLOCK)))
    return v


def _transpose(builder, rows):
    """The BLOCK x BLOCK transpose of ``rows``: for b = 8, 4, 2, 1, swap the off-diagonal b x b
    blocks of every 2b x 2b block (element (r, c) moves to (r ^ b, c ^ b) where bit b of r and c differ)."""
    rows = list(rows)
    b = BLOCK // 2
    while b:
        for i in range(BLOCK):
            if i & b:
                continue
            j = i + b
            low = [k if not k & b else BLOCK + k - b for k in range(BLOCK)]
            high = [k + b if not k & b else BLOCK + k for k in range(BLOCK)]
            rows[i], rows[j] = (builder.shuffle_vector(rows[i], rows[j], ir.Constant(_VEC, low)),
                                builder.shuffle_vector(rows[i], rows[j], ir.Constant(_VEC, high)))
        b //= 2
    return rows


def _codegen(context, builder, sig, args):
    states_ty, out_ty, _ = sig.args
    states = context.make_array(states_ty)(context, builder, args[0]).data
    out = context.make_array(out_ty)(context, builder, args[1]).data
    steps = context.cast(builder, args[2], sig.args[2], types.intp)
    ptr = builder.bitcast(states, _VEC.as_pointer())
    lanes = cgutils.alloca_once(builder, _VEC)
    builder.store(builder.load(ptr, align=4), lanes)
    block = ir.Constant(steps.type, BLOCK)
    with cgutils.for_range_slice(builder, ir.Constant(steps.type, 0), steps, block) as (t0, _):
        v, rows = builder.load(lanes), []
        for _ in range(BLOCK):
            v = _step(builder, v)
            rows.append(v)
        builder.store(v, lanes)
        for k, row in enumerate(_transpose(builder, rows)):  # row k: lane k's draws t0 .. t0 + 15
            at = builder.add(builder.mul(ir.Constant(steps.type, k), steps), t0)
            builder.store(row, builder.bitcast(builder.gep(out, [at]), _VEC.as_pointer()), align=4)
    builder.store(builder.load(lanes), ptr, align=4)
    return context.get_dummy_value()


@intrinsic
def step_lanes(typingctx, states, out, steps):
    """Advance the BLOCK lane states (uint32, contiguous) by ``steps`` draws each (a multiple of
    BLOCK), writing lane k's draws to ``out[k*steps : (k+1)*steps]``; ``states`` end where the
    lanes stopped. ``out`` must hold BLOCK * steps values."""
    ok = all(isinstance(a, types.Array) and a.dtype == types.uint32 and a.layout == "C" and a.ndim == 1
             for a in (states, out))
    if not ok or not isinstance(steps, types.Integer):
        return None
    return types.void(states, out, steps), _codegen
