"""A whole training job: data, run, per-epoch checkpoints, ``model.npz`` and ``report.json``.

Nothing is written until every input has been checked, and every file is
replaced atomically.
"""
from pathlib import Path

from .._files import write_json_atomic, write_npz_atomic
from ..data import load_dataset
from .artifacts import MODEL_FILE, REPORT_FILE, build_report, model_arrays
from .checkpoint import resume as resume_run
from .checkpoint import save_checkpoint
from .run import Run


def prepare(cfg, resume=None):
    """Check the settings, load the data and build the run (fresh, or resumed from ``resume``); writes nothing."""
    data = load_dataset(cfg.check().data, cfg.seed)
    return resume_run(resume, cfg, data) if resume else Run(cfg, data)


def train_job(run, out=None, on_epoch=None):
    """Train ``run`` up to ``run.cfg.epochs``; checkpoint each epoch into ``out``.

    Returns the report dict (also written to ``out/report.json`` with ``out/model.npz``).
    """
    while run.state.epoch < run.cfg.epochs:
        record = run.step_epoch()
        if out:
            save_checkpoint(run, out)
        if on_epoch:
            on_epoch(record)
    report = build_report(run)
    if out:
        write_npz_atomic(Path(out) / MODEL_FILE, model_arrays(run))
        write_json_atomic(Path(out) / REPORT_FILE, report)
    return report
