"""Limits on every input: paths that are not regular files, files over their cap, grids over the cell
cap, step counts over their bound, profiles with holes, a full disk, and an image that does not fit.
Each ends in one Error line and exit 1, quickly, with nothing half-written left behind."""
import errno
import os
import shutil
import threading
import time

import pytest

import fxtrain
from cli_helpers import invoke, one_line_error
from fxtrain.errors import ConfigError
from fxtrain.limits import MAX_CELLS, MEASURE_STEPS, PROFILE_BYTES, SPEC_BYTES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("gcc", "arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-size")
needs_tools = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                 reason="gcc or arm-none-eabi-gcc not installed: apt-get install gcc "
                                        "gcc-arm-none-eabi libnewlib-arm-none-eabi")
TINY = ("--arch", "dense:4,dense:10", "--epochs", "1")


def within(seconds, *args):
    """``invoke(*args)`` in a thread, or None if it has not returned after ``seconds`` (it blocks)."""
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("result", invoke(*args)), daemon=True)
    th.start()
    th.join(seconds)
    return box.get("result")


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "spec.toml"
    os.mkfifo(path)
    yield path
    # a reader stuck on the FIFO (a failed test) is released by a writer that opens and closes it
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# ---------------------------------------------------------------- paths that are not regular files

@pytest.mark.parametrize("command", [["sweep", "{path}", "--out", "{out}"], ["targets", "show", "{path}"],
                                     ["train", "--data", "{path}", *TINY]])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "folder"])
def test_a_fifo_a_device_or_a_folder_is_refused_within_a_second(tmp_path, fifo, command, kind):
    path = {"fifo": fifo, "/dev/zero": "/dev/zero", "folder": tmp_path}[kind]
    t0 = time.perf_counter()
    r = within(1.0, *[str(c).format(path=path, out=tmp_path / "out") for c in command])
    # reading a FIFO would block and /dev/zero never ends: both are refused before anything is read
    assert r is not None, f"{command[0]} {path} did not return within a second"
    line = one_line_error(r, str(path))
    # named for what it is (click's own path check says "is a directory" before fxtrain reads anything)
    assert {"fifo": "FIFO (named pipe), not a regular file", "/dev/zero": "character device, not a regular file",
            "folder": "a folder, not a regular file"}[kind] in line or (kind == "folder" and "is a directory" in line)
    assert time.perf_counter() - t0 < 1.0


