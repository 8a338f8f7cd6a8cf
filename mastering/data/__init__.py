"""Data layer: real-music sources, manifests with by-track splits, demastering, datasets.

Quick start (after ``make data``)::

    from mastering.data import load_manifest, list_tracks
    df = load_manifest("smoke")               # DataFrame: path, source, package, track_id,
                                              # duration_s, sample_rate, license, split, ...
    tracks = list_tracks(split="test", profile="smoke")   # [TrackInfo, ...]

See :mod:`mastering.data.manifest` for the columns and the split rule, and
:mod:`mastering.data.prepare` for how the cache is built.
"""

from .manifest import load_manifest, load_segments, load_skipped
from .sources import TrackInfo, list_tracks

__all__ = ["load_manifest", "load_segments", "load_skipped", "TrackInfo", "list_tracks"]
