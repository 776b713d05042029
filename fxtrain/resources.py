"""Locate the data folders (``targets/``, ``firmware_export/``) in a wheel or a checkout."""
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name):
    """Path of ``targets`` or ``firmware_export``.

    A wheel carries them in ``fxtrain/_data/``; an editable install or a checkout
    reads them from the repository root beside the package.
    """
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"fxtrain data folder '{name}' is missing from the installation")
