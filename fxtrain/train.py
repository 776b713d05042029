"""Training runs: configuration, state, the epoch loop, checkpoints and resume.

The jitted work happens in :mod:`fxtrain.epoch`; this module owns the Python
side: it checks settings, allocates every buffer once, and saves state
atomically after each epoch so ``--resume`` continues bit for bit.
"""
from dataclasses import asdict, dataclass, field
from fractions import Fraction
import json
from pathlib import Path

import numpy as np

from . import __version__
from .epoch import epoch_float, epoch_int, predict_float, predict_int
from .errors import ConfigError
from .fixedpoint import WEIGHT_BITS, new_rng, qmax
from .methods import FLOAT, METHODS
from .model import arch_string, build_desc, init_float_weights, init_weights, parse_arch
from .store import write_json_atomic, write_npz_atomic

LR_MANTISSA_BITS = 16
# alpha / batch keeps this many significant bits when batch is not a power of two.
STEP_MANTISSA_BITS = 24
CHECKPOINT = "checkpoint.npz"
CHECKPOINT_META = "checkpoint.json"


def parse_lr(text):
    """Exact ``(m, k)`` with ``lr = m * 2**-k`` and ``m`` below 2**16, or a ConfigError.

    The decimal text is read exactly, so 0.1 is refused (it has no finite binary form)
    and the message suggests the nearest values that are representable.
    """
    try:
        q = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"learning rate '{text}' is not a number; try 0.0625 (= 2^-4)") from None
    if q <= 0:
        raise ConfigError(f"learning rate must be positive, got {text}")
    den = q.denominator
    if den & (den - 1) == 0 and q.numerator < 2**LR_MANTISSA_BITS:
        return q.numerator, den.bit_length() - 1
    k = max(0, LR_MANTISSA_BITS - 1 - int(q).bit_length())
    lo = Fraction(int(q * 2**k), 2**k)
    near = [v for v in (lo, lo + Fraction(1, 2**k)) if v > 0]
    hint = " or ".join(f"{float(v):.10g}" for v in near)
    raise ConfigError(f"learning rate {text} is not m*2^-k with a 16-bit integer m, so an integer "
                      f"device cannot use it exactly; nearest usable: {hint} (or a power of two like 0.0625)")


def parse_momentum(text):
    """``j`` with momentum ``beta = 1 - 2**-j`` (0 = off), read exactly; else a ConfigError.

    An integer device applies beta as ``v - (v >> j)``, so only these values are exact.
    """
    try:
        q = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"momentum '{text}' is not a number; try 0.875 (= 1 - 2^-3)") from None
    if q == 0:
        return 0
    rest = 1 - q
    if 0 < rest < 1 and rest.numerator == 1 and rest.denominator & (rest.denominator - 1) == 0 \
            and rest.denominator <= 2**15:
        return rest.denominator.bit_length() - 1
    raise ConfigError(f"momentum {text} is not 1 - 2^-j (j = 1..15); use 0 (off), 0.5, 0.75, 0.875, "
                      "0.9375 or 0.96875")


