"""Music sources: the prepared tracks (Debian soundtracks, rendered MIDI) as :class:`TrackInfo`.

The Debian and rendered sources are decoded once by ``python -m mastering.data prepare`` into the
track cache; this module reads their manifest (:func:`mastering.data.manifest.load_manifest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import save_audio
from ..paths import data_dir
from . import manifest as mf
from .debian import SkipTrack, decode_file
from .manifest import load_manifest

__all__ = ["TrackInfo", "list_tracks", "tracks_from_frame", "fma_tracks", "musdb_tracks", "cache_local_tracks"]


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


# --------------------------------------------------------------------------------------------
# datasets users may have locally: FMA and MUSDB18-HQ

FMA_LICENSE_DEFAULT = "FMA: per-track Creative Commons licence (see tracks.csv)"
MUSDB_LICENSE = "MUSDB18-HQ: research use (sigsep.github.io/datasets/musdb.html)"
_FMA_SPLITS = {"training": "train", "validation": "valid", "test": "test"}


def _header_duration(path: Path) -> tuple[float, int]:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:
        return float("nan"), 0
    return (info.frames / info.samplerate if info.samplerate else float("nan")), int(info.samplerate)


def fma_tracks(root, subset: str = "small", metadata=None) -> pd.DataFrame:
    """Tracks of a local Free Music Archive copy (Defferrard et al., ISMIR 2017).

    Layout (as distributed): ``<root>/fma_<subset>/<NNN>/<NNNNNN>.mp3`` (the folder is the track
    id's first three digits) and ``<root>/fma_metadata/tracks.csv`` (two header rows, e.g.
    ``("set", "subset")``, ``("set", "split")``, ``("track", "license")``, ``("track",
    "genre_top")``; ``track_id`` index). ``root`` may also be the ``fma_<subset>`` folder itself,
    with ``metadata`` pointing at ``tracks.csv``.

    The split is FMA's own (``training``/``validation``/``test`` -> ``train``/``valid``/``test``)
    when ``tracks.csv`` is found, else ``train``. Files listed in the metadata but missing, and
    audio files without metadata, are kept/dropped as follows: audio without a metadata row is
    kept with the default licence; metadata rows without audio are ignored.

    Returns:
        A manifest-like frame (``source="fma"``, ``kind="real"``, ``package="fma_<subset>"``).

    Raises:
        FileNotFoundError: no ``fma_<subset>`` folder with MP3 files under ``root``.
    """
    root = Path(root)
    audio_dir = root / f"fma_{subset}" if (root / f"fma_{subset}").is_dir() else root
    files = sorted(audio_dir.glob("[0-9][0-9][0-9]/*.mp3"))
    if not files:
        raise FileNotFoundError(f"no FMA audio (NNN/NNNNNN.mp3) under {audio_dir}")
    meta_path = Path(metadata) if metadata else root / "fma_metadata" / "tracks.csv"
    meta = None
    if meta_path.exists():
        meta = pd.read_csv(meta_path, index_col=0, header=[0, 1])
    rows = []
    for order, f in enumerate(files):
        tid = int(f.stem)
        split, license_name, genre = "train", FMA_LICENSE_DEFAULT, ""
        if meta is not None and tid in meta.index:
            m = meta.loc[tid]
            split = _FMA_SPLITS.get(str(m.get(("set", "split"), "training")), "train")
            lic = m.get(("track", "license"), "")
            license_name = str(lic) if isinstance(lic, str) and lic else FMA_LICENSE_DEFAULT
            g = m.get(("track", "genre_top"), "")
            genre = str(g) if isinstance(g, str) else ""
        duration, rate = _header_duration(f)
        rows.append({"source": "fma", "kind": "real", "package": f"fma_{subset}", "track_id": f"{tid:06d}",
                     "file": f.relative_to(audio_dir).as_posix(), "path": str(f), "duration_s": duration,
                     "sample_rate": rate, "license": license_name, "split": split, "genre": genre,
                     "order": order})
    return pd.DataFrame(rows)


def musdb_tracks(root) -> pd.DataFrame:
    """Mixtures of a local MUSDB18-HQ copy (Rafii et al., 2019; the uncompressed WAV version).

    Layout: ``<root>/{train,test}/<Artist - Title>/mixture.wav`` (plus the stems ``drums.wav``,
    ``bass.wav``, ``other.wav``, ``vocals.wav``, which are not used here). The split is the
    dataset's own (``train``/``test``).

    Raises:
        FileNotFoundError: no ``train/*/mixture.wav`` or ``test/*/mixture.wav`` under ``root``.
    """
    root = Path(root)
    rows = []
    for split in ("train", "test"):
        for order, mix in enumerate(sorted((root / split).glob("*/mixture.wav"))):
            duration, rate = _header_duration(mix)
            rows.append({"source": "musdb", "kind": "real", "package": f"musdb18hq_{split}",
                         "track_id": mix.parent.name, "file": mix.relative_to(root).as_posix(), "path": str(mix),
                         "duration_s": duration, "sample_rate": rate, "license": MUSDB_LICENSE, "split": split,
                         "order": order})
    if not rows:
        raise FileNotFoundError(f"no MUSDB18-HQ mixtures ({{train,test}}/<track>/mixture.wav) under {root}")
    return pd.DataFrame(rows)


def cache_local_tracks(df: pd.DataFrame, sample_rate: int, progress: bool = False) -> tuple[pd.DataFrame, list]:
    """Decode local tracks (:func:`fma_tracks`/:func:`musdb_tracks`) into the track cache at
    ``sample_rate`` (stereo 16-bit WAV) and add them to ``manifests/tracks.csv``.

    Undecodable files are skipped with their reason (no minimum duration: FMA clips are 30 s).

    Returns:
        ``(rows of the cached tracks with absolute paths and the source's own split, skipped
        [(package, file, reason)])``.
    """

    root = data_dir()
    tracks = mf.read_tracks()
    known = {(r.source, r.track_id): r for r in tracks.itertuples()}
    rows, skipped, out = [], [], []
    iterator = df.itertuples(index=False)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(list(iterator), desc="local tracks", unit="track")
    for t in iterator:
        rel = mf.track_cache_path(t.source, f"{t.package}/{t.track_id}")
        k = known.get((t.source, f"{t.package}/{t.track_id}"))
        if k is None or not (root / rel).exists() or int(k.sample_rate) != int(sample_rate):
            try:
                dec = decode_file(Path(t.path), t.package, sample_rate, min_seconds=0.0)
            except SkipTrack as skip:
                skipped.append((t.package, t.file, skip.reason))
                continue
            audio = np.clip(dec.audio.numpy(), -1.0, 1.0)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            save_audio(root / rel, audio, sample_rate, subtype="PCM_16")
            lufs, peak = mf.loudness_peak(audio, sample_rate)
            rows.append({"source": t.source, "kind": t.kind, "package": t.package,
                         "track_id": f"{t.package}/{t.track_id}", "file": t.file, "path": rel.as_posix(),
                         "duration_s": round(audio.shape[-1] / sample_rate, 4), "sample_rate": int(sample_rate),
                         "orig_sample_rate": dec.orig_sample_rate, "orig_format": dec.orig_format, "channels": 2,
                         "loudness_lufs": round(lufs, 3), "peak_dbfs": round(peak, 3), "clipped_samples": 0,
                         "license": t.license, "copyright_file": "", "order": t.order,
                         "source_split": t.split})
        out.append({"source": t.source, "track_id": f"{t.package}/{t.track_id}", "split": t.split})
    tracks = mf.merge_rows(tracks, rows, ["source", "track_id"], mf.TRACK_COLUMNS)
    mf.write_table(tracks, mf.tracks_path())
    cached = tracks.merge(pd.DataFrame(out, columns=["source", "track_id", "split"]), on=["source", "track_id"])
    cached["path"] = [str(root / p) for p in cached["path"]]
    return cached, skipped
