"""Scratch: every buffer an epoch uses, specified once: its name, what it holds, its shape and dtype, and
the check a caller's buffer must pass.

:data:`FIELDS` names and describes each buffer; :class:`Scratch` is built from it,
:func:`scratch_layout` gives each one's shape and dtype for a net (the integer
kernels' work buffers by :func:`work_layout`), :func:`allocate` makes them, and
:func:`check_scratch` checks a Scratch handed to a jitted epoch. ``tests/test_engine_checks.py``
keeps the four on the same names.
"""
from collections import namedtuple

import numpy as np

from .checks import require
from .draws import CHUNK, LANES
from .gemm import BLOCK_WORDS
from .network import N_W, OUT_C
from .requant import N_SAT

FIELDS = {
    "acts": "activations per layer [L+1, batch*widest] (int8, float32 for float)",
    "e_act": "each activation's exponent, int64 [L+1]",
    "acc": "a layer's sums (int32/int64 as engine.bounds plans, float32 for float)",
    "err": "the error, two planes [2, batch*widest], the activations' dtype",
    "grad": "a layer's weight gradient (int32/int64, float32 for float)",
    "gbias": "a layer's bias gradient, grad's dtype",
    "probs": "the softmax's int64 terms [classes]",
    "perm": "the epoch's sample order, int64 [n]",
    "yb": "the batch's labels, int64 [batch]",
    "terms": "each sample's loss terms, int64 [n, 2]",
    "counts": "saturations in the last epoch, int64 [L, N_SAT] (columns requant.SAT_*)",
    "nonneg": "where a layer's input is never negative, bool [L] (kernels.inputs_nonneg): it packs in quads",
    "wpack": "every dense layer's weights packed for the forward product, int32 (at its weight offset)",
    "words": "one packed operand of a backward product or conv, int32",
    "wide": "a conv output in acc's dtype before it is transposed to HWC",
    "cols": "conv patches, int8, for the conv weight gradient",
    "errs": "transposed conv errors, int8",
    "items": "the non-zero groups of an operand row (gemm.word_gemm), int32",
    "gtmp": "a transposed weight gradient, grad's dtype",
    "bterm": "a layer's bias terms, acc's dtype",
    "draws": "a buffer of generator draws (draws.draw_buffer), uint32",
}
Scratch = namedtuple("Scratch", list(FIELDS))
Scratch.__doc__ = "Every buffer an epoch uses, allocated once: " + "; ".join(f"{k}: {v}" for k, v in FIELDS.items())

ALIGN = 64  # bytes: a cache line, and an AVX-512 register; a vector load across two lines costs two


