"""Built-in data: the shipped digits, the stratified split, and moons equal to scikit-learn's."""
import numpy as np
import pytest

from fxtrain.data import load_dataset, load_digits, stratified_split
from fxtrain.data.synthetic import make_moons


def test_digits_file_equals_scikit_learns_digits():
    sk = pytest.importorskip("sklearn.datasets").load_digits()
    X, y = load_digits()
    # the shipped copy is the same 1,797 images and labels, pixel for pixel
    assert np.array_equal(X.reshape(len(X), -1), sk.data) and np.array_equal(y, sk.target)


@pytest.mark.parametrize("seed", [0, 1, 123])
def test_digits_split_is_stratified_and_repeatable(seed):
    _, y = load_digits()
    train, test = stratified_split(y, seed)
    again = stratified_split(y, seed)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])  # same seed, same split
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(y)
    for c in range(10):
        n_c, n_test = np.sum(y == c), np.sum(y[test] == c)
        # each class's test share is within one sample of 20%
        assert abs(n_test - 0.2 * n_c) <= 1, (c, n_test, n_c)
    assert not np.array_equal(test, stratified_split(y, seed + 1)[1])


@pytest.mark.parametrize("seed", [0, 7, 2**31])
def test_moons_equal_scikit_learns(seed):
    sk = pytest.importorskip("sklearn.datasets")
    X, y = make_moons(n_samples=1000, noise=0.15, seed=seed)
    Xs, ys = sk.make_moons(n_samples=1000, noise=0.15, random_state=seed)
    assert np.array_equal(y, ys) and np.array_equal(X, Xs)  # bit for bit, not merely close


def test_odd_sample_count_moons_split_like_scikit_learn():
    sk = pytest.importorskip("sklearn.datasets")
    X, y = make_moons(n_samples=101, noise=0.0, seed=3)
    Xs, ys = sk.make_moons(n_samples=101, noise=0.0, random_state=3)
    assert np.array_equal(X, Xs) and np.array_equal(y, ys) and y.sum() == 51


def test_dataset_quantisation_is_q7():
    d = load_dataset("digits", 0)
    assert d.X_train.dtype == np.int8 and d.e_x == -7 and np.abs(d.X_train).max() == 127
    assert d.input_shape == (8, 8, 1) and d.n_classes == 10 and len(d.y_test) == 359
