"""The ONNX ops that make a layer (Conv and MaxPool, 2-D or 1-D, GlobalAveragePool, Gemm, MatMul) or fold into
the one before
(BatchNormalization, a constant Add), each refusing in one line what the engine lacks.

Each handler takes the :class:`fxtrain.importing.graph.Walk`, the node and its attributes,
and leaves the chain's tensor with its new per-sample shape.
"""
from dataclasses import dataclass, replace

import numpy as np

from ..layers import by_name


@dataclass
class Layer:
    """One fxtrain layer read from the graph: its arch ``token``, its float64 weights in the kind's own
    order and its biases (None for a pool or gap), its ReLU, and the node it came from (for messages)."""
    token: str
    w: np.ndarray
    b: np.ndarray
    node: str
    relu: bool = False


def float_const(walk, node, i, what):
    """Input ``i`` of ``node`` as a float32 constant (returned as float64), None if absent."""
    name = node.input[i] if i < len(node.input) else ""
    if not name:
        return None
    if name not in walk.consts:
        walk.refuse(node, f"its {what} '{name}' is computed at run time; fxtrain needs it as an initializer")
    a = np.asarray(walk.consts[name])
    if a.dtype != np.float32:
        walk.refuse(node, f"its {what} '{name}' is {a.dtype}; fxtrain imports float32 {what}s only")
    return a.astype(np.float64)


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _add_layer(walk, layer, dims):
    walk.layers.append(layer)
    raw = len(walk.layers) - 1 if layer.w is not None else None
    walk.tensor = replace(walk.tensor, dims=tuple(int(d) for d in dims), raw=raw, flat_from=None, nhwc=False)


def _spatial_input(walk, node):
    t = walk.tensor
    if not t.spatial or t.nhwc:
        walk.refuse(node, f"reads a tensor of shape {t.dims}{' (NHWC)' if t.nhwc else ''}; fxtrain's "
                          f"{node.op_type} reads (c, h, w)")
    return t


