"""``fxtrain measure``: count the instructions the exported training step executes, phase by phase.

The run is exported with its training runtime (:mod:`fxtrain.firmware.train_export`),
``train_main.c`` is linked for the target with the profile's cflags at ``-O2``
(``verify``'s flags, plus ``-g``, which leaves the code unchanged and tells where the
step was inlined), and the ELF runs under Unicorn for K steps (:mod:`emulate`). Every executed
instruction is counted by class (:mod:`classify`) and by phase: ``forward``,
``loss``, ``backward``, ``update``, ``shuffle`` (once per epoch) and ``step`` (the
step's own code: copying the batch in, the loop over layers). libgcc's helpers
count against the phase that called them. The profile's ``[instruction_cycles]``
turn the counts into *measured-instruction cycles*: not silicon, but the code that
really runs. The final state after K steps must equal the simulator's.
"""
import tempfile
from pathlib import Path

from ..device.profiles import check_instruction_cycles, load_target
from ..device.work import PHASES, STEP_PHASES
from ..errors import ConfigError, MissingExtraError, TargetError, ToolchainError
from .classify import disassembler, price
from .elfimage import HARNESS, assign_phases, inlined_ranges, load_image
from .tally import PARTS, Tally, by_phase, tally

OPT_LEVEL = "-O2"  # verify's CROSS_FLAGS: the level every Cortex-M build of fxtrain uses
DEFAULT_STEPS = 4
PIP = "pip install 'fxtrain[measure]'"


def require_extras():
    """Import unicorn, capstone and pyelftools, or raise MissingExtraError with the pip command."""
    missing = []
    for module in ("unicorn", "capstone", "elftools"):
        try:
            __import__(module)
        except ImportError:
            missing.append({"elftools": "pyelftools"}.get(module, module))
    if missing:
        raise MissingExtraError(f"measuring needs {', '.join(missing)}: {PIP}")


def measurable(target):
    """The profile, if its core can run under Unicorn and it prices instructions; else TargetError."""
    from .emulate import core_of
    t = target if hasattr(target, "cflags") else load_target(target)
    core_of(t)
    if not t.instruction_cycles:
        raise TargetError(f"{t.name} has no [instruction_cycles] table, so its instructions cannot be priced")
    return check_instruction_cycles(t)


def roots(prefix):
    """{function name: phase}: the runtime's phase functions and the step functions around them."""
    return {"fx_forward": "forward", "fx_loss": "loss", "fx_backward": "backward", "fx_update": "update",
            "fx_shuffle": "shuffle", "fx_epoch_begin": "shuffle", f"{prefix}_train_epoch_begin": "shuffle",
            "fx_step": "step", "fx_epoch_step": "step", f"{prefix}_train_step": "step",
            f"{prefix}_train_epoch_step": "step", f"{prefix}_train_epoch": "step"}


def run_program(elf, target, root_names, unit, per_instruction=False):
    """Run a linked ELF under Unicorn with its phases assigned; (trace, image, disassembler)."""
    from .emulate import run_elf
    md = disassembler()
    image = load_image(elf)
    assign_phases(image, md, root_names, inlined_ranges(elf, set(root_names) | set(PARTS), unit), PARTS)
    return run_elf(image, target, per_instruction), image, md


def build_training(run_dir, target, steps, folder, run=None):
    """Export ``run_dir``'s training runtime into ``folder`` and link it for ``target``; (ELF path, Run)."""
    from ..firmware.train_export import export_training
    from ..firmware.train_verify import cross_build
    summary = export_training(run_dir, folder, "fx", run=run)
    bc = summary["run"].cfg.method == "bc"
    elf = cross_build(Path(folder), "fx", steps, bc, target, Path(folder) / "train.elf", extra=("-g",))
    return elf, summary["run"]


