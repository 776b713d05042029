"""One training epoch as one jitted call, and batched evaluation.

Order of generator draws within an epoch (the C runtime follows it):
1. a Fisher-Yates shuffle of the training indices, ``n - 1`` draws;
2. for each full batch (a last partial batch is dropped), from the last layer to
   the first: one draw per error value sent to the layer below, then (``sr``
   only) one per weight in weight order and one per bias.

Each compiled epoch is a closure whose method, net kind (conv/pool/gap or dense only),
momentum and kernel family are compile-time constants, so numba prunes the branches
that cannot run: the code compiled for ``sr`` and ``r`` holds no float instruction.
The kernel family (:func:`fxtrain.engine.checks.fast_kernels`) is the packed sweeps
and bulk draws for large nets, the serial loops for small ones; both give the same bytes.

The jitted functions take a few named bundles instead of dozens of arrays:
:class:`Net` (structure and exponents), :class:`IntParams` (what training changes),
:class:`Rule` (bits and step) and :class:`Scratch` (every buffer, allocated once).
Call them through :func:`train_epoch` and :func:`predict`, which check dtype,
shape and contiguity first (:mod:`fxtrain.engine.checks`).
"""
import math
from collections import namedtuple
from functools import lru_cache

import numpy as np
from numba import njit

from .adam import adam_bc, adam_float, adam_tick
from .bulk import update_momentum_bulk, update_weights_bulk
from .checks import check_common, check_int, fast_kernels, require, spatial_net
from .scratch import check_scratch
from .fixedpoint import xorshift32
from .kernels import inputs_nonneg, pack_dense_weights
from .network import B_OFF, N_W, OUT_C, W_OFF
from .passes import backward_float, backward_int, forward_float, forward_int
from .requant import N_SAT, SAT_BIAS, SAT_ERR, SAT_MOM, SAT_WEIGHT, softmax_error_float, softmax_error_int
from .updates import BC, update_bc, update_bias_int, update_float, update_weights_int, update_weights_momentum

Net = namedtuple("Net", "desc e_w e_b")
Net.__doc__ = "desc int64 [L, N_FIELDS]; e_w, e_b int64 [L]: weight and bias exponents per layer."
IntParams = namedtuple("IntParams", "wq bq shadow mom rng")
IntParams.__doc__ = ("wq int8/int16 [n_w]; bq int32 [n_b]; shadow float32 [n_w] (bc) or [0]; "
                     "mom int16 (sr, r) or float32 (bc) [n_w], or [0] without momentum; rng uint32 [1].")
FloatParams = namedtuple("FloatParams", "wf bf mom rng")
Rule = namedtuple("Rule", "bits qm m k batch mom_j adam low")
Rule.__doc__ = ("bits, largest code qm, per-sample step m * 2**-k, batch, momentum beta = 1 - 2**-mom_j (0: off), "
                "adam: Adam on the shadow weights (bc; engine/adam.py), low: the lowest layer that trains (the "
                "layers under it are frozen: forward only, no error, no update, no draw).")
SOFTMAX_EXPONENT = -7  # the softmax error is Q7


@njit(cache=True, inline='always')
def shuffle(perm, rng):
    """Fisher-Yates with one draw per position, ``j = r mod (i + 1)``."""
    for i in range(perm.shape[0]):
        perm[i] = i
    for i in range(perm.shape[0] - 1, 0, -1):
        j = xorshift32(rng) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]


@njit(cache=True, inline='always')
def gather(X, Y, perm, start, nb, x0, yb):
    """Copy samples perm[start:start+nb] into the flat input buffer and their labels into yb."""
    f = X.shape[1]
    for i in range(nb):
        src = perm[start + i]
        for j in range(f):
            x0[i * f + j] = X[src, j]
        yb[i] = Y[src]


