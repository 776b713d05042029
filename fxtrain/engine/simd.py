"""One x86 instruction that LLVM will not produce from numba code: ``pmaddwd`` on whole pair words.

``pmaddwd`` multiplies the two int16 halves of each int32 lane of two registers and adds
the two products, exactly, into an int32 lane; with AVX-512 VNNI LLVM fuses the
accumulation too (``vpdpwssd``). :func:`fxtrain.engine.gemm.pair_gemm` sums rows of such
pair words, each times one multiplier word; written in numba, LLVM splits every word into
its halves and spends two multiplies and two masks per lane, and keeps the row's sums in
memory between multipliers. :func:`pmadd_list` emits the instruction itself, through
LLVM's target intrinsic, and keeps the sums of UNROLL registers of the row in registers
over the whole list of multipliers; it covers the longest prefix of the row that fills
whole registers, and the caller's plain loop does the rest.

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


UNROLL = 4  # registers of sums per pass over a list of pairs: independent chains hide the latency


def _list_codegen(lanes, name):
    def codegen(context, builder, sig, args):
        c_ty, p_ty, _, l_ty, _ = sig.args
        if not lanes or c_ty.dtype != types.int32:
            return context.get_constant(types.intp, 0)
        c, p, lst = (context.make_array(ty)(context, builder, a).data
                     for ty, a in ((c_ty, args[0]), (p_ty, args[1]), (l_ty, args[3])))
        n, cnt = (context.cast(builder, args[i], sig.args[i], types.intp) for i in (2, 4))
        vp = ir.VectorType(_I32, lanes).as_pointer()
        one, step = ir.Constant(n.type, lanes), ir.Constant(n.type, lanes * UNROLL)
        done_u = builder.mul(builder.sdiv(n, step), step)
        done = builder.mul(builder.sdiv(n, one), one)

        def chunks(j0, u):
            """c[j0 : j0 + u*lanes] += sum over the list of pmaddwd(P[q*n + j], word), in registers."""
            ptrs = [builder.bitcast(builder.gep(c, [builder.add(j0, ir.Constant(n.type, k * lanes))]), vp)
                    for k in range(u)]
            accs = [cgutils.alloca_once(builder, vp.pointee) for _ in range(u)]
            for acc, ptr in zip(accs, ptrs):
                builder.store(builder.load(ptr, align=4), acc)
            with cgutils.for_range(builder, cnt) as loop:
                two_i = builder.mul(loop.index, ir.Constant(n.type, 2))
                q = builder.sext(builder.load(builder.gep(lst, [two_i])), n.type)
                word = builder.load(builder.gep(lst, [builder.add(two_i, ir.Constant(n.type, 1))]))
                base = builder.add(builder.mul(q, n), j0)
                for k, acc in enumerate(accs):
                    src = builder.bitcast(builder.gep(p, [builder.add(base, ir.Constant(n.type, k * lanes))]), vp)
                    words = builder.load(src, align=4)
                    builder.store(builder.add(builder.load(acc), _pmaddwd(builder, words, word, lanes, name)), acc)
            for acc, ptr in zip(accs, ptrs):
                builder.store(builder.load(acc), ptr, align=4)

        with cgutils.for_range_slice(builder, ir.Constant(n.type, 0), done_u, step) as (j0, _):
            chunks(j0, UNROLL)
        with cgutils.for_range_slice(builder, done_u, done, one) as (j0, _):
            chunks(j0, 1)
        return done
    return codegen


def make_list_sweep(lanes, name):
    """``sweep(c, P, n, pairs, cnt)``: c[j] += sum over i < cnt of pmaddwd(P[q_i*n + j], w_i), with
    ``pairs`` = (q_0, w_0, q_1, w_1, ...), for j below the largest multiple of ``lanes`` that is at most
    n; returns that count. The sums stay in registers across the list (UNROLL registers per pass),
    so ``c`` is read and written once. ``c`` int32 (int64: nothing done, returns 0); ``P``, ``pairs``
    int32; arrays contiguous, from index 0.
    """

    @intrinsic
    def sweep(typingctx, c, P, n, pairs, cnt):
        arrays = (c, P, pairs)
        if not all(isinstance(a, types.Array) and a.layout == "C" and a.ndim == 1 for a in arrays):
            return None
        if not (isinstance(n, types.Integer) and isinstance(cnt, types.Integer)) or \
                P.dtype != types.int32 or pairs.dtype != types.int32:
            return None
        return types.intp(c, P, n, pairs, cnt), _list_codegen(lanes, name)
    return sweep


pmadd_list = make_list_sweep(LANES, _INTRINSIC)
