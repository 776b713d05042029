"""Exports of time-series nets: a 1-D net trained on BasicMotions runs bit for bit in the C runtime (host gcc
and QEMU Cortex-M4) and byte for byte in TFLM; gap's rounding agrees on every side at the near-ties of an odd
count; a non-square 2-D conv exports too; ONNX 1-D models import; every export carries the input constants."""
import json
import shutil

import numpy as np
import pytest

import fxtrain
from fxtrain.errors import ModelError
from fxtrain.firmware.calibration import calibrate, from_run_dir
from fxtrain.firmware.codegen import assert_no_float, export_model
from fxtrain.firmware.reference import predict
from fxtrain.firmware.verify import verify_host
from fxtrain.layers.gap import average_round

ARCH = "conv1d:8:5,pool1d:2,conv1d:16:5,gap,dense:4"
N_RANDOM = 4000
FIX = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
MISSING = [t for t in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
needs_arm = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: {FIX}")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed: apt-get install gcc")


def _tflm():
    pytest.importorskip("flatbuffers")
    pytest.importorskip("tflite_micro")
    from fxtrain.tflite import tflm
    return tflm


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The 1-D net trained on BasicMotions (SR, 8 bits, batch 8)."""
    out = tmp_path_factory.mktemp("bm") / "run"
    fxtrain.train(arch=ARCH, method="sr", bits=8, batch=8, epochs=3, data="basicmotions", out=out)
    return out


@needs_arm
def test_c_export_is_bit_exact_on_host_and_qemu_m4(run, tmp_path):
    fxtrain.export(run, tmp_path / "c")
    res = fxtrain.verify(tmp_path / "c", target="cortex-m4")
    # every output byte and class equal on host gcc and on the emulated M4, and the whole test set was sent
    assert res.ok and [r["n_mismatch"] for _, r in res.results] == [0, 0]
    assert all(r["n_vectors"] == 32 for _, r in res.results)
    header = (tmp_path / "c" / "fx_model.h").read_text()
    # the 1-D layers run fxtrain's kernels, and the header says what CMSIS-NN can take
    assert "fx_conv_hwc_nonsquare_q7" in header and "fx_maxpool_hwc_nonsquare_q7" in header
    assert "fx_avgpool_global_q7" in header and "arm_convolve_HWC_q7_basic_nonsquare" in header
    # the integer path has no float anywhere, comments included; the input constants live apart
    for name in ("fx_model.h", "fx_runtime.h", "fx_vectors.h"):
        assert_no_float((tmp_path / "c" / name).read_text(), name, comments=True)


def test_tflm_is_byte_identical_on_test_windows_and_random_inputs(run, tmp_path):
    tflm = _tflm()
    fxtrain.export(run, tmp_path / "t", to="tflite")
    assert fxtrain.verify(tmp_path / "t").ok  # its own vectors and the test windows
    model, data = from_run_dir(run, "tflm")
    rng = np.random.default_rng(0)
    X = np.concatenate([data.X_test.reshape(-1, *model.input_shape),
                        rng.integers(-128, 128, (N_RANDOM, *model.input_shape)).astype(np.int8)])
    # TFLM = fxtrain's reference on the 40 test windows and 4,000 random inputs: 0 differing bytes
    assert np.array_equal(tflm.run((tmp_path / "t" / "model.tflite").read_bytes(), X), predict(model, X)[0])


def _gap_inputs(n, channels):
    """int8 windows (1, n, channels) whose channel sums sit at n*k +- n//2 and n*k +- (n//2 + 1): the sums
    either side of every rounding boundary, for k of both signs."""
    sums = np.array([n * k + d for k in range(-6, 7) for d in (0, n // 2, n // 2 + 1, -(n // 2), -(n // 2) - 1)])
    sums = np.resize(sums, (-(-len(sums) // channels) * channels)).reshape(-1, channels)
    base = np.floor_divide(sums, n)
    extra = sums - base * n  # that many positions get base + 1
    steps = np.arange(n)[None, :, None]
    X = (base[:, None, :] + (steps < extra[:, None, :])).astype(np.int8)
    assert np.array_equal(X.astype(np.int64).sum(axis=1), sums)
    return X[:, None], sums


@needs_gcc
@pytest.mark.parametrize("rounding", ["cmsis", "tflm"])
def test_gap_rounds_alike_in_the_reference_c_and_tflm(rounding, tmp_path):
    from fractions import Fraction
    n, c = 23, 3
    X, sums = _gap_inputs(n, c)
    model = calibrate([{"kind": "gap"}], X, -7, rounding=rounding)
    out = predict(model, X)[0]
    exact = np.vectorize(lambda s: int(np.sign(s)) * int(abs(Fraction(int(s), n)) + Fraction(1, 2)))(sums)
    # the reference is the exact rational rule: to nearest, ties away from zero (none here: 23 is odd)
    assert np.array_equal(out, exact) and np.array_equal(out, average_round(sums, n))
    export_model(model, tmp_path / "c", vectors=X)
    assert verify_host(tmp_path / "c")["n_mismatch"] == 0  # the C runtime, every byte
    if rounding == "tflm":
        from fxtrain.tflite.flatbuffer import tflite_bytes
        assert np.array_equal(_tflm().run(tflite_bytes(model), X), out)  # TFLM's AVERAGE_POOL_2D, every byte


@needs_gcc
def test_a_non_square_2d_conv_and_pool_export_bit_exact(tmp_path):
    rng = np.random.default_rng(1)
    images = tmp_path / "img.npz"
    np.savez(images, X=rng.standard_normal((40, 5, 6, 2)).astype(np.float32), y=np.arange(40) % 3)
    fxtrain.train(arch="conv:4:1x3,pool:2x3,dense:3", epochs=1, data=str(images), out=tmp_path / "run")
    for rounding in ("cmsis", "tflm"):
        fxtrain.export(tmp_path / "run", tmp_path / rounding, rounding=rounding)
        # both requantisation rules, every byte on the host
        assert fxtrain.verify(tmp_path / rounding).ok
    assert "FX_L0_KW 3" in (tmp_path / "cmsis" / "fx_model.h").read_text()


@needs_gcc
@pytest.mark.parametrize("pack,rounding", [(True, "cmsis"), (True, "tflm"), (False, "cmsis")])
def test_a_packed_non_square_conv_calibrated_by_hand_is_bit_exact(pack, rounding, tmp_path):
    from c_helpers import rand_weights
    rng = np.random.default_rng(3)
    shape = (5, 6, 2)
    specs = [dict(kind="conv", weights=rand_weights(rng, (4, 1, 3, 2), 4), kernel=1, kernel_w=3, pad=0, pad_w=1,
                  relu=True, bits=4, w_exponent=-3, bias=rng.integers(-2**10, 2**10, 4), b_exponent=-14),
             dict(kind="pool", pool=2, pool_w=3),
             dict(kind="dense", weights=rand_weights(rng, (3, 2 * 2 * 4), 4), relu=False, bits=4, w_exponent=-3,
                  bias=rng.integers(-2**10, 2**10, 3), b_exponent=-14)]
    X = rng.integers(-128, 128, (200, *shape)).astype(np.int8)
    model = calibrate(specs, X, -7, rounding=rounding)
    assert [L.out_shape for L in model.layers] == [(5, 6, 4), (2, 2, 4), (3,)]
    export_model(model, tmp_path / "c", pack=pack, vectors=X)
    # 4-bit weights packed two to a byte (or int8), each rounding rule: every byte on the host
    assert verify_host(tmp_path / "c")["n_mismatch"] == 0


def test_exports_carry_the_runs_input_constants(run, tmp_path):
    arrays = np.load(run / "model.npz")
    mean, std, scale = arrays["input_mean"], arrays["input_std"], float(arrays["input_scale"])
    fxtrain.export(run, tmp_path / "c", vectors=0)
    header = (tmp_path / "c" / "fx_input.h").read_text()
    # the values exactly as model.npz holds them, in a header the integer path does not include
    assert f"FX_INPUT_MEAN[6] = {{{', '.join(map(repr, map(float, mean)))}}}" in header
    assert f"FX_INPUT_STD[6] = {{{', '.join(map(repr, map(float, std)))}}}" in header
    assert f"FX_INPUT_SCALE = {scale!r};" in header
    assert "fx_input.h" not in (tmp_path / "c" / "fx_model.h").read_text()
    # the formula the header gives, applied to the raw test windows, is the run's int8 input
    from fxtrain.data import load_dataset, load_raw
    data = load_dataset("basicmotions", 0, scale, standardise=(mean, std))
    raw = load_raw("basicmotions", 0)[0][-len(data.X_test):]
    q = np.clip(np.rint((raw - mean) / std / scale * 127.0), -127, 127)
    assert np.array_equal(q.astype(np.int8), data.X_test)
    pytest.importorskip("flatbuffers")
    pytest.importorskip("tflite_micro")
    fxtrain.export(run, tmp_path / "t", to="tflite", vectors=0)
    saved = json.loads((tmp_path / "t" / "export.json").read_text())["input_standardisation"]
    assert saved == {"mean": mean.tolist(), "std": std.tolist(), "scale": scale}
    assert f"g_fx_input_std[6] = {{{', '.join(map(repr, map(float, std)))}}}" in \
        (tmp_path / "t" / "model_data.h").read_text()


# ---------------------------------------------------------------- ONNX 1-D import

def _onnx_1d(path, first=None, gap="GlobalAveragePool"):
    """Conv1d(6->8, 5), Relu, MaxPool1d(2), Conv1d(8->16, 5, pad 2), Relu, global average, Flatten, Gemm(4),
    reading raw NCT windows (N, 6, 100); ``first``: attributes that replace the first conv's."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    f = lambda *s: (rng.normal(size=s) * 0.3).astype(np.float32)  # noqa: E731
    inits = {"w0": f(8, 6, 5), "b0": f(8), "w1": f(16, 8, 5), "b1": f(16), "w2": f(4, 16), "b2": f(4)}
    pooled = [helper.make_node("GlobalAveragePool", ["r1"], ["g"])] if gap == "GlobalAveragePool" else \
        [helper.make_node("ReduceMean", ["r1"], ["g"], axes=[-1], keepdims=1)]
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="conv0", **(first or {"kernel_shape": [5]})),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("MaxPool", ["r0"], ["p0"], kernel_shape=[2], strides=[2]),
             helper.make_node("Conv", ["p0", "w1", "b1"], ["c1"], kernel_shape=[5], pads=[2, 2]),
             helper.make_node("Relu", ["c1"], ["r1"]), *pooled,
             helper.make_node("Flatten", ["g"], ["fl"]),
             helper.make_node("Gemm", ["fl", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 100])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return model


