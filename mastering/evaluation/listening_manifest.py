"""The listening test's stimuli manifest: one row per rating trial (item x condition x target).

``manifest.csv`` lives at the root of a stimuli folder; :func:`load_manifest` reads and validates
it (the folder layout and the columns are described there), :func:`write_manifest` writes it. The
app serves the stimuli it lists, the trial schedules are built from its rows
(:mod:`mastering.evaluation.listening_design`) and the objective analysis measures its files. This
module imports only the standard library so that the server starts fast.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MANIFEST_NAME",
    "REQUIRED_COLUMNS",
    "ManifestRow",
    "Manifest",
    "load_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("item", "condition", "target", "path")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TARGET_RE = re.compile(r"^[a-z][a-z -]{0,31}$")


@dataclass(frozen=True)
class ManifestRow:
    """One stimulus as it is rated: ``item`` processed by ``condition``, rated for ``target``."""

    item: str
    condition: str
    target: str
    path: str  # relative to the stimuli folder, forward slashes
    placeholder: bool = False


@dataclass(frozen=True)
class Manifest:
    """A validated manifest and the folder its paths are relative to."""

    root: Path
    rows: tuple[ManifestRow, ...]
    sha256: str

    @property
    def conditions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.condition for r in self.rows))

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.target for r in self.rows))

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.item for r in self.rows))

    def resolve(self, relative: str) -> Path:
        """Absolute path of a stimulus, refusing anything outside :attr:`root`."""
        return _inside(self.root, relative)


def _inside(root: Path, relative: str) -> Path:
    if not relative or relative.startswith(("/", "\\")) or "\\" in relative or ":" in relative:
        raise ValueError(f"stimulus path {relative!r} must be relative to the stimuli folder, with '/'")
    full = (root / relative).resolve()
    if not full.is_relative_to(root.resolve()):
        raise ValueError(f"stimulus path {relative!r} points outside the stimuli folder {root}")
    return full


def _parse_bool(value: str, where: str) -> bool:
    v = (value or "").strip().lower()
    if v in ("", "0", "false", "no"):
        return False
    if v in ("1", "true", "yes"):
        return True
    raise ValueError(f"{where}: placeholder must be 0/1 or true/false, got {value!r}")


def load_manifest(stimuli_dir: str | os.PathLike, check_files: bool = True) -> Manifest:
    """Read and validate ``<stimuli_dir>/manifest.csv``.

    Folder layout::

        stimuli/
          manifest.csv
          original/<item>.wav                  # the unprocessed excerpt, shared by all targets
          <condition>/<target>/<item>.wav      # a system under test asked for ``target``

    Required columns :data:`REQUIRED_COLUMNS` (``path`` relative to the folder); ``placeholder``
    (0/1) marks stimuli made by placeholder systems rather than the systems under test and is
    carried into every exported response. Other columns (written by ``listening_test.stimuli``:
    ``system``, ``source``, ``integrated_lufs`` ...) are kept for provenance and ignored.

    Args:
        stimuli_dir: the stimuli folder.
        check_files: also require every listed WAV file to exist.

    Raises:
        ValueError: a missing manifest or column, an empty manifest, a malformed name or target,
            a path outside the folder or not ending in ``.wav``, a missing file, or the same
            (item, condition, target) listed twice.
    """
    root = Path(stimuli_dir).expanduser().resolve()
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(
            f"{path}: no manifest; generate the stimuli first "
            "(`python -m listening_test stimuli --help`)"
        )
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; required are {list(REQUIRED_COLUMNS)}")
    rows: list[ManifestRow] = []
    seen: set[tuple[str, str, str]] = set()
    for line_no, rec in enumerate(reader, start=2):
        where = f"{path}:{line_no}"
        item, condition = rec["item"].strip(), rec["condition"].strip()
        target, rel = rec["target"].strip(), rec["path"].strip()
        for label, value in (("item", item), ("condition", condition)):
            if not _NAME_RE.match(value):
                raise ValueError(f"{where}: {label} {value!r} must be 1-64 letters, digits, '_', '-', '.'")
        if not _TARGET_RE.match(target):
            raise ValueError(
                f"{where}: target {target!r} must be a lower-case adjective such as 'warm' "
                "(it is shown as 'Rate how <target> this audio sounds')"
            )
        if not rel.lower().endswith(".wav"):
            raise ValueError(f"{where}: path {rel!r} must be a .wav file")
        full = _inside(root, rel)
        if check_files and not full.is_file():
            raise ValueError(f"{where}: stimulus file {full} does not exist")
        key = (item, condition, target)
        if key in seen:
            raise ValueError(f"{where}: item/condition/target {key} is listed twice")
        seen.add(key)
        rows.append(ManifestRow(item, condition, target, rel, _parse_bool(rec.get("placeholder", ""), where)))
    if not rows:
        raise ValueError(f"{path}: the manifest lists no stimuli")
    return Manifest(root, tuple(rows), hashlib.sha256(raw).hexdigest())


def write_manifest(stimuli_dir: str | os.PathLike, records: list[dict], fieldnames: list[str]) -> Path:
    """Write ``records`` as ``<stimuli_dir>/manifest.csv`` atomically (temporary file, then rename)."""
    root = Path(stimuli_dir)
    missing = [c for c in REQUIRED_COLUMNS if c not in fieldnames]
    if missing:
        raise ValueError(f"manifest fieldnames lack {missing}")
    path = root / MANIFEST_NAME
    tmp = root / f".{MANIFEST_NAME}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(records)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
