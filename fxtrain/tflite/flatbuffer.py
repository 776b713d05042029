"""A DeployedModel as a fully int8 ``.tflite`` flatbuffer, written with ``flatbuffers`` alone.

TensorFlow is not needed: the few tables TFLM reads are written by hand, field by
field, with the slot numbers of TFLite's ``schema.fbs`` (``tests/test_tflite.py``
parses the result back with the generated schema). The graph uses five builtin
ops: FULLY_CONNECTED, CONV_2D (any KH x KW kernel), MAX_POOL_2D (any PH x PW window), AVERAGE_POOL_2D
over the whole (h, w) for gap (ReLU fused into the first two), and a RESHAPE where a dense layer
follows a conv or pool (HWC flatten, as fxtrain reads it).

Every activation is int8 with scale ``2**e`` and zero point 0, weights are int8
(every bit width <= 8 fits the container, TFLM has no sub-byte tensors), biases
int32 with scale exactly ``in_scale * weight_scale``. TFLM then requantises with
the multiplier of ``2**-out_shift``, which is the ``tflm`` rounding rule
(:mod:`fxtrain.firmware.rounding`): a model calibrated with ``rounding="tflm"`` gives
the same bytes in TFLM as :func:`fxtrain.firmware.reference.predict`.
"""
from dataclasses import dataclass, field

import numpy as np

from .._version import __version__
from ..errors import ConfigError, MissingExtraError
from ..layers import by_name

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
BUFFER_ALIGN = 16  # TFLM and CMSIS-NN read weights with aligned loads
# schema.fbs enums
INT32, INT8 = 2, 9
AVERAGE_POOL_2D, CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, RESHAPE = 1, 3, 9, 17, 22
# BuiltinOptions union tags (both pools take Pool2DOptions)
OPTIONS = {AVERAGE_POOL_2D: 5, CONV_2D: 1, MAX_POOL_2D: 5, FULLY_CONNECTED: 8, RESHAPE: 17}
OP_CODES = {"AVERAGE_POOL_2D": AVERAGE_POOL_2D, "CONV_2D": CONV_2D, "FULLY_CONNECTED": FULLY_CONNECTED,
            "MAX_POOL_2D": MAX_POOL_2D, "RESHAPE": RESHAPE}
SAME, VALID = 0, 1
ACT_NONE, ACT_RELU = 0, 1
# float32 holds 2**e exactly for a normal e; TFLM multiplies two scales in float32.
EXP_RANGE = (-126, 127)
INSTALL_HINT = "pip install 'fxtrain[tflite]'"


def require_flatbuffers():
    """The ``flatbuffers`` module, or MissingExtraError naming the pip command."""
    try:
        import flatbuffers
    except ImportError:
        raise MissingExtraError(f"writing a .tflite needs the flatbuffers package; install it with: "
                                f"{INSTALL_HINT}") from None
    return flatbuffers


@dataclass
class Tensor:
    name: str
    shape: tuple
    dtype: int
    exponent: int | None  # scale 2**exponent, zero point 0; None: not quantised (a shape)
    data: bytes = b""  # empty: an activation, which points at buffer 0


@dataclass
class Op:
    code: int
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)  # slot -> (kind, value), written explicitly


def _scale_exp(e, what):
    if not EXP_RANGE[0] <= e <= EXP_RANGE[1]:
        raise ConfigError(f"{what} has the scale 2^{e}, outside float32's normal range; "
                          "a .tflite cannot hold it exactly")
    return int(e)


class Graph:
    """Tensors and ops in execution order, built from a DeployedModel's layers."""

    def __init__(self, model):
        self.tensors, self.ops = [], []
        shape = (1, *model.input_shape)
        x = self.add(Tensor("input", shape, INT8, _scale_exp(model.input_exponent, "the input")))
        self.input = x
        for i, L in enumerate(model.layers):
            x = by_name(L.kind).tflite(self, i, L, x)  # each kind adds its own operators
        self.output = x

    def add(self, t):
        self.tensors.append(t)
        return len(self.tensors) - 1

    # What a kind's ``tflite`` hook builds with (fxtrain.layers): tensors, operators by name, enums.
    def shape(self, x):
        return self.tensors[x].shape

    def exponent(self, x):
        return self.tensors[x].exponent

    def tensor(self, name, shape, exponent):
        return self.add(Tensor(name, shape, INT8, exponent))

    def op(self, name, inputs, outputs, options):
        self.ops.append(Op(OP_CODES[name], inputs, outputs, options))

    @staticmethod
    def padding(same):
        return SAME if same else VALID

    @staticmethod
    def activation(relu):
        return ACT_RELU if relu else ACT_NONE

    def pool(self, name, i, L, x, window):
        """A MAX_POOL_2D or AVERAGE_POOL_2D of ``x`` over ``window`` (rows, columns), stride the window, valid
        padding; the output keeps its input's scale and zero point, as TFLM requires of both."""
        y = self.tensor(f"layer{i}_out", (1, *L.out_shape), self.exponent(x))
        h, w = window
        # Pool2DOptions: padding, stride_w, stride_h, filter_width, filter_height, activation
        self.op(name, [x], [y], {0: ("int8", self.padding(False)), 1: ("int32", w), 2: ("int32", h),
                                 3: ("int32", w), 4: ("int32", h), 5: ("int8", self.activation(False))})
        return y

    def flatten(self, i, x):
        """A RESHAPE of ``x`` to (1, n): a dense layer after a spatial one."""
        flat = (1, int(np.prod(self.tensors[x].shape)))
        shape = self.add(Tensor(f"layer{i}_flat_shape", (2,), INT32, None, np.array(flat, "<i4").tobytes()))
        y = self.add(Tensor(f"layer{i}_flat", flat, INT8, self.tensors[x].exponent))
        self.op("RESHAPE", [x, shape], [y], {0: ("shape", flat)})
        return y

    def params(self, i, L, x):
        """Weight and bias tensors of layer i; the bias is the int32 value fxtrain adds."""
        e_acc = L.out_exponent - L.out_shift
        e_w = _scale_exp(e_acc - L.in_exponent, f"layer {i}'s weights")
        w = self.add(Tensor(f"layer{i}_weights", L.weights.shape, INT8, e_w,
                            np.ascontiguousarray(L.weights, np.int8).tobytes()))
        b32 = L.bias.astype(np.int64) << L.bias_shift
        b = self.add(Tensor(f"layer{i}_bias", (len(b32),), INT32, _scale_exp(e_acc, f"layer {i}'s bias"),
                            b32.astype("<i4").tobytes()))
        return w, b

    def out(self, i, L, shape):
        return self.add(Tensor(f"layer{i}_out", shape, INT8, _scale_exp(L.out_exponent, f"layer {i}'s output")))


