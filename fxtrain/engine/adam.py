"""Adam for ``bc`` (on the float32 shadow weights) and ``float``: weights only, like momentum.

Adam needs float state, two float32 moments per weight, so it exists only for
the methods that already keep float weights; ``sr`` and ``r`` have none. The
state lives in the run's ``mom`` array, laid out ``[m (n_w), v (n_w), t]``, and
``Rule.mom_j == ADAM`` (float: ``beta < 0``) selects it. Biases keep their
method's plain update.

The moments are fed ``h = alpha * g`` (what the SGD path already forms, ``step *
G``); Adam's direction ``m_hat / (sqrt(v_hat) + eps)`` does not change when the
gradient is scaled, so ``alpha * m_hat_h / (sqrt(v_hat_h) + alpha * eps)`` is
exactly Adam's step ``alpha * m_hat_g / (sqrt(v_hat_g) + eps)``.
"""
import numpy as np
from numba import njit

from .updates import update_bc

ADAM = -1  # the Rule.mom_j that selects Adam (momentum's j is 0 or positive)
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


@njit(cache=True)
def adam_direction(h, mom, o, alpha):
    """Update the moments of weights ``o .. o + len(h)`` with ``h = alpha * g``; return the float32 step.

    ``mom`` float32 [2 n_w + 1]; the step counter ``mom[-1]`` counts the steps before
    this one (the caller advances it once per step).
    """
    n_w = (mom.shape[0] - 1) // 2
    t = mom[2 * n_w] + 1.0
    c1, c2 = 1.0 - BETA1 ** t, 1.0 - BETA2 ** t
    out = np.empty(h.shape[0], np.float32)
    for j in range(h.shape[0]):
        m = np.float32(BETA1 * mom[o + j] + (1.0 - BETA1) * h[j])
        v = np.float32(BETA2 * mom[n_w + o + j] + (1.0 - BETA2) * h[j] * h[j])
        mom[o + j], mom[n_w + o + j] = m, v
        out[j] = np.float32(alpha * (m / c1) / (np.sqrt(v / c2) + alpha * EPS))
    if o == 0:  # weight offset 0 is the first layer, the last one a backward sweep updates
        mom[2 * n_w] = t
    return out


@njit(cache=True)
def adam_bc(bits, qm, w, shadow, g, step, e_w, mom, o, alpha):
    """BinaryConnect with Adam: the shadow moves by Adam's step, then is clipped and re-quantised."""
    h = np.empty(g.shape[0], np.float32)
    for j in range(g.shape[0]):
        h[j] = step * np.float32(g[j])
    update_bc(bits, qm, w, shadow, adam_direction(h, mom, o, alpha), np.float32(1.0), e_w, mom[:0],
              np.float32(0.0))


@njit(cache=True)
def adam_float(w, g, step, mom, o, alpha):
    """float32 weights with Adam."""
    d = adam_direction(step * g, mom, o, alpha)
    for j in range(w.shape[0]):
        w[j] -= d[j]


def adam_state(n_weights):
    """Fresh Adam state: float32 [2 n_w + 1] (both moments, then the step counter)."""
    return np.zeros(2 * n_weights + 1, dtype=np.float32)


def enable_adam(run):
    """Switch a fresh ``bc`` or ``float`` run (a ``training.run.Run``) to Adam on its weights."""
    from ..errors import ConfigError
    if run.cfg.method not in ("bc", "float") or run.mom_j:
        raise ConfigError("Adam needs float weights (bc or float) and no momentum setting")
    run.mom_j = ADAM
    run.state.mom = adam_state(run.n_weights)
