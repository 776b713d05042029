"""``conv:F:K[:same|:valid]``: F filters of K x K over an (h, w, c) input, stride 1; ``conv:F:KHxKW``
a non-square kernel of KH rows and KW columns; ``conv1d:F:K[:same|:valid]`` the 1 x K conv over a
height-1 window (1, T, C), the same layer.

"same" pads KH//2 rows and KW//2 columns of zeros on each side (odd KH and KW only). Weights
are ``[out][ky][kx][in]``; a weight row is one filter. CMSIS-NN's counterpart is
``arm_convolve_HWC_q7_basic`` (``_nonsquare`` for KH != KW), TFLite's CONV_2D; every export
path (C inference, C training step, TFLite) holds every kernel.
"""
import numpy as np

from .base import LayerKind
from .spec import LayerSpec, pad4, size


def valid_taps(s):
    """Kernel positions a conv layer visits per sample: out_c * sum over outputs of in-bounds taps."""
    def axis(n_out, n_in, k, pad):
        return sum(sum(1 for j in range(k) if 0 <= o + j - pad < n_in) for o in range(n_out))
    return (axis(s.out_shape[0], s.in_shape[0], s.kh, s.pad_h) * axis(s.out_shape[1], s.in_shape[1], s.kw, s.pad_w)
            * s.out_shape[2])


# The C training runtime's column path on a DSP core (FX_CONV_DSP in fx_train_passes.h): a filter's
# taps fill at most one column of three words, and the filters go in pairs.
DSP_COLUMN_TAPS = 12


def takes_dsp_column(s):
    """Whether conv layer ``s`` takes the C training runtime's DSP column path, where the core has one."""
    return s.fan_in <= DSP_COLUMN_TAPS and s.out_shape[2] % 2 == 0


