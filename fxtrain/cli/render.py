"""Text rendering of results: aligned tables (tabulate), CSV and JSON. No computation here."""
import csv
import io
import json
from pathlib import Path

from tabulate import tabulate

COMPARE_COLUMNS = [("method", "method"), ("bits", "bits"), ("weight_bytes", "weights B"),
                   ("shadow_bytes", "shadow B"), ("other_bytes", "act+other B"), ("total_bytes", "total B"),
                   ("sram_percent", "% SRAM"), ("sram_saved_bytes", "saved B"), ("flash_bytes", "flash B"),
                   ("fits", "fits"),
                   ("float_ops_per_step", "float ops/step"), ("est_seconds_per_epoch", "est s/epoch"),
                   ("test_accuracy", "test acc")]


def history_table(history):
    rows = [[h["epoch"], h["loss"], h["train_accuracy"], h["test_accuracy"], h["changed_fraction"]]
            for h in history]
    return tabulate(rows, headers=["epoch", "loss", "train acc", "test acc", "changed"],
                    floatfmt=("d", ".4f", ".4f", ".4f", ".3f"), tablefmt="simple")


def saturation_text(history, plan=None):
    """Values saturated by design (int8 errors, int16 momentum, ...), per tensor: the last epoch and
    the whole run; and the sums that needed int64. Empty when nothing saturated or widened."""
    totals = {}
    for h in history:
        for name, n in h.get("saturations", {}).items():
            totals[name] = totals.get(name, 0) + n
    lines = []
    if totals:
        last = history[-1].get("saturations", {})
        rows = [[name, last.get(name, 0), n] for name, n in sorted(totals.items())]
        lines += ["Saturated by design (values clipped to their range):",
                  tabulate(rows, headers=["tensor", "last epoch", "all epochs"], tablefmt="simple", intfmt=",")]
    if plan is not None and plan.describe():
        lines += ["Sums beyond int32 (accumulated in int64, counted in the cost):", *plan.describe()]
    return "\n".join(lines)


def memory_table(fit):
    """Buffers with bytes and share of the usable SRAM, then the totals."""
    usable = fit.target.usable_sram_bytes
    rows = [[fit.cost.labels[name], n, f"{100.0 * n / usable:.1f}%"] for name, n in fit.cost.buffers.items()]
    rows.append(["total", fit.cost.total_bytes, f"{100.0 * fit.cost.total_bytes / usable:.1f}%"])
    return tabulate(rows, headers=["buffer", "bytes", f"of {usable:,} usable"], tablefmt="simple",
                    intfmt=",", colalign=("left", "right", "right"))


def compute_table(fit, measured=None):
    """Operations, cycles and seconds per epoch; with ``measured`` (a measure report), its numbers too."""
    c = fit.compute_report()
    rows = [["int MACs / epoch", f"{c['int_macs_per_epoch']:,}"],
            *([["int64 MACs / epoch", f"{c['wide_macs_per_epoch']:,}"]] if c["wide_macs_per_epoch"] else []),
            *([["32x32->64 multiplies / epoch", f"{c['wide_muls_per_epoch']:,}"]] if c["wide_muls_per_epoch"] else []),
            ["other int ops / epoch", f"{c['int_ops_per_epoch']:,}"],
            ["float ops / epoch", f"{c['float_ops_per_epoch']:,}"],
            ["cycles / epoch", f"{c['cycles_per_epoch']:,.0f}"],
            ["est. seconds / epoch", f"{c['est_seconds_per_epoch']:.3f}"],
            *([["measured cycles / step", f"{measured['per_step']['cycles']:,.0f}"],
               ["measured seconds / epoch", f"{measured['seconds_per_epoch']:.3f}"]] if measured else []),
            ["budget seconds / epoch", f"{c['budget_seconds']:.1f}"]]
    table = tabulate(rows, tablefmt="simple", colalign=("left", "right"), disable_numparse=True)
    if fit.cost.frozen_layers:
        table += ("\nThe frozen layers' weights are read from flash; the cost model has no flash wait states, "
                  "so it prices those reads as if from SRAM.")
    return table


