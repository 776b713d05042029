"""Forward and backward passes over the flat network (``network.build_desc``).

Each backward rule sits next to its forward rule. Integer passes keep int8
tensors with one exponent each; the float passes mirror them in float32 for the
reference method. Layer ``l`` reads row ``acts[l]`` and writes ``acts[l + 1]``;
``acts[0]`` holds the input batch. ``nb`` is the number of samples in use.

Each dispatch on ``d[KIND]`` (codes from :mod:`fxtrain.layers`) ends in
:func:`refuse_kind` for a code it has no kernels for.

``spatial`` and ``fast`` are compile-time constants: these passes are inlined into the
epoch, where they are closure constants, so numba prunes the branches that cannot run.
For a net of dense layers only it never compiles the conv, pool and gap kernels; with
``fast`` false (small nets) it compiles the integer passes from the type-generic
reference loops and the serial-draw rounding, which cost a fraction of the compile
time of the packed sweeps and bulk draws (:mod:`fxtrain.engine.gemm`,
:mod:`fxtrain.engine.bulk`). Both give the same bytes.
"""
import numpy as np
from numba import njit

from .conv import conv_backward, conv_backward_int, conv_forward, conv_forward_int
from .gap import gap_backward_float, gap_backward_int, gap_forward_float, gap_forward_int
from .kernels import dense_backward, dense_backward_int, dense_forward, dense_forward_int, pool_backward, pool_forward
from .network import B_OFF, CONV, DENSE, GAP, KIND, N_IN, N_OUT, OUT_C, POOL, RELU
from .bulk import requant_sr_bulk
from .requant import (SAT_ACT, SAT_BIAS, add_terms, bias_gradient, bias_terms, relu_mask, requant_round, requant_sr,
                      tensor_shift)


@njit(cache=True)
def refuse_kind():
    """A desc row whose kind code has no kernels here: stop rather than run it as another kind.
    ``network.build_desc`` writes registered codes only, so reaching this is a broken table."""
    raise ValueError("a layer kind code the engine has no kernels for (see fxtrain.layers)")


@njit(cache=True, inline='always')
def mac_forward(d, x, w, nb, out, spatial):
    """The layer's weighted sums (no bias) of ``nb`` samples into ``out``: float32 reference."""
    if spatial:
        if d[KIND] == CONV:
            conv_forward(d, x, w, nb, out)
            return
    if d[KIND] != DENSE:
        refuse_kind()
    dense_forward(d, x, w, nb, out)


