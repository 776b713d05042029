"""x86 multiply-add instructions that LLVM will not produce from numba code, for the list sweeps.

The kernels in :mod:`fxtrain.engine.gemm` pack one operand of a product into int32 words
holding two int16 values ("pairs") or four int8 values ("quads") and sum rows of such
words, each word times one multiplier word of the other operand. Two instructions do
that on whole registers, exactly:

* ``pmaddwd``: two int16 products per int32 lane, added (AVX-512 VNNI fuses the
  accumulation, ``vpdpwssd``);
* ``vpdpbusd`` (AVX-512 VNNI): four products of an unsigned and a signed byte per lane,
  added to the accumulator; without VNNI, ``pmaddubsw`` then ``pmaddwd`` by ones. Both
  are exact here because the unsigned bytes are ReLU outputs or non-negative inputs
  (0..127), so no int16 step saturates: 2 * 127 * 128 < 2**15.

Written in numba, LLVM splits every word into its parts and keeps a row's sums in memory
between multipliers. :func:`make_list_sweep` emits the instruction itself, through LLVM's
target intrinsic, and keeps the sums of UNROLL registers of a row in registers over the
whole list of multipliers; it covers the longest prefix of the row that fills whole
registers (UNROLL at a time, then one at a time), and the caller's plain loop does the
rest (and everything for int64 sums).

The instructions are chosen once, from the CPU numba compiles for; where none exists the
sweeps do nothing and return 0. Integer only: nothing here is a float instruction.
"""
from llvmlite import binding, ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic

_I8, _I16, _I32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
UNROLL = 4  # registers of sums per pass over a list: independent chains hide the latency


def _features():
    """The CPU features numba compiles for ('+avx2,...'), or '' for a portable target."""
    if config.CPU_NAME == "generic":
        return ""
    return config.CPU_FEATURES if config.CPU_FEATURES is not None else binding.get_host_cpu_features().flatten()


def _call(builder, name, ret, args):
    fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(ret, [a.type for a in args]),
                                                         name)
    return builder.call(fn, args)


def _pairs(lanes, name):
    """acc + pmaddwd(words, word): int16 pairs times int16 pairs."""
    v16, v32 = ir.VectorType(_I16, 2 * lanes), ir.VectorType(_I32, lanes)

    def product(builder, acc, words, splat):
        return builder.add(acc, _call(builder, name, v32, [builder.bitcast(words, v16), builder.bitcast(splat, v16)]))
    return product


def _quads_vnni(builder, acc, words, splat):
    """vpdpbusd(acc, multiplier bytes (unsigned), word bytes (signed)), 16 lanes."""
    return _call(builder, "llvm.x86.avx512.vpdpbusd.512", acc.type, [acc, splat, words])


def _quads(lanes, ubsw, wd):
    """acc + pmaddwd(pmaddubsw(multiplier bytes, word bytes), ones): the same sums without VNNI."""
    v8, v16, v32 = ir.VectorType(_I8, 4 * lanes), ir.VectorType(_I16, 2 * lanes), ir.VectorType(_I32, lanes)
    ones = ir.Constant(v16, [1] * (2 * lanes))

    def product(builder, acc, words, splat):
        pairs = _call(builder, ubsw, v16, [builder.bitcast(splat, v8), builder.bitcast(words, v8)])
        return builder.add(acc, _call(builder, wd, v32, [pairs, ones]))
    return product


# (required features, lanes, product), best first
PAIR_TARGETS = ((("avx512bw",), 16, _pairs(16, "llvm.x86.avx512.pmaddw.d.512")),
                (("avx2",), 8, _pairs(8, "llvm.x86.avx2.pmadd.wd")))
QUAD_TARGETS = ((("avx512bw", "avx512vnni"), 16, _quads_vnni),
                (("avx512bw",), 16, _quads(16, "llvm.x86.avx512.pmaddubs.w.512", "llvm.x86.avx512.pmaddw.d.512")),
                (("avx2",), 8, _quads(8, "llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx2.pmadd.wd")))


def choose(targets, features):
    """(lanes, product) of the first target whose features are all in ``features``, or (0, None)."""
    have = set(f[1:] for f in features.split(",") if f.startswith("+"))
    for need, lanes, product in targets:
        if set(need) <= have:
            return lanes, product
    return 0, None


START_SUMS, START_INIT, START_ZERO = 0, 1, 2  # where a sweep's sums start: c itself, init, or 0


