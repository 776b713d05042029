"""SR against BinaryConnect (and R and float) on one target: memory, float work, time, widths.

Returns plain rows; rendering as a table, CSV, JSON or PNG is the CLI's business.
"""
from dataclasses import replace

from ..data import load_dataset
from ..engine.network import arch_string, parse_arch
from ..training.run import Run
from .fit import fit_for, largest_width
from .profiles import load_target

METHOD_ORDER = ("sr", "bc", "r", "float")


def compare_rows(arch, bits_list, batch, shape, target, methods=METHOD_ORDER, accuracy=None, train_layers=None):
    """One dict per (bits, method): memory split, float ops, time, accuracy if given, and with
    ``train_layers`` the SRAM that freezing the layers under them saves."""
    rows = []
    for bits in bits_list:
        for method in methods:
            fit = fit_for(arch, method, bits, batch, shape, target, train_layers=train_layers)
            buf = fit.cost.buffers
            weights, shadow = buf["weights"], buf.get("shadow", 0)
            row = {"method": method, "bits": bits, "weight_bytes": weights, "shadow_bytes": shadow,
                   "other_bytes": fit.cost.total_bytes - weights - shadow, "total_bytes": fit.cost.total_bytes,
                   "sram_percent": round(fit.sram_percent, 2),
                   "flash_bytes": fit.cost.flash["weights (packed)"] + fit.cost.flash["biases"],
                   "fits": fit.sram_fits and fit.time_fits,
                   "float_ops_per_step": fit.cost.float_ops_per_step,
                   "est_seconds_per_epoch": fit.seconds_per_epoch}
            if train_layers is not None:
                row["sram_saved_bytes"] = fit.cost.sram_saved_bytes
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


def _trainer(ds, cfg, on_run):
    """accuracy(method, bits): one training run each (float once), calling ``on_run()`` per row."""
    cache = {}

    def accuracy(method, bits):
        key = (method, 32 if method == "float" else bits)
        if key not in cache:
            run = Run(replace(cfg, method=method, bits=bits), ds)
            for _ in range(cfg.epochs):
                run.step_epoch()
            cache[key] = run.state.history[-1]["test_accuracy"]
        if on_run:
            on_run()
        return cache[key]
    return accuracy


def compare(target_name, cfg, bits_list, do_train=False, on_run=None):
    """The comparison as plain data: {target, arch, batch, rows, widths}.

    ``cfg`` (a TrainConfig) gives arch, batch, data, and with ``do_train`` also the
    epochs, learning rate and seed of one training run per row; its method and
    bits are ignored.
    """
    target = load_target(target_name)
    ds = load_dataset(cfg.data, cfg.seed)
    arch = arch_string(parse_arch(cfg.arch, ds.input_shape, ds.n_classes))
    shape = (ds.input_shape, ds.n_classes, len(ds.y_train))
    accuracy = _trainer(ds, cfg, on_run) if do_train else None
    rows = compare_rows(arch, bits_list, cfg.batch, shape, target, accuracy=accuracy, train_layers=cfg.train_layers)
    widths = width_rows(arch, bits_list, cfg.batch, shape, target)
    return {"target": target, "arch": arch, "batch": cfg.batch, "rows": rows, "widths": widths}
