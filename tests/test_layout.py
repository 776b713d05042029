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
STAGES = ["engine", "training", "device", "firmware", "experiments", "cli"]
SHARED = {"errors", "_files", "data", "__init__"}


def _imports(path):
    """fxtrain subpackages or modules named by the relative and absolute imports of ``path``."""
    rel = path.relative_to(PKG).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[:len(rel) - node.level]
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("fxtrain."):
                mod = node.module.split(".")[1:]
            else:
                continue
            found.add(mod[0] if mod else "__init__")
    return found


def test_stages_import_only_earlier_stages():
    for stage_i, stage in enumerate(STAGES):
        for path in (PKG / stage).rglob("*.py"):
            later = {s for s in STAGES[stage_i + 1:]} & _imports(path)
            # a stage that reached forward would make the pipeline a knot
            assert not later, f"{path.relative_to(PKG)} imports the later stage(s) {later}"


def test_shared_modules_import_no_stage_but_engine_numbers():
    for name in ("errors.py", "_files.py", "data/__init__.py", "data/files.py", "data/synthetic.py"):
        assert not (_imports(PKG / name) & set(STAGES)), name


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
