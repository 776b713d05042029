"""Issue 20's bad inputs at the command line: each one 'Error:' line and exit 1, and the output folder untouched."""
import numpy as np
import pytest
from cli_helpers import invoke, one_line_error

ARCH_1D = "conv1d:4:5,pool1d:2,gap,dense:3"


def _windows(n=24, t=20, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, t, c)), np.arange(n) % 3


def _images(path):
    X, y = _windows()
    np.savez(path, X=X.reshape(24, 4, 5, 3), y=y)  # 4-D: images (h 4, w 5), not windows
    return ARCH_1D, "conv1d reads a height-1 window"


def _short(path):
    X, y = _windows(t=4)
    np.savez(path, X=X, y=y)
    return ARCH_1D, "kernel 5 is larger than the 1x4 input"


def _gap_first(path):
    X, y = _windows()
    np.savez(path, X=X, y=y)
    return "gap,conv1d:4:5,dense:3", "follows gap, which must close the conv trunk"


def _ragged(path):
    ragged = np.empty(3, dtype=object)
    ragged[:] = [np.zeros((20, 3)), np.zeros((19, 3)), np.zeros((20, 3))]
    np.savez(path, X=ragged, y=np.arange(3))
    return ARCH_1D, "holds Python objects"


def _nan(path):
    X, y = _windows()
    X[5, 7, 1] = np.nan
    np.savez(path, X=X, y=y)
    return ARCH_1D, "nan"


@pytest.mark.parametrize("make", [_images, _short, _gap_first, _ragged, _nan])
def test_bad_time_series_inputs_are_one_line(tmp_path, make):
    arch, needle = make(tmp_path / "d.npz")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    line = one_line_error(invoke("train", "--data", tmp_path / "d.npz", "--arch", arch, "--epochs", "1",
                                 "--out", tmp_path / "run"), needle)
    assert "\n" not in line
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["keep.txt"]


def test_pool1d_on_images_is_one_line(tmp_path):
    one_line_error(invoke("train", "--arch", "conv:4:3,pool1d:2,dense:10", "--epochs", "1"),
                   "pool1d reads a height-1 window")


def test_a_batch_that_leaves_windows_out_says_how_many(tmp_path):
    X, y = _windows(n=40)
    np.savez(tmp_path / "d.npz", X=X, y=y)  # the stratified 80/20 split: 14, 13, 13 -> 11 + 10 + 10 = 31 to train
    args = ("train", "--data", tmp_path / "d.npz", "--arch", ARCH_1D, "--epochs", "1")
    out = invoke(*args, "--batch", "12").output
    assert "batch 12 leaves 7 of the 31 training samples out of each epoch" in out
    # 1 of 31 left out at batch 10 is below the share worth a line
    assert "leaves" not in invoke(*args, "--batch", "10").output
