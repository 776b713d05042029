"""fxtrain import (ONNX) and train --init: the imported net computes what the ONNX model computes (held to
onnx's own reference evaluator), its layout and folds are right where a mistake would show, its run folder
is a run like any other, and every bad input is one line."""
import json
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import fxtrain  # noqa: E402
from cli_helpers import hide_module, invoke, one_line_error  # noqa: E402
from fxtrain.data import load_raw, stratified_split  # noqa: E402
from fxtrain.errors import ConfigError, ModelError  # noqa: E402
from fxtrain.importing.check import onnx_inputs  # noqa: E402

CONV_ARCH = "conv:4:3:same,pool:2,dense:64,dense:10"
TOL = 1e-4


def _f32(rng, *shape, sc=0.3):
    return (rng.normal(size=shape) * sc).astype(np.float32)


def _model(nodes, inits, in_dims, out="y", opset=17, in_name="x"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_dims)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _digits_raw():
    """The digits as the file holds them (pixels 0..16): NCHW images, flat rows, labels, train indices."""
    X, y, _ = load_raw("digits", 0)
    tr, _ = stratified_split(y, 0)
    return X.transpose(0, 3, 1, 2).astype(np.float32), X.reshape(len(X), -1).astype(np.float32), y, tr


def _fit_readout(model, inits, hidden, x, y, tr):
    """Least-squares readout ``w_out`` (10, n) and ``b_out`` on the model's ``hidden`` tensor: a trained last
    layer, so accuracies mean something and a wrong layout shows."""
    feats = ReferenceEvaluator(model).run([hidden], {"x": x[tr]})[0].astype(np.float64)
    A = np.hstack([feats, np.ones((len(tr), 1))])
    T = np.eye(10)[y[tr].astype(int)]
    sol = np.linalg.solve(A.T @ A + 1.0 * np.eye(A.shape[1]), A.T @ T)
    inits["w_out"], inits["b_out"] = sol[:-1].T.astype(np.float32), sol[-1].astype(np.float32)


def conv_model(eps=1e-5, var_scale=1.0, seed=0):
    """Conv, BatchNormalization, Relu, MaxPool, Flatten, Gemm, Relu, Gemm (torch's layers as exported)."""
    rng = np.random.default_rng(seed)
    inits = {"cw": _f32(rng, 4, 1, 3, 3), "cb": _f32(rng, 4), "g": 1 + _f32(rng, 4), "be": _f32(rng, 4),
             "mu": _f32(rng, 4), "var": (np.abs(_f32(rng, 4)) * var_scale + 0.01 * var_scale).astype(np.float32),
             "w1": _f32(rng, 64, 64, sc=0.05), "b1": _f32(rng, 64, sc=0.1),
             "w_out": np.zeros((10, 64), np.float32), "b_out": np.zeros(10, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["bn"], epsilon=eps, name="bn"),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["fl"]),
             helper.make_node("Gemm", ["fl", "w1", "b1"], ["d1"], transB=1, name="fc1"),
             helper.make_node("Relu", ["d1"], ["h"]),
             helper.make_node("Gemm", ["h", "w_out", "b_out"], ["y"], transB=1, name="fc2")]
    x, _, y, tr = _digits_raw()
    _fit_readout(_model(nodes, inits, ["N", 1, 8, 8]), inits, "h", x, y, tr)
    return _model(nodes, inits, ["N", 1, 8, 8])


