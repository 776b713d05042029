"""Export a DeployedModel as C headers for ``firmware_export/fx_runtime.h``, from templates.

``export_model`` fills the templates in ``firmware_export/templates/`` and writes,
each file atomically:

- ``PREFIX_model.h``: banner, weights and q7 biases, ``#define``s, ``PREFIX_predict``;
- ``fx_runtime.h``: copied from ``firmware_export/``;
- ``PREFIX_vectors.h``: test inputs, expected int8 outputs and classes;
- ``main.c``: runs the vectors, prints ``V <idx> <cls> <out...>`` lines and ``DONE <n>``;
- ``PREFIX_input.h`` (sensor windows only): the per-channel mean and std and the input scale, as
  double data for the firmware's front end, with the formula that turns raw values into the input.

Nothing else generated contains a ``float``/``double`` or a float literal; every header of
the integer path passes :func:`assert_no_float` before it is written.
"""
import hashlib
import re

import numpy as np

from .._version import __version__
from .._files import data_dir, ensure_dir, remove_file, write_bytes_atomic, write_json_atomic
from ..errors import ConfigError
from ..layers import by_name
from .packing import PACK_BITS, pack_weights
from .reference import predict
from .templates import fill, render, snippets

RUNTIME = "fx_runtime.h"
LAYERS = "layers.h.in"
MANIFEST = "export.json"  # sha256 of every exported file: verify refuses an edited export
ROUNDING_NOTES = {"cmsis": "cmsis (CMSIS-NN's NN_ROUND, one rounding half up)",
                  "tflm": "tflm (TensorFlow Lite Micro's two-step requantisation)"}
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


def model_hash(model):
    """First 16 hex digits of the sha256 of every array, shape, shift and exponent, and of the
    rounding rule when it is not CMSIS-NN's (so the hashes of earlier exports stay as they were)."""
    h = hashlib.sha256(repr((model.input_shape, model.input_exponent)).encode())
    if model.rounding != "cmsis":
        h.update(f"rounding={model.rounding}".encode())
    for L in model.layers:
        h.update(repr((L.kind, L.in_shape, L.out_shape, L.bias_shift, L.out_shift, L.relu, L.kernel, L.pad,
                       L.pool, L.bits, L.in_exponent, L.out_exponent)).encode())
        if not L.square:  # a square layer hashes as before non-square windows
            h.update(repr((L.kernel_w, L.pad_w, L.pool_w)).encode())
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


def c_int(v):
    """A macro value: negative numbers in parentheses so ``x-FX_E`` cannot become ``x--7``."""
    return f"({int(v)})" if v < 0 else str(int(v))


