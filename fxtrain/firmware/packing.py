"""Packed weight storage: several b-bit weights per byte, LSB-first (the C runtime's ``fx_weight``)."""
import numpy as np

from ..errors import ConfigError

PACK_BITS = (1, 2, 4)


def pack_weights(w, bits):
    """Pack a layer's weights LSB-first, in row-major order.

    Parameters
    ----------
    w : int8 ndarray, any shape, values on the ``bits`` grid.
    bits : 1, 2 or 4. b=1 stores +1 as bit 1 and -1 as bit 0; b=2, 4 store two's
        complement fields, low field first. The last byte is zero-padded.

    Returns
    -------
    uint8 ndarray, shape ``[ceil(w.size * bits / 8)]``.
    """
    if bits not in PACK_BITS:
        raise ConfigError(f"packing supports {PACK_BITS} bits, got {bits}")
    flat = np.asarray(w, np.int64).ravel()
    codes = (flat > 0).astype(np.int64) if bits == 1 else flat & ((1 << bits) - 1)
    per = 8 // bits
    codes = np.concatenate([codes, np.zeros((-codes.size) % per, np.int64)]).reshape(-1, per)
    return (codes << (np.arange(per) * bits)).sum(axis=1).astype(np.uint8)


def unpack_weights(packed, bits, n):
    """Inverse of :func:`pack_weights`: the first ``n`` weights as int8 (what ``fx_weight`` reads)."""
    per = 8 // bits
    fields = (np.asarray(packed, np.int64)[:, None] >> (np.arange(per) * bits)) & ((1 << bits) - 1)
    fields = fields.ravel()[:n]
    if bits == 1:
        return np.where(fields == 1, 1, -1).astype(np.int8)
    return (fields - ((fields >> (bits - 1)) << bits)).astype(np.int8)


def pack_slots(w, slot):
    """Weights packed in slots of ``slot`` bits (1, 2, 4, 8 or 16), as the training runtime stores them.

    1, 2 and 4 as :func:`pack_weights`; 8 as int8 bytes; 16 as little-endian int16.

    Returns
    -------
    uint8 ndarray, ``ceil(w.size * slot / 8)`` bytes.
    """
    flat = np.asarray(w, np.int64).ravel()
    if slot in PACK_BITS:
        return pack_weights(flat, slot)
    if slot == 8:
        return flat.astype(np.int8).view(np.uint8)
    if slot == 16:
        return flat.astype("<i2").view(np.uint8)
    raise ConfigError(f"storage slots are 1, 2, 4, 8 or 16 bits, got {slot}")
