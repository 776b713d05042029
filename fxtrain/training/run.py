"""A configured training run: its state, its buffers, and one epoch at a time.

The jitted work happens in :mod:`fxtrain.engine.epoch`; this module owns the
Python side: it checks settings, allocates every buffer once and keeps the state
that checkpoints save.
"""
from dataclasses import asdict, dataclass, field

import numpy as np

from ..engine.adam import adam_state
from ..engine.bounds import plan_accumulators
from ..engine.epoch import FloatParams, IntParams, Net, Rule, output_values, predict, train_epoch, train_epoch_float
from ..engine.fixedpoint import new_rng
from ..engine.scratch import allocate, scratch_layout
from ..engine.network import arch_string, build_desc, init_float_weights, init_weights, parse_arch
from ..engine.numbers import qmax
from ..engine.requant import SAT_NAMES
from ..engine.updates import BC, FLOAT, SR, R
from ..errors import ConfigError
from .config import parse_lr, parse_momentum, step_fixed
from .host import check_host_memory
from .start import dequantized, start_arrays

METHOD_CODES = {"sr": SR, "r": R, "bc": BC, "float": FLOAT}


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
    history_hash: str = ""  # hash chain over the history lines (checkpoint.chain)
    fitted_grid: bool = False  # exponents fitted to float weights (training.start), not fixed by the arch

    def arrays(self):
        """The state's arrays by name (those that exist for this method)."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, np.ndarray)}


def _or_empty(arr, dtype):
    """``arr`` if it has ``dtype``, else a zero-length placeholder of that dtype."""
    return arr if arr is not None and arr.dtype == dtype else np.zeros(0, dtype)


def check_plan(cfg, data):
    """The layers of ``cfg``'s arch on ``data``, after every check a run makes before it allocates anything:
    what a sweep asks of each distinct arch and data set before its first cell runs."""
    layers = parse_arch(cfg.check().arch, data.input_shape, data.n_classes)
    if cfg.batch > len(data.y_train):
        raise ConfigError(f"batch {cfg.batch} is larger than the {len(data.y_train)} training samples")
    lowest_trained(layers, cfg.train_layers)
    return layers


def lowest_trained(layers, train_layers):
    """The index of the lowest layer that trains when the last ``train_layers`` weight layers do.

    0 when every layer trains (``None``, or as many as the net has), so a full run keeps the
    order of draws it always had; the layers under the returned index are frozen.
    """
    weighted = [i for i, s in enumerate(layers) if s.n_weights]
    if train_layers is None or train_layers == len(weighted):
        return 0
    if train_layers > len(weighted):
        raise ConfigError(f"train_layers (--train-layers) {train_layers} is more than the {len(weighted)} weight "
                          f"layers of {arch_string(layers)}; pass 1 to {len(weighted)}")
    return weighted[-train_layers]


class Run:
    """A configured training run over one data set; call :meth:`step_epoch` repeatedly.

    A fresh run draws its weights from the generator, or takes them from ``start``
    (:class:`fxtrain.training.start.Start`: an imported model, ``--init``)."""

    def __init__(self, cfg, data, state=None, start=None):
        self.cfg, self.data = cfg, data
        self.layers = check_plan(cfg, data)
        self.method = METHOD_CODES[cfg.method]
        self.desc = build_desc(self.layers)
        self.m, self.k = step_fixed(*parse_lr(cfg.lr), cfg.batch)
        self.mom_j = parse_momentum(cfg.momentum)
        self.adam = cfg.optimizer == "adam"
        self.low = lowest_trained(self.layers, cfg.train_layers)
        self.acc_plan = plan_accumulators(self.layers, cfg.bits, cfg.batch, self.m)
        self.X = np.ascontiguousarray(data.X_train.reshape(len(data.y_train), -1))
        layout = scratch_layout(self.layers, cfg.batch, len(data.y_train), self.X.shape[1], self.acc_plan,
                                  self.method == FLOAT)
        check_host_memory(layout, self.layers, cfg, self.X.shape)
        self.ws = allocate(layout)
        self.state = state if state is not None else self._init_state(start)

    @property
    def arch(self):
        return arch_string(self.layers)

    @property
    def n_weights(self):
        return sum(s.n_weights for s in self.layers)

    def set_lr(self, lr):
        """Apply a new learning rate from the next epoch on (a schedule's hook).

        ``lr`` is exact text, read like ``TrainConfig.lr`` (``m * 2**-k``); the report's
        ``lr`` stays the configured starting rate.
        """
        self.m, self.k = step_fixed(*parse_lr(lr), self.cfg.batch)

    def _init_state(self, start):
        rng = new_rng(self.cfg.seed)
        mom_t = np.int16 if self.cfg.method in ("sr", "r") else np.float32
        mom = adam_state(self.n_weights) if self.adam else \
            np.zeros(self.n_weights, dtype=mom_t) if self.mom_j else None
        if start is not None:  # no initialisation draws: the generator starts at the seed's state
            return TrainState(**start_arrays(self.layers, self.cfg, start), rng=rng, mom=mom,
                              fitted_grid=self.method != FLOAT)
        if self.method == FLOAT:
            wf, bf = init_float_weights(self.layers, rng)
            return TrainState(wf=wf, bf=bf, rng=rng, mom=mom)
        wq, bq, e_w, e_b = init_weights(self.layers, self.cfg.bits, rng)
        st = TrainState(wq=wq, bq=bq, e_w=e_w, e_b=e_b, rng=rng, mom=mom)
        if self.method == BC:
            st.shadow = self._dequantized_weights(st).astype(np.float32)
        return st

    def _dequantized_weights(self, st):
        return dequantized(self.layers, st.wq, st.e_w, lambda s: s.n_weights)

    def _net(self):
        st = self.state
        e = np.zeros(len(self.layers), np.int64)
        return Net(self.desc, e if st.e_w is None else st.e_w, e if st.e_b is None else st.e_b)

    def _params(self):
        st = self.state
        if self.method == FLOAT:
            return FloatParams(st.wf, st.bf, _or_empty(st.mom, np.float32), st.rng)
        mom_t = np.float32 if self.method == BC else np.int16
        return IntParams(st.wq, st.bq, _or_empty(st.shadow, np.float32), _or_empty(st.mom, mom_t), st.rng)

    def _weights_snapshot(self):
        return (self.state.wf if self.method == FLOAT else self.state.wq).copy()

    def _rule(self):
        return Rule(self.cfg.bits, qmax(self.cfg.bits), self.m, self.k, self.cfg.batch, self.mom_j, self.adam,
                    self.low)

    def step_epoch(self):
        """Train one epoch; append and return its record (loss, accuracies, changed fraction)."""
        st, before = self.state, self._weights_snapshot()
        if self.method == FLOAT:
            step, beta = np.float32(self.m * 2.0 ** -self.k), np.float32(1.0 - 2.0 ** -self.mom_j)
            loss, _ = train_epoch_float(self._net(), self._params(), self._float_X(self.X), self.data.y_train,
                                        step, beta, self.cfg.batch, self.ws, self.adam, self.low)
        else:
            rule = self._rule()
            loss, _ = train_epoch(self.method, self._net(), self._params(), self.X, self.data.e_x,
                                  self.data.y_train, rule, self.ws)
        st.epoch += 1
        changed = np.count_nonzero(self._weights_snapshot() != before) / max(before.size, 1)
        saturations = self.saturations()
        record = {"epoch": st.epoch, "loss": float(loss),
                  "train_accuracy": self.accuracy(self.data.X_train, self.data.y_train),
                  "test_accuracy": self.accuracy(self.data.X_test, self.data.y_test),
                  "changed_fraction": float(changed)}
        if saturations:
            record["saturations"] = saturations
        st.history.append(record)
        return record

    def train_batches(self, first, stop):
        """Train batches ``first .. stop - 1`` of the current epoch (the shuffle comes at batch 0),
        without evaluation or history: a device's ``fx_train_epoch_step``, for step-by-step checks."""
        rule = self._rule()
        train_epoch(self.method, self._net(), self._params(), self.X, self.data.e_x, self.data.y_train, rule,
                    self.ws, first, stop)

    def saturations(self):
        """{"layerL.tensor": count} of the values saturated by design in the last epoch (non-zero only)."""
        if self.method == FLOAT:
            return {}
        return {f"layer{l}.{SAT_NAMES[k]}": int(self.ws.counts[l, k])
                for l, k in zip(*np.nonzero(self.ws.counts))}

    def _float_X(self, Xq):
        return Xq.reshape(len(Xq), -1).astype(np.float32) * np.float32(2.0 ** self.data.e_x)

    def _evaluate(self, job, Xq):
        X2 = np.ascontiguousarray(Xq.reshape(len(Xq), -1))
        if self.method == FLOAT:
            X2 = self._float_X(X2)
        return job(self._net(), self._params(), X2, self.data.e_x, self.cfg.batch, self.ws)

    def predict(self, Xq):
        """Classes (int64 [n]) in training-mode arithmetic, evaluated ``batch`` samples at a time."""
        return self._evaluate(predict, Xq)

    def output_values(self, Xq):
        """The output layer's values (float64 [n, classes], before the softmax), evaluated as :meth:`predict`."""
        return self._evaluate(output_values, Xq)

    def accuracy(self, Xq, y):
        return float(np.mean(self.predict(Xq) == y))
