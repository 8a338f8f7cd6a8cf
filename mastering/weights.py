"""The released default weights in ``weights/``: find them and check them against their model card.

A release is ``weights/<name>.pt`` (a mastering-model checkpoint, float16 weights) beside
``weights/<name>.json``, its model card (data, packages, split, commit, profile, metrics,
``sha256``). ``make weights`` writes both (:mod:`mastering.evaluation.release`); ``mastering
master`` falls back to :func:`default_weights` when no checkpoint is given and no local run exists.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .paths import REPO_ROOT

__all__ = ["DEFAULT_NAME", "SEMANTIC_NAME", "WeightsError", "weights_dir", "sha256", "read_card", "verified",
           "verified_files", "default_weights"]

DEFAULT_NAME = "mastering"
"""The name of the default mastering release (``weights/mastering.pt``)."""
SEMANTIC_NAME = "semantic"
"""The name of the semantic EQ release (``weights/semantic/`` and ``weights/semantic.json``)."""


class WeightsError(ValueError):
    """A release whose file or card is missing, unreadable or does not match."""


def weights_dir() -> Path:
    """``weights/`` at the repository root (committed: the one place checkpoints live in git), or
    ``$MASTERING_WEIGHTS_DIR``."""
    return Path(os.environ.get("MASTERING_WEIGHTS_DIR") or REPO_ROOT / "weights")


def sha256(path: str | Path, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(name: str = DEFAULT_NAME, folder: str | Path | None = None) -> dict[str, Any]:
    """The model card ``<folder>/<name>.json``.

    Raises:
        WeightsError: missing or not JSON.
    """
    path = Path(folder or weights_dir()) / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"no model card {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"model card {path} is unreadable ({exc})") from None


def verified(name: str = DEFAULT_NAME, folder: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """``(weights file, card)`` after checking the file's SHA-256 and size against the card.

    Raises:
        WeightsError: a missing file or card, or a file that is not the one the card describes.
    """
    folder = Path(folder or weights_dir())
    card = read_card(name, folder)
    path = folder / card.get("file", f"{name}.pt")
    if not path.is_file():
        raise WeightsError(f"model card {folder / (name + '.json')} names {path}, which does not exist")
    actual = sha256(path)
    if actual != card.get("sha256"):
        raise WeightsError(f"{path}: SHA-256 {actual[:12]}... differs from its card's {str(card.get('sha256'))[:12]}...; "
                           "the file is damaged or not the released one (`make weights` rebuilds it)")
    return path, card


def default_weights(folder: str | Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The default release, verified, or ``None`` when none is shipped.

    Raises:
        WeightsError: a release is present but does not match its card.
    """
    folder = Path(folder or weights_dir())
    if not (folder / f"{DEFAULT_NAME}.json").is_file():
        return None
    return verified(DEFAULT_NAME, folder)


def verified_files(name: str = SEMANTIC_NAME, folder: str | Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """A multi-file release (``<folder>/<name>/`` with card ``<folder>/<name>.json`` listing one
    SHA-256 per file under ``files``), checked: ``(its folder, card)``, or ``None`` when not shipped.

    Raises:
        WeightsError: an unreadable card, or a file that is missing or differs from the card.
    """
    folder = Path(folder or weights_dir())
    if not (folder / f"{name}.json").is_file():
        return None
    card = read_card(name, folder)
    files = card.get("files") or {}
    if not files:
        raise WeightsError(f"model card {folder / (name + '.json')} lists no files")
    for rel, digest in files.items():
        path = folder / rel
        if not path.is_file():
            raise WeightsError(f"model card {folder / (name + '.json')} names {path}, which does not exist")
        if sha256(path) != digest:
            raise WeightsError(f"{path}: SHA-256 differs from its card's; the file is damaged or not the released "
                               "one (`make weights` rebuilds it)")
    return folder / name, card
