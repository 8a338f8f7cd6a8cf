"""The notebook runner, and every numbered notebook executed in the smoke profile."""

import json
import os

import nbformat
import pytest

from mastering import notebooks as runner
from mastering import paths
from mastering.semantic.safedb import SAFEDB_FILENAME

#: What a notebook calls when it reads SAFE-DB (directly or through the semantic-EQ bundle).
_SAFEDB_CALLS = ("load_safedb", "build_semantic_eq")


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(src) for src in cells]
    nbformat.write(nb, str(path))
    return path


def test_discover_orders_numerically_and_select(tmp_path):
    for name in ["10_b.ipynb", "02_a.ipynb", "01_z.ipynb", "notes.ipynb"]:
        _notebook(tmp_path / name, [])
    found = runner.discover(tmp_path)
    assert [nb.path.name for nb in found] == ["01_z.ipynb", "02_a.ipynb", "10_b.ipynb"]
    assert [nb.number for nb in runner.select(found, "10,1")] == ["01", "10"]
    with pytest.raises(ValueError, match="no notebook matches"):
        runner.select(found, "07")


def test_runner_passes_profile_and_names_failing_cell(tmp_path):
    ok = _notebook(tmp_path / "01_ok.ipynb", ["import os\nassert profile == 'smoke'\nprint(os.environ['MASTERING_NOTEBOOK'])"])
    out = runner.run_notebook(ok, "smoke", tmp_path / "out")
    executed = json.loads(out.read_text())
    assert any("01_ok" in "".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))

    bad = _notebook(tmp_path / "02_bad.ipynb", ["x = 1", "raise RuntimeError('boom in cell')"])
    with pytest.raises(runner.NotebookFailure) as info:
        runner.run_notebook(bad, "smoke", tmp_path / "out")
    message = str(info.value)
    assert "02_bad.ipynb" in message and "RuntimeError: boom in cell" in message and "cell" in message
    assert "raise RuntimeError" in message  # shows the failing cell's source


def test_run_all_stops_at_first_failure(tmp_path):
    _notebook(tmp_path / "01_fail.ipynb", ["raise ValueError('first')"])
    _notebook(tmp_path / "02_never.ipynb", ["open('ran', 'w').write('yes')"])
    with pytest.raises(runner.NotebookFailure, match="01_fail"):
        runner.run_all("smoke", folder=tmp_path, output_dir=tmp_path / "out")
    assert not (tmp_path / "ran").exists()


def test_unknown_profile_is_refused(tmp_path):
    nb = _notebook(tmp_path / "01_x.ipynb", [])
    with pytest.raises(ValueError, match="unknown profile"):
        runner.run_notebook(nb, "huge", tmp_path)


@pytest.fixture(scope="session")
def notebook_env(tmp_path_factory):
    """Hermetic outputs for notebook runs: paper and runs folders in a session temp dir."""
    root = tmp_path_factory.mktemp("notebooks")
    env = {"MASTERING_PAPER_DIR": str(root / "paper"), "MASTERING_RUNS_DIR": str(root / "runs")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", runner.discover(), ids=lambda nb: nb.name)
def test_notebook_runs_in_smoke(notebook, notebook_env):
    if any(call in notebook.path.read_text() for call in _SAFEDB_CALLS) \
            and not (paths.safedb_dir() / SAFEDB_FILENAME).is_file():
        pytest.skip(f"{notebook.name} needs SAFE-DB, which is not at {paths.safedb_dir()} "
                    "(set MASTERING_SAFEDB_DIR or run `make data` online)")
    runner.run_notebook(notebook.path, "smoke", notebook_env / "executed")
    produced = list((notebook_env / "paper").rglob("*.json"))
    mine = [p for p in produced if json.loads(p.read_text()).get("notebook") == notebook.name]
    assert mine, f"{notebook.name} wrote no figure or table under paper/"
