"""One training epoch as one jitted call, and batched evaluation.

Order of generator draws within an epoch (the C runtime follows it):
1. a Fisher-Yates shuffle of the training indices, ``n - 1`` draws;
2. for each full batch (a last partial batch is dropped), from the last layer to
   the first: one draw per error value sent to the layer below, then (``sr``
   only) one per weight in weight order and one per bias.
"""
import numpy as np
from numba import njit

from .fixedpoint import xorshift32
from .kernels import softmax_error_float, softmax_error_int
from .methods import (
    BC, update_bc, update_bias_int, update_float, update_weights_int, update_weights_momentum,
)
from .model import B_OFF, KIND, OUT_C, POOL, W_OFF
from .passes import backward_float, backward_int, forward_float, forward_int


@njit(cache=True)
def shuffle(perm, rng):
    """Fisher-Yates with one draw per position, ``j = r mod (i + 1)``."""
    for i in range(perm.shape[0]):
        perm[i] = i
    for i in range(perm.shape[0] - 1, 0, -1):
        j = xorshift32(rng) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]


@njit(cache=True)
def _gather(X, Y, perm, start, nb, x0, yb):
    for i in range(nb):
        x0[i, :] = X[perm[start + i]]
        yb[i] = Y[perm[start + i]]


@njit(cache=True)
def _update_layer_int(desc, l, method, bits, qm, wq, shadow, e_w, grad, e_g, m, k, rng, mom, j):
    """Weight update of layer ``l``; ``e_g`` is the gradient's exponent (error + input).

    ``mom`` is the int16 (sr, r) or float32 (bc) velocity, empty without momentum;
    ``j`` sets beta = 1 - 2**-j.
    """
    d = desc[l]
    nw = (desc[l + 1, W_OFF] if l + 1 < desc.shape[0] else wq.shape[0]) - d[W_OFF]
    w, o = wq[d[W_OFF]:d[W_OFF] + nw], d[W_OFF]
    if method == BC:
        step = np.float32(m * 2.0 ** (e_g - k))
        vel = mom[o:o + nw] if mom.shape[0] else mom
        update_bc(bits, qm, w, shadow[o:o + nw], grad[:nw], step, e_w[l], vel, np.float32(1.0 - 2.0 ** -j))
    elif mom.shape[0]:
        update_weights_momentum(method, bits, qm, w, mom[o:o + nw], grad[:nw], m, e_w[l] + k - e_g, j, rng)
    else:
        update_weights_int(method, bits, qm, w, grad[:nw], m, e_w[l] + k - e_g, rng)


@njit(cache=True)
def epoch_int(desc, wq, bq, shadow, e_w, e_b, X, e_x, Y, rng, method, bits, qm, m, k, batch,
              acts, e_act, acc, err, grad, gbias, probs, perm, yb, mom_q, mom_f, mom_j):
    """Train one epoch with integer passes; returns (summed loss, correct, batches).

    ``X`` is int8 [n, features] (HWC flattened) with exponent ``e_x``; ``m * 2**-k``
    is the per-sample step alpha / batch. Weights, biases, ``shadow`` (bc only)
    and ``rng`` are updated in place. Momentum: ``mom_q`` (int16, sr/r) or ``mom_f``
    (float32, bc) is the velocity, empty when off; beta = 1 - 2**-mom_j.
    """
    n_layers, n_cls = desc.shape[0], desc[-1, OUT_C]
    shuffle(perm, rng)
    loss, correct, batches = 0.0, 0, 0
    for start in range(0, X.shape[0] - batch + 1, batch):
        _gather(X, Y, perm, start, batch, acts[0, :batch * X.shape[1]].reshape((batch, -1)), yb)
        e_act[0] = e_x
        forward_int(desc, wq, bq, e_w, e_b, acts, e_act, acc, batch)
        logits = acts[n_layers, :batch * n_cls].reshape((batch, n_cls))
        lsum, c = softmax_error_int(logits, e_act[n_layers], yb, err[0, :batch * n_cls].reshape((batch, n_cls)), probs)
        loss += lsum
        correct += c
        batches += 1
        e_err, cur = -7, 0  # the softmax error is Q7
        for l in range(n_layers - 1, -1, -1):
            e_below = backward_int(desc, l, wq, e_w, acts, e_act, err[cur], e_err, acc, err[1 - cur],
                                   grad, gbias, rng, batch)
            if desc[l, KIND] != POOL:
                if method == BC:
                    _update_layer_int(desc, l, method, bits, qm, wq, shadow, e_w, grad,
                                      e_err + e_act[l], m, k, rng, mom_f, mom_j)
                else:
                    _update_layer_int(desc, l, method, bits, qm, wq, shadow, e_w, grad,
                                      e_err + e_act[l], m, k, rng, mom_q, mom_j)
                # The bias gradient's exponent is the error's alone.
                o = desc[l, OUT_C]
                update_bias_int(method, bq[desc[l, B_OFF]:desc[l, B_OFF] + o], gbias[:o], m,
                                e_b[l] + k - e_err, rng)
            e_err, cur = e_below, 1 - cur
    return loss, correct, batches


