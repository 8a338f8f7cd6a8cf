"""Track and segment manifests, and the by-track train/valid/test split.

``python -m mastering.data prepare --profile P`` writes, under :func:`mastering.paths.data_dir`,
``manifests/tracks.csv`` (one row per decoded track, :data:`TRACK_COLUMNS`), ``manifests/skipped.csv``
(unused files with the reason) and ``manifests/segments_<profile>.csv`` (:func:`segment_manifest`).
Entry points: :func:`load_manifest` (tracks with their ``split``; the columns are listed there),
:func:`load_segments`, :func:`assign_splits` (the split rule). Loudness columns are measured with
:func:`mastering.dsp.loudness.loudness`.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from ..dsp.loudness import loudness as bs1770_loudness
from ..io import save_audio
from ..paths import data_dir
from ..profiles import get_profile

__all__ = [
    "TRACK_COLUMNS",
    "SKIP_COLUMNS",
    "SEGMENT_COLUMNS",
    "DEFAULT_SPLIT_FRACTIONS",
    "manifest_dir",
    "tracks_path",
    "skipped_path",
    "segments_path",
    "read_tracks",
    "write_table",
    "read_skipped",
    "assign_splits",
    "split_of",
    "select_profile_tracks",
    "load_manifest",
    "load_skipped",
    "segment_offsets",
    "segment_manifest",
    "load_segments",
]

TRACK_COLUMNS = [
    "source", "kind", "package", "track_id", "file", "path", "duration_s", "sample_rate",
    "orig_sample_rate", "orig_format", "channels", "loudness_lufs", "peak_dbfs",
    "clipped_samples", "license", "copyright_file", "order", "source_split",
]
SKIP_COLUMNS = ["source", "package", "file", "reason", "sample_rate", "min_seconds"]
SEGMENT_COLUMNS = [
    "source", "kind", "package", "track_id", "split", "offset_s", "duration_s", "loudness_lufs",
    "license", "path", "sample_rate",
]
DEFAULT_SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}


def manifest_dir() -> Path:
    return data_dir() / "manifests"


def tracks_path() -> Path:
    return manifest_dir() / "tracks.csv"


def skipped_path() -> Path:
    return manifest_dir() / "skipped.csv"


def segments_path(profile: str) -> Path:
    return manifest_dir() / f"segments_{profile}.csv"


def write_table(df: pd.DataFrame, path: Path) -> Path:
    """Write a CSV atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_tracks(path: Path | None = None) -> pd.DataFrame:
    """The raw track table (paths relative to the data folder); empty when none was written."""
    path = Path(path) if path is not None else tracks_path()
    if not path.exists():
        return pd.DataFrame(columns=TRACK_COLUMNS)
    return pd.read_csv(path, keep_default_na=False, na_values=[""]).reindex(columns=TRACK_COLUMNS)


def read_skipped(path: Path | None = None) -> pd.DataFrame:
    path = Path(path) if path is not None else skipped_path()
    if not path.exists():
        return pd.DataFrame(columns=SKIP_COLUMNS)
    return pd.read_csv(path, keep_default_na=False).reindex(columns=SKIP_COLUMNS)


def _unit_hash(text: str) -> float:
    """A uniform number in [0, 1) from a string (SHA-256; stable across Python runs)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def split_of(source: str, unit: str, seed: int) -> float:
    """The hash that orders a split unit (a package or a piece) within its source (exposed for tests)."""
    return _unit_hash(f"{int(seed)}:{source}/{unit}")


def assign_splits(
    tracks: pd.DataFrame, seed: int, fractions: dict[str, float] | None = None,
    heldout: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Add a ``split`` column (``train``/``valid``/``test``): whole albums of real music, single
    pieces of rendered music, fixed by ``seed``.

    The unit of the split is the Debian package (one game's or album's music) for real music, so
    no album has tracks on two sides, and the piece for rendered music (each is its own work).
    ``heldout`` names the packages of ``valid`` and ``test`` (a profile's ``heldout_packages``);
    every other real package is ``train``. Without it, and for rendered pieces, the units of each
    source are ordered by a hash of ``seed:source/unit`` (:func:`split_of`) and the first ``test``
    fraction go to ``test``, the next ``valid`` fraction to ``valid``, the rest to ``train`` (at
    least one test unit from two up, one valid unit from three up). Tracks whose dataset defines a
    split (``source_split``: FMA, MUSDB18-HQ) keep it.

    Raises:
        ValueError: fractions other than train/valid/test >= 0 summing to 1, or a package held out twice.
    """
    fractions = dict(DEFAULT_SPLIT_FRACTIONS if fractions is None else fractions)
    if set(fractions) != {"train", "valid", "test"} or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must give train/valid/test >= 0, got {fractions}")
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must sum to 1, got {sum(fractions.values()):.3f}")
    named = _heldout_map(heldout)
    out = tracks.copy()
    out["split"] = "train"
    if out.empty:
        return out
    real = (out["kind"] == "real") if "kind" in out else pd.Series(True, index=out.index)
    out["_unit"] = out["package"].astype(str).where(real, out["track_id"].astype(str))
    own = (out["source_split"].astype(object).where(out["source_split"].notna(), "").astype(str)
           if "source_split" in out else pd.Series("", index=out.index))
    has_own = own.isin(["train", "valid", "test"])
    out.loc[has_own, "split"] = own[has_own]
    rest = ~has_own
    if heldout is not None:
        listed = rest & real
        out.loc[listed, "split"] = [named.get(u, "train") for u in out.loc[listed, "_unit"]]
        rest &= ~real
    for source, group in out[rest].groupby("source", sort=False):
        units = sorted(set(group["_unit"]), key=lambda u: split_of(source, u, seed))
        n = len(units)
        n_test = int(round(n * fractions["test"]))
        n_valid = int(round(n * fractions["valid"]))
        if n >= 2 and fractions["test"] > 0:
            n_test = max(1, n_test)
        if n >= 3 and fractions["valid"] > 0:
            n_valid = max(1, n_valid)
        n_test = min(n_test, n)
        n_valid = min(n_valid, n - n_test)
        where = {u: "test" for u in units[:n_test]} | {u: "valid" for u in units[n_test:n_test + n_valid]}
        out.loc[group.index, "split"] = [where.get(u, "train") for u in group["_unit"]]
    return out.drop(columns="_unit")


