"""Export a DeployedModel as C headers for ``firmware_export/fx_runtime.h``.

``export_model`` writes, each file atomically (temp file in the same folder, then
``os.replace``), so an interrupted export never leaves a half-written header:

- ``PREFIX_model.h``: banner, weights and q7 biases, ``#define``s, ``PREFIX_predict``;
- ``fx_runtime.h``: copied from ``firmware_export/``;
- ``PREFIX_vectors.h``: test inputs, expected int8 outputs and classes;
- ``main.c``: runs the vectors, prints ``V <idx> <cls> <out...>`` lines and ``DONE <n>``.

Nothing generated contains a ``float``/``double`` or a float literal; every header
passes :func:`assert_no_float` before it is written.
"""
import hashlib
import re
import string
from pathlib import Path

import numpy as np

from . import __version__
from .deploy import predict
from .errors import ConfigError
from .resources import data_dir
from .store import write_text_atomic

PACK_BITS = (1, 2, 4)
RUNTIME = "fx_runtime.h"
_COMMENTS_STRINGS = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
_FLOAT_WORD = re.compile(r"\b(float|double|_Float\d+)\b")
# A dotted version such as 0.1.0 is not a literal: the lookarounds reject a '.' on either side.
_FLOAT_LITERAL = re.compile(
    r"(?<![\w.])(\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+"
    r"|0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][+-]?\d+)[fFlL]?(?![\w.])")


def assert_no_float(text, name="text", comments=False):
    """Raise AssertionError if C source ``text`` uses a float type or a float literal.

    Comments and string literals are skipped unless ``comments`` is true, so a banner
    may quote a version or a learning rate.
    """
    code = text if comments else _COMMENTS_STRINGS.sub(" ", text)
    for pattern in (_FLOAT_WORD, _FLOAT_LITERAL):
        m = pattern.search(code)
        if m:
            line = code.count("\n", 0, m.start()) + 1
            raise AssertionError(f"{name}:{line}: floating-point token {m.group(0)!r} in integer-only C")


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


def model_hash(model):
    """First 16 hex digits of the sha256 of every array, shape, shift and exponent."""
    h = hashlib.sha256(repr((model.input_shape, model.input_exponent)).encode())
    for L in model.layers:
        h.update(repr((L.kind, L.in_shape, L.out_shape, L.bias_shift, L.out_shift, L.relu, L.kernel, L.pad,
                       L.pool, L.bits, L.in_exponent, L.out_exponent)).encode())
        for a in (L.weights, L.bias):
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _is_packed(layer, pack):
    return pack and layer.weights is not None and layer.bits in PACK_BITS


def flash_bytes(model, pack):
    """Bytes of weights and biases in flash, packed (``pack=True``) or as int8."""
    total = 0
    for L in model.layers:
        if L.weights is not None:
            n = L.weights.size
            total += (n * L.bits + 7) // 8 if _is_packed(L, pack) else n
            total += L.bias.size
    return total


def scratch_bytes(model):
    """Bytes of the caller's scratch buffer (``PREFIX_SCRATCH_SIZE``)."""
    buf, n_buf = _buffers(model)
    return buf * n_buf


def _buffers(model):
    """(bytes per ping-pong buffer, number of buffers): intermediates only, the last layer writes ``out``."""
    sizes = [int(np.prod(L.out_shape)) for L in model.layers[:-1]]
    return max(sizes, default=1), max(1, min(2, len(sizes)))


def _c_int(v):
    """A macro value: negative numbers in parentheses so ``x-FX_E`` cannot become ``x--7``."""
    return f"({int(v)})" if v < 0 else str(int(v))


def _c_array(ctype, name, values, per_line=16):
    vals = [str(int(v)) for v in np.asarray(values).ravel()]
    rows = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return f"static const {ctype} {name}[{len(vals)}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


def _banner(model, prefix, digest, pack):
    meta = {k: str(v).replace("*/", "* /") for k, v in model.meta.items()}
    lines = [f"{prefix}_model.h -- generated by fxtrain {__version__} -- do not edit.",
             f"method: {meta.get('method', '?')}   bits: {meta.get('bits', '?')}   arch: {meta.get('arch', '?')}",
             f"content hash: {digest} (sha256 of the arrays and shifts, first 16 hex)",
             f"weights: {'packed LSB-first where bits are 1, 2 or 4' if pack else 'int8 (q7)'}"]
    lines += [f"layer {i}: {L.kind} {L.in_shape} -> {L.out_shape}, exponent {L.in_exponent} -> {L.out_exponent}"
              for i, L in enumerate(model.layers)]
    return "/*\n" + "".join(f" * {s}\n" for s in lines) + " */\n"