@njit(cache=True)
def epoch_float(desc, wf, bf, X, Y, rng, step, batch, acts, err, grad, gbias, perm, yb, mom_f, beta):
    """float32 reference epoch over the same shuffle; ``X`` is already dequantised.

    ``mom_f`` is the float32 weight velocity (empty without momentum)."""
    n_layers, n_cls = desc.shape[0], desc[-1, OUT_C]
    shuffle(perm, rng)
    loss, correct, batches = 0.0, 0, 0
    for start in range(0, X.shape[0] - batch + 1, batch):
        _gather(X, Y, perm, start, batch, acts[0, :batch * X.shape[1]].reshape((batch, -1)), yb)
        forward_float(desc, wf, bf, acts, batch)
        logits = acts[n_layers, :batch * n_cls].reshape((batch, n_cls))
        lsum, c = softmax_error_float(logits, yb, err[0, :batch * n_cls].reshape((batch, n_cls)))
        loss += lsum
        correct += c
        batches += 1
        cur = 0
        for l in range(n_layers - 1, -1, -1):
            backward_float(desc, l, wf, acts, err[cur], err[1 - cur], grad, gbias, batch)
            if desc[l, KIND] != POOL:
                d = desc[l]
                nw = (desc[l + 1, W_OFF] if l + 1 < n_layers else wf.shape[0]) - d[W_OFF]
                vel = mom_f[d[W_OFF]:d[W_OFF] + nw] if mom_f.shape[0] else mom_f
                update_float(wf[d[W_OFF]:d[W_OFF] + nw], grad[:nw], step, vel, beta)
                update_float(bf[d[B_OFF]:d[B_OFF] + d[OUT_C]], gbias[:d[OUT_C]], step, mom_f[:0], beta)
            cur = 1 - cur
    return loss, correct, batches


@njit(cache=True)
def predict_int(desc, wq, bq, e_w, e_b, X, e_x, chunk, acts, e_act, acc, out):
    """Class predictions (first argmax) in training-mode arithmetic, ``chunk`` samples at a time."""
    n_layers, n_cls = desc.shape[0], desc[-1, OUT_C]
    for start in range(0, X.shape[0], chunk):
        nb = min(chunk, X.shape[0] - start)
        acts[0, :nb * X.shape[1]].reshape((nb, -1))[:, :] = X[start:start + nb]
        e_act[0] = e_x
        forward_int(desc, wq, bq, e_w, e_b, acts, e_act, acc, nb)
        _argmax_rows(acts[n_layers, :nb * n_cls].reshape((nb, n_cls)), out[start:start + nb])


@njit(cache=True)
def predict_float(desc, wf, bf, X, chunk, acts, out):
    """Class predictions of the float32 reference."""
    n_layers, n_cls = desc.shape[0], desc[-1, OUT_C]
    for start in range(0, X.shape[0], chunk):
        nb = min(chunk, X.shape[0] - start)
        acts[0, :nb * X.shape[1]].reshape((nb, -1))[:, :] = X[start:start + nb]
        forward_float(desc, wf, bf, acts, nb)
        _argmax_rows(acts[n_layers, :nb * n_cls].reshape((nb, n_cls)), out[start:start + nb])


@njit(cache=True)
def _argmax_rows(z, out):
    for n in range(z.shape[0]):
        best = 0
        for j in range(1, z.shape[1]):
            if z[n, j] > z[n, best]:
                best = j
        out[n] = best
