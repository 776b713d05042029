"""A whole training job: data, run, per-epoch history and checkpoints, ``model.npz`` and ``report.json``.

Nothing is written until every input has been checked. The output folder is
locked for the whole job, so two runs never write into one folder, and every
file is replaced atomically (see :mod:`fxtrain.training.checkpoint` for why a kill
at any point leaves a folder that resumes bit for bit).
"""
import contextlib
import hashlib
from pathlib import Path

from .._files import (FolderLock, append_line, ensure_dir, npz_bytes, remove_file, remove_stale_temporaries,
                      write_bytes_atomic, write_json_atomic)
from ..data import load_dataset
from ..engine.network import arch_string
from ..errors import OutputError
from .artifacts import HISTORY, MODEL_FILE, REPORT_FILE, build_report, model_arrays, model_standardisation
from .checkpoint import (chain, checkpoint_digest, history_line, resume as resume_run, save_checkpoint,
                         saved_input_scale, saved_standardisation)
from .run import Run, check_plan
from .start import check_init_data, init_scale, read_init_run, start_from_run


def prepare(cfg, resume=None):
    """Check the settings, load the data and build the run (fresh, from ``cfg.init``'s weights, or resumed
    from ``resume``); writes nothing.

    A run keeps the input scale it was built with, and for sensor windows the per-channel mean and std
    it standardised them with: resumed, it reads them from its checkpoint; started from another run
    (``--init``), it takes that run's, so the first layer sees inputs on the scale its weights were
    made for.
    """
    init = read_init_run(cfg.check().init) if cfg.init and not resume else None
    if resume:
        scale, stats = saved_input_scale(resume), saved_standardisation(resume)
    else:
        scale, stats = (init_scale(init), model_standardisation(init)) if init else (None, None)
    data = load_dataset(cfg.data, cfg.seed, scale, standardise=stats)
    if not resume:
        start = None
        if init:
            check_init_data(cfg.init, init, data)
            layers = check_plan(cfg, data)
            start = start_from_run(cfg.init, init, layers, arch_string(layers), data)
        return Run(cfg, data, start=start)
    run = resume_run(resume, cfg, data)
    run.resumed_from = (Path(resume), checkpoint_digest(resume))
    return run


@contextlib.contextmanager
def output_folder(out, run):
    """Create and lock ``out`` for the job, clear what a killed run left, and start its history file.

    A resumed run's checkpoint must be the one :func:`prepare` read: another process
    cannot have replaced it since, or this run would continue a stale state.
    """
    if out is None:
        yield None
        return
    folder = ensure_dir(out)
    with FolderLock(folder):
        src = getattr(run, "resumed_from", None)
        if src and checkpoint_digest(src[0]) != src[1]:
            raise OutputError(f"the checkpoint in {src[0]} changed while this run started; run the command again")
        remove_stale_temporaries(folder)
        # report.json is written last and names its model.npz: removed now, a job that stops
        # midway (a full disk, a kill) leaves a folder that export refuses, not the last run's files
        remove_file(folder / REPORT_FILE)
        lines = "".join(history_line(r) + "\n" for r in run.state.history)
        write_bytes_atomic(folder / HISTORY, lines.encode("utf-8"))
        yield folder


def train_job(run, out=None, on_epoch=None):
    """Train ``run`` up to ``run.cfg.epochs``; with ``out`` (a folder from :func:`output_folder`),
    append each epoch to the history and replace the checkpoint, then write the model and report.

    Returns the report dict (also written to ``out/report.json`` with ``out/model.npz``).
    """
    h = run.state.history_hash
    while run.state.epoch < run.cfg.epochs:
        record = run.step_epoch()
        if out:
            line = history_line(record)
            h = chain(h, line)
            append_line(Path(out) / HISTORY, line)
            run.state.history_hash = h
            save_checkpoint(run, out, h)
        if on_epoch:
            on_epoch(record)
    return write_results(run, out)


def write_results(run, out, **extra):
    """The report of ``run`` as it stands (plus ``extra`` keys); with ``out``, also written there beside
    ``model.npz`` (the model first: the report names its sha256)."""
    report = dict(build_report(run), **extra)
    if out:
        model = npz_bytes(model_arrays(run))
        write_bytes_atomic(Path(out) / MODEL_FILE, model)
        report["model_sha256"] = hashlib.sha256(model).hexdigest()
        write_json_atomic(Path(out) / REPORT_FILE, report)
    return report


def write_start(run, out, **extra):
    """The report of ``run`` at epoch 0 (plus ``extra`` keys); with ``out`` (a folder from
    :func:`output_folder`), also written there with the checkpoint ``--resume`` continues and ``model.npz``,
    as a trained run's."""
    if out:
        save_checkpoint(run, out, run.state.history_hash)
    return write_results(run, out, **extra)
