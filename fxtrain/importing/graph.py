"""Walking an ONNX graph into fxtrain's layers.

The graph must be one chain: each node reads the one tensor the node before it wrote
(plus constants). Its ops become layers (Conv, Gemm, MatMul, MaxPool), fold into the
layer before them (BatchNormalization, a constant Add, Relu as the layer's ReLU), change
only the layout (Flatten, a Reshape that flattens, tf2onnx's Transposes) or vanish
(Dropout, Identity, a final Softmax or LogSoftmax). Shape arithmetic on constants is folded
(:mod:`fxtrain.importing.fold`). Anything else is refused in one line naming the op and its
node. Weights leave here in fxtrain's order (HWC), through the kinds' ``onnx_weights`` hook.
"""
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ModelError
from .fold import FOLD, constant_value, flattens, shape_of
from .onnx_file import attributes
from .ops import LAYER_OPS, Layer

SUPPORTED = ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "MaxPool", "GlobalAveragePool",
             "ReduceMean", "Flatten", "Reshape", "Dropout", "Identity", "Transpose", "Softmax", "LogSoftmax")
NCHW_TO_NHWC, NHWC_TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


@dataclass
class Tensor:
    """The runtime tensor the chain carries, per sample in ONNX's order: (c, h, w), or (h, w, c) when
    ``nhwc``, or (features,); a 1-D (c, t) tensor is carried as (c, 1, t), ``one_d``. ``raw``: the layer whose output this is before anything but a fold (a BN or
    an Add may still fold into it). ``flat_from``: the (c, h, w) this flat tensor was flattened from."""
    name: str
    dims: tuple
    nhwc: bool = False
    raw: int = None
    flat_from: tuple = None
    one_d: bool = False

    @property
    def spatial(self):
        return len(self.dims) == 3


@dataclass
class ImportedNet:
    """What the graph holds: ``layers`` in order, the input (``onnx_file.Input``) and whether it is NHWC
    (tf2onnx), and ``logits``, the tensor before a dropped final softmax (the float check's output)."""
    layers: list
    input: object
    input_nhwc: bool
    logits: str

    @property
    def arch(self):
        return ",".join(layer.token for layer in self.layers)