def measure_steps(run_dir, target, steps=DEFAULT_STEPS, per_instruction=False):
    """Run ``steps`` training steps of the run in ``run_dir`` on ``target``'s core under Unicorn.

    Returns a dict: ``tallies`` ({phase or part: Tally}), ``trace``, ``image`` and ``md``
    (the ELF and the disassembler that classified it), ``divergence`` (None when the
    final state and every step's checksums equal the simulator's), ``run`` (the
    :class:`Run` as exported), ``epochs_begun``, ``steps_per_epoch`` and ``steps``.
    """
    from ..firmware.train_export import load_training_run
    from ..firmware.train_verify import compare, parse, simulate
    t = measurable(target)
    require_extras()
    with tempfile.TemporaryDirectory(prefix="fxtrain-measure-") as tmp:
        run = load_training_run(run_dir)
        elf, run = build_training(run_dir, t, steps, tmp, run)
        trace, image, md = run_program(elf, t, roots("fx"), "train_main.c", per_instruction)
    expected = simulate(load_training_run(run_dir), steps)
    per_epoch = len(run.data.y_train) // run.cfg.batch
    return {"tallies": tally(trace, image, md), "trace": trace, "image": image, "md": md, "run": run, "steps": steps,
            "divergence": compare(expected, parse(trace.stdout)), "epochs_begun": -(-steps // per_epoch),
            "steps_per_epoch": per_epoch, "target": t}


def _phase_row(t, table, per):
    """One phase's measured numbers per step (per epoch for the shuffle)."""
    return {"instructions": t.instructions / per, "cycles": t.cycles(table) / per,
            "instructions_total": t.instructions,
            "soft_float_instructions": t.helper_instructions("soft-float") / per,
            "integer_helper_instructions": t.helper_instructions("integer") / per,
            "helper_calls": {h: n / per for h, n in sorted(t.calls.items())},
            "helper_cycles": {h: price(c, table) / per for h, c in sorted(t.helpers.items())},
            "classes": {c: n / per for c, n in sorted(t.classes.items()) if n}}


def estimate(report, target=None):
    """``report`` with the cost model's estimate, and estimate / measured, per phase and per step.

    The estimate comes from the profile as it is now (``target``: a Target, or the
    report's own target by name), so a cached measurement can be held to a recalibrated model.
    """
    from ..device.fit import fit_for
    t = target or load_target(report["target"])
    shape = (tuple(report["input_shape"]), report["n_classes"], report["n_train"])
    fit = fit_for(report["arch"], report["method"], report["bits"], report["batch"], shape, t,
                  report["momentum"], report["lr"], train_layers=report.get("train_layers"))
    est, phases = fit.phase_cycles, report["phases"]
    for p in PHASES:
        phases[p]["estimate"] = est[p]
        phases[p]["ratio"] = est[p] / phases[p]["cycles"] if phases[p]["cycles"] else None
    total = report["per_step"]
    total["estimate"] = sum(est[p] for p in STEP_PHASES) + est["shuffle"] / report["steps_per_epoch"]
    total["ratio"] = total["estimate"] / total["cycles"]
    report["est_seconds_per_epoch"] = fit.seconds_per_epoch
    return report


def summarise(m):
    """The report of :func:`measure_steps`' result ``m``: per phase, per part and per step, with the estimate."""
    t, run, k = m["target"], m["run"], m["steps"]
    table, cfg, per_epoch = dict(t.instruction_cycles), run.cfg, m["steps_per_epoch"]
    merged = by_phase(m["tallies"])
    phases = {p: _phase_row(merged.get(p) or Tally(), table, m["epochs_begun"] if p == "shuffle" else k)
              for p in PHASES}
    total = {key: sum(phases[p][key] for p in STEP_PHASES) + phases["shuffle"][key] / per_epoch
             for key in ("instructions", "cycles")}
    parts = {name: _phase_row(tl, table, m["epochs_begun"] if name == "shuffle" else k)
             for name, tl in sorted(m["tallies"].items()) if name != HARNESS}
    report = {"target": t.name, "core": t.core, "clock_hz": t.clock_hz, "cflags": list(t.cflags), "opt": OPT_LEVEL,
              "arch": run.arch, "method": cfg.method, "bits": cfg.bits, "batch": cfg.batch, "lr": cfg.lr,
              "momentum": run.mom_j > 0, "input_shape": list(run.data.input_shape),
              "n_classes": run.data.n_classes, "n_train": len(run.data.y_train), "epoch": run.state.epoch,
              "steps": k, "steps_per_epoch": per_epoch, "phases": phases, "parts": parts, "per_step": total,
              "seconds_per_epoch": total["cycles"] * per_epoch / t.clock_hz, "divergence": m["divergence"],
              "harness_instructions": (m["tallies"].get(HARNESS) or Tally()).instructions,
              **({"train_layers": cfg.train_layers} if run.low else {})}  # fine-tuning: the layers that train
    return estimate(report, t)


def measure(run_dir, target, steps=DEFAULT_STEPS):
    """Measure ``steps`` training steps of the run in ``run_dir`` on ``target`` (see :func:`summarise`)."""
    if steps < 1:
        raise ConfigError(f"--steps must be a positive number of training steps, got {steps}")
    return summarise(measure_steps(run_dir, target, steps))


# A harness for inference: every test vector through PREFIX_predict, called from a function of its own.
PREDICT_MAIN = """#include <stdio.h>
#define {P}_MODEL_IMPLEMENTATION
#include "{prefix}_model.h"
#include "{prefix}_vectors.h"

static uint8_t scratch[{P}_SCRATCH_SIZE];
static int8_t out[{P}_N_OUT];

__attribute__((noinline)) fx_status fx_measure_predict(const int8_t *x)
{{
    return {prefix}_predict(x, out, scratch);
}}

int main(void)
{{
    unsigned long n, j, bad = 0;
    for (n = 0; n < {P}_N_VECTORS; n++) {{
        bad += fx_measure_predict({prefix}_vec_x[n]) != FX_OK;
        for (j = 0; j < {P}_N_OUT; j++) {{
            bad += out[j] != {prefix}_vec_out[n][j];
        }}
    }}
    printf("DONE %lu\\n", bad);
    return 0;
}}
"""


def measure_inference(export_dir, target):
    """Instructions and measured-instruction cycles of one ``PREFIX_predict`` on ``target``'s core.

    Runs every test vector of an inference export under Unicorn (built like the
    training step: the profile's cflags, -O2) and requires every output byte to equal
    the exported vectors'. Returns {"instructions", "cycles", "vectors", "opt"} per inference.
    """
    from .._files import data_dir
    from ..firmware.verify import CROSS_FLAGS, _compile, _export_prefix, read_vectors, require_tool
    t = measurable(target)
    require_extras()
    folder = Path(export_dir).resolve()
    prefix, n = _export_prefix(folder), len(read_vectors(folder)[2])
    fw = data_dir("firmware_export")
    with tempfile.TemporaryDirectory(prefix="fxtrain-measure-") as tmp:
        src, elf = Path(tmp) / "measure_predict.c", Path(tmp) / "predict.elf"
        src.write_text(PREDICT_MAIN.format(prefix=prefix, P=prefix.upper()))
        _compile([require_tool("arm-none-eabi-gcc"), *t.cflags, *CROSS_FLAGS, "-g", "-T", str(fw / "mps2.ld"),
                  f"-I{folder}", str(fw / "startup_cm.c"), str(src), "-o", str(elf)], "arm-none-eabi-gcc")
        trace, image, md = run_program(elf, t, {"fx_measure_predict": "predict"}, "measure_predict.c")
    if trace.stdout.split() != ["DONE", "0"]:
        raise ToolchainError(f"the exported model's outputs under Unicorn on {t.name} differ from its vectors")
    got = by_phase(tally(trace, image, md)).get("predict") or Tally()
    return {"instructions": got.instructions / n, "cycles": got.cycles(dict(t.instruction_cycles)) / n,
            "vectors": n, "opt": OPT_LEVEL, "target": t.name, "clock_hz": t.clock_hz}
