"""The main job: check a run against a target, train it, report memory and time.

``fxtrain simulate`` and ``fxtrain compare`` are thin shells over this module.
"""
import io
from pathlib import Path

from tabulate import tabulate

from .plan import fit_for, largest_width, require_fit
from .runner import prepare, train_job
from .store import write_bytes_atomic, write_json_atomic
from .targets import load_target

METHOD_ORDER = ("sr", "bc", "r", "float")


def data_shape(run):
    """(input_shape, n_classes, n_train): what the accounting needs from the data."""
    return run.data.input_shape, run.data.n_classes, len(run.data.y_train)


def plan(cfg, target_name, resume=None):
    """Load target and data, build the run, and refuse it if it does not fit.

    Returns (run, fit). Raises TargetError with what overflowed and what would fit.
    """
    target = load_target(target_name)
    run = prepare(cfg, resume=resume)
    momentum = run.mom_j > 0
    fit = fit_for(run.arch, cfg.method, cfg.bits, cfg.batch, data_shape(run), target, momentum)
    require_fit(fit, run.arch, cfg.method, cfg.bits, cfg.batch, data_shape(run), momentum)
    return run, fit


def target_section(fit):
    """``report.json``'s ``target`` section."""
    return {"name": fit.target.name, "memory": fit.memory_report(), "compute": fit.compute_report()}


def run_simulation(run, fit, out=None, on_epoch=None):
    """Train, then add the target section to the report (and rewrite report.json)."""
    report = train_job(run, out=out, on_epoch=on_epoch)
    report["target"] = target_section(fit)
    if out:
        write_json_atomic(Path(out) / "report.json", report)
    return report


def memory_table(fit):
    """Buffers with bytes and share of the usable SRAM, then the totals."""
    usable = fit.target.usable_sram_bytes
    rows = [[name, n, f"{100.0 * n / usable:.1f}%"] for name, n in fit.cost.buffers.items()]
    rows.append(["total", fit.cost.total_bytes, f"{100.0 * fit.cost.total_bytes / usable:.1f}%"])
    return tabulate(rows, headers=["buffer", "bytes", f"of {usable:,} usable"], tablefmt="simple",
                    intfmt=",", colalign=("left", "right", "right"))


def compute_table(fit):
    c = fit.compute_report()
    rows = [["int MACs / epoch", f"{c['int_macs_per_epoch']:,}"],
            ["other int ops / epoch", f"{c['int_ops_per_epoch']:,}"],
            ["float ops / epoch", f"{c['float_ops_per_epoch']:,}"],
            ["cycles / epoch", f"{c['cycles_per_epoch']:,.0f}"],
            ["est. seconds / epoch", f"{c['est_seconds_per_epoch']:.3f}"],
            ["budget seconds / epoch", f"{c['budget_seconds']:.1f}"]]
    return tabulate(rows, tablefmt="simple", colalign=("left", "right"), disable_numparse=True)


def compare_rows(arch, bits_list, batch, shape, target, methods=METHOD_ORDER, accuracy=None):
    """One dict per (bits, method): memory split, float ops, time, and accuracy if given."""
    rows = []
    for bits in bits_list:
        for method in methods:
            fit = fit_for(arch, method, bits, batch, shape, target)
            buf = fit.cost.buffers
            weights, shadow = buf["weights"], buf.get("shadow weights (float32)", 0)
            row = {"method": method, "bits": bits, "weight_bytes": weights, "shadow_bytes": shadow,
                   "other_bytes": fit.cost.total_bytes - weights - shadow, "total_bytes": fit.cost.total_bytes,
                   "sram_percent": round(fit.sram_percent, 2),
                   "flash_bytes": fit.cost.flash["weights (packed)"] + fit.cost.flash["biases"], "fits": fit.sram_fits and fit.time_fits,
                   "float_ops_per_step": fit.cost.float_ops_per_step,
                   "est_seconds_per_epoch": fit.seconds_per_epoch}
            if accuracy is not None:
                row["test_accuracy"] = accuracy(method, bits)
            rows.append(row)
    return rows


def width_rows(arch, bits_list, batch, shape, target):
    """Largest hidden width that fits for sr and bc at each bit width, and their ratio."""
    rows = []
    for bits in bits_list:
        sr = largest_width(arch, "sr", bits, batch, shape, target)
        bc = largest_width(arch, "bc", bits, batch, shape, target)
        ratio = (sr / bc) if sr and bc else None
        rows.append({"bits": bits, "sr_width": sr, "bc_width": bc, "sr_over_bc": ratio})
    return rows


def plot_memory(rows, target, path):
    """PNG: training SRAM (left) and packed flash (right) against bits, per method, with limits."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from .errors import FxtrainError
        raise FxtrainError("--plot needs matplotlib: pip install 'fxtrain[plot]' (or pip install matplotlib)") from None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    styles = {"sr": ("o", "-"), "bc": ("s", "-"), "r": ("^", "--"), "float": ("D", ":")}
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r["bits"], r["total_bytes"], r["flash_bytes"]) for r in rows if r["method"] == method)
        marker, ls = styles.get(method, ("o", "-"))
        for ax, col in zip(axes, (1, 2)):
            ax.plot([p[0] for p in pts], [p[col] / 1024 for p in pts], marker=marker, linestyle=ls, label=method)
    axes[0].axhline(target.usable_sram_bytes / 1024, color="crimson", linestyle="--", label="usable SRAM")
    axes[0].set_title(f"training SRAM on {target.name}")
    axes[1].set_title("weights + biases in flash (packed)")
    for ax in axes:
        ax.set_xlabel("weight bits")
        ax.set_ylabel("KiB")
        ax.set_xticks(sorted({r["bits"] for r in rows}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