class Conv(LayerKind):
    name, code, syntax = "conv", 1, "conv:FILTERS:K[:same|:valid]"
    one_d, syntax_1d = "conv1d", "conv1d:FILTERS:K[:same|:valid]"
    c_snippets = ("conv_defs", "conv_call", "conv_packed_call", "conv_rounded_call", "conv_nonsquare_defs",
                  "conv_nonsquare_call", "conv_nonsquare_packed_call", "conv_nonsquare_rounded_call")

    def parse(self, tok, args, shape):
        if len(args) not in (2, 3):
            return None
        f, (kh, kw) = self.int_field(tok, args[0]), self.window_field(tok, args[1])
        return self._spec(tok, f, kh, kw, args[2:], shape, f"kernel {args[1]}")

    def parse_1d(self, tok, args, shape):
        """``conv1d:F:K[:mode]``: the conv of kernel 1 x K on a height-1 window."""
        if len(args) not in (2, 3):
            return None
        self.check_1d(tok, shape)
        f, k = self.int_field(tok, args[0]), self.int_field(tok, args[1])
        return self._spec(tok, f, 1, k, args[2:], shape, f"kernel {k}")

    def _spec(self, tok, f, kh, kw, mode, shape, kernel):
        mode = mode[0] if mode else "valid"
        if mode not in ("same", "valid") or (mode == "same" and (kh % 2 == 0 or kw % 2 == 0)):
            self.refuse(tok, "padding must be 'valid' or 'same' (same needs an odd kernel)")
        if shape[0] == 1 and shape[1] == 1:
            self.refuse(tok, "conv needs image input (h, w, c); the data here is flat. "
                        "Use dense layers, or NPZ data with X of shape [n, h, w, c]")
        pad_h, pad_w = (kh // 2, kw // 2) if mode == "same" else (0, 0)
        oh, ow = shape[0] + 2 * pad_h - kh + 1, shape[1] + 2 * pad_w - kw + 1
        if oh <= 0 or ow <= 0:
            self.refuse(tok, f"{kernel} is larger than the {shape[0]}x{shape[1]} input")
        return LayerSpec(self.code, shape, (oh, ow, f), kh=kh, kw=kw, pad_h=pad_h, pad_w=pad_w)

    def token(self, s):
        f, mode = s.out_shape[2], "same" if s.pad_h or s.pad_w else "valid"
        if s.kh == s.kw:
            return f"conv:{f}:{s.kh}:{mode}"  # as before non-square kernels: run folders and digests keep it
        if s.kh == 1 and s.in_shape[0] == 1:
            return f"conv1d:{f}:{s.kw}:{mode}"
        return f"conv:{f}:{s.kh}x{s.kw}:{mode}"

    def n_weights(self, s):
        return s.out_shape[2] * s.kh * s.kw * s.in_shape[2]

    def fan_out(self, s):
        return s.out_shape[2] * s.kh * s.kw

    def weight_shape(self, s):
        return (s.out_shape[2], s.kh, s.kw, s.in_shape[2])

    def engine_scratch(self, s, batch):
        kk, pos = s.kh * s.kw * s.in_shape[2], batch * s.positions
        wide = batch * size(s.out_shape)
        return {"words": (kk + 1) // 2 * pos, "wide": wide, "cols": kk * pos}

    def sram_scratch(self, need, l, s, batch, sub_byte, grad_chunk):
        f, oc = s.fan_in, s.out_shape[2]
        # up to 12 taps: columns 12 bytes apart, and per filter 7 words (bias term, SXTB16 pairs)
        need("opa", s.out_shape[1] * (12 if f <= 12 else pad4(f)))
        need("opb", pad4(oc) if oc % 4 and l else 0)
        need("rows", max(oc * pad4(f) if sub_byte else 0, f * pad4(oc) if l else 0, 28 * oc if f <= 12 else 0))
        need("grad", oc * f)
        return f * grad_chunk, oc * grad_chunk

    def work(self, s, b, dsp=None):
        taps, c_in = valid_taps(s) * b, s.in_shape[2]
        rest = taps * (c_in - 1)  # a tap's first channel is in its own price, the others are MACs
        own = {"macs": taps * c_in, "forward": {"conv_tap": taps, "mac": rest},
               "backward": {"back_tap": taps, "back_mac": rest}, "gradient": {"grad_tap": taps, "grad_mac": rest}}
        if dsp is not None and dsp.weights and takes_dsp_column(s):
            own.update(forward={"dsp_tap": taps, "dsp_mac": rest}, outputs=("dsp_scan", "dsp_act"))
        return own

    def train_row(self, s):
        return dict(kh=s.kh, kw=s.kw, pad_h=s.pad_h, pad_w=s.pad_w, fan_in=s.fan_in)

    def deploy_params(self, s):
        d = dict(kernel=s.kh, pad=s.pad_h, pool=0)
        return d if s.square else dict(d, kernel_w=s.kw, pad_w=s.pad_w)  # a square spec keeps its old keys

    def deploy_geometry(self, i, spec, in_shape, w):
        """(in_shape, out_shape, the DeployLayer's kernel and pad fields); ``kernel_w``/``pad_w`` default to square."""
        kh, ph = int(spec.get("kernel", 0)), int(spec.get("pad", 0))
        kw, pw = int(spec.get("kernel_w", kh)), int(spec.get("pad_w", ph))
        self.check_spatial(i, in_shape)
        if w.ndim != 4 or w.shape[1] != kh or w.shape[2] != kw or w.shape[3] != in_shape[2]:
            raise self.deploy_error(i, f"conv weights {w.shape} do not match a {kh}x{kw} kernel and input {in_shape}")
        for k, pad in ((kh, ph), (kw, pw)):
            if pad not in (0, k // 2) or (pad and k % 2 == 0):
                raise self.deploy_error(i, f"pad must be 0 (valid) or k//2 with odd k (same), got {pad}")
        if in_shape[0] + 2 * ph < kh or in_shape[1] + 2 * pw < kw:
            raise self.deploy_error(i, f"kernel {kh}x{kw} does not fit input {in_shape}")
        out = (in_shape[0] + 2 * ph - kh + 1, in_shape[1] + 2 * pw - kw + 1, int(w.shape[0]))
        geo = dict(kernel=kh, pad=ph, pool=0)
        return in_shape, out, geo if (kh, ph) == (kw, pw) else dict(geo, kernel_w=kw, pad_w=pw)

    def reference(self, layer, x):
        """Sum of x*w per output, without bias: int64 ``[N, oh, ow, out]``."""
        n, (kh, kw), (ph, pw) = x.shape[0], layer.kernel_hw, layer.pad_hw
        w = layer.weights.astype(np.int64)
        xp = np.pad(x.astype(np.int64), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))  # [N,oh,ow,c,kh,kw]
        oh, ow, c = win.shape[1], win.shape[2], win.shape[3]
        # weights [o][ky][kx][c] -> [o][c][ky][kx] to match the window's axis order
        cols = win.reshape(n * oh * ow, c * kh * kw)
        acc = cols @ w.transpose(0, 3, 1, 2).reshape(w.shape[0], -1).T
        return acc.reshape(n, oh, ow, w.shape[0])

    def c_defs(self, L):
        (kh, kw), (ph, pw) = L.kernel_hw, L.pad_hw
        return dict(in_h=L.in_shape[0], in_w=L.in_shape[1], in_c=L.in_shape[2], out_h=L.out_shape[0],
                    out_w=L.out_shape[1], out_c=L.out_shape[2], k=kh, pad=ph, kh=kh, kw=kw, pad_h=ph, pad_w=pw)

    def cmsis_buffer_bytes(self, L):
        kh, kw = L.kernel_hw
        # arm_convolve_HWC_q7_basic(_nonsquare)'s im2col, two columns as q15
        return 4 * L.in_shape[2] * kh * kw

    def tflite(self, g, i, L, x):
        w, b = g.params(i, L, x)
        y = g.out(i, L, (1, *L.out_shape))
        # stride 1 written explicitly: the schema's default is 0 and flatbuffers drops defaults
        g.op("CONV_2D", [x, w, b], [y], {0: ("int8", g.padding(L.pad or L.pad_hw[1])), 1: ("int32", 1), 2: ("int32", 1),
                                         3: ("int8", g.activation(L.relu))})
        return y

    def onnx_weights(self, w, chw=None):
        """ONNX's (O, I, kH, kW) weights as fxtrain's [out][ky][kx][in]."""
        return w.transpose(0, 2, 3, 1)

    def export_refusal(self, s, path):
        return None  # every export path holds it (inference, train-step, tflite)


KIND = Conv()
