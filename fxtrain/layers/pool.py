"""``pool:P``: max pooling over P x P windows, stride P (a ragged edge is dropped); ``pool:PHxPW`` over
PH x PW windows, stride PH down and PW across; ``pool1d:P`` the 1 x P pool of a height-1 window (1, T, C).

No weights, no bias, no activation: the output keeps its input's exponent, and the error
goes back to the first maximum of each window. CMSIS-NN's counterpart is
``arm_maxpool_q7_HWC`` (square windows only), TFLite's MAX_POOL_2D; every export path
(C inference, C training step, TFLite) holds every window.
"""
import numpy as np

from .base import WEIGHTLESS, LayerKind
from .spec import LayerSpec


class Pool(LayerKind):
    name, code, syntax = "pool", 2, "pool:P"
    one_d, syntax_1d = "pool1d", "pool1d:P"
    weighted = False
    c_snippets = ("pool_defs", "pool_call", "pool_nonsquare_defs", "pool_nonsquare_call")

    def parse(self, tok, args, shape):
        if len(args) != 1:
            return None
        ph, pw = self.window_field(tok, args[0])
        if shape[0] < ph or shape[1] < pw:
            hint = f"; on a height-1 window (1, T, C) use pool1d:{pw}" if shape[0] == 1 and shape[1] >= pw else ""
            self.refuse(tok, f"pool {args[0]} is larger than the {shape[0]}x{shape[1]} input{hint}")
        return self._spec(shape, ph, pw)

    def parse_1d(self, tok, args, shape):
        """``pool1d:P``: the pool of window 1 x P on a height-1 window."""
        if len(args) != 1:
            return None
        self.check_1d(tok, shape)
        p = self.int_field(tok, args[0])
        if shape[1] < p:
            self.refuse(tok, f"pool1d {p} is longer than the window of {shape[1]} steps")
        return self._spec(shape, 1, p)

    def _spec(self, shape, ph, pw):
        return LayerSpec(self.code, shape, (shape[0] // ph, shape[1] // pw, shape[2]), kh=ph, kw=pw)

    def token(self, s):
        if s.kh == s.kw:
            return f"pool:{s.kh}"
        return f"pool1d:{s.kw}" if s.kh == 1 and s.in_shape[0] == 1 else f"pool:{s.kh}x{s.kw}"

    n_weights, fan_out, weight_shape, engine_scratch, sram_scratch, onnx_weights = WEIGHTLESS

    def work(self, s, b, dsp=None):
        compares = b * s.out_shape[0] * s.out_shape[1] * s.out_shape[2] * s.kh * s.kw
        # the C runtime's paths: four channels a word on a DSP core (backward, where the windows tile
        # the input); else byte by byte, a 2x2 window written out backward
        words = dsp is not None and dsp.bytes and s.in_shape[2] % 4 == 0
        tiles = s.out_shape[0] * s.kh == s.in_shape[0] and s.out_shape[1] * s.kw == s.in_shape[1]
        back = "pool_back_word" if words and tiles else "pool_back_2x2" if (s.kh, s.kw) == (2, 2) else "pool_back"
        return {"macs": 0, "forward": {"pool_word" if words else "pool": compares}, "backward": {back: compares},
                "gradient": {}}

    def train_row(self, s):
        return dict(kh=s.kh, kw=s.kw, pad_h=0, pad_w=0, fan_in=0)

    def deploy_params(self, s):
        return dict(kernel=0, pad=0, pool=s.kh) if s.kh == s.kw else dict(kernel=0, pad=0, pool=s.kh, pool_w=s.kw)

    def deploy_geometry(self, i, spec, in_shape, w):
        """(in_shape, out_shape, the DeployLayer's pool fields); ``pool_w`` defaults to a square window."""
        ph = int(spec.get("pool", 0))
        pw = int(spec.get("pool_w", ph))
        self.check_spatial(i, in_shape)
        if min(ph, pw) < 1 or ph > in_shape[0] or pw > in_shape[1]:
            raise self.deploy_error(i, f"pool size {ph}x{pw} does not fit input {in_shape}")
        geo = dict(kernel=0, pad=0, pool=ph) if ph == pw else dict(kernel=0, pad=0, pool=ph, pool_w=pw)
        return in_shape, (in_shape[0] // ph, in_shape[1] // pw, in_shape[2]), geo

    def reference(self, layer, x):
        """The pooled int8 output itself (nothing to requantise)."""
        n, (h, w, c), (ph, pw) = x.shape[0], layer.in_shape, layer.pool_hw
        oh, ow = h // ph, w // pw
        blocks = x[:, : oh * ph, : ow * pw, :].reshape(n, oh, ph, ow, pw, c)
        return blocks.max(axis=(2, 4)).astype(np.int8)

    def c_defs(self, L):
        ph, pw = L.pool_hw
        return dict(in_h=L.in_shape[0], in_w=L.in_shape[1], in_c=L.in_shape[2], out_h=L.out_shape[0],
                    out_w=L.out_shape[1], pool=ph, pool_h=ph, pool_w=pw)

    def cmsis_buffer_bytes(self, L):
        return 0

    def tflite(self, g, i, L, x):
        return g.pool("MAX_POOL_2D", i, L, x, L.pool_hw)

    def export_refusal(self, s, path):
        return None  # every export path holds it (inference, train-step, tflite)


KIND = Pool()