def _conv_pad(walk, node, attrs, kh, kw, rank):
    """(pad_h, pad_w) of a kh x kw kernel: 0 (valid) or k // 2 with odd k (same), on both axes alike;
    ``rank`` 1 for a 1-D conv (pads [p, p] on its one axis, kh = 1)."""
    mode = _text(attrs.get("auto_pad", "NOTSET"))
    same, k = (kh // 2, kw // 2), [kw] if rank == 1 else [kh, kw]
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        pads = list(same[2 - rank:]) * 2 if kh % 2 and kw % 2 else [-1]
    elif mode == "VALID":
        pads = [0] * 2 * rank
    else:
        pads = list(attrs.get("pads", [0] * 2 * rank))
    if pads not in ([0] * 2 * rank, list(same[2 - rank:]) * 2) or (any(pads) and not (kh % 2 and kw % 2)):
        shown = mode if pads == [-1] else pads
        walk.refuse(node, f"padding {shown} with kernel {k}: fxtrain's conv pads 0 (valid) or k//2 on every "
                          "side with an odd kernel (same)")
    return same if any(pads) else (0, 0)


def _check_conv_attrs(walk, node, attrs, rank):
    for name, want in (("group", 1), ("dilations", [1] * rank), ("strides", [1] * rank)):
        value = attrs.get(name, want)
        if (list(value) if name != "group" else value) != want:
            walk.refuse(node, f"{name} {list(value) if name != 'group' else value}: fxtrain's "
                              f"{'1-D ' if rank == 1 else ''}conv has {name} {want}")


def conv(walk, node, attrs):
    t = _spatial_input(walk, node)
    w = float_const(walk, node, 1, "weight")
    rank = 0 if w is None else w.ndim - 2
    if rank not in (1, 2) or (rank == 1) != t.one_d:
        walk.refuse(node, f"a {rank if w is not None else '?'}-D convolution on a {'1' if t.one_d else '2'}-D "
                          "input; fxtrain's conv is 2-D on images and 1-D on (C, T) windows")
    if rank == 1:
        w = w[:, :, None, :]  # (O, I, K) -> (O, I, 1, K): the 1 x K conv of a height-1 window
    o, c, kh, kw = w.shape
    _check_conv_attrs(walk, node, attrs, rank)
    if list(attrs.get("kernel_shape", [kh, kw][2 - rank:])) != [kh, kw][2 - rank:]:
        walk.refuse(node, f"kernel_shape {list(attrs['kernel_shape'])} does not match its weights {w.shape}")
    if c != t.dims[0]:
        walk.refuse(node, f"weights for {c} input channels, but its input has {t.dims[0]}")
    ph, pw = _conv_pad(walk, node, attrs, kh, kw, rank)
    oh, ow = t.dims[1] + 2 * ph - kh + 1, t.dims[2] + 2 * pw - kw + 1
    if oh <= 0 or ow <= 0:
        walk.refuse(node, f"kernel {kh}x{kw} is larger than its {t.dims[1]}x{t.dims[2]} input")
    b = float_const(walk, node, 2, "bias")
    mode = "same" if ph or pw else "valid"
    token = f"conv1d:{o}:{kw}:{mode}" if rank == 1 else f"conv:{o}:{kh if kh == kw else f'{kh}x{kw}'}:{mode}"
    layer = Layer(token, by_name("conv").onnx_weights(w), np.zeros(o) if b is None else b, walk.node_name(node))
    _add_layer(walk, layer, (o, oh, ow))


def _dense(walk, node, w, b):
    """A dense layer of (out, in) weights ``w`` on the chain's flat tensor."""
    t = walk.tensor
    if t.spatial:
        walk.refuse(node, f"reads a {t.dims} tensor; flatten it first")
    if w.ndim != 2 or w.shape[1] != t.dims[0]:
        walk.refuse(node, f"weights {w.shape} do not take its {t.dims[0]} inputs")
    layer = Layer(f"dense:{w.shape[0]}", by_name("dense").onnx_weights(w, t.flat_from), b, walk.node_name(node))
    _add_layer(walk, layer, (w.shape[0],))


def gemm(walk, node, attrs):
    if attrs.get("transA", 0):
        walk.refuse(node, "transA=1 reads its activations as (features, batch); fxtrain's are (batch, features)")
    w = float_const(walk, node, 1, "weight")
    if w is None or w.ndim != 2:
        walk.refuse(node, "its weight B must be a 2-D initializer")
    w = (w if attrs.get("transB", 0) else w.T) * attrs.get("alpha", 1.0)
    c = float_const(walk, node, 2, "bias")
    b = np.zeros(w.shape[0]) if c is None else attrs.get("beta", 1.0) * channel_vector(walk, node, c, (w.shape[0],))
    _dense(walk, node, w, b)


def matmul(walk, node, attrs):
    if node.input[0] != walk.tensor.name:
        walk.refuse(node, "multiplies a constant by the activations; fxtrain's dense layer is x @ W")
    w = float_const(walk, node, 1, "weight")
    if w.ndim != 2:
        walk.refuse(node, f"its weight is {w.ndim}-D; fxtrain's dense layer takes a 2-D (in, out) weight")
    _dense(walk, node, w.T, np.zeros(w.shape[1]))


def channel_vector(walk, node, c, dims):
    """A constant that broadcasts onto per-sample ``dims`` (channel first) as one value per channel."""
    try:
        full = np.broadcast_to(c, (1, *dims))
        ok = np.broadcast_shapes(c.shape, (1, *dims)) == (1, *dims)
    except ValueError:
        ok = False
    if not ok:
        walk.refuse(node, f"its constant of shape {c.shape} does not broadcast onto its input {dims}")
    vec = full[(0, slice(None)) + (0,) * (len(dims) - 1)]
    if not np.array_equal(full, np.broadcast_to(vec.reshape(1, -1, *[1] * (len(dims) - 1)), full.shape)):
        walk.refuse(node, "its constant varies within a channel; fxtrain's bias is one number per channel")
    return np.array(vec, dtype=np.float64)


def _folded_into(walk, node, what):
    """The layer whose raw output the chain carries, for a BN or an Add to fold into."""
    if walk.tensor.raw is None:
        walk.refuse(node, f"fxtrain folds {what} only into the Conv, Gemm or MatMul right before it, and this "
                          "one follows none")
    return walk.layers[walk.tensor.raw]


def add(walk, node, attrs):
    layer = _folded_into(walk, node, "a constant Add")
    other = next(i for i, name in enumerate(node.input) if name != walk.tensor.name)
    layer.b = layer.b + channel_vector(walk, node, float_const(walk, node, other, "addend"), walk.tensor.dims)


def batchnorm(walk, node, attrs):
    layer = _folded_into(walk, node, "a BatchNormalization")
    if attrs.get("training_mode", 0):
        walk.refuse(node, "training_mode 1; export the model in inference mode (model.eval())")
    scale, shift, mean, var = (float_const(walk, node, i, what) for i, what in
                               ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
    g = scale / np.sqrt(var + attrs.get("epsilon", 1e-5))  # the BN's own epsilon
    if g.shape != layer.b.shape:
        walk.refuse(node, f"normalises {g.size} channels, but the layer before has {layer.b.size}")
    layer.w = layer.w * g.reshape(-1, *[1] * (layer.w.ndim - 1))
    layer.b = (layer.b - mean) * g + shift


def maxpool(walk, node, attrs):
    t = _spatial_input(walk, node)
    k = list(attrs.get("kernel_shape", []))
    rank = 1 if t.one_d else 2
    strides = list(attrs.get("strides", [1] * len(k)))
    checks = ((len(k) == rank, f"kernel {k}: fxtrain pools {rank}-D windows on a {rank}-D input"),
              (rank == 1 or len(set(k)) == 1, f"kernel {k}: fxtrain pools square windows of images"),
              (strides == k, f"strides {strides} with kernel {k}: fxtrain's pool has stride equal to its kernel"),
              (not any(attrs.get("pads", [])), f"pads {attrs.get('pads')}: fxtrain's pool has no padding"),
              (_text(attrs.get("auto_pad", "NOTSET")) in ("NOTSET", "VALID"),
               f"auto_pad {_text(attrs.get('auto_pad', ''))}: fxtrain's pool has no padding"),
              (not attrs.get("ceil_mode", 0), "ceil_mode 1: fxtrain drops a ragged edge (ceil_mode 0)"),
              (set(attrs.get("dilations", [1])) == {1}, f"dilations {attrs.get('dilations')}: fxtrain's are 1"))
    for ok, why in checks:
        if not ok:
            walk.refuse(node, why)
    ph, pw = (1, k[0]) if rank == 1 else (k[0], k[0])
    if ph > t.dims[1] or pw > t.dims[2]:
        walk.refuse(node, f"pool {k} is larger than its {t.dims[1]}x{t.dims[2]} input")
    token = f"pool1d:{pw}" if rank == 1 else f"pool:{ph}"
    _add_layer(walk, Layer(token, None, None, walk.node_name(node)), (t.dims[0], t.dims[1] // ph, t.dims[2] // pw))


def global_average(walk, node, attrs):
    """GlobalAveragePool, or a ReduceMean over the spatial axes with keepdims (torch's AdaptiveAvgPool(1)):
    fxtrain's gap."""
    t = _spatial_input(walk, node)
    if node.op_type == "ReduceMean":
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = walk.consts.get(node.input[1])
        spatial = {2} if t.one_d else {2, 3}
        got = None if axes is None else {int(a) % (len(spatial) + 2) for a in np.asarray(axes).reshape(-1)}
        if got != spatial or not attrs.get("keepdims", 1):
            walk.refuse(node, f"axes {None if axes is None else sorted(got)}, keepdims {attrs.get('keepdims', 1)}: "
                              f"fxtrain reads a ReduceMean over the spatial axes {sorted(spatial)} with keepdims 1 "
                              "as global average pooling, no other")
    _add_layer(walk, Layer("gap", None, None, walk.node_name(node)), (t.dims[0], 1, 1))


LAYER_OPS = {"Conv": conv, "Gemm": gemm, "MatMul": matmul, "Add": add, "BatchNormalization": batchnorm,
             "MaxPool": maxpool, "GlobalAveragePool": global_average, "ReduceMean": global_average}
