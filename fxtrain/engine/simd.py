"""One x86 instruction that LLVM will not produce from numba code: ``pmaddwd`` on whole pair words.

``pmaddwd`` multiplies the two int16 halves of each int32 lane of two registers and adds
the two products, exactly, into an int32 lane; with AVX-512 VNNI the accumulation is fused
too (``vpdpwssd``). The kernels in :mod:`fxtrain.engine.gemm` sweep rows of such pair words
against one multiplier word; written in numba, LLVM splits every word into its halves and
spends two multiplies and two masks per lane instead. :func:`pmadd_sweep1` and
:func:`pmadd_sweep2` emit the instruction itself, through LLVM's target intrinsic, over the
longest prefix of the row that fills whole registers; the caller finishes the rest with its
plain loop.

The choice is made once, from the CPU numba compiles for: AVX-512BW (16 lanes), AVX2
(8 lanes), else none (the sweep does nothing and returns 0, so the numba loop does it all).
Only int32 sums use it; an int64 accumulator plan keeps the plain loop. Integer only:
nothing here is a float instruction.
"""
from llvmlite import binding, ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic

_I16, _I32 = ir.IntType(16), ir.IntType(32)
# (feature, lanes, LLVM intrinsic), widest first
_TARGETS = (("avx512bw", 16, "llvm.x86.avx512.pmaddw.d.512"), ("avx2", 8, "llvm.x86.avx2.pmadd.wd"))


def _features():
    """The CPU features numba compiles for ('+avx2,...'), or '' for a portable target."""
    if config.CPU_NAME == "generic":
        return ""
    return config.CPU_FEATURES if config.CPU_FEATURES is not None else binding.get_host_cpu_features().flatten()


def _choose(features):
    """(lanes, intrinsic name) for a feature string, or (0, None)."""
    have = set(f[1:] for f in features.split(",") if f.startswith("+"))
    for name, lanes, fn in _TARGETS:
        if name in have:
            return lanes, fn
    return 0, None


LANES, _INTRINSIC = _choose(_features())


def _pmaddwd(builder, words, word, lanes, name):
    """pmaddwd of the <lanes x i32> ``words`` by the i32 ``word`` repeated in every lane."""
    v32, v16 = ir.VectorType(_I32, lanes), ir.VectorType(_I16, 2 * lanes)
    splat = builder.shuffle_vector(builder.insert_element(ir.Constant(v32, ir.Undefined), word, _I32(0)),
                                   ir.Constant(v32, ir.Undefined), ir.Constant(v32, [0] * lanes))
    fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(v32, [v16, v16]), name)
    return builder.call(fn, [builder.bitcast(words, v16), builder.bitcast(splat, v16)])


def _sweep_codegen(lanes, name, terms):
    def codegen(context, builder, sig, args):
        c_ty, n_ty = sig.args[0], sig.args[-1]
        n = args[-1]
        if not lanes or c_ty.dtype != types.int32:
            return context.get_constant(types.intp, 0)
        c = context.make_array(c_ty)(context, builder, args[0])
        rows = [(context.make_array(sig.args[1 + 2 * t])(context, builder, args[1 + 2 * t]), args[2 + 2 * t])
                for t in range(terms)]
        step = ir.Constant(n.type, lanes)
        done = builder.mul(builder.sdiv(n, step), step)
        vp = ir.VectorType(_I32, lanes).as_pointer()
        with cgutils.for_range_slice(builder, ir.Constant(n.type, 0), done, step) as (j, _):
            cp = builder.bitcast(builder.gep(c.data, [j]), vp)
            acc = builder.load(cp, align=4)
            for arr, w in rows:
                words = builder.load(builder.bitcast(builder.gep(arr.data, [j]), vp), align=4)
                w32 = builder.trunc(w, _I32) if w.type.width > 32 else builder.sext(w, _I32) if w.type.width < 32 else w
                acc = builder.add(acc, _pmaddwd(builder, words, w32, lanes, name))
            builder.store(acc, cp, align=4)
        return context.cast(builder, done, n_ty, types.intp)
    return codegen


def make_sweep(lanes, name, terms):
    """A sweep intrinsic over ``terms`` (1 or 2) rows of pair words, for ``lanes`` int32 lanes and
    the LLVM intrinsic ``name`` (``lanes = 0``: it does nothing); the tests build each one this CPU runs.

    ``sweep(c, pa, wa[, pb, wb], n)``: c[j] += pmaddwd(pa[j], wa) [+ pmaddwd(pb[j], wb)] for j below
    the largest multiple of ``lanes`` that is at most n; returns that count. ``c`` int32 (int64: nothing
    is done, 0 is returned), ``pa``, ``pb`` int32 pair words and ``wa``, ``wb`` integer multiplier
    words; every array contiguous, from its index 0.
    """

    def typer(args):
        arrays, n = (args[0],) + args[1:-1:2], args[-1]
        if not all(isinstance(a, types.Array) and a.layout == "C" and a.ndim == 1 for a in arrays):
            return None
        if not isinstance(n, types.Integer) or any(a.dtype != types.int32 for a in arrays[1:]):
            return None
        return types.intp(*args), _sweep_codegen(lanes, name, terms)

    if terms == 1:
        @intrinsic
        def sweep1(typingctx, c, pa, wa, n):
            return typer((c, pa, wa, n))
        return sweep1

    @intrinsic
    def sweep2(typingctx, c, pa, wa, pb, wb, n):
        return typer((c, pa, wa, pb, wb, n))
    return sweep2


pmadd_sweep1 = make_sweep(LANES, _INTRINSIC, 1)
pmadd_sweep2 = make_sweep(LANES, _INTRINSIC, 2)