def _heldout_map(heldout: dict[str, list[str]] | None) -> dict[str, str]:
    """``{package: split}`` of a profile's ``heldout_packages`` (checked)."""
    if heldout is None:
        return {}
    bad = set(heldout) - {"valid", "test"}
    if bad:
        raise ValueError(f"heldout_packages may name 'valid' and 'test' packages only, got {sorted(bad)}")
    named: dict[str, str] = {}
    for split, packages in heldout.items():
        for pkg in packages:
            if pkg in named:
                raise ValueError(f"package {pkg!r} is held out for both {named[pkg]!r} and {split!r}")
            named[pkg] = split
    return named


def select_profile_tracks(tracks: pd.DataFrame, profile: str) -> pd.DataFrame:
    """The tracks a profile uses: its Debian packages (first ``max_tracks_per_package`` in the
    package's natural order) and its rendered pieces (first ``rendered_tracks``)."""
    params = get_profile(profile)
    limit = params.get("max_tracks_per_package")
    parts = []
    deb = tracks[(tracks["source"] == "debian") & tracks["package"].isin(params["debian_packages"])]
    for pkg in params["debian_packages"]:
        sel = deb[deb["package"] == pkg].sort_values("order")
        parts.append(sel if limit is None else sel.head(int(limit)))
    n_rendered = int(params.get("rendered_tracks", 0) or 0)
    if n_rendered:
        rend = tracks[tracks["source"] == "music21"].sort_values("order")
        parts.append(rend.head(n_rendered))
    if not parts:
        return tracks.iloc[0:0]
    return pd.concat(parts)


def _absolute(df: pd.DataFrame) -> pd.DataFrame:
    root = data_dir()
    df = df.copy()
    df["path"] = [str(p) if os.path.isabs(str(p)) else str(root / str(p)) for p in df["path"]]
    return df