def simulate_text(res):
    """The whole ``fxtrain simulate`` report: fit, history, accuracy, memory and compute."""
    fit, t, report, cfg, m = res.fit, res.fit.target, res.report, res.run.cfg, res.measured
    dep = res.deployed_test_accuracy
    secs = (f"measured {m['seconds_per_epoch']:.3f} s per epoch ({m['steps']} steps under Unicorn, {m['opt']}; "
            f"est. {fit.seconds_per_epoch:.3f})" if m else f"est. {fit.seconds_per_epoch:.3f} s per epoch")
    lines = [f"{t.name}: {t.description}",
             f"fits: {fit.cost.total_bytes:,} of {t.usable_sram_bytes:,} usable SRAM bytes "
             f"({fit.sram_percent:.1f}% of {t.sram_bytes:,}), {secs} (budget {t.budget_seconds_per_epoch:g} s)",
             *([res.measured_note] if res.measured_note else []),
             history_table(res.history), "",
             *([saturation_text(res.history, res.run.acc_plan), ""]
               if saturation_text(res.history, res.run.acc_plan) else []),
             f"test accuracy {report['test_accuracy']:.4f} (training arithmetic)"
             + (f", {dep:.4f} deployed (static shifts, as exported)" if dep is not None else ""), "",
             f"Memory on {t.name} ({cfg.method}, {cfg.bits}-bit, batch {cfg.batch}):", memory_table(fit),
             *([f"The last {cfg.train_layers} weight layer(s) train: {fit.cost.sram_saved_bytes:,} bytes of SRAM "
                f"saved against training all ({fit.cost.full_bytes:,} bytes); the frozen weights are const, in "
                "flash."] if fit.cost.frozen_layers else []), "",
             f"Compute on {t.name} ({t.clock_hz / 1e6:g} MHz, fpu {t.fpu}):", compute_table(fit, m), "",
             f"fits: {str(fit.sram_fits and fit.time_fits).lower()}"
             + (f"; wrote {res.out}/report.json" if res.out else "")]
    return "\n".join(lines)


def _input_note(report):
    """A line on inputs saturated by a scale inherited from other data (--init), or nothing."""
    n = report.get("input_saturations")
    return [f"inputs: {n} values beyond the input scale {report['input_scale']:g} of the run this one started "
            "from saturated at +-127"] if n else []


BATCH_NOTE_SHARE = 0.05  # said when an epoch leaves out this share of the samples or more (digits: 14 of 1,438 is not)


def _batch_note(cfg, n_train):
    """A line on the training samples each epoch leaves out when the batch does not divide them, when they are
    a noticeable share (a small data set such as basicmotions: 8 of 40 at batch 16), or nothing."""
    left = n_train % cfg.batch
    return [f"batch {cfg.batch} leaves {left} of the {n_train} training samples out of each epoch (the last "
            f"{left} of that epoch's shuffle); a batch that divides {n_train} uses them all"] if left >= BATCH_NOTE_SHARE * n_train else []


def train_text(res):
    cfg, report = res.run.cfg, res.report
    sat = saturation_text(res.history, res.run.acc_plan)
    return "\n".join([history_table(res.history), *([sat] if sat else []), *_input_note(report),
                      *_batch_note(cfg, len(res.run.data.y_train)),
                      f"{cfg.method} {cfg.bits}-bit {report['arch']}: test accuracy {report['test_accuracy']:.4f}, "
                      f"{report['n_weights']} weights"
                      + (f"; wrote {res.out}/model.npz and report.json" if res.out else "")])


