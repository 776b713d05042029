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
