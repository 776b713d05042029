"""``fxtrain sweep`` and ``fxtrain experiment``: progress, tables and figures for the sweeps.

Library modules are imported inside the commands, so ``fxtrain --help`` stays fast.
"""
from pathlib import Path

import click

from .progress import SweepBar

EXPERIMENTS = ("convex", "lr-sweep", "batch", "bits", "weight-change", "optimizer", "runtime", "anneal")
SCHEDULER_HELP = ("auto (local if Dask is installed, else serial), serial (in this process), local (a Dask "
                  "LocalCluster, one single-threaded worker process per core) or a scheduler address such as "
                  "tcp://host:8786.")


def _with_bar(job):
    bar = SweepBar()
    try:
        return job(bar)
    finally:
        bar.close()


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
    from ..experiments.spec import load_spec
    from ..experiments.summary import group_over_seeds, varying_keys, write_csv
    from ..experiments.dask_exec import check_scheduler, executor, slots
    from ..experiments.sweep import run_sweep
    check_scheduler(scheduler)
    cells = load_spec(spec)
    records = _with_bar(lambda bar: run_sweep(cells, out, executor(scheduler, workers), on_progress=bar,
                                                       slots=slots(scheduler, workers)))
    rows = group_over_seeds(records, varying_keys(cells) or ["method"], lambda r: r["test_accuracy"])
    write_csv(Path(out) / "summary.csv", rows)
    click.echo(f"{len(cells)} cells, test accuracy over seeds:")
    click.echo(_table(rows))
    for rec in records:
        if rec["status"] != "ok":
            click.echo(f"failed cell {rec['key']}: {rec['error']}")
    click.echo(f"records in {Path(out) / 'cells'}, summary in {Path(out) / 'summary.csv'}")


@click.command()
@click.argument("name", type=click.Choice(EXPERIMENTS))
@click.option("--quick", is_flag=True, help="A small grid that finishes in under a minute once the kernels are compiled (for CI).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the cells, NAME.csv, NAME.json and NAME.png "
                   "(default: runs/experiments/NAME[-quick]).")
@click.option("--scheduler", default="auto", show_default=True, help=SCHEDULER_HELP)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes for --scheduler local (default: one per core).")
def experiment(name, quick, out, scheduler, workers):
    """Run one of the paper's experiments: its sweep, a table, a CSV and a PNG.

    \b
    convex         quantized SGD on least squares, ridge and logistic regression, exact arithmetic: floors
                   against the grid step at the averaged iterate, beside the theorems' bounds
    lr-sweep       digits: accuracy against learning rate, down past alpha*|g| < step
    batch          batch sizes 16..1024 for sr and bc, same epochs and same steps
    bits           test accuracy against bits for float, bc, sr, r on an MLP and a conv net
    weight-change  share of weights changed per epoch, sr and bc, per bit width
    optimizer      bc: SGD, Robbins-Monro SGD, momentum, Adam; sr: SGD, Robbins-Monro SGD, momentum
    runtime        simulator seconds per epoch, and estimated seconds on three Cortex-M cores
    anneal         sr, r, bc under a rate decaying inside the run (and constant): accuracy and weights changed

    \b
    Examples:
      fxtrain experiment bits --quick
      fxtrain experiment convex --out runs/convex --workers 2
    """
    from ..experiments.dask_exec import check_scheduler
    from ..experiments.report import run_experiment
    check_scheduler(scheduler)
    res = _with_bar(lambda bar: run_experiment(name, quick, out, scheduler, workers, on_progress=bar))
    click.echo(f"experiment {name}{' (quick)' if quick else ''}; grid: "
               + "; ".join(f"{k} {v}" for k, v in res.grid.items()))
    for title, rows in res.tables:
        click.echo(f"\n{title}")
        click.echo(_table(rows, floatfmt=".4g"))
    for line in res.notes:
        click.echo(line)
    _plot(res)
    click.echo(f"\nwrote {res.files['csv']}, {res.files['json']}"
               + (f", {res.files['png']}" if res.files.get("png") else ""))


def _plot(res):
    """Draw the result's panels into NAME.png, or say why not (matplotlib missing)."""
    from ..errors import MissingExtraError
    try:
        from ..plots import plot_panels
        plot_panels(res.panels, res.files["png"])
    except MissingExtraError as exc:
        click.echo(f"no figure: {exc}", err=True)
        res.files["png"] = None