def import_text(res):
    """What ``fxtrain import`` prints: the float check, the accuracies before training, where it wrote."""
    cfg, report = res.run.cfg, res.report
    deployed = report.get("deployed_test_accuracy")
    lines = [f"imported {report['arch']} ({report['n_weights']} weights)",
             f"float check against the ONNX reference evaluator: max |diff| {res.float_check_max_diff:.2e}",
             f"test accuracy before training: float {res.float_test_accuracy:.4f}, "
             f"{cfg.method} {cfg.bits}-bit {res.test_accuracy:.4f}"
             + (f", deployed {deployed:.4f}" if deployed is not None else "")]
    if res.clipped_biases:
        lines.append(f"{res.clipped_biases} biases saturated to int32")
    lines.append(f"wrote {res.out}: continue with fxtrain train --resume {res.out} --arch '{report['arch']}' "
                 f"--method {cfg.method} --bits {cfg.bits} --batch {cfg.batch} --lr {cfg.lr} --seed {cfg.seed} "
                 f"--data {cfg.data} --epochs N")
    return "\n".join(lines)


def targets_table(targets):
    rows = [[t.name, t.core, f"{t.clock_hz / 1e6:g}", t.sram_bytes // 1024, t.flash_bytes // 1024, t.fpu,
             t.qemu_machine or "-"] for t in targets]
    return tabulate(rows, headers=["name", "core", "MHz", "SRAM KiB", "flash KiB", "fpu", "qemu"],
                    tablefmt="simple")


def target_table(t):
    rows = [[k, getattr(t, k)] for k in ("name", "description", "core", "isa", "clock_hz", "sram_bytes",
                                         "reserved_sram_bytes", "flash_bytes", "fpu",
                                         "budget_seconds_per_epoch", "qemu_machine")]
    rows += [["cflags", " ".join(t.cflags) or "-"]]
    rows += [[f"cycles.{k}", v] for k, v in vars(t.cycles).items()]
    rows += [[f"instruction_cycles.{k}", v] for k, v in t.instruction_cycles]
    rows += [[f"unit_cycles.{k}", v] for k, v in t.unit_cycles]
    rows += [[f"source.{k}", v] for k, v in t.source]
    return tabulate(rows, tablefmt="simple", colalign=("left", "left"), maxcolwidths=[None, 88],
                    disable_numparse=True)