def _list_codegen(lanes, product):
    def codegen(context, builder, sig, args):
        c_ty, p_ty, _, l_ty, _, i_ty, _ = sig.args
        if not lanes or c_ty.dtype != types.int32:
            return context.get_constant(types.intp, 0)
        c, p, lst, init = (context.make_array(ty)(context, builder, a).data
                           for ty, a in ((c_ty, args[0]), (p_ty, args[1]), (l_ty, args[3]), (i_ty, args[5])))
        n, cnt, start = (context.cast(builder, args[i], sig.args[i], types.intp) for i in (2, 4, 6))
        v32 = ir.VectorType(_I32, lanes)
        step = ir.Constant(n.type, lanes * UNROLL)
        done = builder.mul(builder.sdiv(n, step), step)

        def at(base, j):
            return builder.bitcast(builder.gep(base, [j]), v32.as_pointer())

        def chunks(j0, u):
            """c[j0 : j0 + u*lanes] += the list's products, in u registers."""
            offs = [builder.add(j0, ir.Constant(n.type, k * lanes)) for k in range(u)]
            ptrs = [at(c, j) for j in offs]
            accs = [cgutils.alloca_once(builder, v32) for _ in range(u)]
            from_c = builder.icmp_signed("==", start, ir.Constant(n.type, START_SUMS))
            from_init = builder.icmp_signed("==", start, ir.Constant(n.type, START_INIT))
            for acc, ptr, j in zip(accs, ptrs, offs):  # the first sweep of a row writes c without reading it
                builder.store(ir.Constant(v32, None), acc)
                with builder.if_then(from_c):
                    builder.store(builder.load(ptr, align=4), acc)
                with builder.if_then(from_init):  # init is read only here: it may be empty otherwise
                    builder.store(builder.load(at(init, j), align=4), acc)
            with cgutils.for_range(builder, cnt) as loop:
                two_i = builder.mul(loop.index, ir.Constant(n.type, 2))
                q = builder.sext(builder.load(builder.gep(lst, [two_i])), n.type)
                word = builder.load(builder.gep(lst, [builder.add(two_i, ir.Constant(n.type, 1))]))
                splat = builder.shuffle_vector(builder.insert_element(ir.Constant(v32, ir.Undefined), word, _I32(0)),
                                               ir.Constant(v32, ir.Undefined), ir.Constant(v32, [0] * lanes))
                base = builder.add(builder.mul(q, n), j0)
                for k, acc in enumerate(accs):
                    words = builder.load(at(p, builder.add(base, ir.Constant(n.type, k * lanes))), align=4)
                    builder.store(product(builder, builder.load(acc), words, splat), acc)
            for acc, ptr in zip(accs, ptrs):
                builder.store(builder.load(acc), ptr, align=4)

        with cgutils.for_range_slice(builder, ir.Constant(n.type, 0), done, step) as (j0, _):
            chunks(j0, UNROLL)
        # then one register at a time: a row of 16 to 63 sums would otherwise be left to the plain loop
        one = ir.Constant(n.type, lanes)
        whole = builder.mul(builder.sdiv(n, one), one)
        with cgutils.for_range_slice(builder, done, whole, one) as (j0, _):
            chunks(j0, 1)
        return whole
    return codegen


def make_list_sweep(lanes, product):
    """``sweep(c, P, n, items, cnt, init, start)``: c[j] = s[j] + sum over i < cnt of product(P[q_i*n + j], w_i)
    with ``items`` = (q_0, w_0, q_1, w_1, ...) and s = c itself, ``init`` or 0 for ``start`` = START_SUMS,
    START_INIT or START_ZERO, for j below the largest multiple of ``lanes`` that is at most n; returns
    that count. ``c`` and ``init`` int32 (int64: nothing is done, 0 is returned); ``P`` and ``items``
    int32; arrays contiguous, from index 0. ``lanes = 0`` makes a sweep that does nothing.
    """

    @intrinsic
    def sweep(typingctx, c, P, n, items, cnt, init, start):
        arrays = (c, P, items, init)
        if not all(isinstance(a, types.Array) and a.layout == "C" and a.ndim == 1 for a in arrays):
            return None
        if not all(isinstance(v, types.Integer) for v in (n, cnt, start)) or \
                P.dtype != types.int32 or items.dtype != types.int32 or init.dtype != c.dtype:
            return None
        return types.intp(c, P, n, items, cnt, init, start), _list_codegen(lanes, product)
    return sweep


PAIR_LANES, _PAIR = choose(PAIR_TARGETS, _features())
QUAD_LANES, _QUAD = choose(QUAD_TARGETS, _features())
pmadd_list = make_list_sweep(PAIR_LANES, _PAIR)
pmadd_list.__doc__ = "The pair sweep (int16 pairs by int16 pairs) for this CPU: see :func:`make_list_sweep`."
quad_list = make_list_sweep(QUAD_LANES, _QUAD)
quad_list.__doc__ = ("The quad sweep (signed bytes of P by the unsigned bytes, 0..127, of each multiplier word) for "
                     "this CPU: see :func:`make_list_sweep`.")