def _vector(b, values, dtype):
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _offsets(b, offsets):
    """A vector of tables (their offsets), in the given order."""
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _table(b, slots):
    """A table of ``{slot: (kind, value)}``.

    Every scalar slot written here has the schema default 0: flatbuffers drops a 0,
    which reads back as 0, and keeps anything else (a stride of 1, say).
    """
    b.StartObject(max(slots, default=-1) + 1)
    for slot, (kind, value) in sorted(slots.items()):
        if kind == "offset":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        else:
            getattr(b, {"int8": "PrependInt8Slot", "uint8": "PrependUint8Slot", "int32": "PrependInt32Slot",
                        "uint32": "PrependUint32Slot"}[kind])(slot, value, 0)
    return b.EndObject()


def _buffer(b, data):
    if not data:
        return _table(b, {})
    b.StartVector(1, len(data), BUFFER_ALIGN)
    b.head -= len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    return _table(b, {0: ("offset", b.EndVector())})


def _tensor(b, t, buffer):
    slots = {0: ("offset", _vector(b, t.shape, "<i4")), 1: ("int8", t.dtype), 2: ("uint32", buffer),
             3: ("offset", b.CreateString(t.name))}
    if t.exponent is not None:
        quant = {2: ("offset", _vector(b, [2.0 ** t.exponent], "<f4")), 3: ("offset", _vector(b, [0], "<i8"))}
        slots[4] = ("offset", _table(b, quant))
    return _table(b, slots)


def _operator(b, op, opcode_index):
    opts = {s: ("offset", _vector(b, v, "<i4")) if kind == "shape" else (kind, v)
            for s, (kind, v) in op.options.items()}
    options = _table(b, opts)
    return _table(b, {0: ("uint32", opcode_index), 1: ("offset", _vector(b, op.inputs, "<i4")),
                      2: ("offset", _vector(b, op.outputs, "<i4")), 3: ("uint8", OPTIONS[op.code]),
                      4: ("offset", options)})


def tflite_bytes(model):
    """The ``.tflite`` flatbuffer of ``model`` (a DeployedModel), as bytes.

    Raises
    ------
    MissingExtraError
        Without the ``flatbuffers`` package.
    ConfigError
        If a scale ``2**e`` is outside float32's normal range.
    """
    fb = require_flatbuffers()
    g = Graph(model)
    b = fb.Builder(4096)
    consts = [i for i, t in enumerate(g.tensors) if t.data]
    buffers = [_buffer(b, g.tensors[i].data if i >= 0 else b"") for i in [-1, *consts]]
    buffer_of = {t: n + 1 for n, t in enumerate(consts)}  # buffer 0 is the empty one
    tensors = [_tensor(b, t, buffer_of.get(i, 0)) for i, t in enumerate(g.tensors)]
    codes = list(dict.fromkeys(op.code for op in g.ops))
    ops = [_operator(b, op, codes.index(op.code)) for op in g.ops]
    subgraph = _table(b, {0: ("offset", _offsets(b, tensors)), 1: ("offset", _vector(b, [g.input], "<i4")),
                          2: ("offset", _vector(b, [g.output], "<i4")), 3: ("offset", _offsets(b, ops)),
                          4: ("offset", b.CreateString("main"))})
    # both the deprecated int8 code and the int32 code, as the converter writes them
    opcodes = [_table(b, {0: ("int8", c), 3: ("int32", c)}) for c in codes]
    description = b.CreateString(f"fxtrain {__version__}")
    root = _table(b, {0: ("uint32", SCHEMA_VERSION), 1: ("offset", _offsets(b, opcodes)),
                      2: ("offset", _offsets(b, [subgraph])), 3: ("offset", description),
                      4: ("offset", _offsets(b, buffers))})
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())