@njit(cache=True, inline='always')
def _update_int_layer(method, momentum, fast, d, l, p, e_w, rule, grad, e_g, counts, buf):
    """SR or R step of layer ``l``'s weights, through the int16 velocity with ``momentum``; the bulk
    draws with ``fast`` (compile-time constants: an epoch compiles only the update it runs)."""
    o, nw = d[W_OFF], d[N_W]
    w, g, s = p.wq[o:o + nw], grad[:nw], e_w[l] + rule.k - e_g
    if momentum:
        vel = p.mom[o:o + nw]
        if fast:
            mom_c, w_c = update_momentum_bulk(method, rule.bits, rule.qm, w, vel, g, rule.m, s, rule.mom_j, p.rng,
                                              buf)
        else:
            mom_c, w_c = update_weights_momentum(method, rule.bits, rule.qm, w, vel, g, rule.m, s, rule.mom_j,
                                                 p.rng)
        counts[l, SAT_MOM] += mom_c
        counts[l, SAT_WEIGHT] += w_c
    elif fast:
        counts[l, SAT_WEIGHT] += update_weights_bulk(method, rule.bits, rule.qm, w, g, rule.m, s, p.rng, buf)
    else:
        counts[l, SAT_WEIGHT] += update_weights_int(method, rule.bits, rule.qm, w, g, rule.m, s, p.rng)


@njit(cache=True, inline='always')
def _update_bc_layer(d, l, p, e_w, rule, grad, e_g, counts):
    """BinaryConnect step of layer ``l``: float32 shadow, then re-quantised integer weights."""
    o, nw = d[W_OFF], d[N_W]
    step = np.float32(rule.m * 2.0 ** (e_g - rule.k))
    if rule.adam:
        counts[l, SAT_WEIGHT] += adam_bc(rule.bits, rule.qm, p.wq[o:o + nw], p.shadow[o:o + nw], grad[:nw], step,
                                         e_w[l], p.mom, o, rule.m * 2.0 ** -rule.k * rule.batch)
        return
    vel = p.mom[o:o + nw] if p.mom.shape[0] else p.mom
    counts[l, SAT_WEIGHT] += update_bc(rule.bits, rule.qm, p.wq[o:o + nw], p.shadow[o:o + nw], grad[:nw], step,
                                       e_w[l], vel, np.float32(1.0 - 2.0 ** -rule.mom_j))


