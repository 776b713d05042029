"""Upper bounds on every input, stated once: the CLI's --help, the library's checks and the docs quote them.

A bound turns a typo or a hostile input (``--steps 1000000000``, ``/dev/zero`` as a
spec, a grid of a million cells) into one line before any work starts, instead of
an hour of silence or a machine out of memory. No numpy here: the CLI imports it.
"""
from .errors import ConfigError

KIB, MIB = 2**10, 2**20

# Bytes of one input file. Text inputs are read whole and parsed; a profile or a spec
# is a page of TOML, so 1 MiB is generous. A CSV becomes a float64 array 2-4 times its size.
PROFILE_BYTES = 1 * MIB
SPEC_BYTES = 1 * MIB
CSV_BYTES = 256 * MIB
# What fxtrain itself wrote (report.json, export.json, history.jsonl, cells/KEY.json, the
# exported C files): one JSON line per epoch, so a long run's history stays far below this.
RECORD_BYTES = 256 * MIB
# Binary arrays (a data .npz, model.npz, checkpoint.npz, model.tflite): loaded into memory.
ARRAY_BYTES = 4 * 2**30
# An ONNX model is one protobuf message, which cannot pass 2 GiB (bigger models keep their weights
# in external files, which fxtrain does not read).
ONNX_BYTES = 2 * 2**30

# Cells of one sweep: the paper's largest grid (lr-sweep) has 420.
MAX_CELLS = 10_000
# `measure --steps`: a bc step of the default net costs about 6 million cycles on a Cortex-M0+
# and Unicorn emulates under a million a second here, so 256 such steps take about half an hour.
MEASURE_STEPS = 256
# `verify --train-step`: the simulator checks every step's state in Python, about 2 ms a step (the
# default net), so 100,000 steps take a few minutes.
VERIFY_STEPS = 100_000
VERIFY_EPOCHS = 1_000


def check_count(name, value, hi, lo=1):
    """``value`` if it is a whole number in [lo, hi] (not a bool, float or text), else one ConfigError line."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number from {lo:,} to {hi:,}, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be from {lo:,} to {hi:,}, got {value:,}")
    return value
