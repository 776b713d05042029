"""Adam for ``bc`` (on the float32 shadow weights) and ``float``: weights only, like momentum.

Adam needs float state, two float32 moments per weight, so it exists only for
the methods that already keep float weights; ``sr`` and ``r`` have none. It is
chosen by ``TrainConfig.optimizer = "adam"`` and reaches the kernels as
``Rule.adam`` (float: the epoch's ``adam`` flag). The state lives in the run's
``mom`` array, laid out ``[m (n_w), v (n_w), t]``; ``t`` counts finished steps
and advances once per step, after every layer's update (:func:`adam_tick`), so
every layer of a step sees the same bias corrections whatever their order.
Biases keep their method's plain update. Nothing here allocates: each weight's
step is formed and applied in one pass.

The moments are fed ``h = alpha * g`` (what the SGD path already forms, ``step *
G``); Adam's direction ``m_hat / (sqrt(v_hat) + eps)`` does not change when the
gradient is scaled, so ``alpha * m_hat_h / (sqrt(v_hat_h) + alpha * eps)`` is
exactly Adam's step ``alpha * m_hat_g / (sqrt(v_hat_g) + eps)``.
"""
import numpy as np
from numba import njit

from .updates import bc_limits, bc_store

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


@njit(cache=True, inline='always')
def _corrections(mom):
    """The bias corrections ``(1 - beta1^t, 1 - beta2^t)`` of this step, ``t`` counting it."""
    t = mom[mom.shape[0] - 1] + 1.0
    return 1.0 - BETA1 ** t, 1.0 - BETA2 ** t


@njit(cache=True, inline='always')
def adam_step(mom, n_w, i, h, alpha, c1, c2):
    """Update weight ``i``'s moments with ``h = alpha * g``; return its float32 step."""
    m = np.float32(BETA1 * mom[i] + (1.0 - BETA1) * h)
    v = np.float32(BETA2 * mom[n_w + i] + (1.0 - BETA2) * h * h)
    mom[i], mom[n_w + i] = m, v
    return np.float32(alpha * (m / c1) / (np.sqrt(v / c2) + alpha * EPS))


@njit(cache=True)
def adam_tick(mom):
    """End of a step: one more step for the bias corrections."""
    mom[mom.shape[0] - 1] += 1.0


@njit(cache=True)
def adam_bc(bits, qm, w, shadow, g, step, e_w, mom, o, alpha):
    """BinaryConnect with Adam on weights ``o ..``: the shadow moves by Adam's step, then is clipped and
    re-quantised as SGD's is (``updates.bc_store``). Returns how many were clipped."""
    n_w = (mom.shape[0] - 1) // 2
    c1, c2 = _corrections(mom)
    inv, lim = bc_limits(qm, e_w)
    clipped = 0
    for j in range(g.shape[0]):
        d = adam_step(mom, n_w, o + j, np.float32(step * np.float32(g[j])), alpha, c1, c2)
        clipped += bc_store(bits, qm, w, shadow, j, shadow[j] - d, inv, lim)
    return clipped


@njit(cache=True)
def adam_float(w, g, step, mom, o, alpha):
    """float32 weights ``o ..`` with Adam."""
    n_w = (mom.shape[0] - 1) // 2
    c1, c2 = _corrections(mom)
    for j in range(w.shape[0]):
        w[j] -= adam_step(mom, n_w, o + j, np.float32(step * g[j]), alpha, c1, c2)


def adam_state(n_weights):
    """Fresh Adam state: float32 [2 n_w + 1] (both moments, then the step counter)."""
    return np.zeros(2 * n_weights + 1, dtype=np.float32)
