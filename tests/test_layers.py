"""Data flows one way: no import points up a layer or closes a cycle (imports inside functions included).

Layers, bottom to top: paths/profiles/defaults/provenance/runs/io -> dsp -> losses, models -> data ->
training -> pipeline/master -> semantic -> evaluation -> reports (figures, literature, ``*report*``)
-> paper -> command lines (``cli``, ``__main__``, ``notebooks``) -> the listening-test app, which may
import ``mastering`` but is never imported by it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mastering.runs import import_graph as _import_graph
from mastering.runs import imported_modules, package_modules

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mastering", "listening_test")
LAYERS = [
    {"mastering", "paths", "profiles", "defaults", "provenance", "runs", "io", "weights", "signals"},
    {"dsp"},
    {"losses", "models"},
    {"data"},
    {"training"},
    {"pipeline", "master"},
    {"semantic"},
    {"evaluation"},
    {"reports"},
    {"paper"},
    {"commands"},
    {"listening_test"},
]


def _modules(root: Path = REPO) -> dict[str, Path]:
    return package_modules(root, PACKAGES)


def layer_of(module: str) -> int:
    """The layer index of a module (see the module docstring)."""
    parts = module.split(".")
    if parts[0] == "listening_test":
        name = "listening_test"
    elif parts[-1] in ("cli", "__main__", "notebooks"):
        name = "commands"
    elif parts[-1] in ("figures", "literature") or any("report" in p for p in parts[1:]):
        name = "reports"
    else:
        name = parts[1] if len(parts) > 1 else "mastering"
    for index, names in enumerate(LAYERS):
        if name in names:
            return index
    raise AssertionError(f"{module}: no layer assigned; add it to LAYERS in {__file__}")


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """``{module: modules it imports}`` for every module of the packages, at any depth of the code."""
    return _import_graph(root, PACKAGES)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a module from a higher layer (a package ``__init__`` re-exporting its own modules is fine)."""
    bad = []
    for module, targets in graph.items():
        for target in sorted(targets):
            if target.startswith(module + "."):  # a package importing its own modules
                continue
            if layer_of(target) > layer_of(module):
                bad.append(f"{module} -> {target}")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w.startswith(v + "."):  # a package's __init__ re-exporting its modules is not a cycle
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    for module in _modules():
        layer_of(module)


def test_no_import_points_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


@pytest.fixture()
def planted(tmp_path):
    """A copy of the packages with one planted back-edge: the loudness meter importing the evaluation's
    metrics (which measure with the loudness meter: a cycle too)."""
    import shutil

    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    module = tmp_path / "mastering" / "dsp" / "loudness.py"
    module.write_text(module.read_text() + "\n\ndef _planted():\n    from ..evaluation import metrics  # noqa: F401\n")
    return tmp_path


def test_the_check_fails_on_a_planted_back_edge(planted):
    graph = import_graph(planted)
    assert "mastering.dsp.loudness -> mastering.evaluation.metrics" in upward_imports(graph)
    assert any("mastering.dsp.loudness" in c and "mastering.evaluation.metrics" in c for c in cycles(graph))


def _function_imports(path: Path, module: str, modules: dict[str, Path]) -> list[str]:
    """Package modules imported inside functions of ``path`` (``module``)."""
    found = []
    for func in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found += [f"{module}:{node.lineno} -> {t}" for t in imported_modules(module, path, node, modules)]
    return found


def test_package_imports_sit_at_module_top():
    """Inside a function only the command lines import the package (so that `mastering --help` starts
    without torch); everything else imports it at module top, where a cycle would show at once."""
    modules = _modules()
    inner = [hit for module, path in modules.items() if module.split(".")[-1] not in ("cli", "__main__")
             for hit in _function_imports(path, module, modules)]
    assert inner == []
