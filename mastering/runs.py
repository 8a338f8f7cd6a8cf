"""The run cache: where a trained model or computed result is kept, and the one rule for when it is stale.

A run folder ``runs/<kind>/<profile>[-<label>]-<hash>`` is named by a hash of what was asked (the
resolved settings and the data's identity) and :func:`code_fingerprint` of the module that computes
it. A change to any of these gives a new folder; nothing else does (not the commit, the notebooks,
the documentation or modules the computation does not import).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping

from . import paths
from .paths import REPO_ROOT

__all__ = ["package_modules", "import_graph", "code_fingerprint", "run_key", "run_folder"]


def package_modules(root: Path = REPO_ROOT, packages: tuple[str, ...] = ("mastering",)) -> dict[str, Path]:
    """``{dotted module name: source path}`` of every module of ``packages`` under ``root``."""
    found = {}
    for package in packages:
        for path in sorted((Path(root) / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported_modules(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: Mapping[str, Path]) -> list[str]:
    """The modules of ``modules`` that one import statement of ``module`` (at ``path``) imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        names = [target] + [f"{target}.{alias.name}" for alias in node.names]
    found = []
    for name in names:
        while name and name not in modules:  # `import a.b.c` imports a.b.c (or its closest module)
            name = name.rpartition(".")[0]
        if name and name not in found:
            found.append(name)
    return found


def import_graph(root: Path = REPO_ROOT, packages: tuple[str, ...] = ("mastering",)) -> dict[str, set[str]]:
    """``{module: package modules it imports}``, reading every import statement at any depth (AST)."""
    modules = package_modules(root, packages)
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module].update(t for t in imported_modules(module, path, node, modules) if t != module)
        graph.setdefault(module, set())
    return dict(graph)


@functools.lru_cache(maxsize=4)
def _graph(root: str) -> dict[str, set[str]]:
    return import_graph(Path(root))


def dependencies(*modules: str, root: Path = REPO_ROOT) -> list[str]:
    """``modules`` and every package module they import, directly or not (sorted)."""
    graph = _graph(str(root))
    unknown = [m for m in modules if m not in graph]
    if unknown:
        raise ValueError(f"not modules of the package: {unknown}")
    seen, todo = set(), list(modules)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return sorted(seen)


def code_fingerprint(*modules: str, root: Path = REPO_ROOT) -> str:
    """SHA-1 (12 hex digits) of the source of ``modules`` and of every package module they import.

    This is the code part of every run's key: an edit to any file the computation can reach makes
    its cached runs stale; an edit anywhere else does not.
    """
    files = package_modules(Path(root))
    digest = hashlib.sha1()
    for m in dependencies(*modules, root=Path(root)):
        digest.update(m.encode() + b"\0" + files[m].read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def run_key(settings: Any, modules: tuple[str, ...] | list[str], **data: Any) -> dict[str, Any]:
    """The full key of a run: the resolved ``settings``, the ``data`` identity and the code fingerprint."""
    return {"settings": settings, "data": data, "code": code_fingerprint(*modules)}


def run_folder(kind: str, profile: str, key: Mapping[str, Any], label: str | None = None) -> Path:
    """``runs/<kind>/<profile>[-<label>]-<hash10>`` for a :func:`run_key` (nothing is created)."""
    blob = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return paths.runs_dir() / kind / "-".join([profile, *([label] if label else []), digest])
