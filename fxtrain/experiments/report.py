"""What an experiment hands back, and running one: its sweep, its analysis, its CSV and JSON.

Drawing is the CLI's business (:mod:`fxtrain.cli.experiments`); this module only
describes the figures as :class:`Panel` data.
"""
import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._files import ensure_dir, write_json_atomic
from .dask_exec import executor, slots
from .summary import write_csv
from .sweep import run_sweep

MODULES = {"convex": "exp_convex", "lr-sweep": "exp_lr", "weight-change": "exp_lr", "batch": "exp_bits",
           "bits": "exp_bits", "optimizer": "exp_optimizer", "runtime": "exp_optimizer", "anneal": "exp_anneal"}


@dataclass
class Panel:
    """One plot: lines of ``(label, xs, ys, yerr or None)``; log axes are base 2."""
    title: str
    xlabel: str
    ylabel: str
    lines: list
    logx: bool = False
    logy: bool = False


@dataclass
class Plan:
    """An experiment's cells and its grid as printed (``{"epochs": 30, ...}``)."""
    cells: list
    grid: dict


@dataclass
class Result:
    """Tables ``(title, rows)``, CSV rows, figure panels, and notes (claims, caveats)."""
    name: str
    grid: dict
    tables: list
    rows: list
    panels: list
    notes: list = field(default_factory=list)
    files: dict = field(default_factory=dict)


def experiment_module(name):
    return importlib.import_module(f".{MODULES[name]}", __package__)


def run_experiment(name, quick=False, out=None, scheduler="auto", workers=None, on_progress=None):
    """Run experiment ``name`` (its sweep into ``out``), analyse it, write ``NAME.csv`` and ``NAME.json``.

    Returns the :class:`Result`; ``result.files`` names what was written.
    """
    mod = experiment_module(name)
    plan = mod.plan(name, quick)
    out = ensure_dir(Path(out or Path("runs") / "experiments" / (name + ("-quick" if quick else ""))))
    records = run_sweep(plan.cells, out, executor(scheduler, workers), on_progress, slots=slots(scheduler, workers))
    result = mod.analyze(name, plan, records)
    result.files = {"csv": out / f"{name}.csv", "json": out / f"{name}.json", "png": out / f"{name}.png"}
    write_csv(result.files["csv"], result.rows)
    body = {k: v for k, v in asdict(result).items() if k not in ("files", "panels")}
    write_json_atomic(result.files["json"], {**body, "quick": quick, "cells": len(plan.cells)})
    return result
