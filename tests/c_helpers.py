"""Small random integer networks and a C compile-and-run helper for the firmware tests.

Not a conftest: the lead owns ``tests/conftest.py``. Tests import from here.
"""
import shutil
import subprocess

import numpy as np
import pytest

from fxtrain._files import data_dir
from fxtrain.firmware.calibration import calibrate

RUNTIME_DIR = data_dir("firmware_export")
INPUT_EXPONENT = -7  # int8 inputs stand for values in [-1, 1)
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]


def rand_weights(rng, shape, bits):
    """int8 weights on the b-bit grid: {-1, +1} for b = 1, else [-(2^(b-1)-1), 2^(b-1)-1]."""
    if bits == 1:
        return rng.choice(np.array([-1, 1], np.int8), size=shape)
    q = 2 ** (bits - 1) - 1
    return rng.integers(-q, q + 1, size=shape).astype(np.int8)


def _with_bias(rng, spec, n_out, bits, b_exponent):
    spec.update(w_exponent=-max(bits - 1, 2), bias=rng.integers(-(2**12), 2**12, n_out).astype(np.int32),
                b_exponent=b_exponent, bits=bits)
    return spec


def dense(rng, n_in, n_out, bits, relu, b_exponent=-16):
    spec = dict(kind="dense", weights=rand_weights(rng, (n_out, n_in), bits), relu=relu, in_shape=(n_in,))
    return _with_bias(rng, spec, n_out, bits, b_exponent)


def conv(rng, in_shape, c_out, k, pad, bits, relu=True, b_exponent=-16):
    w = rand_weights(rng, (c_out, k, k, in_shape[2]), bits)
    spec = dict(kind="conv", weights=w, relu=relu, kernel=k, pad=pad, in_shape=in_shape)
    return _with_bias(rng, spec, c_out, bits, b_exponent)


def pool(in_shape, p=2):
    return dict(kind="pool", pool=p, relu=False, in_shape=in_shape)


def mlp_specs(seed, bits, b_exponent=-16):
    """Dense 64 -> 32 (ReLU) -> 10."""
    rng = np.random.default_rng(seed)
    return [dense(rng, 64, 32, bits, True, b_exponent), dense(rng, 32, 10, bits, False, b_exponent)]


def conv_specs(seed, bits, pad=1, b_exponent=-16):
    """8x8x1 -> conv 4 filters k3 (pad 1 "same" or 0 "valid") + ReLU -> pool 2 -> dense 10."""
    rng = np.random.default_rng(seed)
    side = 8 + 2 * pad - 2
    return [conv(rng, (8, 8, 1), 4, 3, pad, bits, b_exponent=b_exponent), pool((side, side, 4)),
            dense(rng, (side // 2) ** 2 * 4, 10, bits, False, b_exponent)]


def calib_set(seed, shape, n=200):
    """n random int8 inputs of the given per-sample shape."""
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape)).astype(np.int8)


NETS = {
    "mlp": (mlp_specs, (64,)),
    "conv_same": (lambda seed, bits: conv_specs(seed, bits, pad=1), (8, 8, 1)),
    "conv_valid": (lambda seed, bits: conv_specs(seed, bits, pad=0), (8, 8, 1)),
}


def build(name, bits, seed=0, n_cal=200):
    """Calibrated DeployedModel for one of NETS, and its calibration set."""
    make, shape = NETS[name]
    X = calib_set(seed + 1, shape, n_cal)
    meta = dict(method="test", bits=bits, arch=name)
    return calibrate(make(seed, bits), X, INPUT_EXPONENT, meta), X


def compile_and_run(src, tmp_path, cc="gcc", extra=(), cflags=CFLAGS):
    """Compile one C file against firmware_export/ and return its stdout lines."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed: apt-get install gcc")
    c_file, exe = tmp_path / "prog.c", tmp_path / "prog"
    c_file.write_text(src)
    cmd = [cc, *cflags, *extra, f"-I{RUNTIME_DIR}", str(c_file), "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def train_exports(tmp_path_factory, epochs, name="train"):
    """get(**train settings): a folder holding ``run`` (trained ``epochs`` epochs) and ``fw`` (its
    ``export --train-step``), made once per configuration."""
    import fxtrain
    cache = {}

    def get(**kw):
        key = tuple(sorted(kw.items()))
        if key not in cache:
            d = tmp_path_factory.mktemp(name)
            fxtrain.train(epochs=epochs, out=d / "run", **kw)
            fxtrain.export(d / "run", d / "fw", train_step=True)
            cache[key] = d
        return cache[key]
    return get