def test_a_spec_over_its_cap_is_refused_by_size(tmp_path):
    p = tmp_path / "big.toml"
    p.write_text("# padding\n" * (SPEC_BYTES // 10 + 1))
    one_line_error(invoke("sweep", p, "--out", tmp_path / "out"), f"over the limit of {SPEC_BYTES:,}")


def test_a_profile_over_its_cap_or_not_utf8_is_refused(tmp_path):
    big, latin = tmp_path / "big.toml", tmp_path / "latin.toml"
    big.write_bytes(b"#" * (PROFILE_BYTES + 1))
    latin.write_bytes((open(os.path.join(ROOT, "targets", "cortex-m4.toml"), "rb").read()
                       .replace(b"Policy", b"Politique \xe9")))
    one_line_error(invoke("targets", "show", big), f"over the limit of {PROFILE_BYTES:,}")
    # a Latin-1 byte: named with its offset, not a UnicodeDecodeError traceback
    one_line_error(invoke("simulate", "--target", latin, *TINY), "is not UTF-8 text (byte 0xe9 at offset")


def test_a_run_folder_that_is_a_file_is_named(tmp_path):
    (tmp_path / "run").write_text("x")
    one_line_error(invoke("export", tmp_path / "run", "--out", tmp_path / "fw"), "is not a folder")


# ---------------------------------------------------------------- grids and step counts

def _grid(path, keys, n):
    values = {"seed": range(n), "batch": range(1, n + 1), "epochs": range(1, n + 1), "bits": [8] * n,
              "method": ["sr"] * n, "lr_decay_tau": range(n)}
    body = "\n".join(f"{k} = [{', '.join(repr(v) if isinstance(v, str) else str(v) for v in values[k])}]"
                     for k in keys)
    path.write_text("[grid]\n" + body.replace("'", '"') + "\n")
    return path


@pytest.mark.parametrize("keys, n, count", [
    (("seed", "batch", "epochs", "bits", "method", "lr_decay_tau"), 10, "1,000,000"),
    (("seed", "batch", "epochs"), 1000, "1,000,000,000"),
])
def test_a_huge_grid_is_refused_with_its_count_before_it_is_expanded(tmp_path, keys, n, count):
    t0 = time.perf_counter()
    line = one_line_error(invoke("sweep", _grid(tmp_path / "g.toml", keys, n), "--out", tmp_path / "out"),
                          f"the grid has {count} cells", f"over the limit of {MAX_CELLS:,}")
    # the product of the list lengths decides, so even 10^9 cells are refused at once
    assert time.perf_counter() - t0 < 1.0 and " x ".join(f"{n} {k}" for k in keys) in line
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("limits") / "run"
    fxtrain.train(arch="dense:4,dense:10", epochs=1, out=out)
    return out


def test_measure_steps_are_bounded_in_cli_and_api(run_dir):
    one_line_error(invoke("measure", run_dir, "--target", "cortex-m4", "--steps", 10**9),
                   f"must be from 1 to {MEASURE_STEPS}, got 1000000000")
    r = invoke("measure", "--help")
    assert f"1 to {MEASURE_STEPS}" in r.output  # the bound is stated in --help
    for bad in (10**9, 0, 2.5, "4", True):
        with pytest.raises(ConfigError, match="Invalid value for 'steps': "):
            fxtrain.measure(run_dir, "cortex-m4", steps=bad)


def test_verify_train_step_steps_and_epochs_are_bounded(run_dir, tmp_path):
    fxtrain.export(run_dir, tmp_path / "fw", train_step=True)
    one_line_error(invoke("verify", tmp_path / "fw", "--train-step", "--steps", 10**9),
                   "must be from 1 to 100,000, got 1000000000")
    one_line_error(invoke("verify", tmp_path / "fw", "--train-step", "--epochs", 10**9),
                   "must be from 1 to 1,000, got 1000000000")
    for bad in (10**9, 0, 2.5, "3"):
        with pytest.raises(ConfigError, match="Invalid value for 'steps': "):
            fxtrain.verify(tmp_path / "fw", train_step=True, steps=bad)
    # --epochs 1000 of a batch-2 run is 719,000 steps: each count is within its bound, the total is not
    fxtrain.train(arch="dense:4,dense:10", epochs=1, batch=2, out=tmp_path / "b2")
    fxtrain.export(tmp_path / "b2", tmp_path / "fw2", train_step=True)
    one_line_error(invoke("verify", tmp_path / "fw2", "--train-step", "--epochs", 1000),
                   "--epochs 1,000 is 719,000 steps of this run, over the limit of 100,000")
    help_text = " ".join(invoke("verify", "--help").output.split())
    assert "1 to 100,000" in help_text and "1 to 1,000" in help_text and "missing folders" in help_text


# ---------------------------------------------------------------- profiles with holes

def test_a_profile_without_mul_is_named_by_file_and_field(tmp_path, run_dir):
    text = open(os.path.join(ROOT, "targets", "cortex-m4.toml")).read()
    assert "\nmul = 1\n" in text
    nomul = tmp_path / "nomul.toml"
    nomul.write_text(text.replace("\nmul = 1\n", "\n"))
    one_line_error(invoke("measure", run_dir, "--target", nomul), str(nomul), "'instruction_cycles.mul'")
    t0 = time.perf_counter()
    r = invoke("simulate", "--target", nomul, "--measured", "--epochs", 30)
    # refused before 30 epochs of training, not after them
    one_line_error(r, str(nomul), "'instruction_cycles.mul'")
    assert "epoch" not in r.stdout and time.perf_counter() - t0 < 5


# ---------------------------------------------------------------- a full disk, a read-only place

@pytest.fixture
def failing_writes(monkeypatch):
    """Make every file written through fxtrain's writers fail with ``err`` (a full disk, no permission)."""
    import fxtrain._files as files
    real = os.fdopen

    class Failing:
        def __init__(self, f, err):
            self.f, self.err = f, err

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def fileno(self):
            return self.f.fileno()

        def write(self, data):
            raise OSError(self.err, os.strerror(self.err))

    def arm(err):
        monkeypatch.setattr(files.os, "fdopen",
                            lambda fd, mode="r", *a, **k: Failing(real(fd, mode, *a, **k), err) if "w" in mode
                            else real(fd, mode, *a, **k))
    yield arm
    monkeypatch.undo()


def _no_temporaries(folder):
    return not [p for p in folder.rglob(".*.tmp")]


@pytest.mark.parametrize("err, words", [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")])
def test_a_failed_write_is_one_line_and_leaves_no_run_that_looks_complete(tmp_path, failing_writes, err, words):
    out = tmp_path / "run"
    assert invoke("train", *TINY, "--out", out).exit_code == 0  # a complete run is already there
    failing_writes(err)
    one_line_error(invoke("train", *TINY, "--epochs", 2, "--out", out), words, str(out))
    assert _no_temporaries(out)


@pytest.mark.parametrize("err, words", [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")])
def test_after_a_failed_write_the_old_files_are_not_taken_for_complete(tmp_path, monkeypatch, err, words):
    import fxtrain._files as files
    out, fw = tmp_path / "run", tmp_path / "fw"
    assert invoke("train", *TINY, "--out", out).exit_code == 0
    assert invoke("export", out, "--out", fw).exit_code == 0
    real = files.write_bytes_atomic
    calls = []

    def fail_second(path, data):  # the first file of the new export is written, the second meets a full disk
        calls.append(path)
        if len(calls) == 2:
            raise files.OutputError(f"cannot write {path}: {os.strerror(err)}; nothing was replaced")
        return real(path, data)
    monkeypatch.setattr("fxtrain.firmware.codegen.write_bytes_atomic", fail_second)
    one_line_error(invoke("export", out, "--out", fw, "--vectors", 5), words)
    monkeypatch.undo()
    # half a new export beside the old files: without its export.json, verify refuses it
    one_line_error(invoke("verify", fw), "is not an fxtrain export (no export.json)")
    monkeypatch.setattr("fxtrain.training.job.write_bytes_atomic",
                        lambda path, data: (_ for _ in ()).throw(files.OutputError(f"cannot write {path}: {words}"))
                        if path.name == "model.npz" else real(path, data))
    one_line_error(invoke("train", *TINY, "--epochs", 2, "--out", out), words)
    # the last run's report.json was removed first, so export refuses the folder instead of exporting the old run
    one_line_error(invoke("export", out, "--out", tmp_path / "fw2"), "lacks report.json")


@pytest.mark.parametrize("command", [["export", "{run}", "--out", "{tmp}/fw"],
                                     ["compare", "--target", "cortex-m4", "--plot", "{tmp}/m.png"],
                                     ["sweep", "{tmp}/s.toml", "--out", "{tmp}/sw", "--scheduler", "serial"]])
def test_a_full_disk_is_one_line_for_every_writer(tmp_path, run_dir, failing_writes, command):
    if "--plot" in command:
        pytest.importorskip("matplotlib")
    (tmp_path / "s.toml").write_text('[grid]\nseed = [0]\n[fixed]\nepochs = 1\narch = "dense:4,dense:10"\n')
    failing_writes(errno.ENOSPC)
    one_line_error(invoke(*[c.format(run=run_dir, tmp=tmp_path) for c in command]), "No space left on device")
    assert _no_temporaries(tmp_path)


# ---------------------------------------------------------------- the image against the target

@needs_tools
def test_verify_fails_when_the_image_does_not_fit_the_target(tmp_path):
    fxtrain.train(method="bc", bits=1, epochs=1, out=tmp_path / "run")
    fxtrain.export(tmp_path / "run", tmp_path / "fw", train_step=True)
    r = invoke("verify", tmp_path / "fw", "--train-step", "--steps", 1, "--target", "stm32f103c8")
    # every step is bit-exact, yet the image (the harness's training set, bc's 21,148 buffer bytes) is
    # larger than the chip: the figures are printed and the exit code is 1
    assert r.exit_code == 1 and "bit-exact" in r.stdout and "Traceback" not in r.output
    assert "of 65,536, static RAM" in r.stdout and "of 16,384 usable (20,480 in all)" in r.stdout
    assert "DOES NOT FIT stm32f103c8: the image exceeds its flash by" in r.stdout
    ok = invoke("verify", tmp_path / "fw", "--train-step", "--steps", 1, "--target", "cortex-m4")
    assert ok.exit_code == 0 and "DOES NOT FIT" not in ok.stdout and "of 180,224 usable" in ok.stdout


# ---------------------------------------------------------------- progress when stderr is not a terminal

def test_progress_on_a_pipe_is_whole_lines_only(tmp_path):
    (tmp_path / "s.toml").write_text('[grid]\nseed = [0, 1]\n[fixed]\nepochs = 1\narch = "dense:4,dense:10"\n')
    runs = [invoke("train", *TINY), invoke("sweep", tmp_path / "s.toml", "--out", tmp_path / "sw", "--scheduler", "serial"),
            invoke("compare", "--target", "cortex-m4", "--bits", "8", "--train", "--epochs", "1")]
    # CliRunner's stderr is no terminal: no bar, so none of click's bare labels ("sr 8-bit", "cells", "training")
    for r in runs:
        assert r.exit_code == 0, r.output
        assert not {"sr 8-bit", "cells", "training"} & {ln.strip() for ln in r.stderr.splitlines()}, r.stderr
    # the sweep still says, in a whole line, what it is about to run and how long it should take
    assert "sweep: 2 cells to run, about" in runs[1].stderr