def _layer_defs(i, L, prefix, pack):
    """``#define``s and arrays of layer i."""
    P, lp = prefix.upper(), f"{prefix}_l{i}"
    d = {"IN_SIZE": int(np.prod(L.in_shape)), "OUT_SIZE": int(np.prod(L.out_shape)),
         "OUT_EXPONENT": L.out_exponent}
    if L.kind in ("conv", "pool"):
        d.update(IN_H=L.in_shape[0], IN_W=L.in_shape[1], IN_C=L.in_shape[2])
    if L.kind == "conv":
        d.update(OUT_C=L.out_shape[2], K=L.kernel, PAD=L.pad)
    if L.kind == "pool":
        d.update(POOL=L.pool)
    if L.weights is not None:
        d.update(BITS=L.bits if _is_packed(L, pack) else 8, BIAS_SHIFT=L.bias_shift, OUT_SHIFT=L.out_shift)
    text = f"/* layer {i}: {L.kind}{', ReLU' if L.relu else ''} */\n"
    text += "".join(f"#define {P}_L{i}_{k} {_c_int(v)}\n" for k, v in d.items())
    if L.weights is not None:
        if _is_packed(L, pack):
            text += _c_array("uint8_t", f"{lp}_w", pack_weights(L.weights, L.bits))
        else:
            text += _c_array("int8_t", f"{lp}_w", L.weights)
        text += _c_array("int8_t", f"{lp}_b", L.bias)
    return text + "\n"


def _layer_call(i, L, prefix, pack, src, dst):
    """C statements running layer i from ``src`` into ``dst``."""
    M, lp = f"{prefix.upper()}_L{i}_", f"{prefix}_l{i}"
    if L.kind == "pool":
        call = f"fx_maxpool_hwc_q7({src}, {M}IN_H, {M}IN_W, {M}IN_C, {M}POOL, {dst})"
    else:
        packed = _is_packed(L, pack)
        wt = f"{lp}_w, {M}BITS" if packed else f"{lp}_w"
        tail = f"{lp}_b, {M}BIAS_SHIFT, {M}OUT_SHIFT, {dst}"
        if L.kind == "dense":
            fn = "fx_dense_packed" if packed else "fx_dense_q7"
            call = f"{fn}({src}, {M}IN_SIZE, {wt}, {lp}_b, {M}OUT_SIZE, {M}BIAS_SHIFT, {M}OUT_SHIFT, {dst})"
        else:
            fn = "fx_conv_hwc_packed" if packed else "fx_conv_hwc_q7"
            call = f"{fn}({src}, {M}IN_H, {M}IN_W, {M}IN_C, {wt}, {M}OUT_C, {M}K, {M}PAD, {tail})"
    lines = [f"st = {call};", "if (st != FX_OK) {", "    return st;", "}"]
    if L.relu:
        lines.append(f"fx_relu_q7({dst}, {M}OUT_SIZE);")
    return lines


def render_model_header(model, prefix="fx", pack=False):
    """Text of ``PREFIX_model.h``: arrays, ``#define``s and ``PREFIX_predict``."""
    P, guard = prefix.upper(), f"{prefix.upper()}_MODEL_H"
    digest, (buf, n_buf) = model_hash(model), _buffers(model)
    text = _banner(model, prefix, digest, pack) + f"#ifndef {guard}\n#define {guard}\n\n#include \"{RUNTIME}\"\n\n"
    text += (f'#define {P}_MODEL_HASH "{digest}"\n#define {P}_INPUT_SIZE {int(np.prod(model.input_shape))}\n'
             f"#define {P}_INPUT_EXPONENT {_c_int(model.input_exponent)}\n#define {P}_N_OUT {model.n_classes}\n"
             f"#define {P}_N_CLASSES {model.n_classes}\n#define {P}_OUTPUT_EXPONENT {_c_int(model.output_exponent)}\n"
             f"/* scratch: {n_buf} int8 ping-pong buffer(s) of the largest intermediate activation */\n"
             f"#define {P}_BUF_SIZE {buf}\n#define {P}_SCRATCH_SIZE ({n_buf} * {P}_BUF_SIZE)\n\n")
    text += "".join(_layer_defs(i, L, prefix, pack) for i, L in enumerate(model.layers))
    bufs = [f"int8_t *buf{j} = (int8_t *)scratch + {j} * {P}_BUF_SIZE;" for j in range(n_buf)]
    body, src, n = ["fx_status st;"] + bufs, "x", len(model.layers)
    for i, L in enumerate(model.layers):
        dst = "out" if i == n - 1 else f"buf{i % 2}"
        body += [f"/* layer {i}: {L.kind} */"] + _layer_call(i, L, prefix, pack, src, dst)
        src = dst
    text += (f"/* x: int8[{P}_INPUT_SIZE] (HWC) at 2^{P}_INPUT_EXPONENT; out: int8[{P}_N_OUT] at\n"
             f" * 2^{P}_OUTPUT_EXPONENT; scratch: {P}_SCRATCH_SIZE bytes, any alignment. */\n"
             f"static inline fx_status {prefix}_predict(const int8_t *x, int8_t *out, uint8_t *scratch)\n{{\n"
             + "".join(f"    {s}\n" for s in body) + "    return FX_OK;\n}\n\n")
    return text + f"#endif /* {guard} */\n"