@dataclass
class Walk:
    """The state of one walk over the nodes, in graph order."""
    consts: dict
    batch: object
    tensor: Tensor
    layers: list = field(default_factory=list)
    input_nhwc: bool = False
    logits: str = None
    consumed: set = field(default_factory=set)  # every tensor name some node reads

    def node_name(self, node):
        return f"{node.op_type} node '{node.name or node.output[0]}'"

    def refuse(self, node, why):
        raise ModelError(f"{self.node_name(node)}: {why}")

    def runtime_input(self, node):
        """The node's one non-constant input, which must be the chain's tensor."""
        live = [name for name in node.input if name and name not in self.consts]
        if live != [self.tensor.name]:
            self.refuse(node, f"reads {live or 'only constants'}, not the chain's tensor '{self.tensor.name}'; "
                              "fxtrain imports a graph that is one chain of layers")
        return self.tensor

    def step(self, node):
        live = [name for name in node.input if name and name not in self.consts]
        if node.op_type == "Constant":
            value = constant_value(attributes(node))
            if value is None:
                self.refuse(node, "its value is not a tensor or a number")
            self.consts[node.output[0]] = value
        elif node.op_type == "Shape":
            self.runtime_input(node)
            self.consts[node.output[0]] = shape_of(self.batch, self.tensor.dims)
        elif not live and node.op_type in FOLD and node.domain in ("", "ai.onnx"):
            args = [self.consts[name] for name in node.input if name]
            self.consts[node.output[0]] = FOLD[node.op_type](attributes(node), *args)
        elif node.op_type not in SUPPORTED or node.domain not in ("", "ai.onnx"):
            raise ModelError(f"unsupported ONNX op {node.op_type} ({self.node_name(node)}); fxtrain imports "
                             f"{', '.join(SUPPORTED)}")
        else:
            self.runtime_input(node)
            self.apply(node)

    def apply(self, node):
        op, attrs = node.op_type, attributes(node)
        if op in LAYER_OPS:
            LAYER_OPS[op](self, node, attrs)
        elif op == "Relu":
            self.relu(node)
        elif op in ("Flatten", "Reshape"):
            self.flatten(node, attrs)
        elif op == "Transpose":
            self.transpose(node, attrs)
        elif op in ("Softmax", "LogSoftmax"):
            self.logits = self.tensor.name
        self.unused_outputs(node)
        self.tensor = replace(self.tensor, name=node.output[0])

    def unused_outputs(self, node):
        """A node's extra outputs (Dropout's mask, BN's running statistics, MaxPool's indices) must be unused."""
        extra = set(node.output[1:]) - {""}
        if extra & self.consumed:
            self.refuse(node, f"its output(s) {sorted(extra & self.consumed)} are used; fxtrain keeps only its first")

    def relu(self, node):
        weighted = [i for i, layer in enumerate(self.layers) if layer.w is not None]
        if not weighted:
            self.refuse(node, "it acts on the model's input; fxtrain applies ReLU only after a layer")
        self.layers[weighted[-1]].relu = True
        self.tensor.raw = None

    def flatten(self, node, attrs):
        t = self.tensor
        if node.op_type == "Flatten" and attrs.get("axis", 1) != 1:
            self.refuse(node, f"axis {attrs['axis']}: fxtrain flattens each sample (axis 1)")
        if node.op_type == "Reshape":
            target = self.consts.get(node.input[1])
            if target is None or not flattens(target, self.batch, t.dims, attrs.get("allowzero", 0)):
                shown = "computed at run time" if target is None else list(np.asarray(target).reshape(-1))
                self.refuse(node, f"reshapes to {shown}, which is not a flatten to (batch, features)")
        if t.spatial:
            # ONNX flattens (c, h, w) in C*H*W order; fxtrain's HWC buffers are H*W*C already
            self.tensor = Tensor(t.name, (int(np.prod(t.dims)),), flat_from=None if t.nhwc else t.dims)

    def transpose(self, node, attrs):
        perm, t = list(attrs.get("perm", [])), self.tensor
        if t.one_d:
            self.refuse(node, f"perm {perm} of a (c, t) window: fxtrain takes no transpose of 1-D data")
        if perm == NHWC_TO_NCHW and t.spatial and not self.layers and not self.input_nhwc and not t.nhwc:
            # tf2onnx's leading transpose: the model's input is NHWC, fxtrain's own layout
            h, w, c = t.dims
            self.input_nhwc, self.tensor = True, replace(t, dims=(c, h, w))
        elif perm == NCHW_TO_NHWC and t.spatial and not t.nhwc:
            c, h, w = t.dims
            self.tensor = replace(t, dims=(h, w, c), nhwc=True, raw=None)
        else:
            self.refuse(node, f"perm {perm}: fxtrain takes tf2onnx's NHWC->NCHW transpose of the input and an "
                              "NCHW->NHWC transpose right before a flatten, no other")


def read_graph(model, consts, model_input):
    """The :class:`ImportedNet` of ``model`` (``consts``: its initializers; ``model_input``: its input)."""
    dims = model_input.dims
    # NCT windows (torch's Conv1d): the height-1 image (c, 1, t), fxtrain's (1, T, C) window in NCHW order
    one_d = len(dims) == 2
    t = Tensor(model_input.name, (dims[0], 1, dims[1]) if one_d else dims, one_d=one_d)
    walk = Walk(dict(consts), model_input.batch, t, consumed={n for node in model.graph.node for n in node.input})
    nodes = list(model.graph.node)
    for i, node in enumerate(nodes):
        if walk.logits is not None:
            walk.refuse(nodes[i - 1], "a softmax is dropped only as the model's last node")
        walk.step(node)
    outputs = [v.name for v in model.graph.output]
    if outputs != [walk.tensor.name]:
        raise ModelError(f"the graph's output(s) {outputs} are not the end of its chain ('{walk.tensor.name}'); "
                         "fxtrain imports a model with one output, its last node's")
    if walk.tensor.spatial:
        raise ModelError("the graph ends on a (c, h, w) or (c, t) tensor; fxtrain's last layer is dense "
                         "(Gemm or MatMul)")
    check_relus(walk.layers)
    return ImportedNet(walk.layers, model_input, walk.input_nhwc, walk.logits or walk.tensor.name)


def check_relus(layers):
    """fxtrain puts a ReLU after every weighted layer but the last, and none after the last."""
    weighted = [layer for layer in layers if layer.w is not None]
    if not weighted:
        raise ModelError("the graph has no Conv, Gemm or MatMul: nothing to import")
    for layer in weighted[:-1]:
        if not layer.relu:
            raise ModelError(f"{layer.node} is not followed by a Relu; fxtrain puts a ReLU after every hidden layer")
    if weighted[-1].relu:
        raise ModelError(f"{weighted[-1].node} is the last layer and is followed by a Relu; fxtrain's last layer "
                         "gives the logits")


__all__ = ["ImportedNet", "Layer", "read_graph"]
