"""Experiment ``anneal``: does a rate decaying inside one run help BC and not SR (the greedy-search phase)?

The paper's abstract says that methods keeping a high-precision copy of the weights
(BC) have a greedy-search phase that purely quantized methods (SR, R) lack. A search
turns greedy when the rate shrinks: BC's real weights w_r then settle, so its
quantized weights stop changing, and it keeps descending; SR's rounding noise does
not shrink with the rate the same way (a weight moves with probability about
alpha|g|/Delta, and it moves a whole grid step when it does), so it keeps
exploring. Measured here on digits, per epoch: test accuracy, and the share of
weights whose quantized value changed in the epoch (the training history's
``changed_fraction``), under Robbins-Monro alpha_0/(1 + epoch/tau) and, as the
control, under the constant alpha_0.
"""

from .common import cells, curve, failed_note, final, pm, select, settle_epoch, window_mean
from .report import Panel, Plan, Result

LR = "0.0625"
METHODS = ("sr", "r", "bc")
FULL = {"bits": [2, 8], "seed": [0, 1, 2, 3, 4], "epochs": 200, "tau": 10}
QUICK = {"bits": [2, 8], "seed": [0], "epochs": 20, "tau": 4}
WINDOW = 10  # epochs averaged at each end: one epoch's share and accuracy are noisy


def plan(name, quick):
    g = QUICK if quick else FULL
    grid = {"method": list(METHODS), "bits": g["bits"], "seed": g["seed"], "lr_decay_tau": [g["tau"], 0]}
    return Plan(cells(grid, {"epochs": g["epochs"], "lr": LR}),
                {"methods": ", ".join(METHODS), "bits": g["bits"], "seeds": g["seed"], "epochs": g["epochs"],
                 "lr": f"{LR}/(1 + epoch/{g['tau']}) (robbins-monro) and {LR} (constant)", "batch": 16,
                 "arch": "dense:32,dense:10"})


def _schedule(tau):
    return "robbins-monro" if tau else "constant"


def _summary(recs, epochs):
    """Per-cell-group numbers from the seed-mean curves."""
    _, acc = curve(recs, "test_accuracy")
    _, share = curve(recs, "changed_fraction")
    w = min(WINDOW, max(1, epochs // 4))
    half = epochs // 2
    rates = [float(h["lr"]) for h in recs[0]["report"]["history"]]
    return {"final test acc": pm(final(recs)),
            "acc gain, 2nd half": window_mean(acc, epochs, w) - window_mean(acc, half, w),
            "acc settles at epoch": settle_epoch(acc, width=w),
            "changed, epoch 1": share[0], "changed, last epoch": share[-1],
            "changed last / first": share[-1] / share[0] if share[0] else None,
            # SR moves a weight with probability about alpha|g|/Delta: dividing by the rate's decay shows
            # whether the share falls faster than the rate alone makes it fall
            "last share per unit rate": share[-1] * rates[0] / rates[-1]}


def analyze(name, plan, records):
    g, epochs = plan.grid, plan.grid["epochs"]
    table, rows, panels = [], [], []
    for bits in g["bits"]:
        acc_lines, share_lines = [], []
        for tau in dict.fromkeys(c["lr_decay_tau"] for c in plan.cells):
            for m in METHODS:
                recs = select(records, method=m, bits=bits, lr_decay_tau=tau)
                if not recs:
                    continue
                row = {"method": m, "bits": bits, "schedule": _schedule(tau), **_summary(recs, epochs)}
                table.append(row)
                ep, acc = curve(recs, "test_accuracy")
                _, share = curve(recs, "changed_fraction")
                rows += [{"method": m, "bits": bits, "schedule": _schedule(tau), "epoch": e, "test_accuracy": a,
                          "changed_fraction": s, "lr": recs[0]["report"]["history"][e - 1]["lr"],
                          "seeds": len(recs)} for e, a, s in zip(ep, acc, share)]
                acc_lines.append((f"{m} {_schedule(tau)}", ep, acc, None))
                share_lines.append((f"{m} {_schedule(tau)}", ep, [max(s, 1e-5) for s in share], None))
        panels.append(Panel(f"{bits}-bit: test accuracy vs epoch", "epoch", "test accuracy (mean over seeds)",
                            acc_lines))
        panels.append(Panel(f"{bits}-bit: share of weights changed per epoch", "epoch",
                            "changed share (0 drawn at 1e-5)", share_lines, logy=True))
    return Result(name, g, [("Annealing: accuracy and weight changes (seed means)", table)], rows, panels,
                  _answers(table) + failed_note(records))


def _answers(table):
    """The two questions of the experiment, answered from the table's own numbers, per bit width."""
    notes = ["", "'changed' is the share of weights whose quantized value changed in an epoch; 'acc gain, 2nd half' "
             "compares the mean test accuracy of the last epochs with that of the epochs just before the middle"]
    for bits in dict.fromkeys(r["bits"] for r in table):
        rm = {r["method"]: r for r in table if r["bits"] == bits and r["schedule"] == "robbins-monro"}
        const = {r["method"]: r for r in table if r["bits"] == bits and r["schedule"] == "constant"}
        if "sr" not in rm or "bc" not in rm:
            continue
        sr, bc = rm["sr"], rm["bc"]
        notes.append(f"{bits}-bit, robbins-monro: accuracy gain over the second half BC {bc['acc gain, 2nd half']:+.3f}, "
                     f"SR {sr['acc gain, 2nd half']:+.3f}; settles at epoch BC {bc['acc settles at epoch']}, "
                     f"SR {sr['acc settles at epoch']}")
        notes.append(f"{bits}-bit, robbins-monro: changed share last/first BC {_f(bc['changed last / first'])}, "
                     f"SR {_f(sr['changed last / first'])}; last epoch BC {bc['changed, last epoch']:.4g} vs SR "
                     f"{sr['changed, last epoch']:.4g}; per unit rate BC {bc['last share per unit rate']:.4g}, "
                     f"SR {sr['last share per unit rate']:.4g}")
        if "sr" in const and "bc" in const:
            notes.append(f"{bits}-bit: final accuracy, decaying vs constant rate: BC {bc['final test acc']} vs "
                         f"{const['bc']['final test acc']}; SR {sr['final test acc']} vs {const['sr']['final test acc']}")
    return notes


def _f(x):
    return "-" if x is None else f"{x:.3g}"
