"""The layer-kind registry (fxtrain.layers): every kind answers every consumer's hook, an unregistered
kind is refused in Python, in the jitted engine and in the compiled C runtime, and the Python mirror
of the C struct fx_layer has the struct's layout."""
import re
import shutil
import subprocess

import numpy as np
import pytest

import fxtrain
from fxtrain._files import data_dir
from fxtrain.errors import ConfigError
from fxtrain.layers import HOOKS, KINDS, LayerSpec, by_code, by_name, parse_token

RUNTIME = data_dir("firmware_export")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed: apt-get install gcc")
UNKNOWN = 7  # no kind has this code


def test_every_kind_answers_every_hook_itself():
    for kind in KINDS:
        missing = [h for h in HOOKS if h not in type(kind).__dict__]
        # a hook inherited from nowhere would be an AttributeError deep inside one stage
        assert not missing, f"{kind.name} has no {missing}"
    assert len({k.code for k in KINDS}) == len({k.name for k in KINDS}) == len(KINDS)


def _sample(kind):
    """One layer of ``kind`` parsed from its own token on an 8x8x3 input."""
    tok = {"dense": "dense:5", "conv": "conv:4:3:same", "pool": "pool:2", "gap": "gap"}[kind.name]
    return parse_token(tok, (8, 8, 3))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_each_kind_round_trips_and_its_hooks_agree(kind):
    s = _sample(kind)
    assert s.layer_kind is kind and parse_token(s.token(), s.in_shape) == s
    shape = kind.weight_shape(s)
    # the model file's weight array holds exactly the weights, one row per output channel
    assert (shape is None) == (not kind.weighted) and (shape is None or int(np.prod(shape)) == s.n_weights)
    row = kind.train_row(s)
    assert set(row) == {"kh", "kw", "pad_h", "pad_w", "fan_in"} and row["fan_in"] == (s.fan_in if kind.weighted else 0)
    units = kind.work(s, 4)
    assert set(units) == {"macs", "forward", "backward", "gradient"} and all(n > 0 for n in units["forward"].values())
    # 'same' padding: a conv's MACs are its in-bounds taps, fewer than weights x positions
    full = 4 * s.n_weights * s.positions
    assert units["macs"] == full if kind.name != "conv" else 0 < units["macs"] < full


def test_every_kind_has_its_c_snippets_tflite_ops_and_c_code():
    from fxtrain.tflite.flatbuffer import OP_CODES
    layers_h = (RUNTIME / "templates" / "layers.h.in").read_text()
    runtime = (RUNTIME / "fx_train_runtime.h").read_text()
    for kind in _exported_kinds("inference"):
        for name in kind.c_snippets:
            assert f"//@ {name}\n" in layers_h, name
    for kind in _exported_kinds("train-step"):
        # the C training runtime dispatches on the same code
        assert re.search(rf"#define FX_KIND_{kind.name.upper()} {kind.code}\b", runtime), kind.name
    for kind in _exported_kinds("tflite"):
        # its TFLite operators are ones the writer has codes for
        assert set(_tflite_ops(kind)) <= set(OP_CODES) and _tflite_ops(kind)
    # and the training runtime knows no kind the registry does not
    assert len(re.findall(r"#define FX_KIND_\w+ \d+", runtime)) == len(_exported_kinds("train-step"))


def _exported_kinds(path):
    """The kinds export ``path`` (inference, train-step or tflite) holds; it refuses the others."""
    return [k for k in KINDS if k.export_refusal(_sample(k), path) is None]


class _Recorder:
    """Stands in for tflite.flatbuffer.Graph: records the operators a kind's hook adds."""
    def __init__(self):
        self.ops = []

    def __getattr__(self, name):
        return lambda *a: 0

    def shape(self, x):
        return (1, 4, 4, 3)

    def params(self, i, L, x):
        return 1, 2

    def op(self, name, inputs, outputs, options):
        self.ops.append(name)

    def pool(self, name, i, L, x, window):
        self.ops.append(name)


def _tflite_ops(kind):
    from fxtrain.firmware.reference import DeployLayer
    s = _sample(kind)
    L = DeployLayer(kind.name, s.in_shape, s.out_shape, None, None, 0, 0, s.relu, kernel=s.kh, pad=s.pad_h, pool=s.kh)
    g = _Recorder()
    kind.tflite(g, 0, L, 0)
    return g.ops


def test_an_unregistered_kind_is_refused_in_python():
    from fxtrain.engine.network import build_desc
    with pytest.raises(ConfigError, match="unknown layer kind code 7; this fxtrain knows 0 \\(dense\\)"):
        by_code(UNKNOWN)
    with pytest.raises(ConfigError, match="unknown layer kind 'lstm'"):
        by_name("lstm")
    with pytest.raises(ConfigError, match="unknown layer kind code 7"):
        build_desc([LayerSpec(UNKNOWN, (1, 1, 4), (1, 1, 2))])
    with pytest.raises(ConfigError, match="unknown arch token 'lstm:4'"):
        parse_token("lstm:4", (8, 8, 1))


