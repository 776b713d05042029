"""Experiments ``lr-sweep`` (accuracy against the learning rate) and ``weight-change`` (exploration).

lr-sweep also estimates, per learning rate, ``alpha * max|g| / Delta``: the
largest step any weight of the initial net would take, in grid units. R changes
no weight once it is below 1/2 (every update rounds to zero). ``max|g|`` comes
from a float64 backward pass of the initial (quantized) weights over one
unshuffled epoch of batches, so it approximates the integer gradient the engine
uses; the table says "estimated".
"""
import numpy as np

from ..engine.network import DENSE
from ..training.job import prepare
from .common import cells, curve, failed_note, final, pm, select, settle_epoch, window_mean
from .report import Panel, Plan, Result
from .spec import train_config

LR_FULL = {"lr_exps": list(range(1, 13)) + [14, 16], "seed": [0, 1, 2, 3, 4], "epochs": 200, "bits": [4, 8]}
LR_QUICK = {"lr_exps": [2, 6, 14], "seed": [0], "epochs": 3, "bits": [8]}
WC_FULL = {"bits": [1, 2, 4, 8], "seed": [0, 1, 2, 3, 4], "epochs": 30}
WC_QUICK = {"bits": [2, 8], "seed": [0], "epochs": 3}
LR = "0.0625"
EARLY = 30  # the epoch budget of the first lr-sweep: its accuracies are shown beside the long run's
SETTLE_TOL = 0.005  # a curve has stopped rising once its 10-epoch mean stays within this of its last 10 epochs'


def plan(name, quick):
    if name == "weight-change":
        g = WC_QUICK if quick else WC_FULL
        return Plan(cells({"method": ["sr", "bc"], "bits": g["bits"], "seed": g["seed"]},
                          {"epochs": g["epochs"], "lr": LR}),
                    {"methods": "sr, bc", "bits": g["bits"], "seeds": g["seed"], "epochs": g["epochs"], "lr": LR})
    g = LR_QUICK if quick else LR_FULL
    lrs = [f"{2.0 ** -e!r}" for e in g["lr_exps"]]
    return Plan(cells({"bits": g["bits"], "method": ["sr", "r", "bc"], "lr": lrs, "seed": g["seed"]},
                      {"epochs": g["epochs"]}),
                {"methods": "sr, r, bc", "bits": g["bits"], "lr": "2^-" + ",".join(map(str, g["lr_exps"])),
                 "seeds": g["seed"], "epochs": g["epochs"], "batch": 16, "arch": "dense:32,dense:10"})


def max_grad_over_step(cell):
    """Estimated ``max|g| / Delta`` over weights and batches of the initial net (dense layers only)."""
    run = prepare(train_config({**cell, "epochs": 1}))
    st, X, y = run.state, run.X.astype(np.float64) * 2.0 ** run.data.e_x, run.data.y_train.astype(np.int64)
    ws, off = [], 0
    for i, s in enumerate(run.layers):
        if s.kind != DENSE:
            raise ValueError("the gradient estimate covers dense nets only")
        ws.append(st.wq[off:off + s.n_weights].reshape(s.out_shape[2], -1) * 2.0 ** st.e_w[i])
        off += s.n_weights
    bs, off = [], 0
    for i, s in enumerate(run.layers):
        bs.append(st.bq[off:off + s.n_bias] * 2.0 ** st.e_b[i])
        off += s.n_bias
    worst = np.zeros(len(ws))
    for start in range(0, len(y) - run.cfg.batch + 1, run.cfg.batch):
        grads = _mlp_grads(ws, bs, X[start:start + run.cfg.batch], y[start:start + run.cfg.batch])
        worst = np.maximum(worst, [np.abs(g).max() for g in grads])
    return float(max(worst[i] / 2.0 ** st.e_w[i] for i in range(len(ws))))


def _mlp_grads(ws, bs, x, y):
    """Mean cross-entropy weight gradients of a ReLU MLP on one batch (float64)."""
    acts = [x]
    for i, (w, b) in enumerate(zip(ws, bs)):
        z = acts[-1] @ w.T + b
        acts.append(np.maximum(z, 0) if i < len(ws) - 1 else z)
    p = np.exp(acts[-1] - acts[-1].max(axis=1, keepdims=True))
    err = p / p.sum(axis=1, keepdims=True)
    err[np.arange(len(y)), y] -= 1
    grads = [None] * len(ws)
    for i in range(len(ws) - 1, -1, -1):
        grads[i] = err.T @ acts[i] / len(y)
        err = (err @ ws[i]) * (acts[i] > 0)
    return grads


def analyze(name, plan, records):
    return _analyze_wc(name, plan, records) if name == "weight-change" else _analyze_lr(name, plan, records)


