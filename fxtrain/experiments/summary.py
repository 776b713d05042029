"""Aggregates over seeds, and CSV files written atomically."""
import csv
import io
import math

from .._files import write_text_atomic

def stats(values):
    """{n, mean, std (sample, ddof 1; 0 for one value), min, max} of a list of floats."""
    n = len(values)
    if not n:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"n": n, "mean": mean, "std": std, "min": min(values), "max": max(values)}


def group_over_seeds(records, keys, metric):
    """One row per distinct ``keys`` of the cells: the settings, ``metric``'s stats over seeds, failures.

    Parameters
    ----------
    records : list of dict
        Sweep records (``cell``, ``status``, ``report``).
    keys : list of str
        Cell settings that name a group (every varying setting but ``seed``).
    metric : callable
        ``metric(report)`` -> float.
    """
    groups = {}
    for rec in records:
        name = tuple(rec["cell"].get(k) for k in keys)
        groups.setdefault(name, []).append(rec)
    rows = []
    for name, recs in groups.items():
        ok = [metric(r["report"]) for r in recs if r["status"] == "ok"]
        rows.append({**dict(zip(keys, name)), **stats(ok), "failed": len(recs) - len(ok)})
    return rows


def varying_keys(cells, skip=("seed", "inputs")):
    """The settings whose value differs between cells, in the cells' key order, minus ``skip`` (the input
    digests follow the data setting, which names them)."""
    keys = [k for k in cells[0] if k not in skip]
    return [k for k in keys if len({repr(c.get(k)) for c in cells}) > 1]


def csv_text(rows):
    """CSV of a list of dicts (columns: the union of keys in first-seen order)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in cols})
    return buf.getvalue()


def _fmt(v):
    return repr(v) if isinstance(v, float) else ("" if v is None else v)


def write_csv(path, rows):
    write_text_atomic(path, csv_text(rows))
