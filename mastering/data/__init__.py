"""Data layer: real-music sources, manifests with by-track splits, demastering, datasets.

After ``make data`` (``python -m mastering.data prepare --profile smoke``)::

    from mastering.data import load_manifest, list_tracks
    df = load_manifest("smoke")                           # one row per track, with its split
    tracks = list_tracks(split="test", profile="smoke")   # [TrackInfo, ...], whole test tracks

Submodules: ``debian``, ``rendered``, ``sources`` (FMA, MUSDB18-HQ), ``prepare`` (``make data``),
``manifest``, ``demaster``, ``datasets``, ``report``.
"""

from .manifest import load_manifest, load_segments, load_skipped
from .sources import TrackInfo, list_tracks

__all__ = ["load_manifest", "load_segments", "load_skipped", "TrackInfo", "list_tracks"]