@pytest.mark.parametrize("spatial", [True, False])
def test_an_unregistered_code_is_refused_by_the_jitted_passes(spatial):
    from fxtrain.engine import passes
    from fxtrain.engine.network import DENSE, KIND, build_desc
    d = build_desc([LayerSpec(DENSE, (1, 1, 4), (1, 1, 2))])[0].copy()
    out = np.zeros(2, np.float32)
    passes.mac_forward(d, np.ones(4, np.float32), np.ones(8, np.float32), 1, out, spatial)
    assert out.tolist() == [4.0, 4.0]
    d[KIND] = UNKNOWN
    # a corrupt table stops the pass instead of running the row as a dense layer
    with pytest.raises(ValueError, match="no kernels for"):
        passes.mac_forward(d, np.ones(4, np.float32), np.ones(8, np.float32), 1, out, spatial)


def _layout_program():
    from fxtrain.firmware.train_export import FX_LAYER, fx_layer_layout
    offsets, size = fx_layer_layout()
    # C99 has no _Static_assert: an array of size -1 is the compile-time failure
    checks = "".join(f"typedef char at_{f}[offsetof(fx_layer, {f}) == {offsets[f]}u ? 1 : -1];\n"
                     f"typedef char type_{f}[sizeof(((fx_layer *)0)->{f}) == sizeof({t}) ? 1 : -1];\n"
                     for f, t in FX_LAYER)
    return ("#include <stddef.h>\n#define FX_METHOD 0\n#define FX_TRAIN_BC 0\n#define FX_SLOT 8\n#define FX_BITS 8\n"
            "#define FX_MOMENTUM 0\n#define FX_ACC_WIDE 0\n#define FX_GRAD_WIDE 0\n#define FX_PERM_WIDE 0\n"
            "#define FX_GRAD_CHUNK 64u\n#define FX_ACC_BYTES 4u\n#include \"fx_train_runtime.h\"\n"
            f"{checks}typedef char size_all[sizeof(fx_layer) == {size}u ? 1 : -1];\nint main(void) {{ return 0; }}\n")


@needs_gcc
@pytest.mark.parametrize("cc", ["gcc", "arm-none-eabi-gcc"])
def test_c_fx_layer_has_the_layout_of_its_python_mirror(tmp_path, cc):
    from c_helpers import CFLAGS
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed: apt-get install gcc-arm-none-eabi")
    from fxtrain.firmware.train_export import FX_LAYER
    src = tmp_path / "layout.c"
    src.write_text(_layout_program())
    flags = ["-mcpu=cortex-m4", "-mthumb"] if cc.startswith("arm") else []
    proc = subprocess.run([cc, *CFLAGS, *flags, "-c", f"-I{RUNTIME}", str(src), "-o", str(tmp_path / "o.o")],
                          capture_output=True, text=True)
    # every field's offset and type, and the struct's size, are compile-time facts checked by the compiler
    assert proc.returncode == 0, proc.stderr
    # and the mirror names every field, in the header's order
    assert [f for f, _ in FX_LAYER] == _struct_fields()


def _struct_fields():
    """Field names of fx_layer in declaration order, read from the header (comments removed)."""
    body = re.search(r"typedef struct \{(.*?)\} fx_layer;", (RUNTIME / "fx_train_runtime.h").read_text(), re.S)
    text = re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)
    return [name for decl in text.split(";") if decl.strip() for name in
            (p.strip() for p in decl.split(None, 1)[1].split(","))]


@needs_gcc
def test_an_unregistered_kind_stops_the_c_training_runtime(tmp_path):
    from fxtrain.firmware.train_verify import HOST_CFLAGS, _build
    fxtrain.train(epochs=1, out=tmp_path / "run", arch="dense:8,dense:10")
    fxtrain.export(tmp_path / "run", tmp_path / "fw", train_step=True)
    fw = tmp_path / "fw"
    header = (fw / "fx_train.h").read_text()
    assert header.count(".kind = 0u") == 2
    exe = tmp_path / "prog"
    _build(fw, "fx", 1, False, "gcc", HOST_CFLAGS, out=exe)
    ok = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("S 0")
    (fw / "fx_train.h").write_text(header.replace(".kind = 0u", f".kind = {UNKNOWN}u", 1))
    _build(fw, "fx", 1, False, "gcc", HOST_CFLAGS, out=exe)
    bad = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    # fx_unknown_kind traps before the first step completes: no checksum line, death by a signal
    assert bad.returncode < 0 and "S 0" not in bad.stdout