def _integer_epoch(method, spatial, momentum, fast):
    """The jitted epoch of one integer method (``SR``, ``R`` or ``BC``); ``spatial``: conv, pool or gap layers;
    ``momentum``: the params hold a velocity; ``fast``: packed sweeps and bulk draws (:func:`fast_kernels`)."""

    @njit(cache=True)
    def epoch(net, p, X, e_x, Y, rule, ws, first, stop):
        desc = net.desc
        n_layers, batch = desc.shape[0], rule.batch
        n_cls = desc[n_layers - 1, OUT_C]
        if first == 0:  # a new epoch: a new order, fresh counters
            shuffle(ws.perm, p.rng)
            ws.counts[:, :] = 0
        ws.nonneg[:] = False
        if fast:
            inputs_nonneg(desc, X, ws.nonneg)
        batches = 0
        for b in range(first, min(stop, X.shape[0] // batch)):
            start = b * batch
            gather(X, Y, ws.perm, start, batch, ws.acts[0], ws.yb)
            ws.e_act[0] = e_x
            if fast:
                pack_dense_weights(desc, p.wq, ws.wpack, ws.nonneg)  # the weights changed in the last step
            forward_int(net, p, ws, batch, ws.counts, spatial, fast)
            ws.counts[n_layers - 1, SAT_ERR] += softmax_error_int(
                ws.acts[n_layers], batch, n_cls, ws.e_act[n_layers], ws.yb, ws.err[0], ws.probs,
                ws.terms[start:start + batch])
            e_err, cur = np.int64(SOFTMAX_EXPONENT), 0
            for l in range(n_layers - 1, rule.low - 1, -1):
                e_below, clipped = backward_int(net, p, l, ws, ws.err[cur], e_err, ws.err[1 - cur], batch,
                                                l > rule.low, spatial, fast)
                if l > 0:
                    ws.counts[l - 1, SAT_ERR] += clipped
                d = desc[l]
                if d[N_W] != 0:  # a layer with weights (and so biases)
                    e_g = e_err + ws.e_act[l]  # gradient exponent: error times input
                    if method == BC:
                        _update_bc_layer(d, l, p, net.e_w, rule, ws.grad, e_g, ws.counts)
                    else:
                        _update_int_layer(method, momentum, fast, d, l, p, net.e_w, rule, ws.grad, e_g, ws.counts,
                                          ws.draws)
                    # The bias gradient's exponent is the error's alone.
                    ws.counts[l, SAT_BIAS] += update_bias_int(method, p.bq[d[B_OFF]:d[B_OFF] + d[OUT_C]],
                                                              ws.gbias[:d[OUT_C]], rule.m,
                                                              net.e_b[l] + rule.k - e_err, p.rng)
                e_err, cur = e_below, 1 - cur
            if method == BC and rule.adam:
                adam_tick(p.mom)
            batches += 1
        return batches

    return epoch


def _float_epoch(spatial):
    """The jitted float32 reference epoch for a net with (``spatial``) or without conv/pool/gap layers."""

    @njit(cache=True)
    def epoch_float(desc, p, X, Y, step, beta, adam, batch, low, ws):
        """float32 epoch over the same shuffle; ``X`` is already dequantised; the layers under ``low`` are
        frozen. Returns (summed loss, batches)."""
        n_layers = desc.shape[0]
        n_cls = desc[n_layers - 1, OUT_C]
        shuffle(ws.perm, p.rng)
        loss, batches = 0.0, 0
        for start in range(0, X.shape[0] - batch + 1, batch):
            gather(X, Y, ws.perm, start, batch, ws.acts[0], ws.yb)
            forward_float(desc, p.wf, p.bf, ws.acts, batch, spatial)
            loss += softmax_error_float(ws.acts[n_layers], batch, n_cls, ws.yb, ws.err[0])
            batches += 1
            cur = 0
            for l in range(n_layers - 1, low - 1, -1):
                backward_float(desc, l, p.wf, ws.acts, ws.err[cur], ws.err[1 - cur], ws.grad, ws.gbias, batch,
                               l > low, spatial)
                d = desc[l]
                if d[N_W] != 0:  # a layer with weights (and so biases)
                    o, nw = d[W_OFF], d[N_W]
                    if adam:  # engine/adam.py
                        adam_float(p.wf[o:o + nw], ws.grad[:nw], step, p.mom, o, step * batch)
                    else:
                        vel = p.mom[o:o + nw] if p.mom.shape[0] else p.mom
                        update_float(p.wf[o:o + nw], ws.grad[:nw], step, vel, beta)
                    update_float(p.bf[d[B_OFF]:d[B_OFF] + d[OUT_C]], ws.gbias[:d[OUT_C]], step, p.mom[:0], beta)
                cur = 1 - cur
            if adam:
                adam_tick(p.mom)
        return loss, batches

    return epoch_float


@njit(cache=True, inline='always')
def _argmax_rows(z, nb, n_cls, out):
    for n in range(nb):
        best = 0
        for j in range(1, n_cls):
            if z[n * n_cls + j] > z[n * n_cls + best]:
                best = j
        out[n] = best


@njit(cache=True, inline='always')
def _copy_rows(X, start, nb, x0):
    f = X.shape[1]
    for i in range(nb):
        for j in range(f):
            x0[i * f + j] = X[start + i, j]


def _predictor(spatial, is_float, fast):
    """Jitted class predictions (first argmax), ``chunk`` samples at a time, integer or float32."""

    @njit(cache=True)
    def predict_rows(net, params, X, e_x, chunk, ws, out):
        n_layers = net.desc.shape[0]
        n_cls = net.desc[n_layers - 1, OUT_C]
        counts = np.zeros((n_layers, N_SAT), dtype=np.int64)  # evaluation's saturations are not reported
        if fast and not is_float:
            ws.nonneg[:] = False
            inputs_nonneg(net.desc, X, ws.nonneg)
            pack_dense_weights(net.desc, params.wq, ws.wpack, ws.nonneg)  # once: the weights are fixed here
        for start in range(0, X.shape[0], chunk):
            nb = min(chunk, X.shape[0] - start)
            _copy_rows(X, start, nb, ws.acts[0])
            if is_float:
                forward_float(net.desc, params.wf, params.bf, ws.acts, nb, spatial)
            else:
                ws.e_act[0] = e_x
                forward_int(net, params, ws, nb, counts, spatial, fast)
            _argmax_rows(ws.acts[n_layers], nb, n_cls, out[start:start + nb])

    return predict_rows


@lru_cache(maxsize=None)
def compiled(kind, *key):
    """The jitted function of ``kind`` ("int", "float" or "predict") for ``key``, created on first use.

    Each closure fixes its method and net kind at compile time, so numba compiles
    only the branches that run.
    """
    make = {"int": _integer_epoch, "float": _float_epoch, "predict": _predictor}[kind]
    return make(*key)


# ---------------------------------------------------------------- checked entry points


def train_epoch(method, net, params, X, e_x, Y, rule, ws, first=0, stop=None):
    """Train one epoch of ``sr``, ``r`` or ``bc`` (integer passes) in place.

    Parameters
    ----------
    method : SR, R or BC.
    net : Net; params : IntParams (updated in place); rule : Rule; ws : Scratch.
    X : int8 [n, features] (HWC flattened), exponent ``e_x``; Y : int64 [n] labels.
    first, stop : train only batches ``first .. stop - 1`` of the epoch (all by default);
        the shuffle happens at batch 0, so an epoch can be run a step at a time, as a
        device does with ``fx_train_epoch_step``.

    Returns
    -------
    (loss, batches): the mean cross-entropy over the trained samples (float, for
    reporting only: it is computed here, outside the integer step) and the number
    of batches trained.
    """
    check_common(net, X, Y, False)
    check_int(net, params, method)
    check_scratch(ws, net, X.shape[0], False)
    stop = X.shape[0] if stop is None else int(stop)
    key = (method, spatial_net(net), bool(params.mom.shape[0]), fast_kernels(net, rule.batch))
    batches = compiled("int", *key)(net, params, X, int(e_x), Y, rule, ws, int(first), stop)
    return _mean_loss(ws.terms[first * rule.batch:], batches, rule.batch), batches


@njit(cache=True)
def _mean_loss(terms, batches, batch):
    """Mean of -ln p_y over the trained samples, summed batch by batch as the epoch ran.

    float64 and libm's log, in this order, as Python's ``math.log`` gives them; jitted
    apart from the integer epoch, which stays free of float code.
    """
    total = 0.0
    for b in range(batches):
        s = 0.0
        for n in range(b * batch, (b + 1) * batch):
            s += math.log(terms[n, 0]) - math.log(max(terms[n, 1], 1))
        total += s
    return total / max(batches * batch, 1)


def train_epoch_float(net, params, X, Y, step, beta, batch, ws, adam=False, low=0):
    """Train one float32 reference epoch; returns (mean loss, batches). ``X`` is float32 [n, features];
    ``adam``: Adam on the weights, its state in ``params.mom``; ``low``: the lowest layer that trains."""
    check_common(net, X, Y, True)
    check_scratch(ws, net, X.shape[0], True)
    loss, batches = compiled("float", spatial_net(net))(net.desc, params, X, Y, np.float32(step), np.float32(beta),
                                                      bool(adam), int(batch), int(low), ws)
    return loss / max(batches * batch, 1), batches


def predict(net, params, X, e_x, chunk, ws):
    """Classes (int64 [n]) of X: int8 (integer params, exponent ``e_x``) or float32 (FloatParams)."""
    out = np.zeros(X.shape[0], dtype=np.int64)
    is_float = isinstance(params, FloatParams)
    require("X", X, [np.float32] if is_float else [np.int8])
    if X.ndim != 2 or chunk * X.shape[1] > ws.acts.shape[1]:
        raise ValueError(f"X must be [n, features] with chunk * features <= {ws.acts.shape[1]}")
    compiled("predict", spatial_net(net), is_float, fast_kernels(net, chunk))(net, params, X, int(e_x), int(chunk), ws,
                                                                           out)
    return out


def output_values(net, params, X, e_x, chunk, ws):
    """The output layer's values (float64 [n, classes], before the softmax) of X, as :func:`predict` computes
    them ``chunk`` samples at a time: float32 for FloatParams, else the int8 codes times ``2**e_out`` of
    each chunk (a per-batch exponent, as in training)."""
    n_layers, n_cls = net.desc.shape[0], int(net.desc[-1, OUT_C])
    out = np.zeros((X.shape[0], n_cls))
    for start in range(0, X.shape[0], chunk):
        part = X[start:start + chunk]
        predict(net, params, part, e_x, chunk, ws)  # leaves the chunk's last activation in ws.acts
        z = ws.acts[n_layers, :len(part) * n_cls].reshape(len(part), n_cls).astype(np.float64)
        out[start:start + len(part)] = z if isinstance(params, FloatParams) else z * 2.0 ** ws.e_act[n_layers]
    return out
