"""deploy.py: calibration rules and the vectorised integer inference."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c_helpers import INPUT_EXPONENT, NETS, build, calib_set, conv_specs, mlp_specs
from fxtrain.engine import fixedpoint as fp
from fxtrain.errors import ConfigError
from fxtrain.firmware.calibration import calibrate
from fxtrain.firmware.reference import accumulate as _acc, layer_forward, predict, requantize as _requant

BITS = (8, 4, 2, 1)


def scalar_forward(model, x):
    """The C loops of fx_runtime.h, literally, with fixedpoint's scalar rules: one sample."""
    a = [int(v) for v in np.asarray(x).ravel()]
    for L in model.layers:
        if L.kind == "pool":
            h, w, c = L.in_shape
            p = L.pool
            a = [max(a[((oy * p + dy) * w + ox * p + dx) * c + ch] for dy in range(p) for dx in range(p))
                 for oy in range(h // p) for ox in range(w // p) for ch in range(c)]
            continue
        wt, out = L.weights.astype(int), []
        if L.kind == "dense":
            cells = [(o, [(a[i], wt[o, i]) for i in range(L.in_shape[0])]) for o in range(L.out_shape[0])]
        else:
            (h, w, c), k, pad = L.in_shape, L.kernel, L.pad
            oh, ow, co = L.out_shape
            cells = [(o, [(a[((oy + ky - pad) * w + ox + kx - pad) * c + ci], wt[o, ky, kx, ci])
                          for ky in range(k) for kx in range(k) for ci in range(c)
                          if 0 <= oy + ky - pad < h and 0 <= ox + kx - pad < w])
                     for oy in range(oh) for ox in range(ow) for o in range(co)]
        for o, terms in cells:
            acc = int(L.bias[o]) * 2**L.bias_shift + sum(xv * wv for xv, wv in terms)
            v = fp.sat(fp.round_shift(acc, L.out_shift), -128, 127)
            out.append(max(v, 0) if L.relu else v)
        a = out
    return a


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("bits", BITS)
def test_predict_shapes_and_exponents(name, bits):
    model, X = build(name, bits)
    out, cls = predict(model, X)
    assert out.dtype == np.int8 and out.shape == (len(X), 10)
    assert cls.dtype == np.int64 and cls.shape == (len(X),)
    assert (cls == np.argmax(out, axis=1)).all()
    e = INPUT_EXPONENT
    for L, spec in zip(model.layers, NETS[name][0](0, bits)):
        # exponents chain: e_out = e_in + e_w + out_shift; pool keeps the exponent
        assert L.in_exponent == e
        assert L.out_exponent == (e if L.kind == "pool" else e + spec["w_exponent"] + L.out_shift)
        e = L.out_exponent
    assert model.output_exponent == e and model.n_classes == 10


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("bits", (8, 1))
def test_predict_equals_scalar_loops(name, bits):
    model, X = build(name, bits)
    out, _ = predict(model, X[:4])
    # the vectorised numpy path equals the C-style loops sample by sample
    assert [list(map(int, o)) for o in out] == [scalar_forward(model, x) for x in X[:4]]


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("bits", BITS)
def test_calibration_never_saturates(name, bits):
    model, X = build(name, bits)
    x = X
    for L in model.layers:
        if L.kind != "pool":
            acc = _acc(L, x.reshape(len(x), *L.in_shape))
            # floor-shifted accumulator fits int8: only round-half-up may touch +128 (saturated to 127)
            assert (acc >> L.out_shift).min() >= -128 and (acc >> L.out_shift).max() <= 127
            assert ((acc + ((1 << L.out_shift) >> 1)) >> L.out_shift).max() <= 128
            # the shift is the smallest one: bitlen(max|acc|) - 7
            assert L.out_shift == max(0, fp.bitlen(int(np.abs(acc).max())) - 7)
            assert int(np.abs(acc).max()) < 2**31
        x = layer_forward(L, x.reshape(len(x), *L.in_shape))


@pytest.mark.parametrize("b_exponent", [-30, -16, -4, 0])
def test_bias_at_accumulator_exponent(b_exponent):
    specs = mlp_specs(3, 8, b_exponent=b_exponent)
    model = calibrate(specs, calib_set(4, (64,)), INPUT_EXPONENT)
    L, spec = model.layers[0], specs[0]
    e_acc = INPUT_EXPONENT + spec["w_exponent"]
    b_acc = [fp.round_shift(int(b), e_acc - b_exponent) for b in spec["bias"]]
    assert L.bias.dtype == np.int8 and L.bias_shift == max(0, fp.bitlen(max(map(abs, b_acc))) - 7)
    # the stored q7 bias is round_shift(b_acc, bias_shift), saturated to int8
    assert L.bias.tolist() == [fp.sat(fp.round_shift(b, L.bias_shift), -128, 127) for b in b_acc]


def test_no_bias_and_single_layer():
    spec = dict(kind="dense", weights=np.eye(4, dtype=np.int8), w_exponent=0, bias=None, relu=False, bits=2)
    X = np.array([[1, -2, 3, -128]], np.int8)
    model = calibrate([spec], X, 0)
    # identity weights and no bias: the input comes back, shifted by out_shift = bitlen(128) - 7 = 1
    assert model.layers[0].out_shift == 1
    assert predict(model, X)[0].tolist() == [[1, -1, 2, -64]]


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**31), 2**31 - 1), st.integers(0, 24), st.booleans())
def test_requant_equals_fixedpoint_rules(acc, s, relu):
    got = int(_requant(np.array([acc], np.int64), s, relu)[0])
    want = fp.sat(fp.round_shift(acc, s), -128, 127)
    # (acc + NN_ROUND(s)) >> s then SSAT8 is round_shift then sat
    assert got == (max(want, 0) if relu else want)


def test_rejects_wide_weights():
    specs = mlp_specs(0, 8)
    specs[0] = dict(specs[0], weights=specs[0]["weights"].astype(np.int16) * 8, bits=12)
    with pytest.raises(ConfigError, match="at most 8 bits"):
        calibrate(specs, calib_set(1, (64,)), INPUT_EXPONENT)


def test_rejects_int32_overflow():
    specs = mlp_specs(0, 8, b_exponent=20)  # a bias far coarser than the accumulator
    with pytest.raises(ConfigError, match="int32"):
        calibrate(specs, calib_set(1, (64,)), INPUT_EXPONENT)


@pytest.mark.parametrize("change, match", [
    (dict(pad=2), "pad"), (dict(kernel=5), "do not match"), (dict(kind="lstm"), "kind"),
    (dict(weights=np.full((4, 3, 3, 1), 9, np.int8)), "4-bit range"),
])
def test_rejects_bad_specs(change, match):
    specs = conv_specs(0, 4)
    specs[0] = dict(specs[0], **change)
    with pytest.raises(ConfigError, match=match):
        calibrate(specs, calib_set(1, (8, 8, 1)), INPUT_EXPONENT)


def test_predict_rejects_wrong_input_shape():
    model, _ = build("mlp", 8)
    with pytest.raises(ConfigError, match="shape"):
        predict(model, np.zeros((3, 63), np.int8))


def test_model_is_frozen():
    model, _ = build("mlp", 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.layers[0].out_shift = 3
    with pytest.raises(ValueError):
        model.layers[0].weights[0, 0] = 1
    assert model.meta["arch"] == "mlp" and "fxtrain_version" in model.meta
