"""Results you can trust: sweep cells keyed by content and checked against their key, damaged records set
aside, outputs that never overwrite inputs, one check for CLI and API arguments, refusals before the work.

Each test reproduces a failure of the hostile pass of 2026-12-03 (it failed on the code before this change).
"""
import csv
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli_train import invoke, one_line_error

import fxtrain
from fxtrain._files import FolderLock
from fxtrain.errors import FxtrainError
from fxtrain.experiments.spec import load_spec
from fxtrain.experiments.sweep import run_sweep

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from fxtrain.cli import main; main()"]
FIXED = '[fixed]\nepochs = 1\narch = "dense:8,dense:10"\n'


def _spec(tmp_path, grid, fixed=FIXED, name="spec.toml"):
    path = tmp_path / name
    path.write_text(f"[grid]\n{grid}\n{fixed}")
    return path


def _summary(out):
    with open(Path(out) / "summary.csv") as f:
        return list(csv.DictReader(f))


def _sweep(spec, out, *extra):
    return invoke("sweep", spec, "--out", out, "--scheduler", "serial", *extra)


# ---------------------------------------------------------------- 1. duplicate grid values

@pytest.mark.parametrize("grid,n", [
    ("seed = [0, 0, 1]", 2),
    ('lr = ["0.0625", 0.0625, "2^-4", "0.06250"]', 1),  # one value written four ways
    ('momentum = ["0.5", 0.5, "1/2"]\noptimizer = ["momentum"]', 1),
])
def test_duplicate_grid_values_are_one_cell_and_count_once(tmp_path, grid, n):
    res = _sweep(_spec(tmp_path, grid), tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert [int(r["n"]) for r in _summary(tmp_path / "o")] == [n]
    assert len(list((tmp_path / "o" / "cells").glob("*.json"))) == n
    assert f"{n} distinct cells" in res.output


# ---------------------------------------------------------------- 2. a rewritten data file

def _write_blobs(path, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] > 0).astype(int) if seed == 0 else rng.integers(0, 2, 120)
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.6f")


def test_rewriting_a_data_file_recomputes_every_cell_that_reads_it(tmp_path):
    data = tmp_path / "mydata.csv"
    _write_blobs(data, 0)
    spec = _spec(tmp_path, "seed = [0, 1]\nmethod = [\"sr\", \"bc\"]",
                 fixed=f'[fixed]\nepochs = 1\narch = "dense:8,dense:2"\ndata = "{data}"\n')
    progress = []
    first = run_sweep(load_spec(spec), tmp_path / "o")
    _write_blobs(data, 1)  # the same name, other contents
    second = run_sweep(load_spec(spec), tmp_path / "o", on_progress=lambda p: progress.append(p.skipped))
    assert progress[-1] == 0  # no cell was taken from the old file's records
    assert {r["key"] for r in first}.isdisjoint({r["key"] for r in second})
    assert [r["report"]["test_accuracy"] for r in first] != [r["report"]["test_accuracy"] for r in second]
    assert all(r["cell"]["inputs"]["data"].startswith("sha256:") for r in second)


def test_a_data_file_changed_during_the_sweep_fails_its_cells(tmp_path):
    from fxtrain.experiments.running import run_cell
    data = tmp_path / "d.csv"
    _write_blobs(data, 0)
    (cell,) = load_spec(_spec(tmp_path, "seed = [0]", fixed=f'[fixed]\nepochs = 1\ndata = "{data}"\n'
                                                             'arch = "dense:4,dense:2"\n'))
    _write_blobs(data, 1)
    rec = run_cell(cell)["record"]
    assert rec["status"] == "failed" and "changed while the sweep ran" in rec["error"]


# ---------------------------------------------------------------- 3 and 4. records checked and set aside

