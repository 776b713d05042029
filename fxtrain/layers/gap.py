"""``gap``: global average pooling, the mean of each channel over all h*w positions; output (1, 1, C).

No weights, no bias, no activation. It closes the conv trunk: only dense layers may
follow it. The integer rule is TFLite's int8 AVERAGE_POOL_2D, exactly: with n = h*w and
the channel's int32 sum S, ``(S + n/2) / n`` for S >= 0 and ``(S - n/2) / n`` for S < 0,
C division truncating toward zero and n/2 = n // 2 (to nearest, ties away from zero),
in the input's exponent. The error sent below and its draws are in docs/design.md
("Global average pooling"). The C inference runtime (``fx_avgpool_global_q7``) and the TFLite
export (AVERAGE_POOL_2D) hold it, and so does the C training step (``FX_KIND_GAP``).
"""
import numpy as np

from .base import WEIGHTLESS, LayerKind
from .spec import LayerSpec

SUM_LIMIT = 2**31 - 1  # a channel's sum of int8 inputs is int32 on every side, as in TFLite


def average_round(sums, n):
    """TFLite's rounded average of int sums over ``n`` positions: to nearest, ties away from zero (int64)."""
    s = np.asarray(sums, np.int64)
    return np.sign(s) * ((np.abs(s) + n // 2) // n)


class Gap(LayerKind):
    name, code, syntax = "gap", 3, "gap"
    weighted = False
    closes_trunk = True
    c_snippets = ("gap_defs", "gap_call")

    def parse(self, tok, args, shape):
        if args:
            return None
        if shape[0] == 1 and shape[1] == 1:
            self.refuse(tok, f"gap averages the positions of a conv trunk's (h, w, c) output, but its input "
                        f"is flat (1x1x{shape[2]}); put gap right after the last conv or pool")
        if 128 * shape[0] * shape[1] > SUM_LIMIT:
            self.refuse(tok, f"a channel's sum over {shape[0]}x{shape[1]} positions could leave int32; "
                        "pool the trunk down before gap")
        return LayerSpec(self.code, shape, (1, 1, shape[2]), kh=shape[0], kw=shape[1])

    def token(self, s):
        return "gap"

    # no weights; fan_out 0: each input error is its output's error divided, not a sum of products
    n_weights, fan_out, weight_shape, engine_scratch, sram_scratch, onnx_weights = WEIGHTLESS

    def work(self, s, b, dsp=None):
        # a rounded division per output is priced as an output value
        adds, outs = b * s.in_shape[0] * s.in_shape[1] * s.in_shape[2], b * s.out_shape[2]
        return {"macs": 0, "forward": {"gap_add": adds, "act": outs}, "backward": {"gap_err": adds}, "gradient": {}}

    def train_row(self, s):
        # the window is the whole input, which in_h and in_w give the C runtime; kh and kw (uint8_t) could not
        return dict(kh=0, kw=0, pad_h=0, pad_w=0, fan_in=0)

    def deploy_params(self, s):
        return dict(kernel=0, pad=0, pool=0)

    def deploy_geometry(self, i, spec, in_shape, w):
        self.check_spatial(i, in_shape)
        if 128 * in_shape[0] * in_shape[1] > SUM_LIMIT:
            raise self.deploy_error(i, f"gap's channel sums over {in_shape[0]}x{in_shape[1]} positions could "
                                       "leave int32")
        return in_shape, (1, 1, in_shape[2]), dict(kernel=0, pad=0, pool=0)

    def reference(self, layer, x):
        """The averaged int8 output itself (TFLite's rule), ``[N, 1, 1, c]``."""
        (h, w, c), n = layer.in_shape, layer.in_shape[0] * layer.in_shape[1]
        sums = x.reshape(x.shape[0], h * w, c).astype(np.int64).sum(axis=1)
        return average_round(sums, n).astype(np.int8).reshape(x.shape[0], 1, 1, c)

    def c_defs(self, L):
        return dict(in_h=L.in_shape[0], in_w=L.in_shape[1], in_c=L.in_shape[2])

    def cmsis_buffer_bytes(self, L):
        return 0

    def tflite(self, g, i, L, x):
        # AVERAGE_POOL_2D over the whole (h, w): TFLM's int8 rule is average_round
        return g.pool("AVERAGE_POOL_2D", i, L, x, L.in_shape[:2])

    def export_refusal(self, s, path):
        return None  # every export path holds it (inference, train-step, tflite)


KIND = Gap()