def _values(values, per_line=16):
    vals = [str(int(v)) for v in np.asarray(values).ravel()]
    return len(vals), ",\n".join("    " + ", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line))


def c_array(ctype, name, values):
    """A ``static const`` C array definition of integer ``values``, 16 to a line."""
    n, body = _values(values)
    return f"static const {ctype} {name}[{n}] = {{\n{body}\n}};\n"


def model_array(ctype, name, values, prefix):
    """A weight or bias array defined once, where ``PREFIX_MODEL_IMPLEMENTATION`` is set, else extern."""
    n, body = _values(values)
    return fill(LAYERS, "array", P=prefix.upper(), ctype=ctype, name=name, n=n, values=body)


def cmsis_buffer_bytes(layer):
    """Work buffer CMSIS-NN's legacy q7 kernel needs for ``layer``, as its kind says."""
    return by_name(layer.kind).cmsis_buffer_bytes(layer)


def _summary(model, digest, pack):
    meta = {k: str(v).replace("*/", "* /") for k, v in model.meta.items()}
    lines = [f"method: {meta.get('method', '?')}   bits: {meta.get('bits', '?')}   arch: {meta.get('arch', '?')}",
             f"content hash: {digest} (sha256 of the arrays and shifts, first 16 hex)",
             f"weights: {'packed LSB-first where bits are 1, 2 or 4' if pack else 'int8 (q7)'}",
             f"rounding: {ROUNDING_NOTES[model.rounding]}"]
    lines += [f"layer {i}: {L.kind} {L.in_shape} -> {L.out_shape}, exponent {L.in_exponent} -> {L.out_exponent}"
              for i, L in enumerate(model.layers)]
    return "\n".join(f" * {s}" for s in lines)


def _snippet(L, role):
    """The snippet of ``L``'s kind for ``role`` ("defs", "call", ...): its non-square variant
    ``KIND_nonsquare_ROLE`` where ``L`` is not square and the template has one."""
    name = f"{L.kind}_{role}"
    return f"{L.kind}_nonsquare_{role}" if not L.square and f"{L.kind}_nonsquare_{role}" in snippets(LAYERS) \
        else name


def _names(i, prefix):
    return {"i": i, "M": f"{prefix.upper()}_L{i}_", "lp": f"{prefix}_l{i}", "P": prefix.upper()}


def _layer_defs(i, L, prefix, pack):
    """``#define``s and arrays of layer i, from its ``*_defs`` snippet."""
    names = _names(i, prefix)
    v = dict(names, relu_note=", ReLU" if L.relu else "", in_size=int(np.prod(L.in_shape)),
             out_size=int(np.prod(L.out_shape)), out_exponent=c_int(L.out_exponent), relu=int(L.relu),
             cmsis_bytes=cmsis_buffer_bytes(L))
    v.update(by_name(L.kind).c_defs(L))
    if L.weights is not None:
        packed = _is_packed(L, pack)
        weights = model_array("uint8_t", f"{names['lp']}_w", pack_weights(L.weights, L.bits), prefix) if packed \
            else model_array("int8_t", f"{names['lp']}_w", L.weights, prefix)
        v.update(bits=L.bits if packed else 8, bias_shift=L.bias_shift, out_shift=L.out_shift,
                 weights=weights, bias=model_array("int8_t", f"{names['lp']}_b", L.bias, prefix))
    return fill(LAYERS, _snippet(L, "defs"), **v)


def _layer_call(i, L, prefix, pack, src, dst, rounding):
    """C statements running layer i from ``src`` into ``dst``."""
    v = dict(_names(i, prefix), src=src, dst=dst)
    call = "packed_call" if _is_packed(L, pack) else "call"
    if rounding != "cmsis" and by_name(L.kind).weighted:
        call = "rounded_call"  # packed or int8 alike: the weights go in as bytes
    text = fill(LAYERS, _snippet(L, call), **v) + fill(LAYERS, "check", **v)
    return text + (fill(LAYERS, "relu", **v) if L.relu else "")


def render_model_header(model, prefix="fx", pack=False):
    """Text of ``PREFIX_model.h``: arrays, ``#define``s and ``PREFIX_predict``."""
    digest, (buf, n_buf) = model_hash(model), _buffers(model)
    calls, src, n = [], "x", len(model.layers)
    for i, L in enumerate(model.layers):
        dst = "out" if i == n - 1 else f"buf{i % 2}"
        calls.append(_layer_call(i, L, prefix, pack, src, dst, model.rounding))
        src = dst
    return render("model.h.in", prefix=prefix, P=prefix.upper(), summary=_summary(model, digest, pack),
                  hash=digest, input_size=int(np.prod(model.input_shape)),
                  input_exponent=c_int(model.input_exponent), n_out=model.n_classes,
                  output_exponent=c_int(model.output_exponent), rounding=f"FX_ROUNDING_{model.rounding.upper()}",
                  n_buf=n_buf, buf_size=buf,
                  cmsis_buffer=max(cmsis_buffer_bytes(L) for L in model.layers),
                  layers="".join(_layer_defs(i, L, prefix, pack) for i, L in enumerate(model.layers)),
                  # a one-layer model writes straight into out: no buffer to name (-Werror=unused-variable)
                  buffers="".join(fill(LAYERS, "buffer", j=j, P=prefix.upper()) for j in range(n_buf)) if n > 1
                  else "    (void)scratch;\n",
                  calls="".join(calls))


def _rows(a):
    return ",\n".join("    {" + ", ".join(str(int(v)) for v in r) + "}" for r in a)


def render_vectors_header(X, out, cls, prefix="fx"):
    """Text of ``PREFIX_vectors.h``: int8 inputs ``[N][in]``, int8 outputs ``[N][n_out]``, classes ``[N]``."""
    n = X.shape[0]
    x2, o2 = X.reshape(n, -1), out.reshape(n, -1)
    return render("vectors.h.in", prefix=prefix, P=prefix.upper(), n=n, input_size=x2.shape[1],
                  n_out=o2.shape[1], inputs=_rows(x2), outputs=_rows(o2),
                  classes=c_array("int16_t", f"{prefix}_vec_cls", cls))


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


def write_export(out_dir, files, manifest, kept=None):
    """Write ``files`` ({name: bytes}) into ``out_dir``, then ``manifest`` with their sha256 (and ``kept``'s).

    The old manifest is removed first: until the new one is written the folder is no
    export that ``verify`` accepts, so a full disk midway leaves it refused, never half
    old and half new. Returns the paths written, sorted.
    """
    out_dir = ensure_dir(out_dir, "export folder")
    remove_file(out_dir / MANIFEST)
    for name, data in files.items():
        write_bytes_atomic(out_dir / name, data)
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    write_json_atomic(out_dir / MANIFEST, {**manifest, "files": {**(kept or {}), **digests}})
    return sorted(str(out_dir / n) for n in [*files, MANIFEST])


def c_double(v):
    """A float64 as a C double literal that reads back to the same value (Python's shortest repr)."""
    return repr(float(v))


def render_input_header(standardisation, prefix="fx"):
    """Text of ``PREFIX_input.h``: a windowed run's (mean float64 [C], std float64 [C], scale) as the
    firmware's front end applies them; data in double, outside the integer path (not scanned for floats)."""
    mean, std, scale = standardisation
    return render("input.h.in", prefix=prefix, P=prefix.upper(), channels=len(mean),
                  mean=", ".join(map(c_double, mean)), std=", ".join(map(c_double, std)), scale=c_double(scale))


def export_model(model, out_dir, prefix="fx", pack=False, vectors=None, standardisation=None):
    """Write the C sources of ``model`` into ``out_dir``.

    Parameters
    ----------
    model : DeployedModel
    out_dir : path; created if missing.
    prefix : C identifier for the generated names (``PREFIX_predict``, ``PREFIX_MODEL_H``).
    pack : pack weights of 1, 2 or 4 bits LSB-first (others stay int8).
    vectors : (X int8 [N, *input_shape], out int8 [N, n_out], cls [N]), or just X (the
        expected outputs then come from ``reference.predict``), or None (no vectors, no main.c).
    standardisation : (mean float64 [C], std float64 [C], scale) of a sensor-window run, or None; written
        as ``PREFIX_input.h`` (float data for the front end, which the integer headers do not include).

    Returns
    -------
    dict: ``files``, ``hash``, ``flash_bytes`` (as exported), ``flash_bytes_unpacked``,
    ``flash_bytes_packed``, ``scratch_bytes``, ``n_vectors``.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ConfigError(f"prefix must be a C identifier, got {prefix!r}")
    texts = {f"{prefix}_model.h": render_model_header(model, prefix, pack),
             RUNTIME: (data_dir("firmware_export") / RUNTIME).read_text(encoding="utf-8")}
    n_vec = 0
    if vectors is not None:
        X, out, cls = _check_vectors(model, vectors)
        n_vec = X.shape[0]
        texts[f"{prefix}_vectors.h"] = render_vectors_header(X, out, cls, prefix)
        texts["main.c"] = render("main.c.in", prefix=prefix, PREFIX=prefix.upper())
    for name, text in texts.items():
        if name.endswith(".h"):
            assert_no_float(text, name)
    if standardisation is not None:
        texts[f"{prefix}_input.h"] = render_input_header(standardisation, prefix)
    manifest = {"fxtrain_version": __version__, "model_hash": model_hash(model), "prefix": prefix,
                "format": "c", "rounding": model.rounding}
    paths = write_export(out_dir, {name: text.encode("utf-8") for name, text in texts.items()}, manifest)
    return {"files": paths, "hash": model_hash(model),
            "flash_bytes": flash_bytes(model, pack), "flash_bytes_unpacked": flash_bytes(model, False),
            "flash_bytes_packed": flash_bytes(model, True), "scratch_bytes": scratch_bytes(model), "n_vectors": n_vec}
