"""The checks in front of the jitted epochs, and which compiled variant a run takes.

Every array a jitted call receives is checked here first (dtype, shape, contiguity),
so a wrong buffer is a clear Python error, not a silent wrong result in compiled code.
"""
import numpy as np

from .network import DENSE, KIND, N_W, OUT_C
from .updates import BC

FAST_MIN_WEIGHTS, FAST_MIN_BATCH = 4096, 256  # see fast_kernels


def require(name, a, dtypes, shape=None):
    """Raise TypeError/ValueError unless ``a`` is a C-contiguous ndarray of one of ``dtypes``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype not in [np.dtype(t) for t in dtypes]:
        raise TypeError(f"{name} must have dtype {'/'.join(np.dtype(t).name for t in dtypes)}, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")


def check_common(net, X, Y, float_mode):
    require("desc", net.desc, [np.int64])
    n = X.shape[0]
    require("X", X, [np.float32] if float_mode else [np.int8])
    require("Y", Y, [np.int64], (n,))
    if Y.size and (Y.min() < 0 or Y.max() >= net.desc[-1, OUT_C]):
        raise ValueError(f"labels must lie in [0, {net.desc[-1, OUT_C]})")


def check_int(net, p, method):
    n_layers = net.desc.shape[0]
    n_w, n_b = int(net.desc[:, N_W].sum()), int(p.bq.shape[0])
    require("e_w", net.e_w, [np.int64], (n_layers,))
    require("e_b", net.e_b, [np.int64], (n_layers,))
    require("wq", p.wq, [np.int8, np.int16], (n_w,))
    require("bq", p.bq, [np.int32], (n_b,))
    require("rng", p.rng, [np.uint32], (1,))
    require("shadow", p.shadow, [np.float32], (n_w if method == BC else 0,))
    require("mom", p.mom, [np.float32 if method == BC else np.int16])
    if p.mom.shape[0] not in (0, n_w) and not (method == BC and p.mom.shape[0] == 2 * n_w + 1):
        raise ValueError(f"mom must have shape (0,), ({n_w},) or (bc's Adam) ({2 * n_w + 1},), got {p.mom.shape}")


def spatial_net(net):
    """True if the net has a conv, pool or gap layer: the kernels a dense-only net never compiles."""
    return bool((net.desc[:, KIND] != DENSE).any())


def fast_kernels(net, batch):
    """True where the packed sweeps and bulk draws pay for their compile time (about twice the
    serial kernels'): a conv net, a dense layer of FAST_MIN_WEIGHTS weights or more, or a batch
    of FAST_MIN_BATCH. Small dense nets (the default one) keep the quick-to-compile loops."""
    d = net.desc
    return bool(spatial_net(net) or batch >= FAST_MIN_BATCH or (d[:, N_W] >= FAST_MIN_WEIGHTS).any())


