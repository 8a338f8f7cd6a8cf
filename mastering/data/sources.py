"""Music sources: the prepared tracks (Debian soundtracks, rendered MIDI) as :class:`TrackInfo`.

The Debian and rendered sources are decoded once by ``python -m mastering.data prepare`` into the
track cache; this module reads their manifest (:func:`mastering.data.manifest.load_manifest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .manifest import load_manifest

__all__ = ["TrackInfo", "list_tracks", "tracks_from_frame"]


@dataclass(frozen=True)
class TrackInfo:
    """One decoded, stereo track of the cache (see :mod:`mastering.data.manifest` for fields)."""

    path: Path
    source: str
    kind: str
    package: str
    track_id: str
    duration_s: float
    sample_rate: int
    license: str
    split: str
    loudness_lufs: float = float("nan")
    file: str = ""

    @property
    def key(self) -> str:
        """Globally unique id ``<source>/<track_id>``."""
        return f"{self.source}/{self.track_id}"


def tracks_from_frame(df: pd.DataFrame) -> list[TrackInfo]:
    """Convert manifest rows (with ``split``) to :class:`TrackInfo` objects."""
    out = []
    for r in df.itertuples(index=False):
        out.append(TrackInfo(
            path=Path(r.path), source=str(r.source), kind=str(r.kind), package=str(r.package),
            track_id=str(r.track_id), duration_s=float(r.duration_s), sample_rate=int(r.sample_rate),
            license=str(r.license), split=str(getattr(r, "split", "train")),
            loudness_lufs=float(getattr(r, "loudness_lufs", float("nan"))), file=str(getattr(r, "file", "")),
        ))
    return out


def list_tracks(
    source: str | None = None,
    split: str | None = None,
    profile: str | None = None,
    kind: str | None = None,
) -> list[TrackInfo]:
    """The prepared tracks as :class:`TrackInfo` (filters as in :func:`load_manifest`).

    Raises:
        FileNotFoundError: nothing prepared yet (run ``make data``).
    """
    return tracks_from_frame(load_manifest(profile=profile, source=source, split=split, kind=kind))
