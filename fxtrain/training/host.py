"""The host machine's memory, held against what a run would allocate, before it allocates it."""
import os

import numpy as np

from ..errors import ConfigError
from .config import parse_momentum

# Beyond the epoch buffers a run keeps its state (weights, biases, bc's shadow, momentum),
# a snapshot of the weights per epoch, the data twice (as loaded and as trained) and the
# deployed-accuracy calibration (int8 activations of the training set, chunked int64 sums).
STATE_COPIES = 3


def available_bytes():
    """Memory the machine can give a new allocation now: MemAvailable, else free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_bytes(layout, layers, cfg, x_shape):
    """Bytes a run allocates on the host: epoch buffers, state copies, data and calibration."""
    buffers = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in layout.values())
    n_w = sum(s.n_weights for s in layers)
    per_weight = 4 if cfg.method == "float" else (2 if cfg.bits > 8 else 1) + (4 if cfg.method == "bc" else 0)
    per_weight += (4 if cfg.method in ("bc", "float") else 2) if parse_momentum(cfg.momentum) else 0
    widest = max(int(np.prod(s.out_shape)) for s in layers)
    calibration = x_shape[0] * widest + 256 * widest * 8
    return buffers + STATE_COPIES * n_w * per_weight + 2 * x_shape[0] * x_shape[1] + calibration


def check_host_memory(layout, layers, cfg, x_shape):
    """Raise ConfigError, with the estimate, if the run would need more memory than the host has."""
    need, have = estimate_bytes(layout, layers, cfg, x_shape), available_bytes()
    if have is not None and need > have:
        arch = cfg.arch or "the default"
        raise ConfigError(f"this run needs about {need / 2**30:.1f} GiB of host memory (arch {arch}, "
                          f"batch {cfg.batch}) but only {have / 2**30:.1f} GiB is available; "
                          "use a narrower --arch or a smaller --batch")
