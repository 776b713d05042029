"""``fxtrain sweep`` and ``fxtrain experiment``: progress, tables and figures for the sweeps.

Library modules are imported inside the commands, so ``fxtrain --help`` stays fast.
"""
from pathlib import Path

import click

from ..experiments.registry import EXPERIMENTS, help_table
from .progress import SweepBar

SCHEDULER_HELP = ("auto (local if Dask is installed, else serial), serial (in this process), local (a Dask "
                  "LocalCluster, one single-threaded worker process per core) or a scheduler address such as "
                  "tcp://host:8786.")


def _with_bar(job):
    bar = SweepBar()
    try:
        return job(bar)
    finally:
        bar.close()
        for name, reason in bar.set_aside:
            click.echo(f"set aside a damaged record as cells/{name} ({reason}); its cell ran again", err=True)


def _warn_workers(workers):
    import os
    cores = os.cpu_count() or 1
    if workers and workers > cores:
        click.echo(f"warning: --workers {workers} is more than this machine's {cores} cores; the cells will "
                   "share them and run no faster", err=True)


def _table(rows, floatfmt=".4f"):
    from tabulate import tabulate
    return tabulate(rows, headers="keys", tablefmt="github", floatfmt=floatfmt, missingval="-")


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Sweep folder: cells/KEY.json and KEY.npz per cell, summary.csv.")
@click.option("--scheduler", default="auto", show_default=True, help=SCHEDULER_HELP)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes for --scheduler local (default: one per core).")
def sweep(spec, out, scheduler, workers):
    """Run every cell of a TOML grid of training runs, on Dask or serially.

    SPEC has a [grid] of lists (method, bits, seed, lr, batch, epochs, arch,
    data, momentum, lr_decay_tau, optimizer) and [fixed] single values; each
    combination is one training run. Finished cells are kept in OUT and skipped
    when the same command runs again, so an interrupted sweep resumes and a
    grown spec runs only its new cells. Prints test accuracy over seeds (mean,
    std, min, max) and writes it to OUT/summary.csv. Before the cells run, one
    stderr line estimates their time.

    Limits: SPEC is a regular file of at most 1 MiB, and its grid has at most
    10,000 cells (a larger one is refused with its count, before anything runs).

    \b
    Examples:
      fxtrain sweep examples/sweep.toml --out runs/sweep
      fxtrain sweep examples/sweep.toml --out runs/sweep --scheduler tcp://10.0.0.5:8786
    """
    from .. import api
    from ..errors import FxtrainError
    _warn_workers(workers)
    res = _with_bar(lambda bar: api.sweep(spec, out, scheduler, workers, on_progress=bar))
    click.echo(f"{len(res.cells)} distinct cells, test accuracy over seeds:")
    click.echo(_table(res.rows))
    for rec in res.failed:
        click.echo(f"failed cell {rec['key']}: {rec['error']}")
    click.echo(f"records in {Path(out) / 'cells'}, summary in {res.summary}")
    if res.all_failed:
        raise FxtrainError(f"every one of the {len(res.records)} cells failed (first: {res.failed[0]['error']})")


EXPERIMENT_HELP = f"""Run one of the paper's experiments: its sweep, a table, a CSV and a PNG.

\b
{help_table()}

\b
Examples:
  fxtrain experiment bits --quick
  fxtrain experiment convex --out runs/convex --workers 2
"""


@click.command(help=EXPERIMENT_HELP)
@click.argument("name", type=click.Choice(list(EXPERIMENTS)))
@click.option("--quick", is_flag=True, help="A small grid that finishes in under a minute once the kernels are compiled (for CI).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the cells, NAME.csv, NAME.json and NAME.png "
                   "(default: runs/experiments/NAME[-quick]).")
@click.option("--scheduler", default="auto", show_default=True, help=SCHEDULER_HELP)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes for --scheduler local (default: one per core).")
def experiment(name, quick, out, scheduler, workers):
    from .. import api
    _warn_workers(workers)
    res = _with_bar(lambda bar: api.experiment(name, quick, out, scheduler, workers, on_progress=bar))
    click.echo(f"experiment {name}{' (quick)' if quick else ''}; grid: "
               + "; ".join(f"{k} {v}" for k, v in res.grid.items()))
    for title, rows in res.tables:
        click.echo(f"\n{title}")
        click.echo(_table(rows, floatfmt=".4g"))
    for line in res.notes:
        click.echo(line)
    if res.plot_note:
        click.echo(f"no figure: {res.plot_note}", err=True)
    click.echo(f"\nwrote {res.files['csv']}, {res.files['json']}"
               + (f", {res.files['png']}" if res.files.get("png") else ""))
