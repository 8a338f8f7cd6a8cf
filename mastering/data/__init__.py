"""Data layer: real-music sources, manifests with by-track splits, demastering, datasets.

Quick start (after ``make data``, i.e. ``python -m mastering.data prepare --profile smoke``)::

    from mastering.data import load_manifest, list_tracks
    df = load_manifest("smoke")               # DataFrame: path, source, kind, package, track_id,
                                              # duration_s, sample_rate, loudness_lufs, license, split
    tracks = list_tracks(split="test", profile="smoke")   # [TrackInfo, ...], whole test tracks

Modules:

* :mod:`mastering.data.debian` -- fetch (``apt-get download`` + ``dpkg-deb -x``) and decode the
  Debian soundtrack packages; licences from their copyright files.
* :mod:`mastering.data.rendered` -- music21 corpus -> MIDI -> FluidSynth (GM soundfont).
* :mod:`mastering.data.sources` -- :class:`TrackInfo`, :func:`list_tracks`, local FMA and
  MUSDB18-HQ loaders.
* :mod:`mastering.data.prepare` -- the idempotent build behind ``make data``.
* :mod:`mastering.data.manifest` -- track/segment manifests, the by-track split rule.
* :mod:`mastering.data.demaster` -- the seeded demastering chain (``sample_params`` / ``apply``).
* :mod:`mastering.data.datasets` -- paired and multi-source datasets.
* :mod:`mastering.data.report` -- statistics table and figures of notebook 02.
"""

from .manifest import load_manifest, load_segments, load_skipped
from .sources import TrackInfo, list_tracks

__all__ = ["load_manifest", "load_segments", "load_skipped", "TrackInfo", "list_tracks"]