def render_vectors_header(X, out, cls, prefix="fx"):
    """Text of ``PREFIX_vectors.h``: int8 inputs ``[N][in]``, int8 outputs ``[N][n_out]``, classes ``[N]``."""
    P, n = prefix.upper(), X.shape[0]
    x2, o2 = X.reshape(n, -1), out.reshape(n, -1)

    def rows(ctype, name, a):
        body = ",\n".join("    {" + ", ".join(str(int(v)) for v in r) + "}" for r in a)
        return f"static const {ctype} {name}[{n}][{a.shape[1]}] = {{\n{body}\n}};\n"
    return (f"/* {prefix}_vectors.h -- generated by fxtrain {__version__} -- do not edit. */\n"
            f"#ifndef {P}_VECTORS_H\n#define {P}_VECTORS_H\n\n#include <stdint.h>\n\n"
            f"#define {P}_N_VECTORS {n}\n#define {P}_VEC_INPUT_SIZE {x2.shape[1]}\n"
            f"#define {P}_VEC_N_OUT {o2.shape[1]}\n\n"
            + rows("int8_t", f"{prefix}_vec_x", x2) + rows("int8_t", f"{prefix}_vec_out", o2)
            + _c_array("int16_t", f"{prefix}_vec_cls", cls) + f"\n#endif /* {P}_VECTORS_H */\n")


def _check_vectors(model, vectors):
    """(X, out, cls) from an int8 input array (expected outputs by ``predict``) or a given triple."""
    if isinstance(vectors, np.ndarray):
        return (vectors.astype(np.int8), *predict(model, vectors))
    X, out, cls = (np.asarray(v) for v in vectors)
    n = X.shape[0]
    if n == 0 or out.shape != (n, model.n_classes) or cls.shape != (n,):
        raise ConfigError(f"vectors must be X [N, ...], out [N, {model.n_classes}], cls [N] with N >= 1; "
                          f"got {X.shape}, {out.shape}, {cls.shape}")
    predict(model, X)  # validates the input shape and int8 range
    return X.astype(np.int8), out.astype(np.int8), cls.astype(np.int64)


def export_model(model, out_dir, prefix="fx", pack=False, vectors=None):
    """Write the C sources of ``model`` into ``out_dir``.

    Parameters
    ----------
    model : DeployedModel
    out_dir : path; created if missing.
    prefix : C identifier for the generated names (``PREFIX_predict``, ``PREFIX_MODEL_H``).
    pack : pack weights of 1, 2 or 4 bits LSB-first (others stay int8).
    vectors : (X int8 [N, *input_shape], out int8 [N, n_out], cls [N]), or just X (the
        expected outputs then come from ``deploy.predict``), or None (no vectors, no main.c).

    Returns
    -------
    dict: ``files``, ``hash``, ``flash_bytes`` (as exported), ``flash_bytes_unpacked``,
    ``flash_bytes_packed``, ``scratch_bytes``, ``n_vectors``.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ConfigError(f"prefix must be a C identifier, got {prefix!r}")
    src = data_dir("firmware_export")
    texts = {f"{prefix}_model.h": render_model_header(model, prefix, pack),
             RUNTIME: (src / RUNTIME).read_text(encoding="utf-8")}
    n_vec = 0
    if vectors is not None:
        X, out, cls = _check_vectors(model, vectors)
        n_vec = X.shape[0]
        texts[f"{prefix}_vectors.h"] = render_vectors_header(X, out, cls, prefix)
        template = string.Template((src / "main_template.c").read_text(encoding="utf-8"))
        texts["main.c"] = template.substitute(prefix=prefix, PREFIX=prefix.upper())
    for name, text in texts.items():
        if name.endswith(".h"):
            assert_no_float(text, name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        write_text_atomic(out_dir / name, text)
    return {"files": sorted(str(out_dir / n) for n in texts), "hash": model_hash(model),
            "flash_bytes": flash_bytes(model, pack), "flash_bytes_unpacked": flash_bytes(model, False),
            "flash_bytes_packed": flash_bytes(model, True), "scratch_bytes": scratch_bytes(model), "n_vectors": n_vec}