def load_manifest(
    profile: str | None = None,
    source: str | None = None,
    split: str | Iterable[str] | None = None,
    kind: str | None = None,
    seed: int | None = None,
    check_files: bool = True,
) -> pd.DataFrame:
    """The decoded tracks as a DataFrame (one row per track, with its ``split``).

    The entry point for other code::

        from mastering.data import load_manifest
        tracks = load_manifest("smoke")                    # the smoke profile's tracks, with splits
        test = load_manifest("smoke", split="test")        # whole test tracks (full-length evaluation)
        for row in tracks.itertuples():
            x, sr = mastering.io.load_audio(row.path)      # [2, samples] at row.sample_rate

    Columns (:data:`TRACK_COLUMNS` as stored in ``manifests/tracks.csv``, one row per decoded track
    of every source prepared so far, independent of the profile; plus ``split``):

    ============== ==========================================================================
    source         ``debian`` | ``music21`` | ``fma`` | ``musdb``
    kind           ``real`` (mastered commercial/game music) | ``rendered`` (MIDI + soundfont)
    package        Debian package (or corpus / dataset subset) the track comes from
    track_id       unique id within the source, ``<package>/<name>``
    file           the original file, relative to the unpacked package (or corpus)
    path           the decoded stereo WAV (absolute after loading; stored relative to data_dir)
    duration_s     length of the decoded track in seconds
    sample_rate    rate of the decoded WAV (the profile's ``sample_rate``)
    orig_sample_rate / orig_format   what the file was before decoding
    loudness_lufs  integrated loudness, ITU-R BS.1770-4 (:func:`loudness_peak`), of the decoded track
    peak_dbfs      sample peak of the decoded track
    license        licence from the package's ``copyright`` file (or the corpus' licence)
    order          position of the file in the package's natural order (profile selection)
    source_split   the dataset's own split where it has one (FMA, MUSDB18-HQ), else empty
    split          ``train`` | ``valid`` | ``test`` (:func:`assign_splits`: whole packages)
    ============== ==========================================================================

    Args:
        profile: ``"smoke"``/``"full"`` selects that profile's tracks and seed; ``None`` gives
            every prepared track (split with ``seed`` or 0).
        source: keep one source (``"debian"``, ``"music21"``, ...).
        split: keep ``"train"``, ``"valid"``, ``"test"`` (or several).
        kind: keep ``"real"`` or ``"rendered"``.
        seed: override the split seed (default: the profile's ``seed``).
        check_files: drop rows whose WAV is missing (e.g. a partially deleted cache).

    Returns:
        DataFrame with the columns of :data:`TRACK_COLUMNS` plus ``split``; ``path`` is absolute.

    Raises:
        FileNotFoundError: nothing prepared yet (with the command that prepares it).
    """
    raw = read_tracks()
    if raw.empty:
        hint = profile or "smoke"
        raise FileNotFoundError(
            f"no track manifest at {tracks_path()}: prepare the data first with "
            f"`make data PROFILE={hint}` (or `python -m mastering.data prepare --profile {hint}`)"
        )
    if profile is not None:
        params = get_profile(profile)
        raw = select_profile_tracks(raw, profile)
        seed = params["seed"] if seed is None else seed
        fractions, heldout = params.get("split_fractions"), params.get("heldout_packages")
    else:
        fractions, heldout = None, None
    df = assign_splits(raw.reset_index(drop=True), 0 if seed is None else int(seed), fractions, heldout)
    return _filter_tracks(_absolute(df), source, split, kind, check_files)


def _filter_tracks(
    df: pd.DataFrame, source: str | None, split: str | Iterable[str] | None, kind: str | None, check_files: bool
) -> pd.DataFrame:
    """The rows of ``df`` that :func:`load_manifest` keeps for these filters."""
    if source is not None:
        df = df[df["source"] == source]
    if kind is not None:
        df = df[df["kind"] == kind]
    if split is not None:
        splits = [split] if isinstance(split, str) else list(split)
        bad = set(splits) - {"train", "valid", "test"}
        if bad:
            raise ValueError(f"unknown split(s) {sorted(bad)}; use train, valid or test")
        df = df[df["split"].isin(splits)]
    if check_files:
        df = df[np.array([Path(p).exists() for p in df["path"]], dtype=bool)]  # a list of none would select columns
    return df.reset_index(drop=True)


def load_skipped() -> pd.DataFrame:
    """Files that prepare did not use, with the reason."""
    return read_skipped()


def segment_offsets(duration_s: float, segment_seconds: float, hop_seconds: float | None = None) -> np.ndarray:
    """Start times of the full-length segments of a track (the last partial segment is dropped)."""
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
    hop = segment_seconds if hop_seconds is None else hop_seconds
    if hop <= 0:
        raise ValueError(f"hop_seconds must be > 0, got {hop}")
    n = int(np.floor((duration_s - segment_seconds) / hop + 1e-9)) + 1
    return np.round(np.arange(max(n, 0)) * hop, 6)


#: K-weighting of the manifests' loudness columns: ``"rbj"`` reads as pyloudnorm's default meter
#: (to 1e-6 LU), the reference of the manifests written so far.
LOUDNESS_DESIGN = "rbj"
#: Samples per channel measured in one batched :func:`integrated_lufs` call (bounds the memory).
_LOUDNESS_BATCH_SAMPLES = 1 << 22


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """BS.1770-4 integrated loudness of ``[batch, channels, samples]`` audio, one value per signal.

    :func:`mastering.dsp.loudness.loudness` in float64 with :data:`LOUDNESS_DESIGN` and
    ``floor_lufs=None`` (``-inf`` for digital silence). Needs at least 400 ms of audio.
    """
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float64))
    return bs1770_loudness(x, sample_rate, floor_lufs=None, design=LOUDNESS_DESIGN).numpy()


