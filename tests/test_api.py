"""The Python API: train, simulate, export and verify give the same numbers as the CLI."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import fxtrain
from fxtrain.cli import cli
from fxtrain.errors import ConfigError, TargetError


def cli_run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def test_api_train_simulate_export_equal_the_cli(tmp_path):
    kw = dict(method="sr", bits=4, epochs=3, seed=5)
    api_train = fxtrain.train(**kw, out=tmp_path / "api")
    cli_run("train", "--method", "sr", "--bits", 4, "--epochs", 3, "--seed", 5, "--out", tmp_path / "cli")
    cli_report = json.loads((tmp_path / "cli" / "report.json").read_text())
    # same history, accuracies and deployed accuracy, to the last bit of every float
    for key in ("history", "test_accuracy", "train_accuracy", "deployed_test_accuracy", "n_weights"):
        assert api_train.report[key] == cli_report[key], key
    with np.load(tmp_path / "api" / "model.npz") as za, np.load(tmp_path / "cli" / "model.npz") as zc:
        assert za.files == zc.files and all(np.array_equal(za[k], zc[k]) for k in za.files)

    sim = fxtrain.simulate("cortex-m4", **kw)
    out = cli_run("simulate", "--target", "cortex-m4", "--method", "sr", "--bits", 4, "--epochs", 3, "--seed", 5)
    assert sim.history == api_train.history  # simulate trains the same run
    assert f"{sim.memory['total_bytes']:,} of {sim.target.usable_sram_bytes:,}" in out
    assert f"{sim.compute['int_macs_per_epoch']:,}" in out

    exp = fxtrain.export(tmp_path / "api", tmp_path / "fw_api")
    out = cli_run("export", tmp_path / "cli", "--out", tmp_path / "fw_cli")
    assert exp.hash in out and f"{exp.flash_bytes:,} bytes" in out
    for name in ("fx_model.h", "fx_vectors.h", "main.c", "fx_runtime.h"):
        assert (tmp_path / "fw_api" / name).read_bytes() == (tmp_path / "fw_cli" / name).read_bytes(), name


def test_api_verify_returns_rows(tmp_path):
    import shutil
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed: apt-get install gcc")
    fxtrain.train(epochs=1, out=tmp_path / "run")
    fxtrain.export(tmp_path / "run", tmp_path / "fw", vectors=8)
    res = fxtrain.verify(tmp_path / "fw")
    assert res.ok and res.results[0][0] == "host gcc" and res.results[0][1]["n_mismatch"] == 0


def test_api_compare_rows_and_widths():
    res = fxtrain.compare("stm32f103c8", bits=(1, 8))
    assert [(r["method"], r["bits"]) for r in res.rows][:4] == [("sr", 1), ("bc", 1), ("r", 1), ("float", 1)]
    assert [w["bits"] for w in res.widths] == [1, 8]


def test_api_raises_the_projects_errors():
    with pytest.raises(ConfigError, match="not m\\*2\\^-k"):
        fxtrain.train(lr="0.1", epochs=1)
    with pytest.raises(ConfigError, match="seed"):
        fxtrain.train(seed=-1, epochs=1)
    with pytest.raises(TargetError, match="atmega328p"):
        fxtrain.simulate("atmega328p", epochs=1)


def test_import_fxtrain_is_lazy():
    import subprocess
    import sys
    code = "import sys, fxtrain; print('numba' in sys.modules, callable(fxtrain.train))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # the API resolves on first use; importing the package alone does not load numba
    assert out.split() == ["False", "True"]
