"""Where the compendium keeps things.

Raw data is never edited; fetched and derived data live in git-ignored folders under the
repository (``data/``, ``runs/``, ``build/``), and the paper reads only generated files under
``paper/figures`` and ``paper/tables``. Every location can be moved with an environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Cache for fetched and decoded audio (``$MASTERING_DATA_DIR``, default ``data/``)."""
    return _env_path("MASTERING_DATA_DIR", REPO_ROOT / "data")


def runs_dir() -> Path:
    """Training runs, checkpoints and evaluation results (``$MASTERING_RUNS_DIR``, default ``runs/``)."""
    return _env_path("MASTERING_RUNS_DIR", REPO_ROOT / "runs")


def build_dir() -> Path:
    """Executed notebooks and other build products (``$MASTERING_BUILD_DIR``, default ``build/``)."""
    return _env_path("MASTERING_BUILD_DIR", REPO_ROOT / "build")


def paper_dir() -> Path:
    """The manuscript folder whose figures and tables the notebooks write (``$MASTERING_PAPER_DIR``)."""
    return _env_path("MASTERING_PAPER_DIR", REPO_ROOT / "paper")


def figures_dir() -> Path:
    return paper_dir() / "figures"


def tables_dir() -> Path:
    return paper_dir() / "tables"


def notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"


def safedb_dir() -> Path:
    """Folder holding ``SAFEEqualiserUserData.csv``.

    ``$MASTERING_SAFEDB_DIR`` when set; else ``../shared/data/safedb`` beside the repository when it
    exists; else ``data/safedb`` (where ``make data`` fetches it to when online).
    """
    env = os.environ.get("MASTERING_SAFEDB_DIR")
    if env:
        return Path(env).expanduser().resolve()
    shared = REPO_ROOT.parent / "shared" / "data" / "safedb"
    if shared.is_dir():
        return shared
    return data_dir() / "safedb"
