"""``fxtrain sweep``'s job as a library call: read a spec, run its cells, write the summary over seeds."""
from dataclasses import dataclass, field
from pathlib import Path

from .._files import check_output
from .dask_exec import check_scheduler, executor, slots
from .spec import load_spec
from .summary import group_over_seeds, varying_keys, write_csv
from .sweep import run_sweep

SUMMARY = "summary.csv"


@dataclass
class SweepResult:
    """The distinct cells, their records, the summary rows (test accuracy over seeds per group) and where
    they were written; ``set_aside``: (new name, reason) of each damaged record this run moved away."""
    cells: list
    records: list
    rows: list
    summary: Path
    set_aside: list = field(default_factory=list)

    @property
    def failed(self):
        return [r for r in self.records if r["status"] != "ok"]

    @property
    def all_failed(self):
        return bool(self.records) and len(self.failed) == len(self.records)


def run_spec(spec, out, scheduler="auto", workers=None, on_progress=None):
    """Run every cell of the spec file ``spec`` into ``out`` (see :func:`run_sweep`) and write
    ``out/summary.csv``; everything that can be refused (the scheduler, the summary's path, every cell)
    is refused before the first cell runs."""
    check_scheduler(scheduler)
    summary = check_output(Path(out) / SUMMARY, "summary", inputs=[(spec, "sweep spec")])
    cells = load_spec(spec)
    seen = []

    def progress(p):
        seen[:] = [p]
        if on_progress:
            on_progress(p)
    records = run_sweep(cells, out, executor(scheduler, workers), on_progress=progress, slots=slots(scheduler, workers))
    rows = group_over_seeds(records, varying_keys(cells) or ["method"], lambda r: r["test_accuracy"])
    write_csv(summary, rows)
    return SweepResult(cells, records, rows, summary, list(seen[0].set_aside) if seen else [])
