"""``fxtrain verify --train-step``: the exported training runtime against the simulator, step by step.

The program ``train_main.c`` continues the run from the exported state and prints,
after every step, an FNV-1a checksum of each layer's weights and biases (and bc's
shadow, and the momentum) and of the generator state, then the whole final state.
The simulator continues the same run from the same checkpoint, batch by batch, and
computes the same checksums: the first step and tensor where they differ is named.
The Cortex-M build is also held to the accounting, buffer by buffer, through the
sizes of the buffer symbols in the linked ELF.
"""
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .._files import FolderLock, check_output, data_dir, write_npz_atomic
from ..device.fit import fit_for
from ..device.profiles import load_target
from ..device.simulate import data_shape
from ..engine.numbers import MASK32, fnv_words
from ..errors import ConfigError, ToolchainError
from ..limits import VERIFY_EPOCHS, VERIFY_STEPS, check_count
from ..training.artifacts import CHECKPOINT, HISTORY, MODEL_FILE, REPORT_FILE
from ..training.checkpoint import checkpoint_digest
from .train_export import DEFAULT_STEPS, load_training_run
from .codegen import MANIFEST
from .verify import CROSS_FLAGS, HOST_CFLAGS, _compile, _run, check_manifest, image_fit, require_tool

PROBE_STEPS = 8  # simulator steps timed for the estimate
COMPILE_SECONDS = 1.5  # building and running one program (gcc, or arm-none-eabi-gcc and QEMU), on the dev machine
BC_FLAGS = ("-ffp-contract=off", "-fno-fast-math")  # BinaryConnect's float update, exactly as numba
FINAL_TAGS = ("W", "B", "H", "M", "C")


def tensor_checksums(run):
    """{"w<l>", "b<l>", "h<l>", "m<l>", "r": checksum} of the run's state, as the harness prints them (a
    frozen layer, under ``run.low``, has no shadow or momentum on the device)."""
    st, out, w0, b0 = run.state, {}, 0, 0
    for l, s in enumerate(run.layers):
        if s.n_weights:
            w, b = slice(w0, w0 + s.n_weights), slice(b0, b0 + s.n_bias)
            out[f"w{l}"], out[f"b{l}"] = fnv_words(st.wq[w].tolist()), fnv_words(st.bq[b].tolist())
            if st.shadow is not None and l >= run.low:
                out[f"h{l}"] = fnv_words(st.shadow[w].view(np.uint32).tolist())
            if st.mom is not None and l >= run.low:
                mom = st.mom[w].view(np.uint32) if st.mom.dtype == np.float32 else st.mom[w]
                out[f"m{l}"] = fnv_words(mom.tolist())
        w0, b0 = w0 + s.n_weights, b0 + s.n_bias
    out["r"] = fnv_words([int(st.rng[0])])
    return out


def final_state(run):
    """{tag: int list} of the state the harness dumps at the end (values mod 2**32); shadow and momentum
    of the trained layers only, as the device holds them."""
    st, n_w = run.state, sum(s.n_weights for s in run.layers[:run.low])
    out = {"W": st.wq.tolist(), "B": st.bq.tolist(), "C": run.ws.counts.ravel().tolist(), "R": [int(st.rng[0])]}
    if st.shadow is not None:
        out["H"] = st.shadow[n_w:].view(np.uint32).tolist()
    if st.mom is not None:
        out["M"] = (st.mom[n_w:].view(np.uint32) if st.mom.dtype == np.float32 else st.mom[n_w:]).tolist()
    return {k: [v & MASK32 for v in vals] for k, vals in out.items()}


def simulate(run, steps, on_estimate=None, on_step=None):
    """The simulator's checksums after 0 .. steps steps, and its final state, continuing ``run``.

    ``on_estimate(seconds)`` is called once, after the first few steps, with the time all
    ``steps`` should take at their pace (the first step, which loads the kernels, not
    counted); ``on_step()`` after every step.
    """
    per_epoch = len(run.data.y_train) // run.cfg.batch
    rows = [tensor_checksums(run)]
    probe = min(steps, PROBE_STEPS)
    for t in range(steps):
        if t == 1:
            t1 = time.perf_counter()
        run.train_batches(t % per_epoch, t % per_epoch + 1)
        rows.append(tensor_checksums(run))
        if on_estimate and t == probe - 1 and probe > 1:
            on_estimate((time.perf_counter() - t1) / (probe - 1) * steps)
        if on_step:
            on_step()
    return rows, final_state(run)


def parse(stdout):
    """(checksum rows, final state dict, done) from the harness's output."""
    rows, final, done = [], {}, False
    for line in stdout.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "S":
            rows.append({k: int(v) for k, v in (p.split("=") for p in parts[2:])})
        elif parts[0] in FINAL_TAGS:
            final.setdefault(parts[0], []).extend(int(v) & MASK32 for v in parts[2:])
        elif parts[0] == "R":
            final["R"] = [int(parts[1]) & MASK32]
        elif parts[0] == "DONE":
            done = True
    return rows, final, done


