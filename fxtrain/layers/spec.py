"""One layer of a parsed network, whatever its kind.

Shapes are (h, w, c); a dense layer sees (1, 1, features). ``kind`` is the small int
code of the layer's kind (:mod:`fxtrain.layers`): the jitted engine and the C runtimes
dispatch on it, and everything else asks the kind itself through :attr:`LayerSpec.layer_kind`.
"""
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its kind's code, shapes, kernel or window ``kh x kw`` (rows x columns), zero padding
    ``pad_h`` rows above and below and ``pad_w`` columns left and right, and ReLU."""
    kind: int
    in_shape: tuple
    out_shape: tuple
    kh: int = 0
    kw: int = 0
    pad_h: int = 0
    pad_w: int = 0
    relu: bool = False

    @property
    def square(self):
        """The window is K x K with the same padding on every side (square kernels keep their old token text)."""
        return self.kh == self.kw and self.pad_h == self.pad_w

    @property
    def layer_kind(self):
        from . import by_code  # the registry imports this module
        return by_code(self.kind)

    @property
    def n_weights(self):
        return self.layer_kind.n_weights(self)

    @property
    def n_bias(self):
        return self.out_shape[2] if self.layer_kind.weighted else 0

    @property
    def fan_in(self):
        return self.n_weights // max(self.out_shape[2], 1)

    @property
    def positions(self):
        """Output positions per sample (1 for dense): how many times each weight is used per sample."""
        return self.out_shape[0] * self.out_shape[1]

    def token(self):
        return self.layer_kind.token(self)


def size(shape):
    return math.prod(int(d) for d in shape)


def pad4(n):
    """n rounded up to a whole number of 4-byte words: the runtimes keep every operand row on a word."""
    return -(-n // 4) * 4
