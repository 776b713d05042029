"""``pool:P``: max pooling over P x P windows, stride P (a ragged edge is dropped); ``pool:PHxPW`` over
PH x PW windows, stride PH down and PW across; ``pool1d:P`` the 1 x P pool of a height-1 window (1, T, C).

No weights, no bias, no activation: the output keeps its input's exponent, and the error
goes back to the first maximum of each window. CMSIS-NN's counterpart is
``arm_maxpool_q7_HWC``, TFLite's MAX_POOL_2D; the exports hold square windows only so far.
"""
import numpy as np

from .base import WEIGHTLESS, LayerKind
from .spec import LayerSpec


class Pool(LayerKind):
    name, code, syntax = "pool", 2, "pool:P"
    one_d, syntax_1d = "pool1d", "pool1d:P"
    weighted = False
    c_snippets = ("pool_defs", "pool_call")

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

    def work(self, s, b):
        compares = b * s.out_shape[0] * s.out_shape[1] * s.out_shape[2] * s.kh * s.kw
        return {"macs": 0, "forward": {"pool": compares}, "backward": {"pool_back": compares}, "gradient": {}}

    def train_row(self, s):
        return dict(kh=s.kh, kw=s.kw, pad_h=0, pad_w=0, fan_in=0)

    def deploy_params(self, s):
        return dict(kernel=0, pad=0, pool=s.kh)  # square only: check_export refused the others

    def deploy_geometry(self, i, spec, in_shape, w):
        pool = int(spec.get("pool", 0))
        self.check_spatial(i, in_shape)
        if pool < 1 or pool > min(in_shape[:2]):
            raise self.deploy_error(i, f"pool size {pool} does not fit input {in_shape}")
        return in_shape, (in_shape[0] // pool, in_shape[1] // pool, in_shape[2]), 0, 0, pool

    def reference(self, layer, x):
        """The pooled int8 output itself (nothing to requantise)."""
        n, (h, w, c), p = x.shape[0], layer.in_shape, layer.pool
        oh, ow = h // p, w // p
        blocks = x[:, : oh * p, : ow * p, :].reshape(n, oh, p, ow, p, c)
        return blocks.max(axis=(2, 4)).astype(np.int8)

    def c_defs(self, L):
        return dict(in_h=L.in_shape[0], in_w=L.in_shape[1], in_c=L.in_shape[2], out_h=L.out_shape[0],
                    out_w=L.out_shape[1], pool=L.pool)

    def cmsis_buffer_bytes(self, L):
        return 0

    def tflite(self, g, i, L, x):
        # pooling keeps its input's scale and zero point, as TFLM requires
        y = g.tensor(f"layer{i}_out", (1, *L.out_shape), g.exponent(x))
        p = ("int32", L.pool)
        g.op("MAX_POOL_2D", [x], [y], {0: ("int8", g.padding(False)), 1: p, 2: p, 3: p, 4: p,
                                       5: ("int8", g.activation(False))})
        return y

    def export_refusal(self, s, path):
        if path == "train-step":
            return None
        return None if s.square else f"a {s.kh}x{s.kw} pooling window (the exports have square windows only)"


KIND = Pool()
