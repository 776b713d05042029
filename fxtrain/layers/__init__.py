"""The layer kinds: one module each, registered here once.

Every stage that handles a layer asks its kind (``spec.layer_kind``, :func:`by_code`,
:func:`by_name`) instead of branching on it; :data:`fxtrain.layers.base.HOOKS` lists
what a kind must answer and who asks. A code or name that is not registered is refused
in one line. To add a kind: write its module beside these, add it to ``KINDS`` below,
and give the runtimes its C section (docs/design.md, "How to add a layer kind").
"""
from ..errors import ConfigError
from . import conv, dense, flatten, pool
from .base import HOOKS, LayerKind
from .spec import LayerSpec, pad4, size

KINDS = (dense.KIND, conv.KIND, pool.KIND)
_BY_CODE = {k.code: k for k in KINDS}
_BY_NAME = {k.name: k for k in KINDS}
ARCH_HELP = (f"tokens are {', '.join(k.syntax for k in KINDS)} and {flatten.SYNTAX}, "
             "separated by commas, e.g. 'conv:8:3,pool:2,dense:10'")

__all__ = ["ARCH_HELP", "HOOKS", "KINDS", "LayerKind", "LayerSpec", "by_code", "by_name", "pad4", "parse_token",
           "size"]


def by_code(code):
    """The kind whose int code is ``code`` (the engine's desc table, the C fx_layer row)."""
    try:
        return _BY_CODE[int(code)]
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"unknown layer kind code {code!r}; this fxtrain knows "
                          + ", ".join(f"{k.code} ({k.name})" for k in KINDS)) from None


def by_name(name):
    """The kind called ``name`` (an arch token's head, a model file's ``layerI_kind``)."""
    try:
        return _BY_NAME[str(name)]
    except KeyError:
        raise ConfigError(f"unknown layer kind {name!r}; this fxtrain knows {', '.join(_BY_NAME)}") from None


def parse_token(tok, shape):
    """The LayerSpec of one arch token on an input of ``shape`` (h, w, c), or None for ``flatten``."""
    parts = tok.strip().lower().split(":")
    if parts == [flatten.TOKEN]:
        return None  # HWC buffers are already flat in the order dense layers read
    kind = _BY_NAME.get(parts[0])
    spec = kind.parse(tok, parts[1:], shape) if kind else None
    if spec is None:
        raise ConfigError(f"unknown arch token '{tok}'; {ARCH_HELP}")
    return spec