@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished two-cell sweep, copied afresh for each test."""
    base = tmp_path_factory.mktemp("swept")
    spec = _spec(base, "seed = [0, 1]")
    assert _sweep(spec, base / "o").exit_code == 0
    return spec, base / "o"


@pytest.fixture
def sweep_copy(swept, tmp_path):
    spec, out = swept
    shutil.copytree(out, tmp_path / "o")
    records = sorted((tmp_path / "o" / "cells").glob("*.json"))
    return spec, tmp_path / "o", records, {p.name: p.read_bytes() for p in records}


def test_a_copied_record_is_set_aside_and_its_cell_reruns(sweep_copy):
    spec, out, (a, b), good = sweep_copy
    shutil.copy(a, b)
    res = _sweep(spec, out)
    assert res.exit_code == 0, res.output
    assert [int(r["n"]) for r in _summary(out)] == [2]
    # the cell ran again, to the same bytes as before; the copy is kept beside it under a reason
    assert b.read_bytes() != a.read_bytes() and json.loads(b.read_text())["key"] == b.stem
    assert (b.parent / f"{b.name}.other-cell").read_bytes() == good[a.name]
    assert "set aside a damaged record" in res.output


DAMAGE = {
    "binary": lambda p: p.write_bytes(b"\x00\xff\xfe binary"),
    "list": lambda p: p.write_text("[1, 2]"),
    "missing-field": lambda p: p.write_text('{"status": "ok"}'),
    "string-accuracy": lambda p: p.write_text(json.dumps({
        **json.loads(p.read_text()), "report": {**json.loads(p.read_text())["report"], "test_accuracy": "0.9"}})),
    "directory": lambda p: (p.unlink(), p.mkdir(), (p / "x").write_text("x")),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_each_damaged_record_is_set_aside_and_recomputed(sweep_copy, damage):
    spec, out, (a, b), good = sweep_copy
    DAMAGE[damage](b)
    leftover = out / "cells" / f".{b.name}.1234.tmp"  # what a kill between write and rename leaves
    leftover.write_text("{")
    progress = []
    records = run_sweep(load_spec(spec), out, on_progress=lambda p: progress.append((p.skipped, p.done)))
    assert progress[-1] == (1, 1) and all(r["status"] == "ok" for r in records)
    assert b.is_file() and json.loads(b.read_text())["key"] == b.stem
    assert len(list(out.glob("cells/*.json.*"))) == 1  # the damaged one, kept under its reason
    assert not leftover.exists()


# ---------------------------------------------------------------- 5. outputs never overwrite inputs

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("exported")
    fxtrain.train(arch="dense:4,dense:10", epochs=1, out=base / "run")
    fxtrain.export(base / "run", base / "fw", train_step=True)
    return base / "run", base / "fw"


@pytest.mark.parametrize("victim", ["run/checkpoint.npz", "run/report.json", "fw/export.json", "fw/fx_train.h"])
def test_dump_onto_a_run_or_export_file_is_refused(exported, victim):
    run, fw = exported
    path = run.parent / victim
    before = path.read_bytes()
    one_line_error(invoke("verify", fw, "--train-step", "--steps", 1, "--host-only", "--dump", path),
                   "--dump file", "write it elsewhere")
    assert path.read_bytes() == before
    with pytest.raises(FxtrainError, match="write it elsewhere"):
        fxtrain.verify(fw, train_step=True, steps=1, host_only=True, dump=path)
    assert path.read_bytes() == before


def test_a_spec_named_summary_csv_in_out_is_refused(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    spec = _spec(out, "seed = [0]", name="summary.csv")
    before = spec.read_bytes()
    one_line_error(_sweep(spec, out), "is the sweep spec", "write it elsewhere")
    assert spec.read_bytes() == before and not (out / "cells").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="os.mknod of a character device needs root")
def test_plot_onto_a_character_device_is_refused(tmp_path):
    node = tmp_path / "full"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # /dev/full's numbers
    one_line_error(invoke("compare", "--target", "cortex-m4", "--bits", "8", "--plot", node),
                   "character device", "regular file")
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_a_fifo_is_never_replaced_by_an_output(tmp_path):
    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    one_line_error(invoke("compare", "--target", "cortex-m4", "--bits", "8", "--plot", fifo), "FIFO")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# ---------------------------------------------------------------- 6. the sweep's lock

def test_a_second_sweep_into_a_locked_folder_is_refused(tmp_path):
    spec = _spec(tmp_path, "seed = [0]")
    with FolderLock(tmp_path / "o"):
        one_line_error(_sweep(spec, tmp_path / "o"), "another fxtrain process", "is writing to")
    assert not list((tmp_path / "o").glob("cells/*.json"))


# ---------------------------------------------------------------- 7. refused up front; all failed is rc 1

@pytest.mark.parametrize("arch,needle", [('"bogus:1"', "unknown arch token 'bogus:1'"),
                                         ('"dense:0"', "dense:0"),
                                         ('"conv:4:3,dense:10"', "image input")])
def test_a_spec_train_would_refuse_is_refused_before_any_cell(tmp_path, arch, needle):
    spec = _spec(tmp_path, f'arch = ["dense:8,dense:10", {arch}]\nseed = [0, 1]',
                 fixed='[fixed]\nepochs = 1\ndata = "moons"\n' if "conv" in arch else "[fixed]\nepochs = 1\n")
    if "conv" in arch:
        spec.write_text(spec.read_text().replace("dense:8,dense:10", "dense:8,dense:2"))
    one_line_error(_sweep(spec, tmp_path / "o"), needle)
    assert not (tmp_path / "o").exists()


def test_a_sweep_in_which_every_cell_failed_exits_1(tmp_path, monkeypatch):
    from fxtrain.experiments import cells
    monkeypatch.setattr(cells, "run_train_cell", lambda cell: (_ for _ in ()).throw(FxtrainError("no luck")))
    res = _sweep(_spec(tmp_path, "seed = [0, 1]"), tmp_path / "o")
    assert res.exit_code == 1 and "every one of the 2 cells failed" in res.output


# ---------------------------------------------------------------- 8. one check for the CLI and the API

RUN, FW = "no-run-needed", "no-export-needed"  # each bad value is refused before a path is read
CASES = [
    (["train", "--epochs", "0"], lambda: fxtrain.train(epochs=0)),
    (["train", "--epochs", "2.5"], lambda: fxtrain.train(epochs=2.5)),
    (["train", "--epochs", "x"], lambda: fxtrain.train(epochs="x")),
    (["train", "--batch", "-3"], lambda: fxtrain.train(batch=-3)),
    (["train", "--batch", "16.5"], lambda: fxtrain.train(batch=16.5)),
    (["train", "--bits", "5"], lambda: fxtrain.train(bits=5)),
    (["train", "--bits", "x"], lambda: fxtrain.train(bits="x")),
    (["train", "--seed", "-1"], lambda: fxtrain.train(seed=-1)),
    (["train", "--seed", "4294967296"], lambda: fxtrain.train(seed=2**32)),
    (["train", "--lr", "0.1"], lambda: fxtrain.train(lr="0.1")),
    (["train", "--lr", "0"], lambda: fxtrain.train(lr=0)),
    (["train", "--momentum", "0.9"], lambda: fxtrain.train(momentum="0.9")),
    (["simulate", "--target", "cortex-m4", "--epochs", "0"], lambda: fxtrain.simulate("cortex-m4", epochs=0)),
    (["simulate", "--target", "nope"], lambda: fxtrain.simulate("nope")),
    (["compare", "--target", "cortex-m4", "--bits", "3,5"], lambda: fxtrain.compare("cortex-m4", bits=(3, 5))),
    (["compare", "--target", "cortex-m4", "--seed", "-1"], lambda: fxtrain.compare("cortex-m4", seed=-1)),
    (["export", RUN, "--out", "x", "--vectors", "-5"], lambda: fxtrain.export(RUN, "x", vectors=-5)),
    (["export", RUN, "--out", "x", "--vectors", "x"], lambda: fxtrain.export(RUN, "x", vectors="x")),
    (["export", RUN, "--out", "x", "--to", "onnx"], lambda: fxtrain.export(RUN, "x", to="onnx")),
    (["export", RUN, "--out", "x", "--rounding", "nearest"], lambda: fxtrain.export(RUN, "x", rounding="nearest")),
    (["train", "--method", "sgd"], lambda: fxtrain.train(method="sgd")),
    (["train", "--optimizer", "rmsprop"], lambda: fxtrain.train(optimizer="rmsprop")),
    (["verify", FW, "--train-step", "--steps", "0"], lambda: fxtrain.verify(FW, train_step=True, steps=0)),
    (["verify", FW, "--train-step", "--steps", "2.5"], lambda: fxtrain.verify(FW, train_step=True, steps=2.5)),
    (["verify", FW, "--train-step", "--steps", "1000000000"],
     lambda: fxtrain.verify(FW, train_step=True, steps=10**9)),
    (["verify", FW, "--train-step", "--epochs", "0"], lambda: fxtrain.verify(FW, train_step=True, epochs=0)),
    (["measure", RUN, "--target", "cortex-m4", "--steps", "0"], lambda: fxtrain.measure(RUN, "cortex-m4", steps=0)),
    (["measure", RUN, "--target", "cortex-m4", "--steps", "99999999999999999999"],
     lambda: fxtrain.measure(RUN, "cortex-m4", steps=99999999999999999999)),
    (["measure", RUN, "--target", "cortex-m4", "--steps", "x"], lambda: fxtrain.measure(RUN, "cortex-m4", steps="x")),
]


def _core(message):
    """A message without the "Invalid value for '--x': " (CLI) or "Invalid value for 'x': " (API) head and
    the CLI's "(see ... --help)" tail."""
    message = message.split(" (see '")[0].strip()
    return message.split("': ", 1)[1] if message.startswith("Invalid value for '") else message