def _segment_loudness(audio: np.ndarray, rate: int, offsets: np.ndarray, segment_seconds: float) -> np.ndarray:
    """Loudness of the segments of ``[channels, samples]`` audio starting at ``offsets`` seconds,
    batched; NaN for a segment that runs past the end of the audio."""
    n = int(round(segment_seconds * rate))
    starts = [int(round(off * rate)) for off in offsets]
    lufs = np.full(len(starts), np.nan)
    whole = [i for i, start in enumerate(starts) if audio[:, start:start + n].shape[-1] == n]
    per_call = max(1, _LOUDNESS_BATCH_SAMPLES // max(n, 1))
    for k in range(0, len(whole), per_call):
        idx = whole[k:k + per_call]
        lufs[idx] = integrated_lufs(np.stack([audio[:, starts[i]:starts[i] + n] for i in idx]), rate)
    return lufs


def segment_manifest(
    tracks: pd.DataFrame,
    segment_seconds: float,
    hop_seconds: float | None = None,
    loudness: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per segment of ``tracks`` (a :func:`load_manifest` frame, with ``split``).

    ``loudness_lufs`` is the BS.1770-4 integrated loudness of the segment (:func:`integrated_lufs`;
    ``-inf`` for digital silence) when ``loudness`` is true, else NaN.
    """
    import soundfile as sf

    rows = []
    iterator = tracks.itertuples(index=False)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(list(iterator), desc="segments", unit="track")
    for t in iterator:
        offsets = segment_offsets(float(t.duration_s), segment_seconds, hop_seconds)
        lufs = np.full(len(offsets), np.nan)
        if loudness and len(offsets):
            data, rate = sf.read(str(t.path), dtype="float32", always_2d=True)
            lufs = _segment_loudness(data.T, rate, offsets, segment_seconds)
        for off, lu in zip(offsets, lufs):
            rows.append({
                "source": t.source, "kind": t.kind, "package": t.package, "track_id": t.track_id,
                "split": t.split, "offset_s": float(off), "duration_s": float(segment_seconds),
                "loudness_lufs": float(lu), "license": t.license, "path": t.path,
                "sample_rate": int(t.sample_rate),
            })
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def load_segments(profile: str) -> pd.DataFrame:
    """The segment manifest written by ``prepare`` for ``profile``.

    Raises:
        FileNotFoundError: with the command that writes it.
    """
    path = segments_path(profile)
    if not path.exists():
        raise FileNotFoundError(
            f"no segment manifest at {path}: run `python -m mastering.data prepare --profile {profile}`"
        )
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return _absolute(df)


def track_cache_path(source: str, track_id: str) -> Path:
    """Where a decoded track lives, relative to :func:`mastering.paths.data_dir`."""
    return Path("tracks") / source / f"{track_id}.wav"


def loudness_peak(audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Integrated loudness (BS.1770-4, :func:`integrated_lufs`) and sample peak of ``[channels, samples]``."""
    lufs = float(integrated_lufs(audio[None], sample_rate)[0])
    peak = float(20 * np.log10(max(float(np.abs(audio).max()), 1e-12)))
    return lufs, peak


def track_is_cached(row, root: Path, sample_rate: int) -> bool:
    """Whether a stored track row (a namedtuple of :data:`TRACK_COLUMNS`, or ``None``) points to a
    WAV under ``root`` that exists at ``sample_rate``."""
    return row is not None and (root / str(row.path)).exists() and int(row.sample_rate) == int(sample_rate)


def cache_track(root: Path, source: str, track_id: str, audio: np.ndarray, sample_rate: int) -> dict:
    """Write ``[channels, samples]`` audio, clipped to [-1, 1], as the 16-bit cached WAV of a track.

    Returns the measured manifest fields ``path`` (relative to ``root``), ``duration_s``,
    ``channels``, ``loudness_lufs``, ``peak_dbfs`` (of the clipped audio, rounded to 0.001) and
    ``clipped_samples`` (samples beyond +-1 before clipping).
    """
    clipped = int(np.count_nonzero(np.abs(audio) > 1.0))
    audio = np.clip(audio, -1.0, 1.0)
    cache_rel = track_cache_path(source, track_id)
    (root / cache_rel).parent.mkdir(parents=True, exist_ok=True)
    save_audio(root / cache_rel, audio, sample_rate, subtype="PCM_16")
    lufs, peak = loudness_peak(audio, sample_rate)
    return {"path": cache_rel.as_posix(), "duration_s": round(audio.shape[-1] / sample_rate, 4),
            "channels": int(audio.shape[0]), "loudness_lufs": round(lufs, 3), "peak_dbfs": round(peak, 3),
            "clipped_samples": clipped}


def merge_rows(old: pd.DataFrame, new_rows: list[dict], keys: list[str], columns: list[str]) -> pd.DataFrame:
    """``old`` with ``new_rows`` added; a new row replaces an old one with the same ``keys``."""
    if not new_rows:
        return old
    new = pd.DataFrame(new_rows, columns=columns)
    if old.empty:
        return new
    merged = pd.concat([old, new], ignore_index=True)
    return merged.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)