NAMES = {"w": "weights", "b": "biases", "h": "shadow weights", "m": "momentum", "r": "generator state"}


def compare(expected, got):
    """None if the device equals the simulator, else one sentence naming the first divergence."""
    (exp_rows, exp_final), (got_rows, got_final, done) = expected, got
    for t, (e, g) in enumerate(zip(exp_rows, got_rows)):
        for key in e:
            if g.get(key) != e[key]:
                where = NAMES[key[0]] + (f" of layer {key[1:]}" if key != "r" else "")
                return f"step {t}: the {where} diverged (checksum {g.get(key)} on the device, {e[key]} simulated)"
    if len(got_rows) < len(exp_rows) or not done:
        return f"the program stopped after {max(len(got_rows) - 1, 0)} of {len(exp_rows) - 1} steps"
    for tag, values in exp_final.items():
        if got_final.get(tag) != values:
            i = next((i for i, (a, b) in enumerate(zip(values, got_final.get(tag, []))) if a != b), None)
            return f"final state: {tag} differs" + (f" at index {i}" if i is not None else " in length")
    return None


def _build(folder, prefix, steps, bc, cc, flags, extra_src=(), out="prog"):
    cmd = [cc, *flags, *(BC_FLAGS if bc else ()), f"-I{folder}", f"-D{prefix.upper()}_VERIFY_STEPS={steps}",
           *map(str, extra_src), str(folder / "train_main.c"), "-o", str(out)]
    if bc:
        cmd.append("-lm")
    _compile(cmd, Path(cc).name)
    return cmd


def run_host(folder, prefix, steps, bc, timeout=600):
    """Compile train_main.c with gcc, run it; (stdout, seconds)."""
    with tempfile.TemporaryDirectory(prefix="fxtrain-train-") as tmp:
        exe = Path(tmp) / "prog"
        _build(folder, prefix, steps, bc, require_tool("gcc"), HOST_CFLAGS, out=exe)
        proc, secs = _run([str(exe)], timeout, "the host training program")
    return proc.stdout, secs


def cross_build(folder, prefix, steps, bc, target, elf, extra=()):
    """Link train_main.c for a Cortex-M profile (``extra``: more compiler flags); returns the ELF path."""
    fw = data_dir("firmware_export")
    flags = [*target.cflags, *CROSS_FLAGS, *extra, "-T", str(fw / "mps2.ld")]
    _build(folder, prefix, steps, bc, require_tool("arm-none-eabi-gcc"), flags, (fw / "startup_cm.c",), elf)
    return elf


