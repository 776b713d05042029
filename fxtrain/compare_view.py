"""``fxtrain compare``: SR against BC (and R and float) on one target, as table, CSV or JSON."""
import csv
import io
import json

from tabulate import tabulate

from .data import load_dataset
from .model import arch_string, parse_arch
from .simulate import METHOD_ORDER, compare_rows, plot_memory, width_rows
from .targets import load_target
from .train import Run, TrainConfig

COLUMNS = [("method", "method"), ("bits", "bits"), ("weight_bytes", "weights B"), ("shadow_bytes", "shadow B"),
           ("other_bytes", "act+other B"), ("total_bytes", "total B"), ("sram_percent", "% SRAM"), ("flash_bytes", "flash B"),
           ("fits", "fits"), ("float_ops_per_step", "float ops/step"),
           ("est_seconds_per_epoch", "est s/epoch"), ("test_accuracy", "test acc")]


def _trainer(ds, arch, batch, epochs, lr, seed, n_rows, progress):
    """accuracy(method, bits): one run each, float trained once; progress over all runs."""
    cache = {}
    bar = progress(n_rows, "training") if progress else None

    def accuracy(method, bits):
        key = (method, 32 if method == "float" else bits)
        if key not in cache:
            run = Run(TrainConfig(arch=arch, method=method, bits=bits, epochs=epochs, batch=batch, lr=lr,
                                  seed=seed), ds)
            for _ in range(epochs):
                run.step_epoch()
            cache[key] = run.state.history[-1]["test_accuracy"]
        if bar:
            bar.update(1)
        return cache[key]
    return accuracy, bar


def _table(rows, widths, target, arch):
    cols = [c for c in COLUMNS if c[0] in rows[0]]
    body = [[r[k] if k != "fits" else str(r[k]).lower() for k, _ in cols] for r in rows]
    fmt = tuple({"sram_percent": ".2f", "est_seconds_per_epoch": ".4f", "test_accuracy": ".4f"}.get(k, "g")
                for k, _ in cols)
    out = [f"{target.name}: {target.usable_sram_bytes:,} usable SRAM bytes, fpu {target.fpu}, arch {arch}",
           tabulate(body, headers=[h for _, h in cols], floatfmt=fmt, intfmt=",", tablefmt="simple"), "",
           "Largest hidden width that fits (SRAM and time budget):",
           tabulate([[w["bits"], w["sr_width"], w["bc_width"],
                      f"{w['sr_over_bc']:.2f}" if w["sr_over_bc"] else "-"] for w in widths],
                    headers=["bits", "sr width", "bc width", "sr / bc"], tablefmt="simple",
                    disable_numparse=True, colalign=("right", "right", "right", "right"))]
    return "\n".join(out)


def _csv(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().rstrip("\n")


def render_compare(target_name, arch, bits_list, batch, data, do_train, epochs, lr, seed, fmt, plot,
                   progress=None):
    """Build the comparison and return it as text in ``fmt`` (table, csv or json)."""
    target = load_target(target_name)
    ds = load_dataset(data, seed)
    arch = arch_string(parse_arch(arch, ds.input_shape, ds.n_classes))
    shape = (ds.input_shape, ds.n_classes, len(ds.y_train))
    accuracy, bar = (None, None)
    if do_train:
        accuracy, bar = _trainer(ds, arch, batch, epochs, lr, seed, len(bits_list) * len(METHOD_ORDER), progress)
    try:
        rows = compare_rows(arch, bits_list, batch, shape, target, accuracy=accuracy)
    finally:
        if bar:
            bar.render_finish()
    widths = width_rows(arch, bits_list, batch, shape, target)
    if plot:
        plot_memory(rows, target, plot)
    if fmt == "json":
        return json.dumps({"target": target.name, "arch": arch, "batch": batch, "rows": rows, "widths": widths},
                          indent=2)
    if fmt == "csv":
        return _csv(rows) + "\n\n" + _csv(widths)
    return _table(rows, widths, target, arch) + (f"\n\nwrote {plot}" if plot else "")
