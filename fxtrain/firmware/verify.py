"""Compile an export, run it on the host and on an emulated Cortex-M, demand bit equality.

Both runs build ``main.c`` from :func:`fxtrain.firmware.codegen.export_model` in a temporary
folder (the export folder is only read), parse its ``V <idx> <cls> <out...>`` lines
and compare every output byte and class with ``PREFIX_vectors.h``. The QEMU run
links ``firmware_export/startup_cm.c`` and ``mps2.ld`` and prints via semihosting.
"""
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .._files import data_dir, read_input, read_text_input
from ..device.profiles import load_target
from ..errors import ConfigError, ToolchainError
from ..limits import ARRAY_BYTES, RECORD_BYTES
from .codegen import MANIFEST

HOST_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
# The cross build keeps the host's warnings: target-only ones (e.g. short enums) fail early.
CROSS_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "--specs=rdimon.specs", "-nostartfiles")
ARM_FIX = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
FIXES = {"gcc": "apt-get install gcc", "arm-none-eabi-gcc": ARM_FIX, "arm-none-eabi-size": ARM_FIX,
         "qemu-system-arm": ARM_FIX}
MAX_REPORTED = 5


def require_tool(name):
    """Absolute path of ``name`` on PATH, or ToolchainError naming the tool and the fix."""
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"{name} not found on PATH; install it with: {FIXES.get(name, ARM_FIX)}")
    return path


def _compile(cmd, tool):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "no output")
        raise ToolchainError(f"{tool} failed: {first.strip()}")


def check_manifest(export_dir):
    """Refuse an export whose files differ from what ``fxtrain export`` wrote (``export.json``)."""
    folder = Path(export_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; pass the --out folder of 'fxtrain export'")
    try:
        manifest = json.loads(read_input(folder / MANIFEST, "export manifest", RECORD_BYTES, ConfigError))
        files = manifest["files"]
    except FileNotFoundError:
        raise ConfigError(f"{folder} is not an fxtrain export (no {MANIFEST}); export the run again") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{folder}/{MANIFEST} is unreadable; export the run again") from None
    for name, digest in files.items():
        path = folder / name
        if not path.exists():
            raise ConfigError(f"{folder}: {name} is missing from the export; export the run again")
        if hashlib.sha256(read_input(path, "exported file", ARRAY_BYTES, ConfigError)).hexdigest() != digest:
            raise ConfigError(f"{folder}: {name} was changed after export (its sha256 differs from {MANIFEST}); "
                              "verify checks what fxtrain exported: export the run again")
    return manifest


def _export_prefix(export_dir):
    check_manifest(export_dir)
    found = sorted(Path(export_dir).glob("*_vectors.h"))
    if len(found) != 1 or not (Path(export_dir) / "main.c").is_file():
        raise ToolchainError(f"{export_dir} holds no exported model with test vectors and main.c; "
                             "export again with --vectors 32 (or any N >= 1)")
    return found[0].name[: -len("_vectors.h")]


def read_vectors(export_dir):
    """Test vectors back from ``PREFIX_vectors.h``.

    Returns
    -------
    X : int8 ``[N, input_size]``; out : int8 ``[N, n_out]``; cls : int64 ``[N]``.
    """
    prefix = _export_prefix(export_dir)
    text = read_text_input(Path(export_dir) / f"{prefix}_vectors.h", "exported file", ARRAY_BYTES, ConfigError)

    def array(name, dtype):
        m = re.search(rf"\b{prefix}_{name}((?:\[\d+\])+) = \{{(.*?)\}};", text, re.S)
        shape = [int(d) for d in re.findall(r"\d+", m.group(1))]
        return np.array([int(v) for v in re.findall(r"-?\d+", m.group(2))], dtype).reshape(shape)
    return array("vec_x", np.int8), array("vec_out", np.int8), array("vec_cls", np.int64)


def parse_output(text):
    """``({index: (cls, [out...])}, done_count or None)`` from the program's stdout."""
    lines, done = {}, None
    for ln in text.splitlines():
        parts = ln.split()
        if len(parts) >= 3 and parts[0] == "V":
            lines[int(parts[1])] = (int(parts[2]), [int(v) for v in parts[3:]])
        elif len(parts) == 2 and parts[0] == "DONE":
            done = int(parts[1])
    return lines, done


def compare_outputs(export_dir, stdout):
    """Compare the program's output with the exported vectors; a missing line is a mismatch."""
    _, out, cls = read_vectors(export_dir)
    got, done = parse_output(stdout)
    mismatches = []
    for i in range(len(cls)):
        g_cls, g_out = got.get(i, (None, None))
        if g_cls != int(cls[i]) or g_out != [int(v) for v in out[i]]:
            mismatches.append({"index": i, "expected_cls": int(cls[i]), "got_cls": g_cls,
                               "expected_out": out[i].tolist(), "got_out": g_out})
    return {"n_vectors": len(cls), "n_mismatch": len(mismatches), "mismatches": mismatches[:MAX_REPORTED],
            "c_reported_mismatch": done, "complete": done is not None}


def _run(cmd, timeout, what):
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"{what} did not finish within {timeout} s") from exc
    return proc, time.perf_counter() - t0