def elf_buffers(elf, prefix):
    """{buffer name: bytes} of the training buffer symbols (``PREFIX_buf_NAME``) in a linked ELF."""
    out = subprocess.run([require_tool("arm-none-eabi-nm"), "-S", "-t", "d", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    stem, found = f"{prefix}_buf_", {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith(stem):
            found[parts[3][len(stem):]] = int(parts[1])
    return found


def elf_sections(elf):
    """{".text", ".rodata", ".data", ".bss": bytes} of a linked ELF (arm-none-eabi-size -A)."""
    out = subprocess.run([require_tool("arm-none-eabi-size"), "-A", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in (".text", ".rodata", ".data", ".bss") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def run_qemu(elf, machine, timeout=900):
    qemu = require_tool("qemu-system-arm")
    cmd = [qemu, "-M", machine, "-nographic", "-monitor", "none", "-semihosting", "-kernel", str(elf)]
    proc, secs = _run(cmd, timeout, f"qemu-system-arm -M {machine}")
    if proc.returncode != 0 and not proc.stdout.strip():
        raise ToolchainError(f"qemu-system-arm -M {machine} failed: "
                             f"{(proc.stderr.strip().splitlines() or ['no output'])[0]}")
    return proc.stdout, secs


def verify_training(export_dir, steps=20, target=None, host_only=False, on_estimate=None, on_step=None):
    """Run the exported training step on the host (and a Cortex-M target) against the simulator.

    ``on_estimate(steps, seconds)`` hears, after the simulator's first steps, how long the whole
    check should take (each compiled program runs far faster than the simulator; its build is
    counted at COMPILE_SECONDS); ``on_step()`` follows each simulated step.

    Returns {"results": [(where, divergence or None, seconds)], "memory": rows or None,
    "sections": dict or None, "target": Target or None, "note": str or None, "ok": bool,
    "device_state": final state dict of the last place run}.
    """
    folder = Path(export_dir).resolve()
    manifest = check_manifest(folder)
    if manifest.get("kind") != "train-step":
        raise ToolchainError(f"{folder} is an inference export; export the run with --train-step to verify training")
    prefix, bc = manifest["prefix"], manifest["method"] == "bc"
    if not Path(manifest["run"]).is_dir():
        raise ToolchainError(f"the run folder {manifest['run']} this export was made from is gone; "
                             "verify needs it to simulate the steps: train and export the run again")
    if checkpoint_digest(manifest["run"]) != manifest.get("checkpoint_sha256"):
        raise ToolchainError(f"the run folder {manifest['run']} has changed since this export (its checkpoint "
                             "differs); export it again with --train-step")
    t = load_target(target) if target else None
    places = 1 + bool(t and not host_only and t.isa.startswith("ARM"))
    estimate = (lambda s: on_estimate(steps, s + places * COMPILE_SECONDS)) if on_estimate else None
    expected = simulate(load_training_run(manifest["run"]), steps, estimate, on_step)
    out, secs = run_host(folder, prefix, steps, bc)
    got = parse(out)
    results, state = [("host gcc", compare(expected, got), secs)], got[1]
    memory = sections = note = image = None
    if t and not host_only:
        if not t.isa.startswith("ARM"):
            note = f"{t.name} is {t.isa}, not a Cortex-M: only the host was checked"
        else:
            with tempfile.TemporaryDirectory(prefix="fxtrain-train-") as tmp:
                elf = cross_build(folder, prefix, steps, bc, t, Path(tmp) / "prog.elf")
                memory, sections = _memory_rows(manifest, t, elf_buffers(elf, prefix)), elf_sections(elf)
                image = image_fit(sum(sections.get(k, 0) for k in (".text", ".rodata", ".data")),
                                  sections.get(".data", 0) + sections.get(".bss", 0), t)
                if t.qemu_machine:
                    out, secs = run_qemu(elf, t.qemu_machine)
                    got = parse(out)
                    results.append((f"{t.name} (qemu {t.qemu_machine})", compare(expected, got), secs))
                    state = got[1]
                else:
                    note = f"no emulator exists for {t.name}: its ELF was measured, but only the host ran the steps"
    ok = all(r[1] is None for r in results) and (memory is None or all(r[3] for r in memory))
    return {"results": results, "memory": memory, "sections": sections, "image": image, "target": t, "note": note,
            "ok": ok and (image is None or image["fits"]), "device_state": state}


def steps_for(export_dir, steps=None, epochs=None):
    """Steps to run: ``steps``, or ``epochs`` whole epochs of the exported training set (default 20 steps)."""
    if steps is not None and epochs is not None:
        raise ConfigError("pass --steps or --epochs, not both")
    if epochs is None:
        return check_count("--steps", DEFAULT_STEPS if steps is None else steps, VERIFY_STEPS)
    check_count("--epochs", epochs, VERIFY_EPOCHS)
    manifest = check_manifest(export_dir)
    run = load_training_run(manifest["run"])
    steps = epochs * (len(run.data.y_train) // run.cfg.batch)
    if steps > VERIFY_STEPS:
        raise ConfigError(f"--epochs {epochs:,} is {steps:,} steps of this run, over the limit of {VERIFY_STEPS:,}; "
                          "pass fewer --epochs")
    return steps


DUMP_NAMES = {"W": "weights", "B": "biases", "H": "shadow_bits", "M": "momentum", "C": "counters", "R": "rng"}


# Files whose presence marks a folder fxtrain owns: a run, an export, a locked sweep or job folder.
OWNED_MARKERS = (CHECKPOINT, REPORT_FILE, HISTORY, MODEL_FILE, MANIFEST, FolderLock.NAME)


def check_dump(path, export_dir):
    """Refuse a ``--dump`` path that would replace what fxtrain owns: a file in a run folder (its checkpoint,
    report, history, lock) or in an export folder (its manifest and headers), or any input of the verify."""
    return check_output(path, "--dump file", inputs=[(Path(export_dir) / MANIFEST, "export manifest")],
                        owners=OWNED_MARKERS)


def dump_state(state, path):
    """Write the device's final state as an .npz, atomically: ``weights``, ``biases``, ``counters`` and
    ``momentum`` as signed int32 values, ``shadow_bits`` and ``rng`` as uint32 bit patterns."""
    arrays = {}
    for tag, vals in state.items():
        a = np.array(vals, dtype=np.uint32)
        arrays[DUMP_NAMES[tag]] = a if tag in ("H", "R") else a.view(np.int32)
    write_npz_atomic(path, arrays)


def _memory_rows(manifest, target, measured):
    """[(buffer, label, predicted bytes, equal?, measured bytes)] for every buffer either side names."""
    run = load_training_run(manifest["run"])
    cost = fit_for(run.arch, run.cfg.method, run.cfg.bits, run.cfg.batch, data_shape(run), target, run.mom_j > 0,
                   run.cfg.lr, train_layers=run.cfg.train_layers).cost
    names = list(cost.buffers) + [n for n in measured if n not in cost.buffers]
    return [(n, cost.labels.get(n, n), cost.buffers.get(n), cost.buffers.get(n) == measured.get(n), measured.get(n))
            for n in names]

