"""The package's shape: stage subpackages import one way, the CLI starts without numba,
and a run needs neither scikit-learn nor SciPy."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PKG = Path(__file__).resolve().parent.parent / "fxtrain"
# Each stage may import only from stages to its left (and from the shared modules).
STAGES = ["engine", "training", "importing", "device", "firmware", "tflite", "measuring", "experiments", "cli"]
# tflite and measuring both build on firmware, side by side: neither imports the other.
SIBLINGS = ("tflite", "measuring")
SHARED = {"errors", "_files", "_version", "plots", "data", "layers", "results", "__init__"}
# Only these may import the package root (``from .. import X``, ``import fxtrain``) or the API.
TOP = ("api.py", "cli", "__init__.py")


def _is_module(parts):
    return bool(parts) and ((PKG.joinpath(*parts[:-1]) / f"{parts[-1]}.py").is_file() or PKG.joinpath(*parts).is_dir())


def _modules(source, rel):
    """fxtrain modules (dotted paths without ``fxtrain``; ``()`` is the package root) that
    ``source``, the file at ``rel`` inside the package, imports.

    ast.walk visits every node, so an import inside a function counts as much as one at
    the top; ``from .. import name`` counts as the module ``name`` when there is one.
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {tuple(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == "fxtrain"}
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            mod = list(rel[:-1])[:len(rel) - node.level] + (node.module.split(".") if node.module else [])
        elif node.module and node.module.split(".")[0] == "fxtrain":
            mod = node.module.split(".")[1:]
        else:
            continue
        found |= {tuple(mod + [a.name]) if _is_module(mod + [a.name]) else tuple(mod) for a in node.names}
    return found


def _imports(path):
    """fxtrain subpackages or top-level modules (``__init__`` for the package root) that ``path`` imports."""
    return {m[0] if m else "__init__" for m in _modules(path.read_text(), path.relative_to(PKG).parts)}


def _below_the_api():
    """Every module but the API, the CLI and the package root."""
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).parts
        if rel[0] not in TOP:
            yield path


def test_imports_inside_functions_are_seen():
    source = "def f():\n    from ..measuring import measure\n    import fxtrain\n"
    # a nested import is found, resolved to the module it names, and so is the package root
    assert _modules(source, ("firmware", "export.py")) == {("measuring", "measure"), ()}
    assert _imports(PKG / "api.py") >= {"training", "firmware", "tflite", "measuring", "plots"}


def test_stages_import_only_earlier_stages():
    for stage_i, stage in enumerate(STAGES):
        for path in (PKG / stage).rglob("*.py"):
            later = {s for s in STAGES[stage_i + 1:]} & _imports(path)
            # a stage that reached forward would make the pipeline a knot
            assert not later, f"{path.relative_to(PKG)} imports the later stage(s) {later}"


def test_tflite_and_measuring_do_not_import_each_other():
    for stage in SIBLINGS:
        other = {s for s in SIBLINGS if s != stage}
        for path in (PKG / stage).rglob("*.py"):
            assert not _imports(path) & other, f"{path.relative_to(PKG)} imports its sibling stage {other}"


def test_only_the_api_and_cli_import_the_package_root_or_the_api():
    for path in _below_the_api():
        # the root imports the API, so a stage importing either would close a loop through the top
        assert not _imports(path) & {"__init__", "api"}, f"{path.relative_to(PKG)} imports the package root or api"


def test_api_imports_no_cli_module():
    # the CLI is a shell over the API, never the other way round
    assert "cli" not in _imports(PKG / "api.py")


def test_shared_modules_import_no_stage_but_engine_numbers():
    for name in SHARED:
        paths = [PKG / f"{name}.py"] if (PKG / f"{name}.py").is_file() else list((PKG / name).rglob("*.py"))
        assert paths, name
        for path in paths:
            assert not (_imports(path) & set(STAGES)), path.relative_to(PKG)


def test_cli_help_imports_neither_numba_nor_numpy():
    code = "import sys; import fxtrain.cli; print('numba' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_training_run_does_not_import_sklearn():
    code = ("import sys, fxtrain; fxtrain.train(epochs=1, data='moons', arch='dense:8,dense:2'); "
            "fxtrain.train(epochs=1); print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _runtime_closure(dist):
    """Distribution names required (without extras) by ``dist``, transitively, as installed here."""
    from importlib.metadata import PackageNotFoundError, requires
    from packaging.requirements import Requirement
    seen, todo = set(), [dist]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in reqs:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_install_pulls_in_neither_sklearn_nor_scipy():
    # numba imports SciPy when it happens to be installed, so check what the install requires instead
    closure = _runtime_closure("fxtrain")
    assert {"numpy", "numba", "click", "tabulate"} <= closure
    assert not {"scikit-learn", "scipy"} & closure, closure


def test_nothing_refers_outside_the_repository():
    root = PKG.parent
    for path in [*PKG.rglob("*.py"), *root.glob("*.md"), *(root / "docs").rglob("*.md"),
                 *(root / "firmware_export").rglob("*")]:
        if path.is_file():
            assert "../shared" not in path.read_text(errors="replace"), path


def test_dense_accumulator_is_pinned_to_int32():
    from numba import njit
    from fxtrain.engine import kernels
    from fxtrain.engine.network import DENSE, LayerSpec, build_desc
    d = build_desc([LayerSpec(DENSE, (1, 1, 4), (1, 1, 2))])[0]
    fresh = njit(kernels.dense_forward.py_func)  # uncached, so numba keeps the type annotations
    fresh(d, np.ones(4, np.int8), np.ones(8, np.int8), 1, np.zeros(2, np.int32))
    typemap = next(iter(fresh.overloads.values())).type_annotation.typemap
    # the running sum stays int32, as in C, instead of widening to int64
    assert str(typemap["s"]) == "int32"
    from fxtrain.engine import gemm
    dot = njit(gemm.dot_gemm.py_func)
    dot(np.ones(4, np.int8), 4, 1, np.ones(8, np.int8), 2, np.zeros(2, np.int32), np.zeros(0, np.int32))
    # so does the integer kernels' dot product
    assert str(next(iter(dot.overloads.values())).type_annotation.typemap["s"]) == "int32"


@pytest.mark.parametrize("module", ["fxtrain.engine.numbers", "fxtrain.device.profiles", "fxtrain.training.config"])
def test_light_modules_load_without_numba(module):
    code = f"import sys; import {module}; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
