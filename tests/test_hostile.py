"""Bad input and faults a hostile user tried: each ends in one Error line and exit 1, or in correct
behaviour, and nothing already written is lost."""
import fcntl
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import invoke, one_line_error
from fxtrain._files import FolderLock
from fxtrain.training.artifacts import CHECKPOINT, HISTORY

GOOD_ROWS = "".join(f"{i % 7}.5,{(i * 3) % 5}.25,{i % 2}\n" for i in range(40))
SMALL = ("--arch", "dense:8,dense:2", "--batch", 4, "--epochs", 1)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------- data files

@pytest.mark.parametrize("raw, needle", [
    (b"1,2,0\n3,4,1\n\xe9,1,0\n", "not UTF-8 text (byte 0xe9 at offset 12)"),   # Latin-1
    (bytes(range(256)) * 4, "not UTF-8 text"),                                   # binary garbage
    (b"3,1,3\n4,2,3\n" * 20, "every label is 3"),                                # one class only
])
def test_bad_csv_bytes_get_one_line(tmp_path, raw, needle):
    (tmp_path / "d.csv").write_bytes(raw)
    one_line_error(invoke("train", "--data", tmp_path / "d.csv", *SMALL), needle)


@pytest.mark.parametrize("raw", [b"\xef\xbb\xbf" + GOOD_ROWS.encode(),              # BOM, no header
                                 GOOD_ROWS.replace(",", ";").encode(),               # semicolons
                                 GOOD_ROWS.replace(",", "\t").encode()])             # tabs
def test_bom_and_spreadsheet_delimiters_are_read(tmp_path, raw):
    (tmp_path / "d.csv").write_bytes(raw)
    r = invoke("train", "--data", tmp_path / "d.csv", *SMALL)
    # the file trains as the comma-separated one does: 40 rows, 2 classes
    assert r.exit_code == 0, r.output
    assert "dense:8,dense:2: test accuracy" in r.output


def test_ragged_semicolon_file_names_the_delimiter(tmp_path):
    (tmp_path / "d.csv").write_text("1;2;0\n1;2\n" + GOOD_ROWS.replace(",", ";"))
    one_line_error(invoke("train", "--data", tmp_path / "d.csv", *SMALL), "row 2 has 2 columns", "semicolons")


def test_unreadable_file_is_one_line(tmp_path, monkeypatch):
    import fxtrain._files as files
    p = tmp_path / "d.csv"
    p.write_text(GOOD_ROWS)
    real = files.os.open

    def denied(path, *a, **k):
        if str(path).endswith("d.csv"):
            raise PermissionError(13, "Permission denied")  # what mode 000 gives a non-root user
        return real(path, *a, **k)
    monkeypatch.setattr(files.os, "open", denied)
    one_line_error(invoke("train", "--data", p, *SMALL), "cannot be read: Permission denied")


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("command", [["train"], ["compare", "--target", "cortex-m4"]])
def test_negative_seed_is_one_line(command):
    one_line_error(invoke(*command, "--seed", -1), "seed must be in 0 .. 4294967295")


@pytest.mark.parametrize("lr", ["0.1", "65537", "1e-300"])
def test_lr_hints_are_accepted_as_printed(lr):
    line = one_line_error(invoke("train", "--lr", lr, "--epochs", 1), "nearest usable")
    hints = line.split("nearest usable: ")[1].split(" (see")[0].split(" or ")
    for hint in hints:
        # pasting the suggestion back is accepted: the run trains
        r = invoke("train", "--lr", hint.strip(), "--epochs", 1, "--arch", "dense:4,dense:10")
        assert r.exit_code == 0, (hint, r.output)


# ---------------------------------------------------------------- output paths

@pytest.mark.parametrize("command", [["train", "--epochs", 1], ["simulate", "--target", "cortex-m4", "--epochs", 1]])
def test_out_under_a_plain_file_is_one_line(tmp_path, command):
    (tmp_path / "plain").write_text("x")
    one_line_error(invoke(*command, "--out", tmp_path / "plain" / "run"), "under a plain file")
    one_line_error(invoke(*command, "--out", "/dev/null"), "not a folder")
    assert (tmp_path / "plain").read_text() == "x"


def test_export_and_plot_under_a_plain_file(tmp_path):
    (tmp_path / "plain").write_text("x")
    assert invoke("train", "--epochs", 1, "--out", tmp_path / "run").exit_code == 0
    one_line_error(invoke("export", tmp_path / "run", "--out", tmp_path / "plain" / "fw"), "under a plain file")
    one_line_error(invoke("compare", "--target", "cortex-m4", "--plot", tmp_path / "plain" / "m.png"),
                   "plot folder", "is a file, not a folder")


def test_read_only_out_is_one_line(tmp_path, monkeypatch):
    import tempfile
    def denied(**kw):
        raise PermissionError(13, "Permission denied")  # what a read-only folder gives a non-root user
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    one_line_error(invoke("train", "--epochs", 1, "--out", tmp_path / "ro"), "Permission denied")


# ---------------------------------------------------------------- checkpoints and resume

def test_a_second_run_into_a_locked_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    with FolderLock(out):  # another process (here: this one) holds the folder
        one_line_error(invoke("train", "--epochs", 1, "--out", out), "another fxtrain process", "is writing to")
    assert invoke("train", "--epochs", 1, "--out", out).exit_code == 0  # released: the next run goes ahead


