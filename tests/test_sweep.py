"""`fxtrain sweep`: spec errors, keys, records, resume, failed cells, and Dask (LocalCluster and a real scheduler)."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli_train import invoke, one_line_error
from test_targets import write

from fxtrain.experiments.running import cell_key
from fxtrain.experiments.spec import SETTINGS, load_spec, train_cell, train_config
from fxtrain.training.config import TRAIN_DEFAULTS
from fxtrain.experiments.sweep import run_sweep

ROOT = Path(__file__).resolve().parent.parent
SMALL = """
[grid]
method = ["sr", "bc"]
bits = [2, 8]
seed = [0, 1]

[fixed]
epochs = 1
arch = "dense:8,dense:10"
"""


def spec(tmp_path, text):
    return write(tmp_path, text, "spec.toml")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("text, needle", [
    ("[fixed]\nepochs = 1\n", "the [grid] is empty"),
    ("[grid]\nbits = []\n", "'bits' is an empty list"),
    ("[grid]\nbitz = [1]\n", "unknown key 'bitz'"),
    ("[grid]\nseed = [0]\n[extra]\na = 1\n", "unknown table or key 'extra'"),
    ("[grid]\nbits = [\"eight\"]\n", "'bits' must be an integer"),
    ("[grid]\nbits = 8\n", "'bits' must be a list"),
    ("[grid]\nseed = [0]\n[fixed]\nepochs = \"ten\"\n", "'epochs' must be an integer"),
    ("[grid]\nlr = [0.1]\n", "not m*2^-k"),
    ("[grid]\nseed = [0\n", "not valid TOML"),
])
def test_bad_spec_is_one_line(tmp_path, text, needle):
    # each bad spec is refused before any cell runs, with nothing written
    one_line_error(invoke("sweep", spec(tmp_path, text), "--out", tmp_path / "o", "--scheduler", "serial"), needle)
    assert not (tmp_path / "o").exists()


def test_bad_scheduler_and_unreachable_address(tmp_path):
    path = spec(tmp_path, SMALL)
    one_line_error(invoke("sweep", path, "--out", tmp_path / "o", "--scheduler", "nowhere"), "scheduler 'nowhere'")
    pytest.importorskip("distributed", reason="an address needs Dask (the test extra installs it)")
    # nothing listens on a freshly freed port: one line within the connect timeout, not a hang
    one_line_error(invoke("sweep", path, "--out", tmp_path / "o", "--scheduler", f"tcp://127.0.0.1:{free_port()}"),
                   "cannot reach a Dask scheduler")


def test_missing_dask_names_the_extra(tmp_path, monkeypatch):
    from fxtrain.experiments import dask_exec
    monkeypatch.setattr(dask_exec, "dask_available", lambda: False)
    one_line_error(invoke("sweep", spec(tmp_path, SMALL), "--out", tmp_path / "o", "--scheduler", "local"),
                   "pip install 'fxtrain[sweep]'")
    # auto falls back to serial without Dask
    assert dask_exec.resolve("auto") == "serial"


def test_key_covers_every_setting_and_the_version(monkeypatch):
    a = train_cell({"method": "sr", "bits": 8})
    # the same settings give the same key; a changed fixed option (momentum) or version gives a new one
    assert cell_key(a) == cell_key(train_cell({"bits": 8, "method": "sr"}))
    assert cell_key(a) != cell_key(train_cell({"method": "sr", "bits": 8, "momentum": "0.5", "optimizer": "momentum"}))
    import fxtrain.experiments.running as running
    before = cell_key(a)
    monkeypatch.setattr(running, "__version__", "9.9.9")
    assert cell_key(a) != before


# a value other than the default for every training setting of a spec (lr_decay_tau is the sweep's own)
OTHER = {"method": "bc", "bits": 4, "seed": 3, "lr": "0.125", "batch": 32, "epochs": 2, "arch": "dense:16,dense:10",
         "data": "moons", "momentum": "0.5", "optimizer": "momentum", "train_layers": 1}


def test_every_setting_of_a_cell_reaches_its_training_config():
    """A spec key that the config dropped would run every cell with the default, silently."""
    assert set(OTHER) == set(SETTINGS) - {"lr_decay_tau"}
    cfg = train_config(train_cell(OTHER))
    for key, value in OTHER.items():
        assert getattr(cfg, key) == value, key
        assert getattr(cfg, key) != TRAIN_DEFAULTS[key], key


def test_sweep_writes_records_summary_and_resumes_only_the_rest(tmp_path):
    path = spec(tmp_path, SMALL)
    cells = load_spec(path)
    seen = []

    def stop_after_three(p):
        seen.append((p.skipped, p.done))
        if p.done == 3:
            raise KeyboardInterrupt  # an interrupted sweep
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cells, tmp_path / "o", on_progress=stop_after_three)
    done_before = {p.name: p.read_bytes() for p in (tmp_path / "o" / "cells").glob("*.json")}
    assert len(done_before) == 3
    progress = []
    records = run_sweep(cells, tmp_path / "o", on_progress=lambda p: progress.append((p.skipped, p.done)))
    # the rerun skipped the 3 finished cells and ran exactly the other 5
    assert progress[-1] == (3, 5)
    assert all(r["status"] == "ok" for r in records) and len(records) == 8
    # the finished records were not rewritten
    assert {n: (tmp_path / "o" / "cells" / n).read_bytes() for n in done_before} == done_before
    # the record holds the whole report with its history
    assert [h["epoch"] for h in records[0]["report"]["history"]] == [1]
    # a third run has nothing left to do
    assert run_sweep(cells, tmp_path / "o", on_progress=lambda p: progress.append((p.skipped, p.done))) \
        and progress[-1] == (8, 0)


def _fail_batch_32(monkeypatch):
    """Cells of batch 32 fail as a machine might (a spec that train refuses never gets this far)."""
    from fxtrain.errors import FxtrainError
    from fxtrain.experiments import cells as cells_module
    real = cells_module.run_train_cell

    def flaky(cell):
        if cell["batch"] == 32:
            raise FxtrainError("the machine ran out of something")
        return real(cell)
    monkeypatch.setattr(cells_module, "run_train_cell", flaky)


def test_cli_summary_matches_records_and_a_failed_cell_does_not_stop_the_sweep(tmp_path, monkeypatch):
    _fail_batch_32(monkeypatch)
    path = spec(tmp_path, "[grid]\nbatch = [16, 32]\nseed = [0, 1]\n[fixed]\nepochs = 1\n")
    res = invoke("sweep", path, "--out", tmp_path / "o", "--scheduler", "serial")
    assert res.exit_code == 0, res.output
    recs = [json.loads(p.read_text()) for p in (tmp_path / "o" / "cells").glob("*.json")]
    failed = [r for r in recs if r["status"] == "failed"]
    # the two batch-32 cells failed with their own message; the others ran
    assert len(failed) == 2 and all("ran out of something" in r["error"] for r in failed)
    assert "failed cell" in res.output
    ok = sorted(r["report"]["test_accuracy"] for r in recs if r["status"] == "ok")
    rows = (tmp_path / "o" / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("batch,n,mean,std,min,max,failed")
    # the summary's mean, min and max are those of the records
    assert rows[1].split(",")[1:3] == ["2", repr(sum(ok) / 2)]
    assert rows[1].split(",")[4:7] == [repr(ok[0]), repr(ok[1]), "0"] and rows[2].endswith(",0,,,,,2")


def _weights(out, rec):
    return (Path(out) / "cells" / f"{rec['key']}.npz").read_bytes()


def test_local_cluster_matches_serial_byte_for_byte_and_workers_load_kernels(tmp_path):
    pytest.importorskip("distributed", reason="the LocalCluster needs Dask (the test extra installs it)")
    from fxtrain.experiments.dask_exec import compiles_during, executor
    cells = load_spec(spec(tmp_path, SMALL))
    serial = run_sweep(cells, tmp_path / "serial")
    local = run_sweep(cells, tmp_path / "local", executor("local", workers=2))
    # every cell's final model is the same bytes on a worker as in this process
    assert len(cells) == 8 and all(_weights(tmp_path / "serial", a) == _weights(tmp_path / "local", b)
                                   for a, b in zip(serial, local))
    fresh = train_cell({"method": "bc", "bits": 4, "epochs": 1, "seed": 7, "arch": "dense:8,dense:10"})
    from fxtrain.experiments.dask_exec import local_cluster
    from fxtrain.experiments.running import warm_kernels
    warm_kernels([fresh])
    with local_cluster(1) as cluster:
        import distributed
        with distributed.Client(cluster) as client:
            env = client.run(lambda: os.environ.get("NUMBA_CACHE_DIR"))
            compiled, result = client.submit(compiles_during, fresh, pure=False).result()
    # the worker was handed this process's cache folder, and ran a cell without compiling a kernel
    assert set(env.values()) == {os.environ["NUMBA_CACHE_DIR"]}
    assert result["record"]["status"] == "ok" and compiled is False


def test_real_scheduler_and_worker_on_localhost(tmp_path):
    pytest.importorskip("distributed", reason="dask scheduler/worker come with the test extra")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    dask = [sys.executable, "-m", "distributed.cli"]
    procs = [subprocess.Popen([*dask[:2], "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([*dask[:2], "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
                                       "--nthreads", "1", "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        _wait_for_worker(f"tcp://127.0.0.1:{port}")
        res = invoke("sweep", spec(tmp_path, SMALL), "--out", tmp_path / "o", "--scheduler",
                     f"tcp://127.0.0.1:{port}")
        assert res.exit_code == 0, res.output
        # all 8 cells ran on the external worker and were recorded here
        recs = [json.loads(p.read_text()) for p in (tmp_path / "o" / "cells").glob("*.json")]
        assert len(recs) == 8 and all(r["status"] == "ok" for r in recs)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


def _wait_for_worker(address, timeout=60):
    import distributed
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with distributed.Client(address, timeout="2s") as c:
                if c.nthreads():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no worker joined {address} within {timeout} s")


def test_the_api_sweep_returns_what_the_cli_prints(tmp_path):
    import fxtrain
    path = spec(tmp_path, "[grid]\nseed = [0, 1]\n[fixed]\nepochs = 1\narch = \"dense:8,dense:10\"\n")
    res = fxtrain.sweep(path, tmp_path / "o", scheduler="serial")
    accs = sorted(r["report"]["test_accuracy"] for r in res.records)
    assert len(res.cells) == 2 and not res.failed and res.summary == tmp_path / "o" / "summary.csv"
    assert (res.rows[0]["n"], res.rows[0]["min"], res.rows[0]["max"]) == (2, accs[0], accs[1])
    assert res.summary.read_text().splitlines()[1].split(",")[1] == "2"
    with pytest.raises(fxtrain.errors.FxtrainError, match="Invalid value for 'workers'"):
        fxtrain.sweep(path, tmp_path / "o", workers="2")
