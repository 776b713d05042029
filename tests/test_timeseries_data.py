"""Sensor windows: (N, T, C) NPZ files, fixed train/test splits, per-channel standardisation from the
training windows only, the shipped BasicMotions, and the constants travelling with a run."""
import hashlib
from dataclasses import replace

import numpy as np
import pytest

from fxtrain.firmware.calibration import from_run_dir

from fxtrain.data import load_dataset, load_raw, quantize_inputs, stratified_split
from fxtrain.errors import DataError
from fxtrain.training.config import TrainConfig
from fxtrain.training.job import output_folder, prepare, train_job

T, C = 8, 3
GAIN, OFFSET = np.array([1.0, 10.0, 0.1]), np.array([5.0, -2.0, 0.0])  # channels of very different spread


def windows(n, seed, shift=0.0):
    """n windows [n, T, C] in 3 classes (cycling), channel c scaled by GAIN[c] around OFFSET[c] + shift."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, T, C)) * GAIN + OFFSET + shift + y[:, None, None]
    return X, y


@pytest.fixture
def split_file(tmp_path):
    """A fixed split whose test windows sit 3 units higher, so constants taken from them would show."""
    Xtr, ytr = windows(12, 1)
    Xte, yte = windows(6, 2, shift=3.0)
    path = tmp_path / "split.npz"
    np.savez(path, X_train=Xtr, y_train=ytr, X_test=Xte, y_test=yte)
    return path, Xtr, ytr, Xte, yte


def digest(d):
    h = hashlib.sha256()
    for a in (d.X_train, d.y_train, d.X_test, d.y_test):
        h.update(a.tobytes())
    return h.hexdigest()


def test_windowed_npz_is_one_row_of_t_steps_and_c_channels(tmp_path):
    X, y = windows(30, 0)
    np.savez(tmp_path / "w.npz", X=X, y=y)
    d = load_dataset(str(tmp_path / "w.npz"), 0)
    # HWC: height 1, width T, C channels; the samples carry that shape
    assert d.input_shape == (1, T, C) and d.X_train.shape == (24, 1, T, C) and d.X_test.shape == (6, 1, T, C)
    assert load_raw(str(tmp_path / "w.npz"), 0)[0].shape == (30, 1, T, C)
    tr, _ = stratified_split(y, 0)
    # without a fixed split, the windows are split by the seed as every other X is
    assert np.array_equal(d.y_train, y[tr]) and np.array_equal(d.mean, X[tr].mean(axis=(0, 1)))


def test_fixed_split_is_used_as_given_in_order(tmp_path):
    Xtr, ytr = np.arange(40.0).reshape(10, 4), np.arange(10) % 2
    Xte, yte = -np.arange(12.0).reshape(3, 4), np.array([1, 0, 1])
    np.savez(tmp_path / "s.npz", X_train=Xtr, y_train=ytr, X_test=Xte, y_test=yte)
    d = load_dataset(str(tmp_path / "s.npz"), 5)
    # the given halves, in the given order, whatever the seed; flat features are not standardised
    assert np.array_equal(d.y_train, ytr) and np.array_equal(d.y_test, yte) and d.mean is None
    assert d.scale == 39.0
    assert np.array_equal(d.X_train, quantize_inputs(Xtr, 39.0)) and np.array_equal(d.X_test, quantize_inputs(Xte, 39.0))


def test_standardisation_constants_come_from_training_windows_only(split_file):
    path, Xtr, _, Xte, _ = split_file
    d = load_dataset(str(path), 0)
    # exactly numpy's mean and population std over all training windows and steps, per channel
    assert d.mean.dtype == np.float64 and d.mean.shape == (C,)
    assert np.array_equal(d.mean, Xtr.mean(axis=(0, 1))) and np.array_equal(d.std, Xtr.std(axis=(0, 1)))
    # the test windows (3 units higher) took no part
    assert not np.allclose(d.mean, np.concatenate([Xtr, Xte]).mean(axis=(0, 1)))


def test_test_windows_are_standardised_with_the_training_constants(split_file):
    path, Xtr, _, Xte, _ = split_file
    d = load_dataset(str(path), 0)
    ztr, zte = (Xtr - d.mean) / d.std, (Xte - d.mean) / d.std
    # then the one shared Q7 scale of the existing path: max |standardised training value|
    assert d.scale == np.abs(ztr).max() and d.e_x == -7
    assert np.array_equal(d.X_train, quantize_inputs(ztr, d.scale).reshape(12, 1, T, C))
    assert np.array_equal(d.X_test, quantize_inputs(zte, d.scale).reshape(6, 1, T, C))
    # the test windows sit higher than any training window: their codes saturate, counted
    assert d.saturated == np.count_nonzero(np.abs(np.round(zte / d.scale * 127)) > 127) > 0


def test_a_channel_that_never_changes_stays_zero(tmp_path):
    X, y = windows(12, 3)
    X[:, :, 1] = 0.1  # a constant channel: its std is 0, replaced by 1
    np.savez(tmp_path / "c.npz", X_train=X, y_train=y, X_test=X[:3], y_test=y[:3])
    d = load_dataset(str(tmp_path / "c.npz"), 0)
    assert d.mean[1] == 0.1 and d.std[1] == 1.0 and not d.X_train[..., 1].any()


@pytest.mark.parametrize("source, pinned", [
    ("digits", "e458d1d36f3143c6699b1a255465b874e572c93167881b88492dae378266427c"),
    ("moons", "d0964d46b7b83ca68be4d631b7efda919b154e37e164226be04061a9631ba2e3"),
    ("spirals", "366da04b64e7f0db405fe23761d214b928903e97e73c74816ac982bed6a3eb46"),
])
def test_builtin_sets_load_as_before(source, pinned):
    d = load_dataset(source, 0)
    # the digests of seed 0's int8 inputs and labels, computed before windows existed
    assert digest(d) == pinned and d.mean is None and d.std is None


def test_image_and_flat_npz_are_not_standardised(tmp_path):
    rng = np.random.default_rng(4)
    for shape in [(40, 5), (40, 1, 6, 2)]:  # a 4-D X of height 1 is still an image
        X, y = rng.normal(size=shape) * 7 + 3, np.arange(40) % 2
        np.savez(tmp_path / "f.npz", X=X, y=y)
        d = load_dataset(str(tmp_path / "f.npz"), 0)
        tr, te = stratified_split(y, 0)
        scale = np.abs(X[tr]).max()
        assert d.mean is None and d.scale == scale and d.input_shape == shape[1:]
        assert np.array_equal(d.X_train, quantize_inputs(X[tr], scale))


def test_basicmotions_ships_with_its_own_split():
    d = load_dataset("basicmotions", 0)
    assert d.X_train.shape == (40, 1, 100, 6) and d.X_test.shape == (40, 1, 100, 6) and d.n_classes == 4
    # ten windows of each activity in each half, the archive's split whatever the seed
    assert np.bincount(d.y_train).tolist() == [10] * 4 and np.bincount(d.y_test).tolist() == [10] * 4
    assert np.array_equal(load_dataset("basicmotions", 9).X_test, d.X_test)
    from fxtrain.data import BASICMOTIONS_FILE, data_digest
    with np.load(BASICMOTIONS_FILE) as z:
        assert z["classes"].tolist() == ["Badminton", "Running", "Standing", "Walking"]
        assert np.array_equal(d.mean, z["X_train"].mean(axis=(0, 1)))
    assert data_digest("basicmotions") == "builtin:basicmotions"


def _ragged(path):
    np.savez(path, X=np.array([np.zeros((4, 2)), np.zeros((5, 2))], dtype=object), y=np.array([0, 1]))


def _split(path, **change):
    arrays = dict(zip(("X_train", "y_train", "X_test", "y_test"), (*windows(12, 0), *windows(6, 1))))
    np.savez(path, **{**arrays, **change})


@pytest.mark.parametrize("write, needle", [
    (lambda p: np.savez(p, X=np.zeros((6, 2, 3, 4, 1)), y=np.arange(6) % 2), "X must be"),
    (lambda p: _split(p, X_test=windows(6, 1)[0][:, :, :2]), "both halves need the same shape"),
    (lambda p: _split(p, X_train=np.where(np.arange(C) == 2, np.nan, windows(12, 0)[0])),
     "X_train window 1, step 1, channel 3 is nan"),
    (_ragged, "array 'X' holds Python objects"),
    (lambda p: _split(p, X_test=np.zeros((0, T, C)), y_test=np.zeros(0)), "X_test holds no samples"),
    (lambda p: _split(p, X=np.zeros((3, T, C))), "not both"),
    (lambda p: _split(p, y_test=np.array([0, 1, 2, 0, 1, 2.5])), "y_test label in row 6 is 2.5"),
])
def test_bad_window_files_get_one_line(tmp_path, write, needle):
    write(tmp_path / "bad.npz")
    with pytest.raises(DataError) as exc:
        load_dataset(str(tmp_path / "bad.npz"), 0)
    # one line saying what is wrong
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def _train(path, out):
    run = prepare(TrainConfig(data=str(path), arch="dense:4,dense:3", epochs=1, batch=4))
    with output_folder(out, run) as folder:
        train_job(run, out=folder)
    return run


def test_mean_and_std_travel_with_the_run(split_file, tmp_path):
    path, Xtr, ytr, Xte, yte = split_file
    run = _train(path, tmp_path / "run")
    with np.load(tmp_path / "run" / "model.npz") as z:
        # model.npz holds the constants bit for bit
        assert np.array_equal(z["input_mean"], run.data.mean) and np.array_equal(z["input_std"], run.data.std)
    other = tmp_path / "other.npz"
    np.savez(other, X_train=Xtr * 2 + 1, y_train=ytr, X_test=Xte, y_test=yte)
    given = load_dataset(str(other), 0, standardise=(run.data.mean, run.data.std))
    # given constants are used, not recomputed from the new windows
    assert np.array_equal(given.mean, run.data.mean) and not np.array_equal(given.mean, load_dataset(str(other), 0).mean)
    # --init from the run on other windows takes the run's constants and scale
    init = prepare(TrainConfig(data=str(other), arch="dense:4,dense:3", epochs=1, batch=4, init=str(tmp_path / "run")))
    assert np.array_equal(init.data.mean, run.data.mean) and init.data.scale == run.data.scale
    # the export reloads the data with the run's constants, so it deploys on the inputs the run trained on
    with output_folder(tmp_path / "init", init) as out:
        train_job(init, out)
    _, exported = from_run_dir(tmp_path / "init")
    assert np.array_equal(exported.mean, run.data.mean) and np.array_equal(exported.X_test, init.data.X_test)
    # resumed after its data file changed, the run standardises as it did (the checkpoint's constants)
    np.savez(path, X_train=Xtr * 2 + 1, y_train=ytr, X_test=Xte, y_test=yte)
    cfg = replace(run.cfg, epochs=2)
    resumed = prepare(cfg, resume=str(tmp_path / "run"))
    assert np.array_equal(resumed.data.mean, run.data.mean) and np.array_equal(resumed.data.std, run.data.std)


def test_given_constants_must_fit_the_data(split_file, tmp_path):
    path = str(split_file[0])
    with pytest.raises(DataError, match="3 channels"):
        load_dataset(path, 0, standardise=(np.zeros(2), np.ones(2)))
    with pytest.raises(DataError, match="not windows"):
        load_dataset("moons", 0, standardise=(np.zeros(2), np.ones(2)))
    with pytest.raises(DataError, match="not positive"):
        load_dataset(path, 0, standardise=(np.zeros(3), np.array([1.0, 0.0, 1.0])))


def test_data_help_names_every_built_in_set():
    """The CLI's help is written without numpy, so it cannot read BUILTIN; this keeps the two in step."""
    from click.testing import CliRunner

    from fxtrain.cli import cli
    from fxtrain.data import BUILTIN
    for command in ("train", "import"):
        text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
        assert all(name in text for name in BUILTIN), command
