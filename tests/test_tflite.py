"""TFLite export: TFLM, fxtrain's deployed predictions (rounding tflm) and the C runtime agree byte for byte.

Four trained runs (dense and conv, 8 and 4 bits) go through ``fxtrain export --to
tflite`` and ``--rounding tflm``; tflite-micro's interpreter, ``reference.predict``
and the C runtime compiled with gcc must give the same bytes on the export vectors,
the test set and 8,000 random int8 inputs.
"""
import importlib.util
import json
import math
import shutil
import subprocess

import numpy as np
import pytest

import fxtrain
from cli_helpers import invoke, one_line_error
from fxtrain.errors import ConfigError, MissingExtraError
from fxtrain.firmware.calibration import from_run_dir
from fxtrain.firmware.codegen import export_model
from fxtrain.firmware.reference import predict
from fxtrain.firmware.verify import verify_host

MISSING = [m for m in ("tflite_micro", "flatbuffers") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: "
                                "pip install 'fxtrain[tflite]'")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed: apt-get install gcc")
DENSE, CONV = "dense:32,dense:10", "conv:4:3,pool:2,dense:10"
CASES = {"dense8": (DENSE, 8), "dense4": (DENSE, 4), "conv8": (CONV, 8), "conv4": (CONV, 4)}
EPOCHS = 3
N_RANDOM = 8000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each case trained for a few epochs and saved like `fxtrain train --out`."""
    out = {}
    for name, (arch, bits) in CASES.items():
        out[name] = tmp_path_factory.mktemp(name)
        fxtrain.train(arch=arch, bits=bits, epochs=EPOCHS, out=out[name])
    return out


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    """Each run exported by the CLI as a .tflite and as C with --rounding tflm."""
    out = {}
    for name, run in runs.items():
        tfl, c = tmp_path_factory.mktemp(f"{name}_tfl"), tmp_path_factory.mktemp(f"{name}_c")
        for args in (("--to", "tflite", "--out", tfl), ("--rounding", "tflm", "--out", c)):
            r = invoke("export", run, "--vectors", 64, *args)
            assert r.exit_code == 0, r.output
        out[name] = (tfl, c)
    return out


def _random_inputs(model, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(N_RANDOM, *model.input_shape)).astype(np.int8)


@needs_gcc
@pytest.mark.parametrize("name", list(CASES))
def test_tflm_fxtrain_and_c_agree_byte_for_byte(runs, exports, tmp_path, name):
    from fxtrain.tflite import tflm
    tfl, c = exports[name]
    res = fxtrain.verify(tfl)
    # TFLM = fxtrain on every byte of the 64 export vectors and of the whole test set
    assert res.ok and [(r["n_vectors"], r["n_diff_bytes"], r["n_mismatch"]) for _, r in res.results] == [
        (64, 0, 0), (res.results[1][1]["n_vectors"], 0, 0)] and res.results[1][1]["n_vectors"] > 300
    # the C runtime with --rounding tflm = fxtrain on the same 64 export vectors
    assert fxtrain.verify(c, host_only=True).ok
    model, data = from_run_dir(runs[name], "tflm")
    X = np.concatenate([data.X_test.reshape(-1, *model.input_shape), _random_inputs(model, 1)])
    out, cls = predict(model, X)
    # TFLM = fxtrain on the test set and 8,000 random int8 inputs: 0 differing bytes
    assert np.array_equal(tflm.run((tfl / "model.tflite").read_bytes(), X), out)
    export_model(model, tmp_path, vectors=(X, out, cls))
    host = verify_host(tmp_path)
    # C (gcc, -Werror -pedantic) = fxtrain on the same inputs: every byte and class
    assert (host["n_vectors"], host["n_mismatch"], host["c_reported_mismatch"]) == (len(X), 0, 0)


def test_plain_export_differs_by_one_in_tflm():
    # a CMSIS-rounded model written as .tflite is what the tflm rule exists for: TFLM is off by one on some bytes
    from c_helpers import build
    from fxtrain.tflite import tflm
    from fxtrain.tflite.flatbuffer import tflite_bytes
    model, _ = build("mlp", 8)
    X = _random_inputs(model, 2)
    diff = tflm.run(tflite_bytes(model), X).astype(int) - predict(model, X)[0]
    assert np.abs(diff).max() == 1 and 0 < np.count_nonzero(diff) < diff.size // 20


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    return schema


@pytest.mark.parametrize("name", ["conv4", "dense8"])
def test_file_parses_back_with_the_schema(runs, exports, name):
    schema = _schema()
    blob = (exports[name][0] / "model.tflite").read_bytes()
    model, _ = from_run_dir(runs[name], "tflm")
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAs(blob, 0))
    # identifier TFL3, schema version 3, both op-code fields set and equal
    assert schema.Model.ModelBufferHasIdentifier(blob, 0) and m.version == 3
    assert all(c.builtinCode == c.deprecatedBuiltinCode for c in m.operatorCodes)
    g, B = m.subgraphs[0], schema.BuiltinOperator
    ops = [m.operatorCodes[op.opcodeIndex].builtinCode for op in g.operators]
    # the op sequence: conv (ReLU fused), pool, reshape (HWC flatten), fully connected
    assert ops == ([B.CONV_2D, B.MAX_POOL_2D, B.RESHAPE, B.FULLY_CONNECTED] if name.startswith("conv")
                   else [B.FULLY_CONNECTED, B.FULLY_CONNECTED])
    T = schema.TensorType
    for t in g.tensors:
        # int8 activations and weights, int32 biases and shape; every scale a power of two, zero point 0
        assert t.type in (T.INT8, T.INT32)
        if t.quantization is not None and t.quantization.scale is not None:
            assert math.frexp(float(t.quantization.scale[0]))[0] == 0.5
            assert list(t.quantization.zeroPoint) == [0] and len(t.quantization.scale) == 1
    assert m.buffers[0].data is None and g.tensors[g.inputs[0]].buffer == 0  # activations use buffer 0
    _check_ops(m, g, model, name)
    _check_alignment(schema, blob)


def _scale(t):
    return float(t.quantization.scale[0])


def _check_ops(m, g, model, name):
    schema = _schema()
    layers = [L for L in model.layers]
    for op in g.operators:
        code = m.operatorCodes[op.opcodeIndex].builtinCode
        x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
        if code in (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.FULLY_CONNECTED):
            L = layers.pop(0)
            w, b = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
            # bias scale is exactly in_scale * weight_scale; the output scale is 2^out_exponent
            assert _scale(b) == _scale(x) * _scale(w) and _scale(y) == 2.0 ** L.out_exponent
            wq = np.frombuffer(bytes(m.buffers[w.buffer].data), np.int8).reshape(list(w.shape))
            bq = np.frombuffer(bytes(m.buffers[b.buffer].data), "<i4")
            # weights are the deployed int8 codes; the int32 bias is bias << bias_shift
            assert np.array_equal(wq, L.weights) and np.array_equal(bq, L.bias.astype(np.int64) << L.bias_shift)
            relu = schema.ActivationFunctionType.RELU if L.relu else schema.ActivationFunctionType.NONE
            assert op.builtinOptions.fusedActivationFunction == relu
            if code == schema.BuiltinOperator.CONV_2D:
                # stride 1 is written (the schema default is 0), padding as trained
                assert (op.builtinOptions.strideW, op.builtinOptions.strideH) == (1, 1)
                assert op.builtinOptions.padding == (schema.Padding.SAME if L.pad else schema.Padding.VALID)
        else:
            if code == schema.BuiltinOperator.MAX_POOL_2D:
                L = layers.pop(0)
                o = op.builtinOptions
                assert (o.filterWidth, o.filterHeight, o.strideW, o.strideH) == (L.pool,) * 4
            # pool and reshape keep their input's scale
            assert _scale(y) == _scale(x)
    assert not layers


def _check_alignment(schema, blob):
    import flatbuffers
    fb = schema.Model.GetRootAs(blob, 0)
    for i in range(1, fb.BuffersLength()):
        buf = fb.Buffers(i)
        pos = buf._tab.Vector(flatbuffers.number_types.UOffsetTFlags.py_type(buf._tab.Offset(4)))
        # every weight, bias and shape buffer starts on a 16-byte boundary of the file
        assert pos % 16 == 0


def test_model_data_cc_holds_the_file(exports, tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed: apt-get install g++")
    tfl = exports["conv8"][0]
    main = tmp_path / "dump.cc"
    main.write_text('#include <cstdio>\n#include "model_data.h"\nint main()\n{\n'
                    "    std::fwrite(g_fx_model_data, 1, g_fx_model_data_size, stdout);\n    return 0;\n}\n")
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{tfl}", str(main),
                    str(tfl / "model_data.cc"), "-o", str(tmp_path / "dump")], check=True)
    out = subprocess.run([str(tmp_path / "dump")], capture_output=True, check=True).stdout
    # the C array (and its size constant) is model.tflite, byte for byte
    assert out == (tfl / "model.tflite").read_bytes()
    header = (tfl / "model_data.h").read_text()
    assert "AddConv2D();" in header and "AddMaxPool2D();" in header and "MicroMutableOpResolver<4>" in header


def test_rounding_is_recorded(runs, exports, tmp_path):
    tfl, c = exports["dense8"]
    r = invoke("export", runs["dense8"], "--out", tmp_path / "plain", "--vectors", 1)
    assert r.exit_code == 0, r.output
    manifests = [json.loads((d / "export.json").read_text()) for d in (tfl, c, tmp_path / "plain")]
    # the manifest names the format and the rounding; the same tflm model has the same hash in C and TFLite
    assert [(mf["format"], mf["rounding"]) for mf in manifests] == [("tflite", "tflm"), ("c", "tflm"), ("c", "cmsis")]
    assert manifests[0]["model_hash"] == manifests[1]["model_hash"] != manifests[2]["model_hash"]
    # the model header selects the rule with one macro
    assert "#define FX_ROUNDING FX_ROUNDING_TFLM" in (c / "fx_model.h").read_text()
    assert "#define FX_ROUNDING FX_ROUNDING_CMSIS" in (tmp_path / "plain" / "fx_model.h").read_text()
    assert from_run_dir(runs["dense8"], "tflm")[0].meta["rounding"] == "tflm"


@pytest.fixture(scope="module")
def unexportable(tmp_path_factory):
    """Runs export must refuse: float, 12-bit and 16-bit weights (one epoch each)."""
    out = {}
    for method, bits in (("float", 8), ("sr", 12), ("sr", 16)):
        out[f"{method}{bits}"] = tmp_path_factory.mktemp(f"{method}{bits}")
        fxtrain.train(method=method, bits=bits, epochs=1, arch="dense:8,dense:10", out=out[f"{method}{bits}"])
    return out


@pytest.mark.parametrize("run, needle", [("float8", "float run"), ("sr12", "at most 8 bits"),
                                         ("sr16", "at most 8 bits")])
def test_unexportable_runs_are_one_line(unexportable, tmp_path, run, needle):
    r = invoke("export", unexportable[run], "--to", "tflite", "--out", tmp_path / "o")
    # one Error line, exit 1, nothing written
    one_line_error(r, needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, needle", [
    (("--to", "onnx"), "'--to'"),
    (("--rounding", "nearest"), "'--rounding'"),
    (("--to", "tflite", "--pack"), "--pack applies to --to c only"),
    (("--to", "tflite", "--rounding", "cmsis"), "--rounding cmsis applies to --to c only"),
])
def test_bad_options_are_one_line(runs, tmp_path, args, needle):
    r = invoke("export", runs["dense4"], "--out", tmp_path / "o", *args)
    # one Error line naming the option, exit 1, nothing written
    one_line_error(r, needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("module", ["flatbuffers", "tflite_micro.python.tflite_micro"])
def test_missing_extra_names_the_install(runs, tmp_path, monkeypatch, module):
    monkeypatch.setitem(__import__("sys").modules, module, None)  # import now raises ImportError
    r = invoke("export", runs["dense4"], "--to", "tflite", "--out", tmp_path / "o")
    # one Error line with the pip command, nothing written
    one_line_error(r, "pip install 'fxtrain[tflite]'")
    assert not (tmp_path / "o").exists()
    with pytest.raises(MissingExtraError):
        fxtrain.export(runs["dense4"], tmp_path / "o", to="tflite")


def test_api_mirrors_the_cli(runs, tmp_path):
    # same names and the same refusals as the CLI
    # the CLI's own words: "Invalid value for '--to': 'onnx' is not one of 'c', 'tflite'."
    with pytest.raises(ConfigError, match="Invalid value for 'to': 'onnx' is not one of 'c', 'tflite'"):
        fxtrain.export(runs["dense4"], tmp_path / "o", to="onnx")
    with pytest.raises(ConfigError, match="Invalid value for 'rounding': 'nearest' is not one of 'cmsis', 'tflm'"):
        fxtrain.export(runs["dense4"], tmp_path / "o", rounding="nearest")
    res = fxtrain.export(runs["dense4"], tmp_path / "t", to="tflite", vectors=4)
    assert (res.to, res.rounding, res.n_vectors) == ("tflite", "tflm", 4) and res.arena_bytes > 0
    assert res.flash_bytes == (tmp_path / "t" / "model.tflite").stat().st_size and not (tmp_path / "o").exists()


def test_verify_refuses_edits_and_reports_mismatches(exports, tmp_path):
    tfl = tmp_path / "tfl"
    shutil.copytree(exports["dense4"][0], tfl)
    r = invoke("verify", tfl, "--target", "cortex-m4")
    # --target belongs to C exports
    one_line_error(r, "TFLite export")
    blob = bytearray((tfl / "model.tflite").read_bytes())
    blob[-1] ^= 1
    (tfl / "model.tflite").write_bytes(bytes(blob))
    # an edited .tflite is refused before it runs
    one_line_error(invoke("verify", tfl), "model.tflite was changed after export")
    shutil.copy(exports["dense4"][0] / "model.tflite", tfl / "model.tflite")
    saved = dict(np.load(tfl / "vectors.npz"))
    saved["vec_out"][3, 0] ^= 1
    np.savez(tfl / "vectors.npz", **saved)
    manifest = json.loads((tfl / "export.json").read_text())
    manifest["files"]["vectors.npz"] = __import__("hashlib").sha256((tfl / "vectors.npz").read_bytes()).hexdigest()
    (tfl / "export.json").write_text(json.dumps(manifest))
    r = invoke("verify", tfl)
    # one wrong expected byte: verify says MISMATCH and exits 1
    assert r.exit_code == 1 and "MISMATCH" in r.output and "1 of 640 output bytes differ" in r.output
