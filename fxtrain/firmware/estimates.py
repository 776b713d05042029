"""How long a measurement under Unicorn will take on this host, said before it starts.

The cost model prices a training step in cycles within about 10% of the measured-
instruction cycles (README, "Measured cost"), so it also predicts how much code the
emulator must run. The rates below were timed on the 2-core development machine;
the result is printed as "about", never used to decide anything.
"""
import math

from ..device.fit import fit_for
from ..device.simulate import data_shape
from ..device.work import STEP_PHASES

# Cycles of emulated code per second of wall time under Unicorn with fxtrain's block
# hooks (default net: bc on the Cortex-M0+ 0.85 million, sr on the M4 0.6 million, with
# other jobs on the same two cores).
UNICORN_CYCLES_PER_SECOND = 0.8e6
# Exporting the run, linking it with arm-none-eabi-gcc, classifying the code, and the
# simulator's own steps for the comparison.
MEASURE_OVERHEAD_SECONDS = 5.0


def measure_seconds(run, target, steps):
    """Estimated wall seconds of ``measure`` for ``steps`` steps of ``run`` (a Run) on ``target`` (a Target)."""
    fit = fit_for(run.arch, run.cfg.method, run.cfg.bits, run.cfg.batch, data_shape(run), target, run.mom_j > 0,
                  run.cfg.lr, train_layers=run.cfg.train_layers)
    per_epoch = max(len(run.data.y_train) // run.cfg.batch, 1)
    cycles = (steps * sum(fit.phase_cycles[p] for p in STEP_PHASES)
              + math.ceil(steps / per_epoch) * fit.phase_cycles["shuffle"])
    return MEASURE_OVERHEAD_SECONDS + cycles / UNICORN_CYCLES_PER_SECOND
