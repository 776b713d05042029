"""The main job: check a run against a target, train it, report memory and time.

A run that does not fit the target's usable SRAM or its per-epoch time budget is
refused before it starts (:func:`plan`); one that fits is trained and its report
gets a ``target`` section with the device costs.
"""
from pathlib import Path

from .._files import write_json_atomic
from ..training.artifacts import REPORT_FILE
from ..training.job import prepare, train_job
from .fit import fit_for, require_fit
from .profiles import load_target


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
    fit = fit_for(run.arch, cfg.method, cfg.bits, cfg.batch, data_shape(run), target, momentum, cfg.lr,
                  adam=run.adam, train_layers=cfg.train_layers)
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
        write_json_atomic(Path(out) / REPORT_FILE, report)
    return report
