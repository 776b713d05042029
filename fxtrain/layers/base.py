"""What every layer kind says about itself: the hooks the pipeline's stages call.

A kind is one module of this package holding one :class:`LayerKind` subclass. The
stages never branch on a kind's name; they call its hooks, listed in :data:`HOOKS`
with the stage that calls each. The hooks take plain values (a
:class:`~fxtrain.layers.spec.LayerSpec`, a deployed layer, a callback) so this package
imports no stage and every stage may import it.
"""
from ..errors import ConfigError

# hook name -> the consumer that calls it (tests/test_layer_kinds.py holds every kind to all of them)
HOOKS = {
    "parse": "engine/network.py: an arch token into a LayerSpec (shape inference)",
    "token": "engine/network.py: the canonical arch token",
    "n_weights": "layers/spec.py: the weight count (the bias count follows from `weighted`)",
    "fan_out": "engine/bounds.py: products summed into one input error",
    "weight_shape": "training/artifacts.py: the weight array's shape in model.npz",
    "engine_scratch": "engine/scratch.py: the integer engine's work buffers",
    "sram_scratch": "device/memory.py: the C training runtime's kernel scratch",
    "work": "device/work.py: units of work per phase for the cost model",
    "train_row": "firmware/train_export.py: the kind's fields of the C fx_layer row",
    "deploy_geometry": "firmware/calibration.py: a deployed layer's shapes checked; (in_shape, out_shape, its "
                       "window fields: kernel, pad, pool and, non-square, kernel_w, pad_w, pool_w)",
    "deploy_params": "firmware/calibration.py: the deploy spec's kernel, pad and pool (and *_w, non-square)",
    "reference": "firmware/reference.py: the reference inference",
    "c_defs": "firmware/codegen.py: the values of the kind's C template snippets",
    "cmsis_buffer_bytes": "firmware/codegen.py: CMSIS-NN's work buffer",
    "tflite": "tflite/flatbuffer.py: the TFLite operators",
    "onnx_weights": "importing/graph.py: an ONNX weight tensor (NCHW order) in the kind's own order",
    "export_refusal": "layers/__init__.py check_export(layers, path): why export path (inference, "
                      "train-step or tflite) cannot hold the layer yet, or None",
}


def _zero(self, s):
    return 0


def _none(self, *args, **kw):
    return None


def _no_buffers(self, s, batch):
    return {}


def _no_sram(self, need, l, s, batch, sub_byte, grad_chunk):
    return 0, 0


# A kind without weights answers these hooks alike; its class body binds them, so each stays its own:
# ``n_weights, fan_out, weight_shape, engine_scratch, sram_scratch, onnx_weights = WEIGHTLESS``.
WEIGHTLESS = (_zero, _zero, _none, _no_buffers, _no_sram, _none)


class LayerKind:
    """Base of every kind; each hook is described where :data:`HOOKS` names its caller.

    Class attributes: ``name`` (the arch token and the name in model files), ``code`` (the
    int the jitted engine and the C runtimes dispatch on: ``FX_KIND_<NAME>`` in C),
    ``weighted`` (has weights and biases), ``flat_input`` (reads its input as one vector),
    ``syntax`` (the token's form for help texts), ``c_snippets`` (its sections of
    ``templates/layers.h.in``, which the inference runtime's generated header fills),
    ``one_d`` and ``syntax_1d`` (the head and form of the kind's 1-D token, read by ``parse_1d``,
    if it has one) and ``closes_trunk`` (only flat-input kinds may follow it).
    """
    name = code = syntax = one_d = syntax_1d = None
    weighted = True
    flat_input = False
    closes_trunk = False
    c_snippets = ()

    def refuse(self, tok, why):
        raise ConfigError(f"arch token '{tok}': {why}")

    def int_field(self, tok, text):
        """A positive size written in an arch token."""
        from . import ARCH_HELP  # the registry builds the help from every kind
        try:
            v = int(text)
        except ValueError:
            raise ConfigError(f"arch token '{tok}': '{text}' is not a whole number; {ARCH_HELP}") from None
        if v <= 0:
            self.refuse(tok, f"sizes must be positive, got {v}")
        return v

    def window_field(self, tok, text):
        """A window written ``K`` (K x K) or ``KHxKW`` in an arch token: (rows, columns)."""
        sizes = text.split("x")
        if len(sizes) > 2:
            self.refuse(tok, f"'{text}' is not a size K or KHxKW")
        kh = self.int_field(tok, sizes[0])
        return kh, self.int_field(tok, sizes[-1])

    def check_1d(self, tok, shape):
        """Refuse, for a 1-D token, an input that is not a height-1 window (1, T, C) of T >= 2 steps."""
        if shape[0] == 1 and shape[1] == 1:
            self.refuse(tok, f"{self.one_d} needs a window input (1, T, C); the data here is flat. Use dense "
                        "layers, or NPZ windows with X of shape [n, T, C] (or [n, 1, T, C])")
        if shape[0] != 1:
            self.refuse(tok, f"{self.one_d} reads a height-1 window (1, T, C), but the input is "
                        f"{shape[0]}x{shape[1]}x{shape[2]} image data; use {self.syntax} on images")

    def deploy_error(self, i, why):
        return ConfigError(f"layer {i}: {why}")

    def check_spatial(self, i, in_shape):
        if len(in_shape) != 3:
            raise self.deploy_error(i, f"{self.name} needs an (h, w, c) input, got {in_shape}")

    def __repr__(self):
        return f"<layer kind {self.name} (code {self.code})>"
