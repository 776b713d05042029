"""Float32 baselines for the engine benchmark: plain NumPy (im2col for conv) and PyTorch CPU.

Both train the layer list fxtrain parses (``fxtrain.engine.network.parse_arch``) with summed
softmax-cross-entropy gradients and SGD at ``lr / batch``, the update fxtrain's float
method makes, over a fresh shuffle each epoch and the last partial batch dropped.
Inputs are the int8 digits times 2**e_x, as fxtrain's float method sees them.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fxtrain.engine.network import CONV, DENSE, POOL

# ---------------------------------------------------------------- NumPy


class NumpyNet:
    """A float32 MLP/CNN in NumPy over HWC batches; conv is im2col + one matmul."""

    def __init__(self, layers, lr, batch, seed=0):
        rng = np.random.default_rng(seed)
        self.layers, self.batch = layers, batch
        self.step = np.float32(lr / batch)
        self.W, self.b = [], []
        for s in layers:
            fan = max(s.fan_in, 1)
            lim = np.sqrt(6.0 / fan)
            shape = (s.out_shape[2], s.kh, s.kw, s.in_shape[2]) if s.kind == CONV else (s.out_shape[2], fan)
            self.W.append(rng.uniform(-lim, lim, shape).astype(np.float32) if s.n_weights else None)
            self.b.append(np.zeros(s.out_shape[2], np.float32) if s.n_weights else None)

    def forward(self, x):
        """Returns the logits and the per-layer cache the backward pass needs."""
        cache = []
        for s, W, b in zip(self.layers, self.W, self.b):
            if s.kind == DENSE:
                x = x.reshape(len(x), -1)
                cache.append(x)
                x = x @ W.T + b
            elif s.kind == CONV:
                cols = _im2col(x, s.kh, s.kw, s.pad_h, s.pad_w)
                cache.append((cols, x.shape))
                x = (cols @ W.reshape(len(W), -1).T + b).reshape(len(x), *s.out_shape)
            else:
                idx, x = _pool_fwd(x, s.kh, s.kw)
                cache.append((idx, s.in_shape, s.kh, s.kw))
            if s.relu:
                x = np.maximum(x, np.float32(0))
            cache[-1] = (cache[-1], x if s.relu else None)
        return x, cache

    def train_step(self, x, y):
        z, cache = self.forward(x)
        z = z - z.max(axis=1, keepdims=True)
        ez = np.exp(z)
        p = ez / ez.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= np.float32(1)
        err = p
        for i in range(len(self.layers) - 1, -1, -1):
            s, (c, out) = self.layers[i], cache[i]
            if out is not None:
                err = err * (out > 0)
            if s.kind == POOL:
                err = _pool_bwd(err, *c)
                continue
            W = self.W[i]
            if s.kind == DENSE:
                e2 = err.reshape(len(err), -1)
                gW, below = e2.T @ c, (e2 @ W if i > 0 else None)
            else:
                cols, xshape = c
                e2 = err.reshape(-1, W.shape[0])
                gW = (e2.T @ cols).reshape(W.shape)
                below = _col2im(e2 @ W.reshape(len(W), -1), xshape, s.kh, s.kw, s.pad_h, s.pad_w) if i > 0 else None
            W -= self.step * gW
            self.b[i] -= self.step * e2.sum(axis=0)
            err = below

    def epoch(self, X, Y, rng):
        perm = rng.permutation(len(Y))
        for start in range(0, len(Y) - self.batch + 1, self.batch):
            idx = perm[start:start + self.batch]
            self.train_step(X[idx], Y[idx])

    def accuracy(self, X, Y):
        return float(np.mean(self.forward(X)[0].argmax(axis=1) == Y))


def _im2col(x, kh, kw, ph, pw):
    """[n, h, w, c] -> [n * oh * ow, kh * kw * c] patches in (ky, kx, c) order, as the weights."""
    x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))  # [n, oh, ow, c, kh, kw]
    n, oh, ow, c = win.shape[:4]
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(n * oh * ow, kh * kw * c)


def _col2im(dcols, xshape, kh, kw, ph, pw):
    """Adjoint of :func:`_im2col`: add each patch's gradient back onto the input grid."""
    n, h, w, c = xshape
    hp, wp = h + 2 * ph, w + 2 * pw
    oh, ow = hp - kh + 1, wp - kw + 1
    d = dcols.reshape(n, oh, ow, kh, kw, c)
    dx = np.zeros((n, hp, wp, c), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            dx[:, ky:ky + oh, kx:kx + ow, :] += d[:, :, :, ky, kx, :]
    return dx[:, ph:ph + h, pw:pw + w, :]


def _pool_windows(x, ph, pw):
    n, h, w, c = x.shape
    hp, wp = h // ph, w // pw
    return x[:, :hp * ph, :wp * pw].reshape(n, hp, ph, wp, pw, c).transpose(0, 1, 3, 5, 2, 4).reshape(
        n, hp, wp, c, ph * pw)


def _pool_fwd(x, ph, pw):
    win = _pool_windows(x, ph, pw)
    idx = win.argmax(axis=-1)  # first maximum, as fxtrain routes the error
    return idx, np.take_along_axis(win, idx[..., None], axis=-1)[..., 0]


def _pool_bwd(err, idx, in_shape, ph, pw):
    err = err.reshape(idx.shape)
    n, (hp, wp, c) = len(err), err.shape[1:]
    d = np.zeros((n, hp, wp, c, ph * pw), np.float32)
    np.put_along_axis(d, idx[..., None], err[..., None], axis=-1)
    d = d.reshape(n, hp, wp, c, ph, pw).transpose(0, 1, 4, 2, 5, 3).reshape(n, hp * ph, wp * pw, c)
    out = np.zeros((n, *in_shape), np.float32)
    out[:, :hp * ph, :wp * pw] = d
    return out


# ---------------------------------------------------------------- PyTorch


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class TorchNet:
    """The same net as an ``nn.Sequential`` (NCHW), trained with ``torch.optim.SGD`` on 1 thread."""

    def __init__(self, layers, lr, batch, seed=0):
        import torch
        from torch import nn
        torch.set_num_threads(1)
        torch.manual_seed(seed)
        mods, flat = [], False
        for s in layers:
            if s.kind == DENSE:
                if not flat:
                    mods.append(nn.Flatten())
                    flat = True
                mods.append(nn.Linear(s.fan_in, s.out_shape[2]))
            elif s.kind == CONV:
                mods.append(nn.Conv2d(s.in_shape[2], s.out_shape[2], (s.kh, s.kw), padding=(s.pad_h, s.pad_w)))
            else:
                mods.append(nn.MaxPool2d((s.kh, s.kw)))
            if s.relu:
                mods.append(nn.ReLU())
        self.torch, self.batch = torch, batch
        self.model = nn.Sequential(*mods)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.loss = nn.CrossEntropyLoss()

    def tensors(self, X, Y):
        """HWC float32 NumPy data -> NCHW (or flat) tensors, once, outside the timing."""
        Xt = X.transpose(0, 3, 1, 2) if X.ndim == 4 else X
        return self.torch.from_numpy(np.ascontiguousarray(Xt)), self.torch.from_numpy(Y.astype(np.int64))

    def epoch(self, Xt, Yt, gen):
        torch = self.torch
        perm = torch.randperm(len(Yt), generator=gen)
        for start in range(0, len(Yt) - self.batch + 1, self.batch):
            idx = perm[start:start + self.batch]
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(Xt[idx]), Yt[idx]).backward()
            self.opt.step()

    def accuracy(self, Xt, Yt):
        with self.torch.no_grad():
            return float((self.model(Xt).argmax(dim=1) == Yt).float().mean())