@pytest.mark.parametrize("args,call", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_the_api_refuses_what_the_cli_refuses_with_the_same_words(args, call):
    line = one_line_error(invoke(*args), "")
    with pytest.raises(FxtrainError) as caught:
        call()
    assert _core(str(caught.value)) == _core(line.removeprefix("Error: "))


@pytest.mark.parametrize("call,needle", [
    (lambda: fxtrain.train(epochs="2"), "'2' is not a whole number"),
    (lambda: fxtrain.train(epochs=None), "None is not a whole number"),
    (lambda: fxtrain.train(batch="16"), "'16' is not a whole number"),
    (lambda: fxtrain.train(seed="0"), "'0' is not a whole number"),
    (lambda: fxtrain.measure(RUN, "cortex-m4", steps="4"), "'4' is not a whole number"),
    (lambda: fxtrain.measure(RUN, "cortex-m4", steps=None), "None is not a whole number"),
    (lambda: fxtrain.verify(FW, train_step=True, steps="3"), "'3' is not a whole number"),
    (lambda: fxtrain.export(RUN, "x", vectors="32"), "'32' is not a whole number"),
    (lambda: fxtrain.train(seed=None), "None is not a whole number"),
    (lambda: fxtrain.train(arch=5), "5 is not text"),
    (lambda: fxtrain.train(data=None), "None is not a path"),
    (lambda: fxtrain.train(out=5), "5 is not a path"),
    (lambda: fxtrain.train(on_epoch=5), "not callable"),
    (lambda: fxtrain.measure(None, "cortex-m4"), "None is not a path"),
    (lambda: fxtrain.measure(RUN, "cortex-m4", steps=True), "True is not a whole number"),
    (lambda: fxtrain.verify(None), "None is not a path"),
    (lambda: fxtrain.verify(FW, dump=5, train_step=True), "5 is not a path"),
    (lambda: fxtrain.export(RUN, None), "None is not a path"),
    (lambda: fxtrain.compare("cortex-m4", bits=8), "not a list of bit widths"),
    (lambda: fxtrain.compare("cortex-m4", bits=()), "no bit width given"),
    (lambda: fxtrain.compare("cortex-m4", bits=("8",)), "'8' is not a whole number"),
    (lambda: fxtrain.export(RUN, "x", pack="yes"), "'yes' is not True or False"),
])
def test_python_only_wrong_types_are_fxtrain_errors(call, needle):
    with pytest.raises(FxtrainError, match="Invalid value for") as caught:
        call()
    assert needle in str(caught.value)


# ---------------------------------------------------------------- 9. refuse before the work, in true words

def test_simulate_measured_refuses_a_float_run_before_training():
    epochs = []
    t0 = time.perf_counter()
    with pytest.raises(FxtrainError, match="float run has none") as caught:
        fxtrain.simulate("cortex-m4", method="float", measured=True, on_epoch=epochs.append)
    assert epochs == [] and time.perf_counter() - t0 < 10 and "--train-step" not in str(caught.value)


@pytest.mark.parametrize("edit,needle", [
    (lambda line: "" if line.startswith("cflags") else line, "no -mcpu= in its cflags"),
    (lambda line: line.replace("-mcpu=cortex-m4", "-mcpu=cortex-a9000"), "-mcpu=cortex-a9000, which fxtrain measure"),
])
def test_a_profile_without_a_usable_mcpu_is_named_for_what_it_lacks(tmp_path, exported, edit, needle):
    src = (ROOT / "targets" / "cortex-m4.toml").read_text()
    path = tmp_path / "edited.toml"
    path.write_text("\n".join(edit(line) for line in src.splitlines()))
    line = one_line_error(invoke("measure", exported[0], "--target", path), needle)
    assert "not a Cortex-M core" not in line


def test_a_truncated_checkpoint_under_measure_says_nothing_of_resume(tmp_path, exported):
    run = tmp_path / "run"
    shutil.copytree(exported[0], run)
    ckpt = run / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    for args in (["measure", run, "--target", "cortex-m4"], ["export", run, "--out", tmp_path / "fw", "--train-step"]):
        line = one_line_error(invoke(*args), "checkpoint.npz is unreadable", "train the run again")
        assert "--resume" not in line


def test_verify_says_the_run_folder_is_gone(tmp_path, exported):
    shutil.copytree(exported[0], tmp_path / "run")
    fxtrain.export(tmp_path / "run", tmp_path / "fw", train_step=True)
    shutil.rmtree(tmp_path / "run")
    line = one_line_error(invoke("verify", tmp_path / "fw", "--train-step", "--steps", 1, "--host-only"), "is gone")
    assert "has changed" not in line


@pytest.mark.parametrize("address", ["tls://127.0.0.1:1", "ucx://127.0.0.1:1", "inproc://x"])
def test_every_scheduler_address_connects_or_gives_one_line(tmp_path, address):
    one_line_error(invoke("sweep", _spec(tmp_path, "seed = [0]"), "--out", tmp_path / "o", "--scheduler", address),
                   "over tcp only")
    one_line_error(invoke("experiment", "bits", "--quick", "--scheduler", address), "over tcp only")


def test_workers_are_capped_at_the_cells_and_warned_above_the_cores(tmp_path):
    pytest.importorskip("distributed", reason="the LocalCluster needs Dask (the test extra installs it)")
    from fxtrain.experiments.dask_exec import local_cluster
    with local_cluster(workers=50, cells=2) as cluster:
        assert len(cluster.workers) == 2
    cores = os.cpu_count()
    res = subprocess.run([*CLI, "sweep", str(_spec(tmp_path, "seed = [0, 1]")),
                          "--out", str(tmp_path / "o"), "--scheduler", "local", "--workers", str(cores + 8)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"more than this machine's {cores} cores" in res.stderr
    assert "Traceback" not in res.stderr and "CommClosedError" not in res.stderr  # a quiet shutdown


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None and not os.environ.get("FXTRAIN_REQUIRE_TOOLCHAIN"),
                    reason="measure needs arm-none-eabi-gcc (apt-get install gcc-arm-none-eabi)")
def test_sigterm_during_measure_removes_its_temporary_folder(tmp_path, exported):
    pytest.importorskip("unicorn", reason="measure needs the measure extra")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([*CLI, "measure", str(exported[0]), "--target",
                             "cortex-m4", "--steps", "64"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("fxtrain-measure-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert list(tmp_path.glob("fxtrain-measure-*")), "measure never made its temporary folder"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Aborted." in err
    assert not list(tmp_path.glob("fxtrain-measure-*"))


def test_a_sigterm_that_a_library_swallows_still_fails_the_command():
    # some libraries catch KeyboardInterrupt in broad except clauses; a terminated command must still end as
    # an aborted one (exit 1, "Aborted."), not report success after running on
    code = ("import os, signal, time, click\nfrom fxtrain.cli import cli\n"
            "@cli.command('swallow')\ndef swallow():\n    try:\n        os.kill(os.getpid(), signal.SIGTERM)\n"
            "        time.sleep(1)\n    except KeyboardInterrupt:\n        pass\n    click.echo('ran on')\n"
            "cli.main(['swallow'], prog_name='fxtrain')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "ran on" in proc.stdout and proc.stderr.strip().splitlines()[-1] == "Aborted."
