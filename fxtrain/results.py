"""The API's result objects: plain dataclasses, one per job (see :mod:`fxtrain.api`)."""
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainResult:
    """What ``train`` gives back: the report (as in ``report.json``) and the in-memory run."""
    report: dict
    run: object
    out: Path = None

    @property
    def history(self):
        """Per-epoch records: epoch, loss, train_accuracy, test_accuracy, changed_fraction."""
        return self.report["history"]

    @property
    def test_accuracy(self):
        return self.report["test_accuracy"]

    @property
    def deployed_test_accuracy(self):
        """Test accuracy of the exported arithmetic (static shifts), or None (float, > 8 bits)."""
        return self.report.get("deployed_test_accuracy")



@dataclass
class SimulateResult(TrainResult):
    """``train``'s result plus the fit against the target (``fit``: a ``device.cost.Fit``); with
    ``measured=True``, ``measured`` is ``fxtrain measure``'s report of the trained run (or None, and
    ``measured_note`` says why)."""
    fit: object = None
    measured: dict = None
    measured_note: str = None

    @property
    def target(self):
        return self.fit.target

    @property
    def memory(self):
        """Bytes per buffer, total, usable SRAM, flash, and whether it fits."""
        return self.fit.memory_report()

    @property
    def compute(self):
        """MACs, integer and float operations, cycles and estimated seconds per epoch."""
        return self.fit.compute_report()



@dataclass
class CompareResult:
    """One row per (bits, method) and the largest widths that fit, for one target."""
    target: object
    arch: str
    batch: int
    rows: list
    widths: list
    plot: Path = None



@dataclass
class ExportResult:
    """Files written, content hash, flash and scratch bytes, and the deployed accuracy.

    For ``to="tflite"`` the flash bytes are the ``.tflite`` file's and the scratch bytes
    are TFLM's tensor arena as measured on the host (``arena_bytes``).
    """
    out: Path
    files: list
    hash: str
    flash_bytes: int
    flash_bytes_unpacked: int
    flash_bytes_packed: int
    scratch_bytes: int
    n_vectors: int
    packed: bool
    test_accuracy: float
    deployed_test_accuracy: float
    train_files: list = None
    to: str = "c"
    rounding: str = "cmsis"
    arena_bytes: int = None
    inference: dict = None       # with a Cortex-M target: measured instructions and cycles per fx_predict
    inference_note: str = None   # why it was not measured, when it was not



@dataclass
class VerifyResult:
    """Per place (host gcc, then QEMU): vectors, mismatches, sizes and timings; ``image``: the QEMU image's
    flash and static RAM against the target's; ``ok`` if all agree and the image fits."""
    results: list
    target: object
    ok: bool
    image: dict = None



@dataclass
class ImportResult:
    """``import_model``'s result: the float check (max |fxtrain - ONNX reference| of the logits on up to 100
    test samples), the float and the quantized test accuracy before any training, biases saturated to
    int32, the report (as in ``report.json``) and the run, at epoch 0."""
    float_check_max_diff: float
    float_test_accuracy: float
    test_accuracy: float
    clipped_biases: int
    report: dict
    run: object
    out: Path = None

    @property
    def deployed_test_accuracy(self):
        """Test accuracy of the exported arithmetic (static shifts), or None (float, > 8 bits)."""
        return self.report.get("deployed_test_accuracy")



@dataclass
class TrainVerifyResult:
    """Per place (host gcc, then QEMU): the first divergence from the simulator (None: bit-exact)
    and seconds; the ELF's buffer sizes against the accounting; the device's final state."""
    steps: int
    results: list
    memory: list
    sections: dict
    image: dict
    target: object
    note: str
    ok: bool
    device_state: dict



@dataclass
class MeasureResult:
    """``fxtrain measure``: per phase, instructions and measured-instruction cycles per step (the shuffle
    per epoch), the cost model's estimate and estimate / measured; ``report`` is all of it as plain data."""
    report: dict

    @property
    def phases(self):
        return self.report["phases"]

    @property
    def per_step(self):
        return self.report["per_step"]

    @property
    def seconds_per_epoch(self):
        """Measured-instruction cycles of an epoch at the profile's clock."""
        return self.report["seconds_per_epoch"]

    @property
    def ok(self):
        """True when the state after the measured steps equals the simulator's."""
        return self.report["divergence"] is None