def test_lock_is_released_when_its_holder_is_killed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    code = (f"import fcntl, os, time; fd = os.open({str(out / FolderLock.NAME)!r}, os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    one_line_error(invoke("train", "--epochs", 1, "--out", out), "another fxtrain process")
    holder.kill()
    holder.wait()
    assert invoke("train", "--epochs", 1, "--out", out).exit_code == 0


@pytest.fixture
def saved(tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "--epochs", 3, "--out", out).exit_code == 0
    return out


def _edit_checkpoint(out, **changes):
    with np.load(out / CHECKPOINT) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        if key in meta:
            meta[key] = value
        elif key.startswith("config."):
            meta["config"][key[7:]] = value
        else:
            arrays[key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(out / CHECKPOINT, **arrays)


@pytest.mark.parametrize("edit, needle", [
    (dict(epoch=2), "history.jsonl does not match"),
    (dict(**{"config.bits": 4}), "made with other settings"),
    (dict(**{"config.arch": "dense:16,dense:10"}), "made with other settings"),
    (dict(rng=np.zeros(0, np.uint32)), "array 'rng'"),
    (dict(rng=np.zeros(1, np.uint32)), "generator state is 0"),
    (dict(wq=np.full(2368, 1.5, np.float64)), "array 'wq' is float64"),
    (dict(wq=np.full(2368, 127, np.int8), e_w=np.array([-3, -3])), "grid exponents"),
    (dict(fxtrain_version="0.0.9"), "written by fxtrain 0.0.9"),
])
def test_edited_checkpoints_are_refused_before_any_work(saved, edit, needle):
    _edit_checkpoint(saved, **edit)
    before = snapshot(saved)
    one_line_error(invoke("train", "--epochs", 5, "--resume", saved), needle)
    assert snapshot(saved) == before  # nothing rewritten


def test_edited_history_is_refused(saved):
    lines = (saved / HISTORY).read_text().splitlines()
    lines[1] = lines[1].replace('"epoch": 2', '"epoch": 2, "x": 1')
    (saved / HISTORY).write_text("\n".join(lines) + "\n")
    one_line_error(invoke("train", "--epochs", 5, "--resume", saved), "history.jsonl does not match")


def test_resume_below_the_saved_epoch_is_refused(saved):
    before = snapshot(saved)
    one_line_error(invoke("train", "--epochs", 2, "--resume", saved), "at epoch 3", "--epochs 3 or more")
    assert snapshot(saved) == before


def test_stale_temporaries_are_removed(saved):
    (saved / ".checkpoint.npz.abc123.tmp").write_bytes(b"half")
    assert invoke("train", "--epochs", 4, "--resume", saved).exit_code == 0
    assert not list(saved.glob(".*.tmp"))


def test_mixed_model_and_report_are_refused_by_export(tmp_path, saved):
    other = tmp_path / "other"
    assert invoke("train", "--epochs", 1, "--method", "bc", "--out", other).exit_code == 0
    os.replace(other / "model.npz", saved / "model.npz")  # a bc model under an sr report
    one_line_error(invoke("export", saved, "--out", tmp_path / "fw"), "not the model report.json describes")


def test_exported_files_are_readable_by_others(tmp_path, saved):
    old = os.umask(0o022)
    try:
        assert invoke("export", saved, "--out", tmp_path / "fw").exit_code == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "fw").iterdir()}
    assert set(modes.values()) == {0o644}, modes
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in saved.iterdir() if not p.name.startswith("."))
    assert fcntl  # the lock module is available on this platform


# ---------------------------------------------------------------- export, verify and resources

def test_verify_without_vectors_speaks_cli(tmp_path, saved):
    assert invoke("export", saved, "--out", tmp_path / "fw", "--vectors", 0).exit_code == 0
    # the hint is a command-line option, not a Python function
    one_line_error(invoke("verify", tmp_path / "fw"), "export again with --vectors 32")


def test_verify_refuses_a_folder_that_is_not_an_export(tmp_path):
    one_line_error(invoke("verify", tmp_path), "not an fxtrain export")


def test_a_run_beyond_the_hosts_memory_is_refused_with_the_estimate(monkeypatch, tmp_path):
    from fxtrain.training import host
    monkeypatch.setattr(host, "available_bytes", lambda: 50 * 2**20)  # a machine with 50 MiB free
    out = tmp_path / "run"
    line = one_line_error(invoke("train", "--arch", "dense:100000,dense:10", "--epochs", 1, "--out", out),
                          "GiB of host memory", "available")
    assert "narrower --arch" in line and not out.exists()  # refused before anything was written


def test_checkpoint_cost_per_epoch_stays_constant(tmp_path):
    sizes = {}
    for epochs in (2, 8):
        out = tmp_path / f"e{epochs}"
        assert invoke("train", "--epochs", epochs, "--out", out).exit_code == 0
        sizes[epochs] = (out / "checkpoint.npz").stat().st_size
        lines = (out / "history.jsonl").read_text().splitlines()
        assert len(lines) == epochs  # the history grows by one appended line an epoch
    # the checkpoint itself does not grow with the run's length
    assert sizes[2] == sizes[8]
