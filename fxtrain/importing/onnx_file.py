"""An ONNX file as the importer reads it: the optional ``onnx`` package, a regular file that parses and
passes ONNX's checker, its constant tensors as numpy arrays, and its one input with a static sample shape.
"""
import hashlib
from dataclasses import dataclass

from .._files import read_input
from ..errors import InputError, MissingExtraError, ModelError
from ..limits import ONNX_BYTES

PIP = "pip install 'fxtrain[onnx]'"


def require_onnx():
    """The ``onnx`` module (with its reference evaluator), or one line naming the extra to install."""
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401  (the submodules the importer uses)
        import onnx.reference  # noqa: F401
    except ImportError:
        raise MissingExtraError(f"importing an ONNX model needs the onnx package: {PIP}") from None
    return onnx


def load_model(path):
    """(ModelProto, sha256 hex of the file) of ``path``; a path that is not a regular file, a truncated file
    or another format is one line. Weights in external files are refused: fxtrain reads one file."""
    onnx = require_onnx()
    try:
        blob = read_input(path, "ONNX model", ONNX_BYTES, InputError)
    except FileNotFoundError:
        raise InputError(f"ONNX model {path} does not exist") from None
    try:
        model = onnx.load_from_string(blob)
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf's DecodeError or the checker's ValidationError: not a usable model
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path} is not a valid ONNX model (truncated, or another format): {why}") from None
    if not model.graph.node:
        raise ModelError(f"{path} is not an ONNX model with a graph: it holds no nodes")
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ModelError(f"{path} keeps initializer '{external[0]}' in an external file; save the model with "
                         "its weights inside (onnx.save_model(..., save_as_external_data=False))")
    return model, hashlib.sha256(blob).hexdigest()


def constants(model):
    """{name: numpy array} of the graph's initializers."""
    from onnx import numpy_helper
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@dataclass(frozen=True)
class Input:
    """The graph's one runtime input: its name, per-sample dims (static) and batch (an int, or None if dynamic)."""
    name: str
    dims: tuple
    batch: object

    def shown(self):
        return "(" + ", ".join(["N" if self.batch is None else str(self.batch), *map(str, self.dims)]) + ")"


def graph_input(model, consts):
    """The graph's one input that is not an initializer; only its batch (axis 0) may be dynamic."""
    inputs = [v for v in model.graph.input if v.name not in consts]
    if len(inputs) != 1:
        raise ModelError(f"the graph has {len(inputs)} runtime inputs ({', '.join(v.name for v in inputs)}); "
                         "fxtrain imports a model with one input")
    v = inputs[0]
    dims = list(v.type.tensor_type.shape.dim)
    if not dims:
        raise ModelError(f"input '{v.name}' has no shape; export the model with a fixed sample shape")
    static = []
    for axis, d in enumerate(dims):
        known = d.HasField("dim_value") and d.dim_value > 0
        if axis and not known:
            name = d.dim_param or "?"
            raise ModelError(f"input '{v.name}' has a dynamic dimension '{name}' at axis {axis}: only the batch "
                             "(axis 0) may be dynamic; export it with a fixed sample shape")
        static.append(d.dim_value if known else None)
    return Input(v.name, tuple(static[1:]), static[0])


def attributes(node):
    """{name: value} of a node's attributes."""
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}