def verify_host(export_dir, cc="gcc", timeout=120):
    """Build ``main.c`` with the host C compiler, run it and compare with the vectors.

    Returns
    -------
    dict: ``n_vectors``, ``n_mismatch``, ``mismatches`` (first few), ``c_reported_mismatch``,
    ``complete``, ``returncode``, ``compile_command``, ``compile_seconds``, ``run_seconds``,
    ``seconds`` (total).

    Raises
    ------
    ToolchainError
        If the compiler is missing, the build fails or the program hangs.
    """
    t0 = time.perf_counter()
    export_dir = Path(export_dir).resolve()
    _export_prefix(export_dir)
    cmd = [require_tool(cc), *HOST_CFLAGS, f"-I{export_dir}", str(export_dir / "main.c")]
    with tempfile.TemporaryDirectory(prefix="fxtrain-host-") as tmp:
        exe = str(Path(tmp) / "prog")
        _compile(cmd + ["-o", exe], cc)
        t_build = time.perf_counter() - t0
        proc, t_run = _run([exe], timeout, "the host program")
    res = compare_outputs(export_dir, proc.stdout)
    res.update(returncode=proc.returncode, compile_command=" ".join(cmd + ["-o", "prog"]),
               compile_seconds=t_build, run_seconds=t_run, seconds=time.perf_counter() - t0)
    return res


def image_fit(flash, ram, target):
    """The linked image held against the profile: flash bytes (code, constants, initial data) against its
    flash, static RAM (data and bss) against its usable SRAM (the reserve is the stack's)."""
    return {"flash": flash, "flash_limit": target.flash_bytes, "ram": ram, "ram_limit": target.usable_sram_bytes,
            "sram_bytes": target.sram_bytes,
            "fits": flash <= target.flash_bytes and ram <= target.usable_sram_bytes}


def elf_size(elf):
    """``{"text", "data", "bss"}`` bytes of a linked ELF, from ``arm-none-eabi-size``."""
    proc = subprocess.run([require_tool("arm-none-eabi-size"), str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"arm-none-eabi-size failed: {proc.stderr.strip()}")
    text, data, bss = (int(v) for v in proc.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def verify_qemu(export_dir, target, timeout=120):
    """Cross-compile ``main.c`` for a Cortex-M target, run it in QEMU and compare with the vectors.

    Parameters
    ----------
    export_dir : folder written by ``export_model`` with vectors.
    target : a Target, or the name or path of a profile with ``qemu_machine`` and ``cflags``
        (``cortex-m3`` on mps2-an385, ``cortex-m4`` on mps2-an386, ``cortex-m7`` on mps2-an500).
    timeout : seconds QEMU may run.

    Returns
    -------
    dict: as :func:`verify_host`, plus ``machine``, ``text``/``data``/``bss`` bytes and
    ``qemu_seconds`` (QEMU wall time).
    """
    t0 = time.perf_counter()
    t = target if hasattr(target, "qemu_machine") else load_target(target)
    if not t.qemu_machine:
        raise ToolchainError(f"target {t.name} has no QEMU board; use cortex-m3, cortex-m4 or cortex-m7")
    export_dir = Path(export_dir).resolve()
    _export_prefix(export_dir)
    cc, qemu, fw = require_tool("arm-none-eabi-gcc"), require_tool("qemu-system-arm"), data_dir("firmware_export")
    cmd = [cc, *t.cflags, *CROSS_FLAGS, "-T", str(fw / "mps2.ld"), f"-I{export_dir}",
           str(fw / "startup_cm.c"), str(export_dir / "main.c")]
    with tempfile.TemporaryDirectory(prefix="fxtrain-qemu-") as tmp:
        elf = Path(tmp) / "prog.elf"
        _compile(cmd + ["-o", str(elf)], "arm-none-eabi-gcc")
        sizes = elf_size(elf)
        t_build = time.perf_counter() - t0
        run = [qemu, "-M", t.qemu_machine, "-nographic", "-monitor", "none", "-semihosting", "-kernel", str(elf)]
        proc, t_run = _run(run, timeout, f"qemu-system-arm -M {t.qemu_machine}")
    if proc.returncode != 0 and not proc.stdout.strip():
        raise ToolchainError(f"qemu-system-arm -M {t.qemu_machine} failed: "
                             f"{(proc.stderr.strip().splitlines() or ['no output'])[0]}")
    res = compare_outputs(export_dir, proc.stdout)
    res.update(sizes, machine=t.qemu_machine, returncode=proc.returncode,
               compile_command=" ".join(cmd + ["-o", "prog.elf"]),
               compile_seconds=t_build, qemu_seconds=t_run, seconds=time.perf_counter() - t0)
    return res
