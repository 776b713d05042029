"""``fxtrain export --train-step``: a run's current state and the C training runtime that continues it.

Writes, from the templates in ``firmware_export/templates/`` (each file atomically):

- ``PREFIX_train.h``: the network table, the static buffers, the state in flash, the API;
- ``fx_train*.h`` (and ``fx_runtime.h``): the header-only training runtime, copied;
- ``PREFIX_train_data.h`` and ``train_main.c``: the training set and a program that
  continues the run, printing a checksum per step, for ``fxtrain verify --train-step``.

The state comes from the run's checkpoint (validated as ``--resume`` validates it), so
the device starts exactly where the simulator stopped.
"""
import json
from pathlib import Path

import numpy as np

from .._version import __version__
from .._files import data_dir, read_input
from ..device.memory import GRAD_CHUNK, acc_bytes, row_bytes, scratch_lengths, weight_bytes
from ..device.profiles import load_target
from ..engine.numbers import qmax, storage_bits
from ..errors import ConfigError, TargetError
from ..layers import check_export
from ..limits import RECORD_BYTES
from ..training.artifacts import REPORT_FILE, check_run_dir
from ..training.checkpoint import checkpoint_digest
from ..training.config import TrainConfig, parse_lr
from ..training.job import prepare
from .codegen import MANIFEST, assert_no_float, c_array, c_int, write_export
from .packing import pack_slots
from .templates import fill, render
from .train_frozen import activation_buffers, error_widest, frozen_arrays, frozen_counts, frozen_values

RUNTIME_FILES = ("fx_runtime.h", "fx_train_runtime.h", "fx_train_kernels.h", "fx_train_dot.h", "fx_train_passes.h",
                 "fx_train_update.h", "fx_train_bc.h")
METHOD_CODES = {"sr": 0, "r": 1, "bc": 2}
DEFAULT_STEPS = 20


def load_training_run(run_dir):
    """The :class:`Run` saved in ``run_dir`` (its checkpoint, checked), ready to continue."""
    run_dir = check_run_dir(run_dir)
    try:
        report = json.loads(read_input(run_dir / REPORT_FILE, "run report", RECORD_BYTES, ConfigError))
        cfg = TrainConfig(**report["config"])
    except FileNotFoundError:
        raise ConfigError(f"run folder '{run_dir}' holds no {REPORT_FILE}; pass the --out folder of "
                          "'fxtrain train'") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"run folder '{run_dir}': {REPORT_FILE} is unreadable; train again with --out") from None
    if report.get("fxtrain_version") != __version__:
        raise ConfigError(f"run folder '{run_dir}' was written by fxtrain {report.get('fxtrain_version')}, "
                          f"this is {__version__}; train it again with this version")
    if cfg.method == "float":
        raise ConfigError(f"run folder '{run_dir}' is a float run: the device's training step (export "
                          "--train-step, verify --train-step, measure) runs integer training (sr, r) or "
                          "BinaryConnect (bc) only; train with --method sr, r or bc")
    if cfg.optimizer == "adam":
        raise ConfigError(f"run folder '{run_dir}' trains with Adam, which the device's training step does not "
                          "have (its float moments are the simulator's only); train with --optimizer sgd or "
                          "momentum to export, verify or measure it")
    run = prepare(cfg, resume=run_dir)
    check_export(run.layers, "train-step")  # export --train-step, verify --train-step and measure come through here
    return run


# fx_layer (fx_train_runtime.h) field by field, in declaration order with its C type: the one list
# the table rows are written from (by name) and that tests/test_layer_kinds.py compiles against the
# struct (offsetof, sizeof).
FX_LAYER = (("kind", "uint8_t"), ("relu", "uint8_t"), ("kh", "uint8_t"), ("kw", "uint8_t"), ("pad_h", "uint8_t"),
            ("pad_w", "uint8_t"), ("in_h", "uint32_t"), ("in_w", "uint32_t"), ("in_c", "uint32_t"),
            ("out_h", "uint32_t"), ("out_w", "uint32_t"), ("out_c", "uint32_t"), ("n_in", "uint32_t"),
            ("n_out", "uint32_t"), ("n_w", "uint32_t"), ("fan_in", "uint32_t"), ("w_off", "uint32_t"),
            ("w_byte", "uint32_t"), ("row_bytes", "uint32_t"), ("b_off", "uint32_t"), ("e_w", "int32_t"),
            ("e_b", "int32_t"))
