"""Constant folding of the shape arithmetic exporters emit, so that torch's ``x.view(x.size(0), -1)``
(Shape -> Gather -> Unsqueeze -> Concat -> Reshape) reads as the flatten it is.

The batch is not known when the graph is read, so ``Shape`` writes the :data:`BATCH` marker in its
place; the structural ops below carry it through unchanged, and a Reshape whose first dimension is
the marker keeps the batch.
"""
import numpy as np

BATCH = np.int64(-(2**62))  # stands for the batch dimension in a folded shape


def _axes(node_attrs, extra):
    """Unsqueeze/Squeeze axes: an attribute before opset 13, an input since."""
    if extra:
        return tuple(int(a) for a in np.asarray(extra[0]).reshape(-1))
    axes = node_attrs.get("axes")
    return tuple(int(a) for a in axes) if axes is not None else None


def _unsqueeze(attrs, x, *extra):
    axes = _axes(attrs, extra)
    rank = np.ndim(x) + len(axes)
    return np.expand_dims(x, tuple(sorted(a % rank for a in axes)))


def _squeeze(attrs, x, *extra):
    axes = _axes(attrs, extra)
    return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(a % np.ndim(x) for a in axes))


def _cast(attrs, x):
    from onnx import helper
    return np.asarray(x).astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))


FOLD = {
    "Identity": lambda attrs, x: x,
    "Cast": _cast,
    "Gather": lambda attrs, x, idx: np.take(x, idx, axis=attrs.get("axis", 0)),
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": lambda attrs, *xs: np.concatenate([np.atleast_1d(x) for x in xs], axis=attrs["axis"]),
}


def constant_value(attrs):
    """The value of a Constant node (its one attribute)."""
    from onnx import numpy_helper
    for key in ("value_int", "value_float"):
        if key in attrs:
            return np.array(attrs[key])
    for key in ("value_ints", "value_floats"):
        if key in attrs:
            return np.array(list(attrs[key]))
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    return None


def shape_of(batch, dims):
    """What ``Shape`` gives for a tensor of per-sample ``dims``: the batch (or its marker) first."""
    return np.array([BATCH if batch is None else batch, *dims], dtype=np.int64)


def flattens(target, batch, dims, allowzero=0):
    """True if Reshape to ``target`` (folded) turns a tensor of per-sample ``dims`` into (batch, features)."""
    target = [int(t) for t in np.asarray(target).reshape(-1)]
    if len(target) != 2:
        return False
    n = int(np.prod(dims))
    first, second = target
    keeps_batch = first == BATCH or (first == 0 and not allowzero) or (batch is not None and first == batch)
    if keeps_batch:
        return second in (-1, n)
    return first == -1 and second == n
