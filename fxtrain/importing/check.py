"""The imported net against its source: the ONNX input's shape against the data's, and the float check,
fxtrain's float32 forward pass against the ``onnx`` package's own reference evaluator on the same inputs.
"""
import numpy as np

from ..errors import ModelError

CHECK_SAMPLES = 100
TOLERANCE = 1e-4  # float32: both sides sum the same products in other orders


def onnx_dims(net, data_shape):
    """The per-sample shape the ONNX input must have to read samples of ``data_shape`` (fxtrain's (h, w, c)
    or (features,)) as the file holds them: NCHW for a rank-4 input (NHWC after tf2onnx), NCT for a rank-3
    input on (1, T, C) windows, else flat."""
    if len(net.input.dims) == 2 and len(data_shape) == 3 and data_shape[0] == 1:
        return data_shape[2], data_shape[1]
    if len(net.input.dims) == 3 and len(data_shape) == 3:
        h, w, c = data_shape
        return (h, w, c) if net.input_nhwc else (c, h, w)
    return (int(np.prod(data_shape)),)


def check_input_shape(net, data):
    """The ONNX input must read the data's samples; else one line naming both shapes."""
    want = onnx_dims(net, data.input_shape)
    if tuple(net.input.dims) != want:
        raise ModelError(f"the ONNX input '{net.input.name}' has shape {net.input.shown()}, but the samples of "
                         f"{data.name} are {tuple(data.input_shape)}, which it would read as "
                         f"(N, {', '.join(map(str, want))})")


def onnx_inputs(net, data, Xq):
    """The raw inputs the ONNX model reads for fxtrain's int8 samples ``Xq``: the engine's values
    ``q * 2**e_x`` mapped back through the folded scale (and, for windows, the per-channel standardisation),
    in the model's layout, float32."""
    x = Xq.astype(np.float64) * 2.0 ** data.e_x * data.raw_per_unit
    n = len(Xq)
    if data.mean is not None:
        x = x.reshape(n, *data.input_shape) * data.std + data.mean  # channels last
    if len(net.input.dims) == 3 and not net.input_nhwc:
        x = x.reshape(n, *data.input_shape).transpose(0, 3, 1, 2)
    elif len(net.input.dims) == 2:
        x = x.reshape(n, *data.input_shape)[:, 0].transpose(0, 2, 1)  # (1, T, C) -> NCT
    return np.ascontiguousarray(x.reshape(n, *net.input.dims), dtype=np.float32)


def reference_outputs(model, net, x):
    """The ONNX model's logits (before a dropped softmax) for ``x``, by onnx.reference.ReferenceEvaluator;
    a model exported with a fixed batch is fed that many samples at a time."""
    from onnx.reference import ReferenceEvaluator
    session = ReferenceEvaluator(model)
    chunk = net.input.batch or len(x)
    outs = []
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        fed = np.concatenate([part, np.zeros((chunk - len(part), *part.shape[1:]), part.dtype)])
        outs.append(np.asarray(session.run([net.logits], {net.input.name: fed})[0])[:len(part)])
    return np.concatenate(outs).reshape(len(x), -1)


def float_check(model, net, float_run, data):
    """max |fxtrain - reference| of the logits over the first :data:`CHECK_SAMPLES` test samples; a
    difference beyond :data:`TOLERANCE` (relative to the logits' size) is a bug in the import, refused."""
    Xq = data.X_test[:CHECK_SAMPLES]
    ref = reference_outputs(model, net, onnx_inputs(net, data, Xq))
    ours = float_run.output_values(Xq)
    diff = float(np.max(np.abs(ours - ref)))
    if not diff <= TOLERANCE * max(1.0, float(np.max(np.abs(ref)))):
        raise ModelError(f"fxtrain's float forward pass differs from the ONNX reference evaluator by {diff:.3g} "
                         "on the test samples; this is a bug in the import, please report it with the model")
    return diff
