"""``pool:P``: max pooling over P x P windows, stride P (a ragged edge is dropped).

No weights, no bias, no activation: the output keeps its input's exponent, and the error
goes back to the first maximum of each window. CMSIS-NN's counterpart is
``arm_maxpool_q7_HWC``, TFLite's MAX_POOL_2D.
"""
import numpy as np

from .base import LayerKind
from .spec import LayerSpec


class Pool(LayerKind):
    name, code, syntax = "pool", 2, "pool:P"
    weighted = False
    c_snippets = ("pool_defs", "pool_call")

    def parse(self, tok, args, shape):
        if len(args) != 1:
            return None
        p = self.int_field(tok, args[0])
        if shape[0] < p or shape[1] < p:
            self.refuse(tok, f"pool {p} is larger than the {shape[0]}x{shape[1]} input")
        return LayerSpec(self.code, shape, (shape[0] // p, shape[1] // p, shape[2]), k=p)

    def token(self, s):
        return f"pool:{s.k}"

    def n_weights(self, s):
        return 0

    def fan_out(self, s):
        return 0

    def weight_shape(self, s):
        return None

    def engine_scratch(self, s, batch):
        return {}

    def sram_scratch(self, need, l, s, batch, sub_byte, grad_chunk):
        return 0, 0

    def work(self, s, b):
        compares = b * s.out_shape[0] * s.out_shape[1] * s.out_shape[2] * s.k * s.k
        return {"macs": 0, "forward": {"pool": compares}, "backward": {"pool_back": compares}, "gradient": {}}

    def train_row(self, s):
        return dict(kh=s.k, kw=s.k, pad_h=s.pad, pad_w=s.pad, fan_in=0)

    def deploy_params(self, s):
        return dict(kernel=0, pad=s.pad, pool=s.k)

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

    def onnx_weights(self, w, chw=None):
        return None


KIND = Pool()