@njit(cache=True, inline='always')
def mac_backward(d, x, err, w, nb, grad, gbias, back, want_back, spatial):
    """Weight gradient, bias gradient and (if wanted) the error for the layer below: float32 reference."""
    if spatial:
        if d[KIND] == CONV:
            conv_backward(d, x, err, w, nb, grad, back, want_back)
            bias_gradient(err, nb * d[N_OUT] // d[OUT_C], d[OUT_C], gbias)
            return
    if d[KIND] != DENSE:
        refuse_kind()
    dense_backward(d, x, err, w, nb, grad, back, want_back)
    bias_gradient(err, nb * d[N_OUT] // d[OUT_C], d[OUT_C], gbias)


@njit(cache=True, inline='always')
def mac_forward_int(d, l, x, w, ws, nb, out, spatial, fast):
    """Integer weighted sums of layer ``l`` plus the bias terms in ``ws.bterm``. ``fast``: dense layers
    read the weights :func:`kernels.pack_dense_weights` packed (``ws.nonneg[l]``: the layer's input is
    never negative); else the reference loops."""
    if not fast:
        mac_forward(d, x, w, nb, out, spatial)
        add_terms(out, nb * d[N_OUT] // d[OUT_C], d[OUT_C], ws.bterm)
        return
    if spatial:
        if d[KIND] == CONV:
            conv_forward_int(d, x, w, nb, out, ws.words, ws.cols, ws.wide, ws.items, ws.bterm)
            return
    if d[KIND] != DENSE:
        refuse_kind()
    dense_forward_int(d, x, w, ws.wpack, nb, out, ws.items, ws.bterm, ws.nonneg[l])


@njit(cache=True, inline='always')
def mac_backward_int(d, l, x, err, w, ws, nb, back, want_back, spatial, fast):
    """Integer weight gradient and bias gradient of layer ``l`` (into ``ws.grad``, ``ws.gbias``) and (if
    wanted) the unscaled error for the layer below (``fast`` false: the reference loops)."""
    grad, gbias = ws.grad, ws.gbias
    if not fast:
        mac_backward(d, x, err, w, nb, grad, gbias, back, want_back, spatial)
        return
    if spatial:
        if d[KIND] == CONV:
            conv_backward_int(d, x, err, w, nb, grad, back, want_back, ws.cols, ws.errs)
            bias_gradient(err, nb * d[N_OUT] // d[OUT_C], d[OUT_C], gbias)
            return
    if d[KIND] != DENSE:
        refuse_kind()
    dense_backward_int(d, x, err, w, nb, grad, back, want_back, ws.words, ws.items, ws.gtmp, ws.nonneg[l])
    bias_gradient(err, nb * d[N_OUT] // d[OUT_C], d[OUT_C], gbias)


@njit(cache=True, inline='always')
def forward_int(net, p, ws, nb, counts, spatial, fast):
    """Integer forward pass of ``net`` (its desc and exponents) with ``p``'s weights and biases over
    ``ws.acts`` (a Scratch); ``ws.e_act[l]`` is the exponent of ``acts[l]``.

    With ``fast``, ``ws.wpack`` must hold the dense weights packed by
    :func:`kernels.pack_dense_weights` with ``ws.nonneg`` (:func:`kernels.inputs_nonneg`).
    Each layer's accumulator is shifted (round-half-up) by the smallest s that
    brings its largest magnitude into int8, chosen per batch. Saturated activations
    and clamped bias terms are added to ``counts[l]``.
    """
    desc, wq, bq, e_w, e_b = net.desc, p.wq, p.bq, net.e_w, net.e_b
    acts, e_act, acc = ws.acts, ws.e_act, ws.acc
    for l in range(desc.shape[0]):
        d = desc[l]
        if spatial:
            if d[KIND] == POOL or d[KIND] == GAP:  # the output keeps the input's exponent
                if d[KIND] == POOL:
                    pool_forward(d, acts[l], nb, acts[l + 1])
                else:
                    gap_forward_int(d, acts[l], nb, acc, acts[l + 1])
                e_act[l + 1] = e_act[l]
                continue
        n = nb * d[N_OUT]
        clamped = bias_terms(bq, d[B_OFF], d[OUT_C], e_act[l] + e_w[l] - e_b[l], ws.bterm)
        counts[l, SAT_BIAS] += clamped * (n // d[OUT_C])
        mac_forward_int(d, l, acts[l], wq, ws, nb, acc, spatial, fast)
        s = tensor_shift(acc, n)
        counts[l, SAT_ACT] += requant_round(acc, n, s, d[RELU] != 0, acts[l + 1])
        e_act[l + 1] = e_act[l] + e_w[l] + s


@njit(cache=True, inline='always')
def backward_int(net, p, l, ws, err, e_err, err_below, nb, below, spatial, fast):
    """Backward through layer ``l`` of ``net`` given int8 ``err`` (exponent ``e_err``) at its output,
    with ``p``'s weights and generator; ``below``: a layer under this one trains, so it needs an error.

    Fills ``ws.grad``/``ws.gbias`` (exponents e_err + e_act[l] and e_err) and writes the
    int8 error for the layer below into ``err_below`` with stochastic rounding, one
    draw per value (``ws.acc`` holds it unscaled). Returns that error's exponent and
    how many of its values saturated.
    """
    acts, back, e_w, rng = ws.acts, ws.acc, net.e_w, p.rng
    d = net.desc[l]
    if spatial:
        if d[KIND] == POOL:
            pool_backward(d, acts[l], err, nb, err_below)
            return e_err, 0
        if d[KIND] == GAP:  # one draw per value below, serially in both kernel families; nothing saturates
            return e_err - gap_backward_int(d, err, nb, rng, err_below), 0
    if d[RELU] != 0:
        relu_mask(err, acts[l + 1], nb * d[N_OUT])
    mac_backward_int(d, l, acts[l], err, p.wq, ws, nb, back, below, spatial, fast)
    if not below:  # the lowest layer that trains sends nothing down, and draws nothing for it
        return e_err, 0
    n = nb * d[N_IN]
    s = tensor_shift(back, n)
    if fast:
        clipped = requant_sr_bulk(back, n, s, rng, err_below, ws.draws)
    else:
        clipped = requant_sr(back, n, s, rng, err_below)
    return e_err + e_w[l] + s, clipped


@njit(cache=True, inline='always')
def forward_float(desc, wf, bf, acts, nb, spatial):
    """float32 reference forward pass over the same layout."""
    for l in range(desc.shape[0]):
        d = desc[l]
        y = acts[l + 1]
        if spatial:
            if d[KIND] == POOL:
                pool_forward(d, acts[l], nb, y)
                continue
            if d[KIND] == GAP:
                gap_forward_float(d, acts[l], nb, y)
                continue
        mac_forward(d, acts[l], wf, nb, y, spatial)
        n_out, bo = d[OUT_C], d[B_OFF]
        for r in range(nb * d[N_OUT] // n_out):
            for j in range(n_out):
                v = y[r * n_out + j] + bf[bo + j]
                y[r * n_out + j] = v if (v > 0 or d[RELU] == 0) else np.float32(0.0)


@njit(cache=True, inline='always')
def backward_float(desc, l, wf, acts, err, err_below, grad, gbias, nb, below, spatial):
    """float32 backward through layer ``l``; the error below (if ``below``) lands in ``err_below``."""
    d = desc[l]
    if spatial:
        if d[KIND] == POOL:
            pool_backward(d, acts[l], err, nb, err_below)
            return
        if d[KIND] == GAP:
            gap_backward_float(d, err, nb, err_below)
            return
    if d[RELU] != 0:
        relu_mask(err, acts[l + 1], nb * d[N_OUT])
    mac_backward(d, acts[l], err, wf, nb, grad, gbias, err_below, below, spatial)
