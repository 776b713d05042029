"""A kill at any point of a training run leaves a folder that resumes to the byte-identical final
model, or that is refused with one clear line.

Deterministic points come from the FXTRAIN_TEST_KILL hook in fxtrain/_files.py (the process
SIGKILLs itself before or after a chosen rename or append); random points from killing the
process after a random delay.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

EPOCHS = 4
CLI = [sys.executable, "-c", "from fxtrain.cli import main; main()"]


def run_cli(*args, kill=None):
    env = dict(os.environ, FXTRAIN_TEST_KILL=kill) if kill else dict(os.environ)
    env.pop("FXTRAIN_TEST_KILL", None) if not kill else None
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def outputs(folder):
    return {name: (folder / name).read_bytes() for name in ("model.npz", "report.json")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same run, never interrupted: model.npz and report.json bytes."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert run_cli("train", "--epochs", EPOCHS, "--out", out).returncode == 0
    return outputs(out)


def resume_and_compare(out, reference):
    """Resume; return 'resumed' if the result equals the reference byte for byte, else fail."""
    res = run_cli("train", "--epochs", EPOCHS, "--resume", out)
    if res.returncode == 1:
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
        return errors[0]
    assert res.returncode == 0, res.stderr
    assert outputs(out) == reference  # byte-identical model.npz and report.json
    assert not list(out.glob(".*.tmp"))
    return "resumed"


@pytest.mark.parametrize("kill", [
    "history.jsonl:before-rename:1",   # before any epoch: no checkpoint yet
    "history.jsonl:after-append:2",    # epoch 2 in the history, checkpoint still at epoch 1
    "checkpoint.npz:before-rename:1",  # first checkpoint written but not renamed
    "checkpoint.npz:before-rename:2",
    "checkpoint.npz:after-rename:2",
    "checkpoint.npz:after-rename:4",   # all epochs done, no model yet
    "model.npz:before-rename:1",
    "model.npz:after-rename:1",        # new model beside no report
    "report.json:before-rename:1",
    "report.json:after-rename:1",      # report without the deployed accuracy yet
    "report.json:after-rename:2",      # everything written
])
def test_kill_at_every_rename_then_resume(tmp_path, reference, kill):
    out = tmp_path / "run"
    first = run_cli("train", "--epochs", EPOCHS, "--out", out, kill=kill)
    assert first.returncode == -signal.SIGKILL, (kill, first.returncode, first.stderr[-500:])
    outcome = resume_and_compare(out, reference)
    # only a kill before the first checkpoint may leave nothing to resume, and then it says so
    if kill in ("history.jsonl:before-rename:1", "checkpoint.npz:before-rename:1"):
        assert "not a checkpoint folder" in outcome
    else:
        assert outcome == "resumed"


def test_kill_at_random_moments_then_resume(tmp_path_factory):
    epochs = 40
    ref = tmp_path_factory.mktemp("ref40") / "run"
    t0 = time.perf_counter()
    assert run_cli("train", "--epochs", epochs, "--out", ref).returncode == 0
    span = time.perf_counter() - t0
    want = outputs(ref)
    rng = np.random.default_rng(2026)
    outcomes = []
    for trial in range(4):
        out = tmp_path_factory.mktemp(f"kill{trial}") / "run"
        proc = subprocess.Popen([*CLI, "train", "--epochs", str(epochs), "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if trial >= 2:
            # half the trials kill only after the first checkpoint exists, so a slow start on a loaded
            # machine cannot turn every trial into a kill before any checkpoint (which proves no resume)
            deadline = time.monotonic() + 10 * span
            while not (out / "checkpoint.npz").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5) * span)
        else:
            time.sleep(rng.uniform(0.3, 1.0) * span)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        res = run_cli("train", "--epochs", epochs, "--resume", out)
        if res.returncode == 0:
            assert outputs(out) == want  # byte-identical to the uninterrupted run
            outcomes.append("resumed")
        else:
            assert res.returncode == 1 and "not a checkpoint folder" in res.stderr, res.stderr
            outcomes.append("refused")
    assert "resumed" in outcomes, outcomes