def step_fixed(m, k, batch):
    """``alpha / batch`` as ``(m', k')``: exact for a power-of-two batch, else 24 bits."""
    if batch & (batch - 1) == 0:
        return m, k + batch.bit_length() - 1
    extra = STEP_MANTISSA_BITS - m.bit_length() + batch.bit_length()
    return (m * 2**extra + batch // 2) // batch, k + extra


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's trajectory (``epochs`` only decides where it stops)."""
    arch: str = None
    method: str = "sr"
    bits: int = 8
    epochs: int = 30
    batch: int = 16
    lr: str = "0.0625"
    seed: int = 0
    data: str = "digits"
    momentum: str = "0"

    def check(self):
        if self.method not in METHODS:
            raise ConfigError(f"method '{self.method}' is unknown; choose one of {', '.join(METHODS)}")
        if self.bits not in WEIGHT_BITS:
            raise ConfigError(f"bits must be one of {', '.join(map(str, WEIGHT_BITS))}, got {self.bits}")
        for name in ("epochs", "batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        parse_lr(self.lr)
        parse_momentum(self.momentum)
        return self


@dataclass
class TrainState:
    """What training changes. ``sr`` and ``r`` hold no float array: ``shadow`` is bc's,
    and ``mom`` (momentum velocity) is int16 for sr/r, float32 for bc and float."""
    wq: np.ndarray = None
    bq: np.ndarray = None
    e_w: np.ndarray = None
    e_b: np.ndarray = None
    shadow: np.ndarray = None
    wf: np.ndarray = None
    bf: np.ndarray = None
    rng: np.ndarray = None
    mom: np.ndarray = None
    epoch: int = 0
    history: list = field(default_factory=list)

    def arrays(self):
        return {k: v for k, v in asdict(self).items() if isinstance(v, np.ndarray)}


class Workspace:
    """Every buffer an epoch needs, allocated once for the batch and the layout."""

    def __init__(self, layers, batch, n_train, n_features, bits, is_float):
        widest = max([n_features] + [int(np.prod(s.out_shape)) for s in layers]
                     + [int(np.prod(s.in_shape)) for s in layers])
        act_t = np.float32 if is_float else np.int8
        self.acts = np.zeros((len(layers) + 1, batch * widest), dtype=act_t)
        self.err = np.zeros((2, batch * widest), dtype=act_t)
        self.acc = np.zeros(batch * widest, dtype=np.int64 if bits > 8 else np.int32)
        self.e_act = np.zeros(len(layers) + 1, dtype=np.int64)
        self.grad = np.zeros(max(s.n_weights for s in layers), dtype=np.float32 if is_float else np.int32)
        self.gbias = np.zeros(max(s.n_bias for s in layers), dtype=self.grad.dtype)
        self.probs = np.zeros(layers[-1].out_shape[2], dtype=np.int64)
        self.perm = np.zeros(n_train, dtype=np.int64)
        self.yb = np.zeros(batch, dtype=np.int64)


class Run:
    """A configured training run over one data set; call :meth:`step_epoch` repeatedly."""

    def __init__(self, cfg, data, state=None):
        self.cfg, self.data = cfg.check(), data
        self.layers = parse_arch(cfg.arch, data.input_shape, data.n_classes)
        if cfg.batch > len(data.y_train):
            raise ConfigError(f"batch {cfg.batch} is larger than the {len(data.y_train)} training samples")
        self.method = METHODS[cfg.method]
        self.desc = build_desc(self.layers)
        self.m, self.k = step_fixed(*parse_lr(cfg.lr), cfg.batch)
        self.mom_j = parse_momentum(cfg.momentum)
        self.X = np.ascontiguousarray(data.X_train.reshape(len(data.y_train), -1))
        self.ws = Workspace(self.layers, cfg.batch, len(data.y_train), self.X.shape[1],
                            cfg.bits, self.method == FLOAT)
        self.state = state if state is not None else self._init_state()

    @property
    def arch(self):
        return arch_string(self.layers)

    @property
    def n_weights(self):
        return sum(s.n_weights for s in self.layers)

    def _init_state(self):
        rng = new_rng(self.cfg.seed)
        mom_t = np.int16 if self.cfg.method in ("sr", "r") else np.float32
        mom = np.zeros(self.n_weights, dtype=mom_t) if self.mom_j else None
        if self.method == FLOAT:
            wf, bf = init_float_weights(self.layers, rng)
            return TrainState(wf=wf, bf=bf, rng=rng, mom=mom)
        wq, bq, e_w, e_b = init_weights(self.layers, self.cfg.bits, rng)
        st = TrainState(wq=wq, bq=bq, e_w=e_w, e_b=e_b, rng=rng, mom=mom)
        if self.cfg.method == "bc":
            st.shadow = self._dequantized_weights(st).astype(np.float32)
        return st

    def _dequantized_weights(self, st):
        scale = np.concatenate([np.full(s.n_weights, 2.0 ** st.e_w[i]) for i, s in enumerate(self.layers)])
        return st.wq.astype(np.float64) * scale

    def _weights_snapshot(self):
        return (self.state.wf if self.method == FLOAT else self.state.wq).copy()

    def step_epoch(self):
        """Train one epoch; append and return its record (loss, accuracies, changed fraction)."""
        st, ws, before = self.state, self.ws, self._weights_snapshot()
        if self.method == FLOAT:
            step = np.float32(self.m * 2.0 ** -self.k)
            loss, _, nb = epoch_float(self.desc, st.wf, st.bf, self._float_X(self.X), self.data.y_train,
                                      st.rng, step, self.cfg.batch, ws.acts, ws.err, ws.grad, ws.gbias,
                                      ws.perm, ws.yb, _or_empty(st.mom, np.float32),
                                      np.float32(1.0 - 2.0 ** -self.mom_j))
        else:
            loss, _, nb = epoch_int(self.desc, st.wq, st.bq, _or_empty(st.shadow, np.float32), st.e_w, st.e_b,
                                    self.X, self.data.e_x, self.data.y_train, st.rng, self.method,
                                    self.cfg.bits, qmax(self.cfg.bits), self.m, self.k, self.cfg.batch,
                                    ws.acts, ws.e_act, ws.acc, ws.err, ws.grad, ws.gbias, ws.probs, ws.perm,
                                    ws.yb, _or_empty(st.mom, np.int16), _or_empty(st.mom, np.float32),
                                    self.mom_j)
        st.epoch += 1
        changed = np.count_nonzero(self._weights_snapshot() != before) / max(before.size, 1)
        record = {"epoch": st.epoch, "loss": float(loss / max(nb * self.cfg.batch, 1)),
                  "train_accuracy": self.accuracy(self.data.X_train, self.data.y_train),
                  "test_accuracy": self.accuracy(self.data.X_test, self.data.y_test),
                  "changed_fraction": float(changed)}
        st.history.append(record)
        return record

    def _float_X(self, Xq):
        return (Xq.reshape(len(Xq), -1).astype(np.float32) * np.float32(2.0 ** self.data.e_x))

    def predict(self, Xq):
        """Classes (int64 [n]) in training-mode arithmetic, evaluated ``batch`` samples at a time."""
        out = np.zeros(len(Xq), dtype=np.int64)
        X2 = np.ascontiguousarray(Xq.reshape(len(Xq), -1))
        ws, st = self.ws, self.state
        if self.method == FLOAT:
            predict_float(self.desc, st.wf, st.bf, self._float_X(X2), self.cfg.batch, ws.acts, out)
        else:
            predict_int(self.desc, st.wq, st.bq, st.e_w, st.e_b, X2, self.data.e_x, self.cfg.batch,
                        ws.acts, ws.e_act, ws.acc, out)
        return out

    def accuracy(self, Xq, y):
        return float(np.mean(self.predict(Xq) == y))

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, out_dir):
        """State arrays, then the metadata that names them: each file atomically."""
        out_dir = Path(out_dir)
        write_npz_atomic(out_dir / CHECKPOINT, self.state.arrays())
        meta = {"config": asdict(self.cfg), "arch": self.arch, "epoch": self.state.epoch,
                "history": self.state.history, "fxtrain_version": __version__}
        write_json_atomic(out_dir / CHECKPOINT_META, meta)

    @classmethod
    def resume(cls, ckpt_dir, cfg, data):
        """Continue the run saved in ``ckpt_dir``; every setting but ``epochs`` must match."""
        ckpt_dir = Path(ckpt_dir)
        meta_p, arr_p = ckpt_dir / CHECKPOINT_META, ckpt_dir / CHECKPOINT
        if not (meta_p.is_file() and arr_p.is_file()):
            raise ConfigError(f"--resume {ckpt_dir}: not a checkpoint folder (expected {CHECKPOINT_META} "
                              f"and {CHECKPOINT} written by 'fxtrain train --out')")
        try:
            meta = json.loads(meta_p.read_text())
            with np.load(arr_p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            saved = TrainConfig(**meta["config"])
        except Exception as exc:
            raise ConfigError(f"--resume {ckpt_dir}: checkpoint is unreadable ({exc})") from None
        diff = [f"{k}={getattr(saved, k)!r} (now {getattr(cfg, k)!r})" for k in asdict(cfg)
                if k != "epochs" and getattr(saved, k) != getattr(cfg, k)]
        if diff:
            raise ConfigError(f"--resume {ckpt_dir}: made with other settings: {', '.join(diff)}")
        try:
            state = TrainState(**arrays, epoch=int(meta["epoch"]), history=list(meta["history"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise ConfigError(f"--resume {ckpt_dir}: checkpoint does not match this fxtrain version ({exc})") from None
        return cls(cfg, data, state)


def _or_empty(arr, dtype):
    """``arr`` if it has ``dtype``, else a zero-length placeholder of that dtype.

    One compiled epoch serves every method; a method without a buffer gets an
    empty one (so the sr state still holds no float data).
    """
    return arr if arr is not None and arr.dtype == dtype else np.zeros(0, dtype)
