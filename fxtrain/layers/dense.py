"""``dense:N``: a fully connected layer of N outputs over the whole input, read in HWC order.

Weights are ``[out][in]``; a weight row is one output's fan-in. CMSIS-NN's counterpart is
``arm_fully_connected_q7``, TFLite's FULLY_CONNECTED (after a RESHAPE of a spatial input).
"""
import numpy as np

from .base import LayerKind
from .spec import LayerSpec, pad4, size


class Dense(LayerKind):
    name, code, syntax = "dense", 0, "dense:N"
    flat_input = True
    c_snippets = ("dense_defs", "dense_call", "dense_packed_call", "dense_rounded_call")

    def parse(self, tok, args, shape):
        if len(args) != 1:
            return None
        return LayerSpec(self.code, (1, 1, size(shape)), (1, 1, self.int_field(tok, args[0])))

    def token(self, s):
        return f"dense:{s.out_shape[2]}"

    def n_weights(self, s):
        return s.out_shape[2] * size(s.in_shape)

    def fan_out(self, s):
        return s.out_shape[2]

    def weight_shape(self, s):
        return (s.out_shape[2], s.n_weights // s.out_shape[2])

    def engine_scratch(self, s, batch):
        n_in, n_out = size(s.in_shape), size(s.out_shape)
        return {"words": max((batch + 1) // 2 * max(n_in, n_out), (n_out + 1) // 2 * n_in),
                "gtmp": s.n_weights if n_out > n_in else 0}

    def sram_scratch(self, need, l, s, batch, sub_byte, grad_chunk):
        # an input sample (or the error batch) is copied to words only when its rows are not whole
        # words; four sub-byte weight rows unpack at a time; four weight columns gather the error below
        n_in, n_out, f = size(s.in_shape), size(s.out_shape), s.fan_in
        need("opa", pad4(n_in) if n_in % 4 else 0)
        need("opb", batch * pad4(n_out) if n_out % 4 and l else 0)
        need("rows", max(4 * pad4(f) if sub_byte else 0, 4 * pad4(n_out) if l else 0))
        need("grad", f)
        return n_in * pad4(batch), n_out * pad4(batch)

    def work(self, s, b, dsp=None):
        macs = b * s.n_weights
        return {"macs": macs, "forward": {"mac": macs}, "backward": {"back_mac": macs}, "gradient": {"grad_mac": macs}}

    def train_row(self, s):
        return dict(kh=0, kw=0, pad_h=0, pad_w=0, fan_in=s.fan_in)

    def deploy_params(self, s):
        return dict(kernel=0, pad=0, pool=0)

    def deploy_geometry(self, i, spec, in_shape, w):
        in_shape = (size(in_shape),)
        if w.ndim != 2 or w.shape[1] != in_shape[0]:
            raise self.deploy_error(i, f"dense weights {w.shape} do not take {in_shape[0]} inputs")
        return in_shape, (int(w.shape[0]),), dict(kernel=0, pad=0, pool=0)

    def reference(self, layer, x):
        """Sum of x*w per output, without bias: int64 ``[N, out]``."""
        return x.reshape(x.shape[0], -1).astype(np.int64) @ layer.weights.astype(np.int64).T

    def c_defs(self, L):
        return {}

    def cmsis_buffer_bytes(self, L):
        return 2 * size(L.in_shape)  # arm_fully_connected_q7_opt's reordered input, as q15

    def tflite(self, g, i, L, x):
        if len(g.shape(x)) != 2:
            x = g.flatten(i, x)
        w, b = g.params(i, L, x)
        y = g.out(i, L, (1, *L.out_shape))
        g.op("FULLY_CONNECTED", [x, w, b], [y], {0: ("int8", g.activation(L.relu))})
        return y

    def onnx_weights(self, w, chw=None):
        """(out, in) weights of a Gemm or MatMul; after a flatten of a (c, h, w) tensor ONNX's columns run
        in C*H*W order and fxtrain's in H*W*C (its buffers are HWC), so they are permuted."""
        if chw is None:
            return w
        c, h, width = chw
        return w.reshape(w.shape[0], c, h, width).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)

    def export_refusal(self, s, path):
        return None


KIND = Dense()
