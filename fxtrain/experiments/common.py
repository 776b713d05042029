"""Helpers the digits experiments share: building cells, selecting records, curves over seeds."""
import numpy as np

from .spec import expand
from .summary import stats

CONV_ARCH = "conv:8:3,pool:2,dense:10"


def cells(grid, fixed):
    """Training cells of ``grid`` x ``fixed`` (checked like a spec file)."""
    return expand(grid, fixed, where="experiment grid")


def select(records, **match):
    """The ok records whose cell matches every ``key=value``."""
    return [r for r in records if r["status"] == "ok" and all(r["cell"][k] == v for k, v in match.items())]


def final(recs, field="test_accuracy"):
    """Stats over seeds of the last epoch's ``field``."""
    return stats([r["report"]["history"][-1][field] for r in recs])


def curve(recs, field):
    """Per-epoch mean over seeds of ``field``: (epochs, means)."""
    hist = np.array([[h[field] for h in r["report"]["history"]] for r in recs])
    return list(range(1, hist.shape[1] + 1)), hist.mean(axis=0).tolist()


def failed_note(records):
    bad = [r for r in records if r["status"] != "ok"]
    return [f"{len(bad)} cell(s) failed, e.g. {bad[0]['error']}"] if bad else []


def pm(s, digits=3):
    """'mean ± std' text of a stats dict."""
    return "-" if s["mean"] is None else f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def window_mean(ys, end, width):
    """Mean of ``ys[end - width:end]`` (fewer values near the start)."""
    return float(np.mean(ys[max(0, end - width):end]))


def settle_epoch(ys, tol=0.005, width=10):
    """The first epoch (1-based) from which a curve's running mean over ``width`` epochs stays within ``tol``
    of its mean over the last ``width`` epochs: where the curve stops rising (or falling), to within ``tol``.

    A running mean rather than single epochs, because one epoch's test accuracy on digits moves by about
    0.01 from noise alone.
    """
    final = window_mean(ys, len(ys), width)
    means = [window_mean(ys, e, width) for e in range(1, len(ys) + 1)]
    settled = len(ys)
    for e in range(len(ys), 0, -1):
        if abs(means[e - 1] - final) > tol:
            break
        settled = e
    return settled
