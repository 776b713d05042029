"""PNG figures (matplotlib, the optional ``plot`` extra, imported only when drawing), written atomically.

A library module, not a CLI one: ``fxtrain.compare(plot=...)`` draws as ``fxtrain compare --plot`` does.
"""
import io

from ._files import write_bytes_atomic
from .errors import MissingExtraError


def pyplot():
    """matplotlib.pyplot on the Agg backend, or MissingExtraError with the pip command."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("plots need matplotlib: pip install 'fxtrain[plot]' (or pip install matplotlib)") \
            from None
    return plt


def save_png(fig, path):
    """Render ``fig`` to PNG bytes, close it, and write ``path`` atomically."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def plot_memory(rows, target, path):
    """PNG: training SRAM (left) and packed flash (right) against bits, per method, with limits."""
    plt = pyplot()
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
    save_png(fig, path)


def plot_panels(panels, path):
    """PNG of an experiment's panels side by side (two per row): lines with optional error bars."""
    plt = pyplot()
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.2 * rows), dpi=110, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for label, xs, ys, err in panel.lines:
            if err is None:
                ax.plot(xs, ys, marker=".", label=label)
            else:
                ax.errorbar(xs, ys, yerr=err, marker=".", capsize=2, label=label)
        if panel.logx:
            ax.set_xscale("log", base=2)
        if panel.logy:
            ax.set_yscale("log", base=2)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        if len(panel.lines) > 1:
            ax.legend(fontsize=7, ncol=2 if len(panel.lines) > 6 else 1)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    save_png(fig, path)