@pytest.mark.parametrize("gap", ["GlobalAveragePool", "ReduceMean"])
def test_a_1d_onnx_model_imports_and_equals_the_reference_evaluator(tmp_path, gap):
    from onnx.reference import ReferenceEvaluator
    model = _onnx_1d(tmp_path / "m.onnx", gap=gap)
    res = fxtrain.import_model(tmp_path / "m.onnx", data="basicmotions", bits=8, method="float")
    assert res.report["arch"] == "conv1d:8:5:valid,pool1d:2,conv1d:16:5:same,gap,dense:4"
    assert res.float_check_max_diff <= 1e-4
    # our own check on windows in the file's units, NCT: fxtrain's float forward on its standardised Q7 codes
    # equals the evaluator on the raw values those codes stand for
    data = res.run.data
    q = data.X_test.astype(np.float64) * 2.0 ** data.e_x * data.raw_per_unit * data.std + data.mean
    ref = ReferenceEvaluator(model).run(["y"], {"x": q[:, 0].transpose(0, 2, 1).astype(np.float32)})[0]
    assert np.max(np.abs(res.run.output_values(data.X_test) - ref)) <= 1e-4


@pytest.mark.parametrize("first,needle", [
    ({"kernel_shape": [5], "pads": [2, 2]}, "pads its input, but the first layer on windows must be 'valid'"),
    ({"kernel_shape": [5], "strides": [2]}, "strides [2]: fxtrain's 1-D conv has strides [1]"),
    ({"kernel_shape": [5], "dilations": [2]}, "dilations [2]: fxtrain's 1-D conv has dilations [1]"),
])
def test_a_1d_onnx_model_fxtrain_cannot_import_is_one_line(tmp_path, first, needle):
    _onnx_1d(tmp_path / "m.onnx", first)
    with pytest.raises(ModelError) as exc:
        fxtrain.import_model(tmp_path / "m.onnx", data="basicmotions", bits=8)
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert "conv0" in str(exc.value)