def shape_chain_model():
    """A valid 3-channel conv and pool, flattened by torch's x.view(x.size(0), -1) chain (Shape, Gather,
    Unsqueeze, Concat, Reshape), straight into the trained readout: there C*H*W and H*W*C order differ."""
    rng = np.random.default_rng(1)
    inits = {"cw": _f32(rng, 3, 1, 3, 3), "cb": _f32(rng, 3), "zero": np.array(0, np.int64),
             "ax": np.array([0], np.int64), "minus1": np.array([-1], np.int64),
             "w_out": np.zeros((10, 27), np.float32), "b_out": np.zeros(10, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Shape", ["p"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["p", "target"], ["fl"]),
             helper.make_node("Gemm", ["fl", "w_out", "b_out"], ["y"], transB=1, name="fc")]
    x, _, y, tr = _digits_raw()
    _fit_readout(_model(nodes, inits, ["N", 1, 8, 8]), inits, "fl", x, y, tr)
    return _model(nodes, inits, ["N", 1, 8, 8])


def dense_model(kind):
    """64-32-10 on flat rows: torch's Linear (Gemm transB=1), MatMul + Add, or Gemm with transB=0, alpha, beta."""
    rng = np.random.default_rng(2)
    w1, b1 = _f32(rng, 32, 64, sc=0.05), _f32(rng, 32, sc=0.1)
    if kind == "linear":
        inits = {"w1": w1, "b1": b1}
        first = [helper.make_node("Gemm", ["x", "w1", "b1"], ["d1"], transB=1, name="fc1")]
    elif kind == "matmul":
        inits = {"w1": np.ascontiguousarray(w1.T), "b1": b1}
        first = [helper.make_node("MatMul", ["x", "w1"], ["m"], name="mm"),
                 helper.make_node("Add", ["m", "b1"], ["d1"], name="add")]
    else:
        inits = {"w1": np.ascontiguousarray(w1.T) * 2, "b1": b1 / 4}
        first = [helper.make_node("Gemm", ["x", "w1", "b1"], ["d1"], alpha=0.5, beta=4.0, name="fc1")]
    inits.update(w_out=np.zeros((10, 32), np.float32), b_out=np.zeros(10, np.float32))
    nodes = [*first, helper.make_node("Relu", ["d1"], ["h"]), helper.make_node("Dropout", ["h"], ["hd"]),
             helper.make_node("Gemm", ["hd", "w_out", "b_out"], ["z"], transB=1, name="fc2"),
             helper.make_node("Softmax", ["z"], ["y"])]
    _, x, y, tr = _digits_raw()
    _fit_readout(_model(nodes, inits, ["N", 64]), inits, "h", x, y, tr)
    return _model(nodes, inits, ["N", 64])


def save(model, path):
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def conv_file(tmp_path_factory):
    return save(conv_model(), tmp_path_factory.mktemp("onnx") / "conv.onnx")


def reference_gap(model, res, n=100):
    """max |fxtrain's float forward - onnx's reference evaluator| on ``n`` test inputs of the imported run."""
    from fxtrain.importing.graph import read_graph
    from fxtrain.importing.onnx_file import constants, graph_input
    consts = constants(model)
    net = read_graph(model, consts, graph_input(model, consts))
    run, Xq = res.run, res.run.data.X_test[:n]
    ref = ReferenceEvaluator(model).run([net.logits], {"x": onnx_inputs(net, run.data, Xq)})[0]
    assert run.cfg.method == "float" and len(Xq) == n
    return float(np.max(np.abs(run.output_values(Xq) - ref)))


def test_conv_bn_model_imports_and_equals_the_reference_evaluator(conv_file):
    model = onnx.load(str(conv_file))
    res = fxtrain.import_model(str(conv_file), "digits", 8, method="float")
    gap = reference_gap(model, res)
    assert res.report["arch"] == CONV_ARCH
    # fxtrain's float32 engine computes the ONNX model's logits on 100 inputs
    assert gap <= TOL and res.float_check_max_diff <= TOL
    # a trained readout: the imported net classifies, so a wrong fold or layout would show here too
    assert res.float_test_accuracy > 0.8 and res.test_accuracy == res.float_test_accuracy


def test_bn_epsilon_is_folded_exactly():
    model = conv_model(eps=0.5, var_scale=0.05, seed=3)
    res = fxtrain.import_model(save(model, f"/tmp/fx-bn-{os.getpid()}.onnx"), "digits", 8, method="float")
    gap = reference_gap(model, res)
    assert gap <= TOL
    # the same model with the default epsilon computes something else, so the fold used the BN's own
    model.graph.node[1].attribute[0].f = 1e-5
    assert reference_gap(model, res) > 100 * TOL
    os.unlink(f"/tmp/fx-bn-{os.getpid()}.onnx")


def test_flatten_order_chw_to_hwc_matters_and_is_right(tmp_path, monkeypatch):
    path = save(shape_chain_model(), tmp_path / "chain.onnx")
    res = fxtrain.import_model(str(path), "digits", 8, method="float")
    assert res.report["arch"] == "conv:3:3:valid,pool:2,dense:10"
    assert res.float_check_max_diff <= TOL and res.float_test_accuracy > 0.8
    # the naive order (ONNX's C*H*W columns used as they are) fails the float check, so this test can fail
    from fxtrain.layers.dense import Dense
    monkeypatch.setattr(Dense, "onnx_weights", lambda self, w, chw=None: w)
    with pytest.raises(ModelError, match="reference evaluator"):
        fxtrain.import_model(str(path), "digits", 8, method="float")


@pytest.mark.parametrize("kind", ["linear", "matmul", "alpha_beta"])
def test_dense_models_import(tmp_path, kind):
    path = save(dense_model(kind), tmp_path / "dense.onnx")
    res = fxtrain.import_model(str(path), "digits", 8, method="float")
    # the dropped Softmax: the check compares the logits before it
    assert res.report["arch"] == "dense:32,dense:10" and res.float_check_max_diff <= TOL
    assert res.float_test_accuracy > 0.75


def test_quantized_import_keeps_the_accuracy_and_fits_the_grid(conv_file):
    res = fxtrain.import_model(str(conv_file), "digits", 8, method="sr")
    st = res.run.state
    assert st.fitted_grid and abs(res.test_accuracy - res.float_test_accuracy) < 0.03
    # each layer's largest weight sits within the top step of its grid: the smallest covering exponent
    layer_max = [int(np.abs(st.wq[s]).max()) for s in _weight_slices(res.run)]
    assert all(64 <= m <= 127 for m in layer_max), layer_max


def _weight_slices(run):
    off, out = 0, []
    for s in run.layers:
        if s.n_weights:
            out.append(slice(off, off + s.n_weights))
        off += s.n_weights
    return out


def test_an_imported_run_resumes_and_exports(conv_file, tmp_path):
    out = tmp_path / "run"
    r = invoke("import", conv_file, "--data", "digits", "--bits", 8, "--batch", 32, "--lr", "0.001953125", "--seed", 5,
               "--out", out)
    assert r.exit_code == 0, r.output
    assert "float check" in r.output and "test accuracy before training" in r.output
    report = json.loads((out / "report.json").read_text())
    cfg = report["config"]
    # import's batch, lr and seed are the run's configuration
    assert (cfg["batch"], cfg["lr"], cfg["seed"], report["epochs"]) == (32, "0.001953125", 5, 0)
    res = fxtrain.train(arch=CONV_ARCH, bits=8, batch=32, lr="0.001953125", seed=5, epochs=1, resume=str(out))
    assert [h["epoch"] for h in res.history] == [1] and res.test_accuracy > 0.75
    exp = fxtrain.export(str(out), str(tmp_path / "c"))
    assert exp.deployed_test_accuracy > 0.8


def test_init_from_a_float_run_into_sr_and_bc_and_from_bc(tmp_path):
    from fxtrain.training.config import TrainConfig
    from fxtrain.training.job import prepare
    from fxtrain.training.start import fit_grid
    from fxtrain.engine.fixedpoint import new_rng
    arch = "dense:16,dense:10"
    fl = fxtrain.train(arch=arch, method="float", epochs=1, out=str(tmp_path / "f"))
    wf, bf = fl.run.state.wf, fl.run.state.bf
    sr = prepare(TrainConfig(arch=arch, method="sr", bits=4, init=str(tmp_path / "f")))
    wq, bq, e_w, _, _ = fit_grid(sr.layers, 4, wf, bf)
    # the float weights on the fitted 4-bit grid, and no generator draw spent on initialisation
    assert np.array_equal(sr.state.wq, wq) and np.array_equal(sr.state.bq, bq) and np.array_equal(sr.state.e_w, e_w)
    assert np.array_equal(sr.state.rng, new_rng(0)) and not np.array_equal(fl.run.state.rng, new_rng(0))
    assert np.abs(sr.state.wq).max() == 7  # the covering grid: the largest weight lands on the top code
    bc = prepare(TrainConfig(arch=arch, method="bc", bits=4, init=str(tmp_path / "f")))
    scale = np.repeat(2.0 ** bc.state.e_w, [s.n_weights for s in bc.layers])
    # into bc: the shadow starts from the dequantized weights
    assert np.array_equal(bc.state.shadow, (bc.state.wq * scale).astype(np.float32))
    run_bc = fxtrain.train(arch=arch, method="bc", bits=4, epochs=1, init=str(tmp_path / "f"), out=str(tmp_path / "b"))
    assert run_bc.report["config"]["init"] == str(tmp_path / "f")
    back = prepare(TrainConfig(arch=arch, method="float", init=str(tmp_path / "b")))
    # from bc: its real-valued shadow, not its grid
    assert np.array_equal(back.state.wf, run_bc.run.state.shadow)


def tf2onnx_model():
    """Keras through tf2onnx: an NHWC input transposed to NCHW, and back to NHWC before the flatten."""
    rng = np.random.default_rng(4)
    inits = {"cw": _f32(rng, 4, 1, 3, 3), "cb": _f32(rng, 4), "shape": np.array([-1, 144], np.int64),
             "w": _f32(rng, 144, 10, sc=0.05), "b": _f32(rng, 10)}
    nodes = [helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xc", "cw", "cb"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["rh"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["rh", "shape"], ["fl"]),
             helper.make_node("MatMul", ["fl", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    return _model(nodes, inits, ["N", 8, 8, 1])


def test_tf2onnx_transposes_are_understood(tmp_path):
    res = fxtrain.import_model(str(save(tf2onnx_model(), tmp_path / "keras.onnx")), "digits", 8, method="float")
    # an NHWC flatten is fxtrain's own order: no permutation, and the logits agree
    assert res.report["arch"] == "conv:4:3:valid,dense:10" and res.float_check_max_diff <= TOL


def small_conv(conv_attrs=None, in_dims=("N", 1, 8, 8), weight=None, op="Relu", extra_nodes=()):
    """Conv(4, 3x3) -> ``op`` -> Flatten -> Gemm, untrained: the shape of a model for the refusals."""
    rng = np.random.default_rng(5)
    w = _f32(rng, 4, in_dims[1], 3, 3) if weight is None else weight
    pad = (conv_attrs or {}).get("pads", [0] * 4)[0]
    n = 4 * (8 + 2 * pad - 2) ** 2
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], name="conv0", **(conv_attrs or {})),
             helper.make_node(op, ["c"], ["r"], name="act"), *extra_nodes,
             helper.make_node("Flatten", [extra_nodes[-1].output[0] if extra_nodes else "r"], ["fl"]),
             helper.make_node("Gemm", ["fl", "gw"], ["y"], transB=1, name="fc")]
    return _model(nodes, {"cw": w, "gw": _f32(rng, 10, n)}, list(in_dims))


BAD_MODELS = {
    "unsupported op": (lambda: small_conv(op="Sigmoid"), ("Sigmoid", "act")),
    "dynamic spatial dims": (lambda: small_conv(in_dims=("N", 1, "H", 8)), ("dynamic dimension 'H'", "axis 2")),
    "float16 weights": (lambda: small_conv(weight=np.ones((4, 1, 3, 3), np.float16)), ("cw", "float16")),
    "integer weights": (lambda: small_conv(weight=np.ones((4, 1, 3, 3), np.int64)), ("cw", "int64")),
    "stride": (lambda: small_conv({"strides": [2, 2]}), ("conv0", "strides [2, 2]")),
    "dilation": (lambda: small_conv({"dilations": [2, 2]}), ("conv0", "dilations [2, 2]")),
    "groups": (lambda: small_conv({"group": 2}), ("conv0", "group 2")),
    "padding": (lambda: small_conv({"pads": [2, 2, 2, 2]}), ("conv0", "padding [2, 2, 2, 2]")),
    "input shape": (lambda: small_conv(in_dims=("N", 3, 8, 8)), ("(N, 3, 8, 8)", "(8, 8, 1)", "(N, 1, 8, 8)")),
    "bn elsewhere": (lambda: small_conv(extra_nodes=[helper.make_node(
        "BatchNormalization", ["r", "cb", "cb", "cb", "cb"], ["bn"], name="bn_late")]), ("bn_late", "folds")),
    "ceil mode": (lambda: small_conv(extra_nodes=[helper.make_node(
        "MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, name="mp")]), ("mp", "ceil_mode")),
    "transpose": (lambda: small_conv(extra_nodes=[helper.make_node("Transpose", ["r"], ["t"], perm=[0, 1, 3, 2],
                                                                   name="tr")]), ("tr", "perm [0, 1, 3, 2]")),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_a_model_fxtrain_cannot_import_is_one_line(tmp_path, case):
    build, needles = BAD_MODELS[case]
    model = build()
    if case == "bn elsewhere":
        model.graph.initializer.append(numpy_helper.from_array(np.ones(4, np.float32), "cb"))
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text("kept")
    one_line_error(invoke("import", path, "--data", "digits", "--bits", 8, "--out", out), *needles)
    # nothing already written is lost, nothing new is written
    assert [p.name for p in out.iterdir()] == ["report.json"] and (out / "report.json").read_text() == "kept"


def test_files_that_are_not_onnx_models_are_one_line(tmp_path, conv_file):
    truncated, text, fifo = tmp_path / "cut.onnx", tmp_path / "text.onnx", tmp_path / "fifo.onnx"
    truncated.write_bytes(conv_file.read_bytes()[:300])
    text.write_bytes(b"label,x\n1,2\n")
    os.mkfifo(fifo)
    for path, needle in ((truncated, "not a valid ONNX model"), (text, "not a valid ONNX model"),
                         (tmp_path, "not a regular file"), ("/dev/zero", "not a regular file"),
                         (fifo, "not a regular file"), (tmp_path / "none.onnx", "does not exist")):
        one_line_error(invoke("import", path, "--data", "digits", "--bits", 8, "--out", tmp_path / "o"), needle)
    assert not (tmp_path / "o").exists()


def test_a_missing_onnx_package_names_the_extra(monkeypatch, conv_file, tmp_path):
    hide_module(monkeypatch, "onnx")
    one_line_error(invoke("import", conv_file, "--data", "digits", "--bits", 8, "--out", tmp_path / "o"),
                   "pip install 'fxtrain[onnx]'")



@pytest.fixture(scope="module")
def float_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "float"
    fxtrain.train(arch="dense:16,dense:10", method="float", epochs=1, out=str(out))
    return out


def test_init_refuses_another_arch_data_shape_or_a_non_run(float_run, tmp_path):
    moons = tmp_path / "moons"
    fxtrain.train(arch="dense:16,dense:2", method="float", epochs=1, data="moons", out=str(moons))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = ((["--init", float_run, "--arch", "dense:8,dense:10"], ("dense:16,dense:10", "--arch")),
             (["--init", moons, "--arch", "dense:16,dense:2"], ("inputs (2,)", "(8, 8, 1)")),
             (["--init", "/dev/zero"], ("is not a folder",)), (["--init", fifo], ("is not a folder",)),
             (["--init", tmp_path], ("lacks",)))
    for args, needles in cases:
        one_line_error(invoke("train", "--epochs", 1, *args, "--out", tmp_path / "o"), *needles)
    assert not (tmp_path / "o").exists()


def test_adapting_on_new_data_keeps_the_input_scale_and_counts_saturations(float_run, tmp_path):
    X, y, _ = load_raw("digits", 0)
    np.savez(tmp_path / "bright.npz", X=np.clip(X * 1.5, 0, None), y=y)  # "another sensor": up to 24, not 16
    r = invoke("train", "--init", float_run, "--arch", "dense:16,dense:10", "--method", "sr", "--bits", 8,
               "--epochs", 1, "--data", tmp_path / "bright.npz", "--out", tmp_path / "adapt")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "adapt" / "report.json").read_text())
    expected = int(np.count_nonzero(np.round(np.clip(X * 1.5, 0, None) / 16 * 127) > 127))
    # the float run's scale (16), not the new data's (24); the values beyond it saturate and are counted
    assert report["input_scale"] == 16.0 and report["input_saturations"] == expected > 0
    assert f"inputs: {expected} values beyond the input scale 16" in r.output
    # resumed or exported, the run quantises its data with the same scale
    res = fxtrain.train(arch="dense:16,dense:10", method="sr", bits=8, epochs=2, init=str(float_run),
                        data=str(tmp_path / "bright.npz"), resume=str(tmp_path / "adapt"))
    assert res.report["input_scale"] == 16.0 and res.run.data.saturated == expected


def test_an_imported_run_fine_tunes_its_last_layer_only(conv_file, tmp_path):
    out = tmp_path / "run"
    res = fxtrain.import_model(conv_file, "digits", 8, lr="0.001953125", train_layers=1, out=out)
    assert json.loads((out / "report.json").read_text())["config"]["train_layers"] == 1
    before = res.run.state.wq.copy()
    tuned = fxtrain.train(arch=CONV_ARCH, bits=8, lr="0.001953125", train_layers=1, epochs=2, resume=str(out))
    slices = _weight_slices(tuned.run)
    # the trunk keeps every code; the readout learns
    assert all(np.array_equal(tuned.run.state.wq[s], before[s]) for s in slices[:-1])
    assert not np.array_equal(tuned.run.state.wq[slices[-1]], before[slices[-1]])
    # a resume that would train more layers is another run
    with pytest.raises(ConfigError, match="train_layers=1"):
        fxtrain.train(arch=CONV_ARCH, bits=8, lr="0.001953125", train_layers=2, epochs=3, resume=str(out))
    # and the device continues it bit for bit, its frozen trunk in flash (gcc on the host)
    fxtrain.export(str(out), str(tmp_path / "fw"), train_step=True)
    res = fxtrain.verify(str(tmp_path / "fw"), train_step=True, steps=5, host_only=True)
    assert res.ok, res
