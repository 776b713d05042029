"""Sensor windows [n, T, C]: each channel standardised on its own before the one shared Q7 scale.

An accelerometer in m/s² and a gyroscope in rad/s differ in spread by an order of
magnitude; with one scale for all channels, the quiet ones would keep a few of the
127 codes. So each channel ``c`` first becomes ``(x - mean[c]) / std[c]``, with both
constants taken from the training windows only (the test windows are what the device
will meet later, and get the same constants). The device applies the same two
constants to raw sensor values before it quantises them.
"""
import numpy as np

from ..errors import DataError


def channel_stats(X):
    """Per-channel (mean, std) of windows ``X`` float64 [n, T, C], over all n windows and T steps.

    Returns
    -------
    mean, std : float64 [C]. ``std`` is the population standard deviation (numpy's ``std``,
    ddof 0). A channel whose every value is the same gets that value as its mean and 1 as its
    std: its spread is zero, and dividing by it would make the channel NaN; with these it is
    exactly 0 everywhere (a computed mean can sit an ulp away from the value, which dividing by
    a tiny nonzero spread would blow up to noise of size 1).
    """
    mean, std = X.mean(axis=(0, 1)), X.std(axis=(0, 1))
    flat = np.all(X == X[:1, :1, :], axis=(0, 1))
    mean = np.where(flat, X[0, 0, :], mean)
    std = np.where(flat | (std == 0), 1.0, std)  # zero spread: divide by 1, as said above
    return mean, std


def check_stats(stats, channels, where):
    """(mean, std) float64 [C] of given constants ``stats``, or a DataError if they cannot be this data's."""
    mean, std = (np.asarray(a, np.float64) for a in stats)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise DataError(f"{where}: its windows have {channels} channels, but the input standardisation given "
                        f"(that of the run this one continues or starts from) has {mean.size} means and "
                        f"{std.size} deviations")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise DataError(f"{where}: the input standardisation given holds a mean or deviation that is not a "
                        "finite number, or a deviation that is not positive")
    return mean, std


def standardise(X, mean, std):
    """``(X - mean) / std`` per channel: float64 [n, T, C] from windows ``X`` and constants float64 [C]."""
    return (X - mean) / std
