"""Provenance stamps for every generated artefact: profile, commit and date."""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

from .paths import REPO_ROOT


def git_commit(short: bool = False) -> str:
    """The repository's HEAD commit (``+dirty`` when the tracked tree has changes), or ``unknown``."""
    try:
        args = ["git", "-C", str(REPO_ROOT), "rev-parse"] + (["--short"] if short else []) + ["HEAD"]
        commit = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def stamp(profile: str, **extra: Any) -> dict[str, Any]:
    """A provenance record: profile, commit, UTC date, plus any ``extra`` fields."""
    record = {
        "profile": profile,
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "notebook": os.environ.get("MASTERING_NOTEBOOK", ""),
    }
    record.update(extra)
    return record


def write_sidecar(path: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as ``<path>.json`` beside a generated file and return the sidecar path."""
    sidecar = Path(str(path) + ".json")
    atomic_write_text(sidecar, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return sidecar


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """``torch.save`` through a temporary file in the same folder and an atomic rename."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _numpy_array_globals() -> list[tuple[Any, str]]:
    """What unpickles a NumPy array of numbers: its type, numeric dtypes and numpy's rebuild function.

    Checkpoints written before random states were stored as plain data hold NumPy's RNG state
    (an array of integers). These globals build arrays of numbers only (no object arrays);
    nothing they allow calls code.
    """
    import numpy as np

    reconstruct = np.zeros(0).__reduce__()[0]
    numeric = {type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"}
    return [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype"),
            (reconstruct, "numpy._core.multiarray._reconstruct"), (reconstruct, "numpy.core.multiarray._reconstruct"),
            *((cls, f"numpy.dtypes.{cls.__name__}") for cls in numeric)]


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load`` of tensors and plain data only (``weights_only=True``, plus NumPy arrays).

    Loading never runs code stored in the file; the counterpart of :func:`atomic_torch_save`.

    Raises:
        ValueError: the file cannot be read, or holds anything else (one line, naming the refused object).
    """
    import torch

    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ValueError(f"{path} is not a readable checkpoint ({exc.strerror})") from None
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch's zip format, or a legacy pickle
        raise ValueError(f"{path} is not a PyTorch checkpoint (neither torch's zip format nor a pickle)")
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = " ".join(str(exc).split("WeightsUnpickler error:")[-1].split())
        reason = reason.split(" Please use")[0].split(" Check the documentation")[0].rstrip(".")
        raise ValueError(f"{path} could not be read safely: {reason}; a checkpoint may hold only tensors and "
                         "plain data") from None
    except Exception as exc:  # not a torch file, truncated, missing...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path} is not a readable checkpoint ({reason})") from None