C_TYPE_BYTES = {"uint8_t": 1, "uint32_t": 4, "int32_t": 4}


def fx_layer_layout():
    """({field: byte offset}, sizeof) of fx_layer as a C compiler lays it out: each field on its own
    size (natural alignment, which gcc and arm-none-eabi-gcc both use), the struct padded to its widest."""
    offsets, at = {}, 0
    for name, ctype in FX_LAYER:
        n = C_TYPE_BYTES[ctype]
        at = -(-at // n) * n
        offsets[name], at = at, at + n
    widest = max(C_TYPE_BYTES[t] for _, t in FX_LAYER)
    return offsets, -(-at // widest) * widest


def _layer_row(s, i, run, w_off, w_byte, b_off):
    vals = dict(kind=s.layer_kind.code, relu=int(s.relu), **s.layer_kind.train_row(s),
                in_h=s.in_shape[0], in_w=s.in_shape[1], in_c=s.in_shape[2],
                out_h=s.out_shape[0], out_w=s.out_shape[1], out_c=s.out_shape[2],
                n_in=int(np.prod(s.in_shape)), n_out=int(np.prod(s.out_shape)), n_w=s.n_weights,
                w_off=w_off, w_byte=w_byte,
                row_bytes=row_bytes(s, run.cfg.bits), b_off=b_off, e_w=int(run.state.e_w[i]),
                e_b=int(run.state.e_b[i]))
    return "    {" + ", ".join(f".{f} = {vals[f]}" + ("u" if t.startswith("u") else "") for f, t in FX_LAYER) + "}"


def _layers(run):
    """The fx_layer table rows: each layer's first weight, its first byte (rows padded to words), first bias,
    counted from the start of the arrays that hold it (the frozen ones in flash, or the RAM buffers)."""
    rows, w_off, w_byte, b_off = [], 0, 0, 0
    for i, s in enumerate(run.layers):
        if i == run.low:  # the trained layers' arrays start here
            w_off, w_byte, b_off = 0, 0, 0
        rows.append(_layer_row(s, i, run, w_off, w_byte, b_off))
        w_off, b_off = w_off + s.n_weights, b_off + s.n_bias
        w_byte += s.out_shape[2] * row_bytes(s, run.cfg.bits) if s.n_weights else 0
    return ",\n".join(rows)


def _packed_weights(run, layers):
    """The weights of ``layers`` (a slice of the net's, from its start or from ``run.low``) as the runtime
    stores them: each row (output or filter) packed, then padded to words."""
    slot, out, off = storage_bits(run.cfg.bits), [], frozen_counts(run)[0] if layers.start else 0
    for s in run.layers[layers]:
        if s.n_weights:
            rb = row_bytes(s, run.cfg.bits)
            for o in range(s.out_shape[2]):
                row = pack_slots(run.state.wq[off + o * s.fan_in:off + (o + 1) * s.fan_in], slot)
                out.append(np.concatenate([row, np.zeros(rb - len(row), np.uint8)]))
        off += s.n_weights
    return np.concatenate(out) if out else np.zeros(0, np.uint8)


def _init_arrays(run, prefix):
    """The frozen layers' const arrays, then the trained layers' state that train_init copies into RAM."""
    st, (n_w, n_b) = run.state, frozen_counts(run)
    text = frozen_arrays(run, prefix, _packed_weights(run, slice(0, run.low)))
    text += c_array("uint8_t", f"{prefix}_init_weights", _packed_weights(run, slice(run.low, None)))
    text += c_array("int32_t", f"{prefix}_init_biases", st.bq[n_b:])
    if st.shadow is not None:
        text += c_array("uint32_t", f"{prefix}_init_shadow_bits", st.shadow[n_w:].view(np.uint32))
    if st.mom is not None:
        if st.mom.dtype == np.float32:
            text += c_array("uint32_t", f"{prefix}_init_momentum_bits", st.mom[n_w:].view(np.uint32))
        else:
            text += c_array("int16_t", f"{prefix}_init_momentum", st.mom[n_w:])
    return text


def _summary(run):
    cfg, st = run.cfg, run.state
    lines = [f"method: {cfg.method}   bits: {cfg.bits} ({storage_bits(cfg.bits)}-bit slots)   arch: {run.arch}",
             f"state after epoch {st.epoch}, seed {cfg.seed}, batch {cfg.batch}, learning rate "
             f"{'*2^-'.join(map(str, parse_lr(cfg.lr)))} (step {run.m}*2^-{run.k} per sample)",
             "accumulators: " + ", ".join(run.acc_plan.describe() or ["int32 for every sum"])]
    if run.low:
        lines.append(f"fine-tuning: the last {cfg.train_layers} weight layer(s) train; layers 0 .. {run.low - 1} are "
                     "frozen (forward only, their weights and biases const, in flash)")
    return "\n".join(f" * {ln}" for ln in lines)


def _values(run, prefix):
    cfg, st, plan = run.cfg, run.state, run.acc_plan
    n_train = len(run.data.y_train)
    slot = storage_bits(cfg.bits)
    widest = max([run.X.shape[1]] + [int(np.prod(s.in_shape)) for s in run.layers]
                 + [int(np.prod(s.out_shape)) for s in run.layers])
    act_buffers, acts = activation_buffers(run, prefix)
    bc = cfg.method == "bc"
    acc = acc_bytes(run.layers, cfg.batch, run.X.shape[1], plan)
    scratch = scratch_lengths(run.layers, cfg.bits, cfg.batch, acc)
    frozen = frozen_values(run, prefix)
    names = dict(prefix=prefix, P=prefix.upper(), ram_weights=frozen["ram_weights"])
    bc_buffers = (fill("train_bc.h.in", "shadow", **names) + (fill("train_bc.h.in", "momentum", **names)
                                                               if run.mom_j else "")) if bc else ""
    return dict(bc_buffers=bc_buffers, err_widest=error_widest(run), **frozen,
        prefix=prefix, P=prefix.upper(), summary=_summary(run), hash=f"{cfg.method}-{cfg.bits}-{st.epoch}",
        state_note=", shadow weights" if bc else "", build_note=(
            "\n * BinaryConnect's float update needs -std=c99 or -ffp-contract=off, never -ffast-math"
            " (see fx_train_bc.h), and libm (-lm) for floorf and ldexpf." if bc else ""),
        acc_wide=int(plan.acc_wide), grad_wide=int(plan.grad_wide), perm_wide=int(n_train > 65536),
        method=METHOD_CODES[cfg.method], is_bc=int(bc), slot=slot, bits=cfg.bits, momentum=int(run.mom_j > 0),
        batch=cfg.batch, n_layers=len(run.layers), n_features=run.X.shape[1], n_classes=run.data.n_classes,
        max_samples=n_train, n_weights=run.n_weights, n_biases=len(st.bq), input_exponent=c_int(run.data.e_x),
        epoch=st.epoch, widest=widest, weight_bytes=weight_bytes(run.layers[run.low:], cfg.bits) or 1,
        grad_chunk=GRAD_CHUNK, acc_bytes=acc, grad_len=scratch["grad"], opa_len=scratch["opa"],
        opb_len=scratch["opb"], rows_len=scratch["rows"], max_out_c=max(s.n_bias for s in run.layers),
        act_buffers=act_buffers, acts=acts, layers=_layers(run), init_arrays=_init_arrays(run, prefix),
        qmax=qmax(cfg.bits), k=run.k, mom_j=run.mom_j, m=f"{run.m}LL", rng=int(st.rng[0]))


def _data_header(run, prefix):
    X, y = run.X, run.data.y_train
    rows = ",\n".join("    {" + ", ".join(str(int(v)) for v in r) + "}" for r in X)
    labels = ",\n".join("    " + ", ".join(str(int(v)) for v in y[i:i + 32]) for i in range(0, len(y), 32))
    return render("train_data.h.in", prefix=prefix, P=prefix.upper(), n=len(y), n_features=X.shape[1],
                  rows=rows, labels=labels)


def _tensor_masks(run):
    """Per layer, which checksums the harness prints: bit 0 weights, 1 biases, 2 shadow, 3 momentum."""
    extra = (4 if run.cfg.method == "bc" else 0) | (8 if run.mom_j else 0)  # none under run.low: frozen
    return ", ".join(str(3 | (extra if l >= run.low else 0) if s.n_weights else 0) + "ul"
                     for l, s in enumerate(run.layers))


def check_fits(run, target):
    """Refuse a training export whose static buffers exceed the target's usable SRAM."""
    from ..device.simulate import data_shape
    from ..device.fit import fit_for
    t = load_target(target)
    fit = fit_for(run.arch, run.cfg.method, run.cfg.bits, run.cfg.batch, data_shape(run), t, run.mom_j > 0,
                  run.cfg.lr, train_layers=run.cfg.train_layers)
    if not fit.sram_fits:
        raise TargetError(f"the training buffers for batch {run.cfg.batch} need {fit.cost.total_bytes:,} bytes of "
                          f"SRAM but {t.name} has {t.usable_sram_bytes:,} usable; export a run with a smaller "
                          "--batch or a narrower --arch")
    return fit


def export_training(run_dir, out, prefix="fx", target=None, run=None):
    """Write the training runtime and the run's state into ``out``; returns a summary dict.

    Files an inference export already listed in ``out/export.json`` stay listed beside these.
    """
    run = run or load_training_run(run_dir)
    if target:
        check_fits(run, target)
    values = _values(run, prefix)
    texts = {f"{prefix}_train.h": render("train.h.in", **values),
             f"{prefix}_train_data.h": _data_header(run, prefix),
             "train_main.c": render("train_main.c.in", prefix=prefix, P=prefix.upper(), default_steps=DEFAULT_STEPS,
                                    tensor_masks=_tensor_masks(run), ram_weights=values["ram_weights"])}
    src = data_dir("firmware_export")
    texts.update({name: (src / name).read_text(encoding="utf-8") for name in RUNTIME_FILES})
    for name, text in texts.items():
        if name.endswith(".h") and name != "fx_train_bc.h" and (run.cfg.method != "bc" or name != f"{prefix}_train.h"):
            assert_no_float(text, name)  # only BinaryConnect's update may hold a float
    old = _inference_manifest(out)
    manifest = {**old, "fxtrain_version": __version__, "kind": "train-step", "prefix": prefix,
                "run": str(Path(run_dir).resolve()), "checkpoint_sha256": checkpoint_digest(run_dir),
                "method": run.cfg.method, "epoch": run.state.epoch}
    paths = write_export(out, {n: t.encode("utf-8") for n, t in texts.items()}, manifest, old.get("files"))
    return {"files": paths, "run": run, "weight_bytes": weight_bytes(run.layers[run.low:], run.cfg.bits)}


def _inference_manifest(out):
    """The manifest of the inference export just written into ``out`` (by the same ``export --train-step``), or {}."""
    try:
        return json.loads(read_input(Path(out) / MANIFEST, "export manifest", RECORD_BYTES, ConfigError))
    except (OSError, ValueError, ConfigError):
        return {}