def _analyze_lr(name, plan, records):
    tables, rows, panels, notes = [], [], [], []
    for bits in plan.grid["bits"]:
        t, r, p, n = _lr_at_bits([c for c in plan.cells if c["bits"] == bits], records, bits)
        tables.append((f"Test accuracy against learning rate ({bits}-bit)", t))
        tables.append((f"Where the curves stop rising ({bits}-bit; seed means)",
                       _settle_table([c for c in plan.cells if c["bits"] == bits], records, plan.grid["epochs"])))
        rows, panels, notes = rows + r, panels + p, notes + n
    return Result(name, plan.grid, tables, rows, panels, notes + failed_note(records))


def _lr_at_bits(plan_cells, records, bits):
    """(table, CSV rows, panels, notes) of one bit width."""
    ok = [r for r in records if r["status"] == "ok" and r["cell"]["bits"] == bits]
    lrs = list(dict.fromkeys(c["lr"] for c in plan_cells))
    gmax = max_grad_over_step(plan_cells[0])
    rows, table, lines = [], [], {}
    for lr in lrs:
        row = {"lr": lr, "alpha*max|g|/Delta (estimated)": float(lr) * gmax}
        for m in ("sr", "r", "bc"):
            recs = select(ok, method=m, lr=lr)
            s = final(recs)
            changed = max((h["changed_fraction"] for r in recs for h in r["report"]["history"]), default=None)
            rows.append({"bits": bits, "lr": lr, "method": m, "step_over_delta": row["alpha*max|g|/Delta (estimated)"],
                         **s, "max_changed_fraction": changed})
            row[m] = pm(s)
            row[f"{m} max changed"] = changed
            lines.setdefault(m, []).append((float(lr), s["mean"], s["std"]))
        table.append(row)
    panels = [Panel(f"{bits}-bit: final test accuracy vs learning rate", "learning rate", "test accuracy",
                    [(m, [p[0] for p in v], [p[1] for p in v], [p[2] for p in v]) for m, v in lines.items()],
                    logx=True)]
    for m in ("sr", "r", "bc"):
        panels.append(Panel(f"{bits}-bit {m}: test accuracy vs epoch", "epoch", "test accuracy",
                            [(f"lr {lr}", *curve(select(ok, method=m, lr=lr), "test_accuracy"), None)
                             for lr in lrs if select(ok, method=m, lr=lr)]))
    notes = [f"{bits}-bit: R changes no weight when alpha*max|g|/Delta < 1/2; max|g|/Delta = {gmax:.4g} "
             "(float64 backward of the initial net of seed 0: an estimate)"]
    return table, rows, panels, notes


def _settle_table(plan_cells, records, epochs):
    """Per rate and method: accuracy at epoch EARLY and at the end, and the epoch the seed-mean curve settles.

    Settling is :func:`settle_epoch` with width 10 and tolerance SETTLE_TOL: the end of the first
    10-epoch window whose mean is within SETTLE_TOL of the last 10 epochs' mean, and stays so.
    """
    ok = [r for r in records if r["status"] == "ok"]
    rows = []
    for lr in dict.fromkeys(c["lr"] for c in plan_cells):
        row = {"lr": lr}
        for m in ("sr", "bc"):
            recs = select(ok, method=m, lr=lr, bits=plan_cells[0]["bits"])
            if not recs:
                continue
            _, acc = curve(recs, "test_accuracy")
            if epochs > EARLY:
                row[f"{m} acc @{EARLY}"] = acc[EARLY - 1]
            row[f"{m} acc @{epochs}"] = window_mean(acc, epochs, 1)
            row[f"{m} gain, last half"] = window_mean(acc, epochs, 10) - window_mean(acc, epochs // 2, 10)
            row[f"{m} settles at"] = settle_epoch(acc, SETTLE_TOL, 10)
        rows.append(row)
    return rows


def _analyze_wc(name, plan, records):
    rows, table, lines = [], [], []
    for m in ("sr", "bc"):
        for b in plan.grid["bits"]:
            recs = select(records, method=m, bits=b)
            epochs, share = curve(recs, "changed_fraction")
            rows += [{"method": m, "bits": b, "epoch": e, "changed_fraction_mean": v} for e, v in zip(epochs, share)]
            table.append({"method": m, "bits": b, "epoch 1": share[0], "last epoch": share[-1],
                          "mean over epochs": float(np.mean(share)), "final test acc": pm(final(recs))})
            lines.append((f"{m} {b}-bit", epochs, share, None))
    return Result(name, plan.grid, [("Share of weights changed per epoch (mean over seeds)", table)], rows,
                  [Panel("share of weights changed per epoch", "epoch", "changed share", lines, logy=True)],
                  failed_note(records))