def _csv(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().rstrip("\n")


def compare_text(res, fmt):
    """A CompareResult as ``table``, ``csv`` or ``json`` text."""
    if fmt == "json":
        return json.dumps({"target": res.target.name, "arch": res.arch, "batch": res.batch, "rows": res.rows,
                           "widths": res.widths}, indent=2)
    if fmt == "csv":
        return _csv(res.rows) + "\n\n" + _csv(res.widths)
    cols = [c for c in COMPARE_COLUMNS if c[0] in res.rows[0]]
    body = [[r[k] if k != "fits" else str(r[k]).lower() for k, _ in cols] for r in res.rows]
    fmts = tuple({"sram_percent": ".2f", "est_seconds_per_epoch": ".4f", "test_accuracy": ".4f"}.get(k, "g")
                 for k, _ in cols)
    t = res.target
    widths = [[w["bits"], w["sr_width"], w["bc_width"], f"{w['sr_over_bc']:.2f}" if w["sr_over_bc"] else "-"]
              for w in res.widths]
    out = [f"{t.name}: {t.usable_sram_bytes:,} usable SRAM bytes, fpu {t.fpu}, arch {res.arch}",
           tabulate(body, headers=[h for _, h in cols], floatfmt=fmts, intfmt=",", tablefmt="simple"), "",
           "Largest hidden width that fits (SRAM and time budget):",
           tabulate(widths, headers=["bits", "sr width", "bc width", "sr / bc"], tablefmt="simple",
                    disable_numparse=True, colalign=("right", "right", "right", "right"))]
    return "\n".join(out) + (f"\n\nwrote {res.plot}" if res.plot else "")


def _tflite_export_rows(res):
    return [["files", ", ".join(Path(f).name for f in res.files)],
            ["content hash", res.hash],
            ["model.tflite", f"{res.flash_bytes:,} bytes (int8 tensors, power-of-two scales)"],
            ["tensor arena", f"{res.arena_bytes:,} bytes (measured by tflite-micro on this host)"],
            ["rounding", f"{res.rounding} (TensorFlow Lite Micro's own)"],
            ["test vectors", res.n_vectors],
            ["test accuracy", f"{res.deployed_test_accuracy:.4f} deployed (as TFLM runs it) vs "
                              f"{res.test_accuracy:.4f} in training"]]


def export_text(res, run_dir):
    if res.train_files and res.n_vectors == 0 and res.hash == "-":
        return (f"exported the training runtime of {run_dir} to {res.out} (its weights are wider than the 8 bits "
                "the inference export holds)\nfiles: " + ", ".join(Path(f).name for f in res.train_files))
    if res.to == "tflite":
        rows = _tflite_export_rows(res)
        return f"exported {run_dir} to {res.out}\n" + tabulate(rows, tablefmt="simple", disable_numparse=True)
    saved = res.flash_bytes_unpacked - res.flash_bytes
    flash = f"{res.flash_bytes:,} bytes" + (
        f" (packed; {saved:,} fewer than int8's {res.flash_bytes_unpacked:,})" if res.packed else
        f" (--pack would make it {res.flash_bytes_packed:,})")
    rows = [["files", ", ".join(Path(f).name for f in res.files)],
            ["content hash", res.hash],
            ["weights + biases in flash", flash],
            ["scratch buffer", f"{res.scratch_bytes:,} bytes"],
            ["rounding", res.rounding],
            ["test vectors", res.n_vectors],
            ["test accuracy", f"{res.deployed_test_accuracy:.4f} deployed (static shifts) vs "
                              f"{res.test_accuracy:.4f} in training"]]
    if res.inference:
        i = res.inference
        rows.append(["cycles per inference",
                     f"{i['cycles']:,.0f} measured-instruction cycles ({i['instructions']:,.0f} instructions; "
                     f"{1e6 * i['cycles'] / i['clock_hz']:,.1f} us at {i['clock_hz'] / 1e6:g} MHz) on {i['target']}, "
                     f"{i['opt']}"])
    elif res.inference_note:
        rows.append(["cycles per inference", res.inference_note])
    if res.train_files:
        shared = {Path(f).name for f in res.files}
        rows.append(["training runtime", ", ".join(Path(f).name for f in res.train_files
                                                   if Path(f).name not in shared)])
    return f"exported {run_dir} to {res.out}\n" + tabulate(rows, tablefmt="simple", disable_numparse=True)


def verify_text(res):
    rows = []
    for where, r in res.results:
        ok = r["n_mismatch"] == 0 and r.get("complete", True)
        rows.append([where, r["n_vectors"], r["n_mismatch"], "bit-exact" if ok else "MISMATCH", f"{r['seconds']:.2f}"])
    lines = [tabulate(rows, headers=["where", "vectors", "mismatches", "result", "seconds"], tablefmt="simple")]
    for where, r in res.results:
        if "n_bytes" in r:  # tflite-micro: every output byte compared
            acc = f"; TFLM's test accuracy {r['accuracy']:.4f}" if "accuracy" in r else ""
            lines.append(f"{where}: {r['n_diff_bytes']:,} of {r['n_bytes']:,} output bytes differ{acc}")
    if res.image:
        q = res.results[-1][1]
        lines.append(f"{res.target.name} image: text {q['text']:,}, data {q['data']:,}, bss {q['bss']:,} bytes -> "
                     f"{image_text(res.image)}; QEMU ran {q['qemu_seconds']:.2f} s")
        lines += image_verdict(res.target, res.image)
    return "\n".join(lines)


def image_text(image):
    """Flash and static RAM of a linked image against the profile's."""
    return (f"flash {image['flash']:,} of {image['flash_limit']:,}, static RAM {image['ram']:,} of "
            f"{image['ram_limit']:,} usable ({image['sram_bytes']:,} in all)")


def image_verdict(t, image):
    """No line when the image fits; else one line naming what does not fit on ``t`` (verify then exits 1)."""
    over = [f"{what} by {image[key] - image[key + '_limit']:,} bytes" for what, key in (("flash", "flash"),
            ("static RAM", "ram")) if image[key] > image[key + "_limit"]]
    return [f"DOES NOT FIT {t.name}: the image exceeds its {' and its '.join(over)}"] if over else []


def verify_train_text(res, dump=None):
    """``fxtrain verify --train-step``: per place, bit-exact or the first divergence; then memory."""
    rows = [[where, res.steps, "bit-exact" if diff is None else "DIVERGED", f"{secs:.2f}"]
            for where, diff, secs in res.results]
    lines = [tabulate(rows, headers=["where", "steps", "state after every step", "seconds"], tablefmt="simple")]
    lines += [f"{where}: {diff}" for where, diff, _ in res.results if diff is not None]
    if res.note:
        lines.append(res.note)
    if res.memory:
        t = res.target
        mem = [[label, pred, got, "yes" if eq else "NO"] for _, label, pred, eq, got in res.memory]
        total = sum(m[2] or 0 for m in res.memory)
        mem.append(["total", sum(m[2] or 0 for m in res.memory if m[2] is not None), total, ""])
        lines += ["", f"Training buffers in the {t.name} ELF against the accounting:",
                  tabulate(mem, headers=["buffer", "accounting B", "ELF B", "equal"], tablefmt="simple", intfmt=",")]
        sec = res.sections
        lines.append(f"{t.name} image: text {sec.get('.text', 0):,}, rodata {sec.get('.rodata', 0):,}, "
                     f"data {sec.get('.data', 0):,}, bss {sec.get('.bss', 0):,} bytes -> {image_text(res.image)} "
                     "(beyond the buffers: the harness, its training set and the C library)")
        lines += image_verdict(t, res.image)
    if dump:
        lines.append(f"wrote the device's final state to {dump}")
    return "\n".join(lines)


def _phase_rows(report):
    rows = []
    for name, p in report["phases"].items():
        label = name + (" (per epoch)" if name == "shuffle" else "")
        rows.append([label, f"{p['instructions']:,.0f}", f"{p['cycles']:,.0f}", f"{p['estimate']:,.0f}",
                     f"{p['ratio']:.2f}" if p["ratio"] else "-", f"{p['soft_float_instructions']:,.0f}",
                     f"{p['integer_helper_instructions']:,.0f}"])
    s = report["per_step"]
    rows.append(["per step (shuffle shared)", f"{s['instructions']:,.0f}", f"{s['cycles']:,.0f}",
                 f"{s['estimate']:,.0f}", f"{s['ratio']:.2f}", "", ""])
    return rows


def measure_text(res, fmt="table"):
    """``fxtrain measure``: per phase, measured instructions and cycles against the estimate."""
    r = res.report
    if fmt == "json":
        return json.dumps(r, indent=2)
    head = ["phase", "instructions", "cycles", "estimate", "est/meas", "soft-float instr", "int-helper instr"]
    state = ("the state after every step equals the simulator's" if r["divergence"] is None
             else f"DIVERGED from the simulator: {r['divergence']}")
    return "\n".join([
        f"{r['method']} {r['bits']}-bit {r['arch']} (epoch {r['epoch']}, batch {r['batch']}) on {r['target']} "
        f"({r['core']}): {r['steps']} steps under Unicorn, {' '.join(r['cflags'])} {r['opt']}",
        tabulate(_phase_rows(r), headers=head, tablefmt="simple", disable_numparse=True,
                 colalign=("left",) + ("right",) * 6),
        f"seconds per epoch at {r['clock_hz'] / 1e6:g} MHz ({r['steps_per_epoch']} steps): "
        f"{r['seconds_per_epoch']:.3f} measured, {r['est_seconds_per_epoch']:.3f} estimated",
        "cycles are measured-instruction cycles (executed instructions x the profile's instruction_cycles), "
        "not silicon; " + state])
