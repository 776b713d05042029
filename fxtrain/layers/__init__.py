"""The layer kinds: one module each, registered here once.

Every stage that handles a layer asks its kind (``spec.layer_kind``, :func:`by_code`,
:func:`by_name`) instead of branching on it; :data:`fxtrain.layers.base.HOOKS` lists
what a kind must answer and who asks. A code or name that is not registered is refused
in one line. To add a kind: write its module beside these, add it to ``KINDS`` below,
and give the runtimes its C section (docs/design.md, "How to add a layer kind"); until
then its ``export_refusal`` names it and :func:`check_export` stops every export. A 1-D
token (``conv1d``, ``pool1d``) is a kind's other spelling, parsed by its ``parse_1d``.
"""
from ..errors import ConfigError
from . import conv, dense, flatten, gap, pool
from .base import HOOKS, LayerKind
from .spec import LayerSpec, pad4, size

KINDS = (dense.KIND, conv.KIND, pool.KIND, gap.KIND)
_BY_CODE = {k.code: k for k in KINDS}
_BY_NAME = {k.name: k for k in KINDS}
# 1-D tokens are the 2-D kinds on a height-1 window: they parse into the kind's own LayerSpec
_BY_1D = {k.one_d: k for k in KINDS if k.one_d}
ARCH_HELP = (f"tokens are {', '.join(t for k in KINDS for t in (k.syntax, k.syntax_1d) if t)} and "
             f"{flatten.SYNTAX}, separated by commas, e.g. 'conv:8:3,pool:2,dense:10' or "
             "'conv1d:8:5,pool1d:2,gap,dense:4'")

__all__ = ["ARCH_HELP", "HOOKS", "KINDS", "LayerKind", "LayerSpec", "by_code", "by_name", "check_export", "EXPORT_PATHS", "pad4",
           "parse_token", "size"]


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


def parse_token(tok, shape, after=None):
    """The LayerSpec of one arch token on an input of ``shape`` (h, w, c), or None for ``flatten``;
    ``after``: the kind of the layer before it (a kind that closes the trunk takes only dense layers)."""
    parts = tok.strip().lower().split(":")
    if parts == [flatten.TOKEN]:
        return None  # HWC buffers are already flat in the order dense layers read
    kind, one_d = _BY_NAME.get(parts[0]), _BY_1D.get(parts[0])
    if after is not None and after.closes_trunk and (kind or one_d) and not (kind or one_d).flat_input:
        raise ConfigError(f"arch token '{tok}' follows {after.name}, which must close the conv trunk (it leaves "
                          f"a 1x1 input); put {after.name} right before the dense layers")
    spec = kind.parse(tok, parts[1:], shape) if kind else one_d.parse_1d(tok, parts[1:], shape) if one_d else None
    if spec is None:
        raise ConfigError(f"unknown arch token '{tok}'; {ARCH_HELP}")
    return spec


# the export paths a kind may not hold yet, and what a refusal calls each
EXPORT_PATHS = {"inference": "the C inference export (and the deployed accuracy)",
                "train-step": "the C training step (export --train-step, verify --train-step, measure)",
                "tflite": "the TFLite export"}


def check_export(layers, path):
    """Raise ConfigError, in one line, naming the first of ``layers`` that export ``path`` (a key of
    :data:`EXPORT_PATHS`) cannot hold yet; every export path asks here before it writes."""
    for i, s in enumerate(layers):
        why = s.layer_kind.export_refusal(s, path)
        if why:
            raise ConfigError(f"layer {i} ({s.token()}): {why}: {EXPORT_PATHS[path]} does not hold it yet, "
                              "so its export is not supported yet; such a net trains and evaluates in the simulator")
