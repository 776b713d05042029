"""Does a run fit a target? If not, what overflowed, by how much, and what would fit.

Builds :class:`cost.Cost` for a configuration and a data shape, checks it
against a :class:`profiles.Target`, and searches the largest batch and the largest
hidden width that fit both the usable SRAM and the per-epoch time budget.
"""
from ..engine.network import parse_arch
from ..errors import TargetError
from ..training.config import parse_lr, step_fixed
from ..training.run import lowest_trained
from .cost import Fit, account
from .profiles import list_targets

MAX_WIDTH = 1 << 16


def fit_for(arch, method, bits, batch, shape, target, momentum=False, lr="0.0625", adam=False, train_layers=None):
    """The :class:`Fit` of one configuration; ``shape`` = (input_shape, n_classes, n_train); ``train_layers``:
    only the last N weight layers train."""
    input_shape, n_classes, n_train = shape
    layers = parse_arch(arch, input_shape, n_classes)
    n_features = 1
    for d in input_shape:
        n_features *= d
    step_m = step_fixed(*parse_lr(lr), batch)[0]
    return Fit(account(layers, method, bits, batch, n_train, n_features, n_classes,
                       momentum=momentum, step_m=step_m, adam=adam, low=lowest_trained(layers, train_layers),
                       dsp=target.has_dsp), target)


def _fits(fit):
    return fit.sram_fits and fit.time_fits


def widened(arch, width, shape):
    """``arch`` with every hidden dense width (or, with none, every conv's filters) set to ``width``."""
    layers = parse_arch(arch, shape[0], shape[1])
    tokens = [s.token() for s in layers]
    # a weighted kind's token holds its width second: dense:N, conv:F:..., conv1d:F:...
    hidden = [i for i, s in enumerate(layers[:-1]) if s.layer_kind.weighted and s.layer_kind.flat_input]
    if not hidden:
        hidden = [i for i, s in enumerate(layers) if s.layer_kind.weighted and not s.layer_kind.flat_input]
    for i in hidden:
        parts = tokens[i].split(":")
        parts[1] = str(width)
        tokens[i] = ":".join(parts)
    return ",".join(tokens), bool(hidden)


def largest_width(arch, method, bits, batch, shape, target, momentum=False):
    """Largest hidden width that fits (0 if even width 1 does not), by bisection."""
    _, has_hidden = widened(arch, 1, shape)
    if not has_hidden:
        return None
    lo, hi = 0, MAX_WIDTH
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(fit_for(widened(arch, mid, shape)[0], method, bits, batch, shape, target, momentum)):
            lo = mid
        else:
            hi = mid - 1
    return lo


def largest_batch(arch, method, bits, batch, shape, target, momentum=False):
    """Largest batch <= ``batch`` that fits (0 if none)."""
    for b in range(batch, 0, -1):
        if _fits(fit_for(arch, method, bits, b, shape, target, momentum)):
            return b
    return 0


def require_fit(fit, arch, method, bits, batch, shape, momentum=False):
    """Raise a TargetError naming the overflow and what would fit; return ``fit`` if it fits."""
    if _fits(fit):
        return fit
    t, problems = fit.target, []
    if not fit.sram_fits:
        over = fit.cost.total_bytes - t.usable_sram_bytes
        problems.append(f"needs {fit.cost.total_bytes:,} bytes of SRAM but {t.name} has "
                        f"{t.usable_sram_bytes:,} usable ({t.sram_bytes:,} minus {t.reserved_sram_bytes:,} "
                        f"reserved): {over:,} bytes over")
    if not fit.time_fits:
        problems.append(f"needs an estimated {fit.seconds_per_epoch:,.1f} s per epoch but the budget is "
                        f"{t.budget_seconds_per_epoch:,.1f} s")
    hints = []
    b = largest_batch(arch, method, bits, batch, shape, t, momentum)
    if b:
        hints.append(f"--batch {b}")
    w = largest_width(arch, method, bits, batch, shape, t, momentum)
    if w:
        hints.append(f"--arch {widened(arch, w, shape)[0]}")
    hint = ("; it would fit with " + " or ".join(hints)) if hints else \
        _floor_hint(fit, arch, method, bits, shape, momentum)
    raise TargetError(f"{method} {bits}-bit {arch} does not fit {t.name}: " + " and ".join(problems) + hint)


def _floor_hint(fit, arch, method, bits, shape, momentum):
    """When no batch or width fits: the buffer that blocks it, and the smallest target that fits."""
    floor = fit_for(arch, method, bits, 1, shape, fit.target, momentum)
    name, size = max(floor.cost.buffers.items(), key=lambda kv: kv[1])
    msg = (f"; even batch 1 needs {floor.cost.total_bytes:,} bytes "
           f"(largest buffer: {floor.cost.labels[name]}, {size:,} bytes)")
    for t in sorted(list_targets(), key=lambda t: t.usable_sram_bytes):
        if _fits(fit_for(arch, method, bits, fit.cost.buffers["labels"], shape, t, momentum)):
            return msg + f"; it fits {t.name} ({t.sram_bytes // 1024} KiB SRAM): --target {t.name}"
    return msg + "; no shipped target fits it: use fewer bits, a smaller arch or smaller data"