def aligned_zeros(shape, dtype):
    """A zeroed C-contiguous array whose data starts on an ALIGN-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.zeros(n * dtype.itemsize + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)



def work_layout(layers, batch, acc_t, grad_t, used=True):
    """{name: (shape, dtype)} of the integer kernels' work buffers for ``layers`` at ``batch``
    (all empty unless ``used``: the float32 method needs none).

    ``wpack`` holds every dense layer's weights packed for the forward product (at the
    layer's weight offset), ``words`` one packed operand of a backward product or conv,
    ``wide`` a conv output in ``acc_t`` before it is transposed to HWC, ``cols`` and
    ``errs`` int8 transposed copies (conv patches and errors) for the conv weight gradient,
    ``items`` the non-zero groups of an operand row (:func:`fxtrain.engine.gemm.word_gemm`),
    ``gtmp`` (``grad_t``) a transposed weight gradient, ``bterm`` a layer's bias terms,
    ``draws`` a buffer of generator draws (:func:`fxtrain.engine.draws.draw_buffer`).
    """
    need = {"words": 0, "wide": 0, "cols": 0, "gtmp": 0}
    for s in layers if used else ():
        for name, n in s.layer_kind.engine_scratch(s, batch).items():
            need[name] = max(need[name], n)
    words, wide, cols, gtmp = need["words"], need["wide"], need["cols"], need["gtmp"]
    return {"wpack": ((sum(s.n_weights for s in layers) if used else 0,), np.int32), "words": ((words,), np.int32),
            "wide": ((wide,), acc_t), "cols": ((cols,), np.int8), "errs": ((wide,), np.int8),
            "items": ((2 * BLOCK_WORDS if used else 0,), np.int32), "gtmp": ((gtmp,), grad_t),
            "bterm": ((max(s.out_shape[2] for s in layers) if used else 0,), acc_t),
            "draws": ((CHUNK + LANES if used else 0,), np.uint32)}


def scratch_layout(layers, batch, n_train, n_features, plan, is_float):
    """{name: (shape, dtype)} of every :data:`FIELDS` buffer an epoch of ``layers`` needs (what :func:`allocate` makes)."""
    widest = max([n_features] + [int(np.prod(s.out_shape)) for s in layers]
                 + [int(np.prod(s.in_shape)) for s in layers])
    act_t = np.float32 if is_float else np.int8
    acc_t = np.float32 if is_float else plan.acc_dtype
    grad_t = np.float32 if is_float else plan.grad_dtype
    return {"acts": ((len(layers) + 1, batch * widest), act_t), "e_act": ((len(layers) + 1,), np.int64),
            "acc": ((batch * widest,), acc_t), "err": ((2, batch * widest), act_t),
            "grad": ((max(s.n_weights for s in layers),), grad_t),
            "gbias": ((max(s.n_bias for s in layers),), grad_t),
            "probs": ((layers[-1].out_shape[2],), np.int64), "perm": ((n_train,), np.int64),
            "yb": ((batch,), np.int64), "terms": ((n_train, 2), np.int64),
            "counts": ((len(layers), N_SAT), np.int64), "nonneg": ((len(layers),), np.bool_),
            **work_layout(layers, batch, acc_t, grad_t, used=not is_float)}


def allocate(layout):
    """A :class:`Scratch` of zeroed arrays for a :func:`scratch_layout`, each cache-line aligned."""
    return Scratch(**{name: aligned_zeros(shape, dtype) for name, (shape, dtype) in layout.items()})


def check_scratch(ws, net, n_train, float_mode):
    """Check a Scratch handed to a jitted epoch (dtype, shape, contiguity of each buffer the epoch uses);
    a wrong buffer is a clear Python error, not a silent wrong result in compiled code."""
    n_layers, widest = net.desc.shape[0], ws.acts.shape[1]
    require("acts", ws.acts, [np.float32] if float_mode else [np.int8], (n_layers + 1, widest))
    require("err", ws.err, [ws.acts.dtype], (2, widest))
    require("perm", ws.perm, [np.int64], (n_train,))
    require("e_act", ws.e_act, [np.int64], (n_layers + 1,))
    require("probs", ws.probs, [np.int64], (int(net.desc[-1, OUT_C]),))
    require("yb", ws.yb, [np.int64])
    require("terms", ws.terms, [np.int64], (n_train, 2))
    require("grad", ws.grad, [np.float32] if float_mode else [np.int32, np.int64])
    require("gbias", ws.gbias, [ws.grad.dtype])
    if float_mode:
        return
    require("acc", ws.acc, [np.int32, np.int64])
    require("counts", ws.counts, [np.int64], (n_layers, N_SAT))
    require("nonneg", ws.nonneg, [np.bool_], (n_layers,))
    require("wpack", ws.wpack, [np.int32], (int(net.desc[:, N_W].sum()),))
    require("words", ws.words, [np.int32])
    require("wide", ws.wide, [ws.acc.dtype])
    require("cols", ws.cols, [np.int8])
    require("errs", ws.errs, [np.int8])
    require("items", ws.items, [np.int32], (2 * BLOCK_WORDS,))
    require("gtmp", ws.gtmp, [ws.grad.dtype])
    require("bterm", ws.bterm, [ws.acc.dtype], (int(net.desc[:, OUT_C].max()),))
    require("draws", ws.draws, [np.uint32], (CHUNK + LANES,))
