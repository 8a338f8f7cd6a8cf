"""The run cache's one rule: a run is stale when its settings, its data or the code it can reach change."""

from __future__ import annotations

import shutil

import pytest

from mastering import runs

REPO = runs.REPO_ROOT


@pytest.fixture()
def copy_of_package(tmp_path):
    shutil.copytree(REPO / "mastering", tmp_path / "mastering", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_dependencies_follow_imports_transitively():
    deps = runs.dependencies("mastering.semantic.vae")
    assert {"mastering.semantic.vae", "mastering.semantic.safedb", "mastering.dsp.eq"} <= set(deps)
    assert "mastering.semantic.e2e" not in deps and "mastering.listening_test" not in deps
    assert set(runs.dependencies("mastering.dsp.eq")) < set(deps)
    with pytest.raises(ValueError, match="not modules"):
        runs.dependencies("mastering.nothing_here")


def test_fingerprint_changes_with_reachable_code_only(copy_of_package):
    root = copy_of_package
    before = {m: runs.code_fingerprint(m, root=root) for m in ("mastering.semantic.vae", "mastering.dsp.eq")}
    assert before["mastering.semantic.vae"] == runs.code_fingerprint("mastering.semantic.vae")  # same source, same key
    # an edit in a module the VAE does not import leaves its runs valid
    e2e = root / "mastering" / "semantic" / "e2e.py"
    e2e.write_text(e2e.read_text() + "\n# a comment\n")
    runs._graph.cache_clear()
    assert runs.code_fingerprint("mastering.semantic.vae", root=root) == before["mastering.semantic.vae"]
    # an edit in a module it imports (the EQ) makes them stale, and the EQ's own runs too
    eq = root / "mastering" / "dsp" / "eq.py"
    eq.write_text(eq.read_text() + "\n# a comment\n")
    runs._graph.cache_clear()
    assert runs.code_fingerprint("mastering.semantic.vae", root=root) != before["mastering.semantic.vae"]
    assert runs.code_fingerprint("mastering.dsp.eq", root=root) != before["mastering.dsp.eq"]


def test_run_folder_is_named_by_the_whole_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path))
    key = runs.run_key({"epochs": 3}, ["mastering.dsp.eq"], pairs="abc")
    folder = runs.run_folder("thing", "smoke", key)
    assert folder.parent == tmp_path / "thing" and folder.name.startswith("smoke-") and not folder.exists()
    assert runs.run_folder("thing", "smoke", dict(key)) == folder
    assert runs.run_folder("thing", "smoke", runs.run_key({"epochs": 4}, ["mastering.dsp.eq"], pairs="abc")) != folder
    assert runs.run_folder("thing", "smoke", runs.run_key({"epochs": 3}, ["mastering.dsp.eq"], pairs="abd")) != folder
    assert runs.run_folder("thing", "smoke", {**key, "code": "0" * 12}) != folder
    assert runs.run_folder("thing", "cpu", key) != folder
    assert runs.run_folder("thing", "smoke", key, label="torch").name.startswith("smoke-torch-")


def test_no_module_names_its_own_staleness_rule():
    """Every cached run goes through mastering.runs: no hand-listed source files or git commits in keys."""
    offenders = []
    for path in (REPO / "mastering").rglob("*.py"):
        text = path.read_text()
        if path.name != "runs.py" and ("read_bytes()" in text and "digest.update" in text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
