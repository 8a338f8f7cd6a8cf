"""``prepare``: fetch, decode and index the real-music sources of a profile (what ``make data`` runs).

Idempotent: unpacked packages carry a stamp, decoded tracks and skipped files are recorded in the
manifests, so a second run only checks the cache. A file lock keeps two runs from racing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import data_dir, safedb_dir
from ..profiles import get_profile
from . import manifest as mf
from .debian import DataError, SkipTrack, decode_file, fetch_package, music_files, read_license
from .rendered import prepare_rendered

log = logging.getLogger(__name__)

__all__ = [
    "SAFEDB_FILE",
    "SAFEDB_URL",
    "PrepareSummary",
    "ensure_safedb",
    "prepare",
    "prepare_debian_package",
]

SAFEDB_FILE = "SAFEEqualiserUserData.csv"
#: Public source of SAFE-DB (Stables et al., 2014), pinned to a commit of the IMP book code.
SAFEDB_URL = (
    "https://raw.githubusercontent.com/ryanstables/IMPBookCode/"
    "a1fc5474773a9107e9f603ad034fae53edf7dc35/data/SAFEEqualiserUserData.csv"
)
DEFAULT_MIN_SECONDS = 60.0
DEFAULT_MAX_SECONDS = 3600.0


@dataclass
class PrepareSummary:
    profile: str
    tracks: pd.DataFrame
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (package, file, reason)
    errors: dict[str, str] = field(default_factory=dict)  # package -> error
    new_tracks: int = 0
    safedb: str = ""
    seconds: float = 0.0

    @property
    def hours(self) -> float:
        return float(self.tracks["duration_s"].sum()) / 3600 if len(self.tracks) else 0.0

    def text(self) -> str:
        lines = [f"prepare --profile {self.profile}: {len(self.tracks)} tracks, {self.hours:.2f} h "
                 f"({self.new_tracks} decoded now) in {self.seconds:.0f} s"]
        if len(self.tracks):
            by = self.tracks.groupby(["source", "package"])["duration_s"].agg(["count", "sum"])
            for (src, pkg), row in by.iterrows():
                lines.append(f"  {src}/{pkg}: {int(row['count'])} tracks, {row['sum'] / 60:.1f} min")
            splits = self.tracks["split"].value_counts().to_dict()
            lines.append("  splits: " + ", ".join(f"{k} {splits.get(k, 0)}" for k in ("train", "valid", "test")))
        if self.skipped:
            reasons = Counter(_reason_class(r) for _, _, r in self.skipped)
            lines.append(f"  skipped {len(self.skipped)} file(s): "
                         + "; ".join(f"{n} x {r}" for r, n in reasons.most_common()))
        for pkg, err in self.errors.items():
            lines.append(f"  ERROR {pkg}: {err}")
        lines.append(f"  SAFE-DB: {self.safedb}")
        return "\n".join(lines)


def _reason_class(reason: str) -> str:
    return reason.split(":")[0].split("(")[0].strip()


@contextmanager
def _lock(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".prepare.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_safedb(timeout_s: float = 20.0) -> tuple[Path | None, str]:
    """Make sure ``SAFEEqualiserUserData.csv`` is available; fetch it when missing.

    Returns ``(path or None, message)``; never raises for a network failure (offline machines
    keep working, the semantic-EQ notebooks then say what is missing).
    """
    have = safedb_dir() / SAFEDB_FILE
    if have.exists():
        return have, f"present at {have}"
    dest = data_dir() / "safedb" / SAFEDB_FILE
    if dest.exists():
        return dest, f"present at {dest}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with urllib.request.urlopen(SAFEDB_URL, timeout=timeout_s) as resp, open(tmp, "wb") as fh:
            shutil.copyfileobj(resp, fh)
        if tmp.stat().st_size < 1000:
            raise OSError("downloaded file is too small to be SAFE-DB")
        os.replace(tmp, dest)
        return dest, f"fetched to {dest}"
    except Exception as exc:  # offline, proxy, HTTP error: fail softly
        return None, (
            f"MISSING ({type(exc).__name__}: {exc}); download {SAFEDB_URL} to {dest} "
            "or set $MASTERING_SAFEDB_DIR to the folder holding it"
        )
    finally:
        if tmp.exists():
            tmp.unlink()


def _known_debian(
    tracks: pd.DataFrame, skipped: pd.DataFrame, package: str, sample_rate: int, min_seconds: float
) -> tuple[dict, dict[str, str]]:
    """What earlier runs recorded for ``package``: ``{file: track row}`` and ``{file: skip reason}``
    (skips only for the same rate and jingle limit)."""
    known = {
        r.file: r for r in tracks[(tracks["source"] == "debian") & (tracks["package"] == package)].itertuples()
    }
    known_skips = {
        r.file: r.reason for r in skipped[
            (skipped["source"] == "debian") & (skipped["package"] == package)
            & (skipped["sample_rate"].astype(int) == int(sample_rate))
            & np.isclose(skipped["min_seconds"].astype(float), float(min_seconds))
        ].itertuples()
    } if len(skipped) else {}
    return known, known_skips


def _skip_row(package: str, rel: str, reason: str, sample_rate: int, min_seconds: float) -> dict:
    return {"source": "debian", "package": package, "file": rel, "reason": reason,
            "sample_rate": int(sample_rate), "min_seconds": float(min_seconds)}


def _unique_track_id(package: str, path: Path, rel: str, row, used_ids: set[str]) -> str:
    """``<package>/<stem>``, or the whole relative path when another file of the package has that stem."""
    track_id = f"{package}/{path.stem}"
    if track_id in used_ids and (row is None or row.track_id != track_id):
        track_id = f"{package}/{Path(rel).with_suffix('').as_posix().replace('/', '_')}"
    return track_id


def _file_bar(files: list[Path], package: str):
    from tqdm.auto import tqdm

    return tqdm(files, desc=package, unit="file", leave=False)


def _debian_row(root: Path, dec, package: str, track_id: str, rel: str, sample_rate: int, order: int,
                license_name: str, copyright_file: str) -> dict:
    """Cache a decoded track's audio and return its manifest row."""
    m = mf.cache_track(root, "debian", track_id, dec.audio.numpy(), sample_rate)
    return {
        "source": "debian", "kind": "real", "package": package, "track_id": track_id, "file": rel,
        "path": m["path"], "duration_s": m["duration_s"],
        "sample_rate": int(sample_rate), "orig_sample_rate": dec.orig_sample_rate,
        "orig_format": dec.orig_format, "channels": m["channels"], "loudness_lufs": m["loudness_lufs"],
        "peak_dbfs": m["peak_dbfs"], "clipped_samples": m["clipped_samples"], "license": license_name,
        "copyright_file": copyright_file, "order": order,
    }


def prepare_debian_package(
    package: str,
    sample_rate: int,
    max_tracks: int | None = None,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    tracks: pd.DataFrame | None = None,
    skipped: pd.DataFrame | None = None,
    package_root: Path | None = None,
    progress: bool = True,
) -> tuple[list[dict], list[dict], list[tuple[str, str, str]]]:
    """Decode one (fetched) package's music into the track cache.

    Args:
        package: Debian package name.
        sample_rate: target rate of the cached WAVs.
        max_tracks: stop after this many usable tracks (natural file order), ``None`` for all.
        min_seconds: shorter files are sound effects/jingles and skipped.
        tracks, skipped: what earlier runs recorded (skips re-decoding).
        package_root: unpacked package (default: fetched into ``data_dir()/debian``).

    Returns:
        ``(new track rows, new skip rows, skipped (package, file, reason) of this package)``.
    """
    root = data_dir()
    package_root = Path(package_root if package_root is not None else fetch_package(package, root / "debian"))
    license_name, copyright_file = read_license(package_root, package)
    known, known_skips = _known_debian(mf.read_tracks() if tracks is None else tracks,
                                       mf.read_skipped() if skipped is None else skipped,
                                       package, sample_rate, min_seconds)
    files = music_files(package_root)
    new_rows, new_skips, skip_log = [], [], []
    used_ids = {r.track_id for r in known.values()}
    accepted = 0
    bar = _file_bar(files, package) if progress else None
    for order, path in enumerate(files if bar is None else bar):
        if max_tracks is not None and accepted >= max_tracks:
            break
        rel = path.relative_to(package_root).as_posix()
        row = known.get(rel)
        if not mf.track_is_cached(row, root, sample_rate):
            if rel in known_skips:
                skip_log.append((package, rel, known_skips[rel]))
                continue
            try:
                dec = decode_file(path, package, sample_rate, min_seconds=min_seconds, max_seconds=max_seconds)
            except SkipTrack as skip:
                log.info("skip %s/%s: %s", package, rel, skip.reason)
                skip_log.append((package, rel, skip.reason))
                new_skips.append(_skip_row(package, rel, skip.reason, sample_rate, min_seconds))
                continue
            track_id = _unique_track_id(package, path, rel, row, used_ids)
            used_ids.add(track_id)
            new_rows.append(_debian_row(root, dec, package, track_id, rel, sample_rate, order,
                                        license_name, copyright_file))
        accepted += 1
    if bar is not None:
        bar.close()
    return new_rows, new_skips, skip_log


def _write_segments(selected: pd.DataFrame, profile: str, segment_seconds: float, root: Path) -> Path:
    """Write ``segments_<profile>.csv`` unless the same tracks/splits/length were indexed before."""
    import hashlib

    path = mf.segments_path(profile)
    sig_text = f"{segment_seconds}\n" + "\n".join(
        f"{r.source}/{r.track_id}:{r.split}:{r.duration_s}:{r.sample_rate}"
        for r in selected.sort_values(["source", "track_id"]).itertuples()
    )
    sig = hashlib.sha256(sig_text.encode()).hexdigest()
    sig_path = path.with_name(path.name + ".sha256")
    if path.exists() and sig_path.exists() and sig_path.read_text().strip() == sig:
        return path
    seg = mf.segment_manifest(selected, segment_seconds, progress=False)
    seg["path"] = [os.path.relpath(p, root) for p in seg["path"]]
    mf.write_table(seg, path)
    sig_path.write_text(sig + "\n")
    return path


def _merge(summary: PrepareSummary, tracks: pd.DataFrame, skipped: pd.DataFrame, rows: list[dict],
           skips: list[dict], skip_log: list[tuple[str, str, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Count a source's new rows in ``summary`` and merge them into the track and skip tables."""
    summary.new_tracks += len(rows)
    summary.skipped.extend(skip_log)
    tracks = mf.merge_rows(tracks, rows, ["source", "track_id"], mf.TRACK_COLUMNS)
    skipped = mf.merge_rows(skipped, skips, ["source", "package", "file"], mf.SKIP_COLUMNS)
    return tracks, skipped


def _prepare_debian(params: dict, profile: str, summary: PrepareSummary, tracks: pd.DataFrame,
                    skipped: pd.DataFrame, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every Debian package of the profile; the manifests are written after each package."""
    sample_rate = int(params["sample_rate"])
    min_seconds = float(params.get("min_track_seconds", DEFAULT_MIN_SECONDS))
    max_seconds = float(params.get("max_track_seconds") or DEFAULT_MAX_SECONDS)
    packages = list(params["debian_packages"])
    outer = packages
    if progress:
        from tqdm.auto import tqdm

        outer = tqdm(packages, desc=f"prepare {profile}", unit="pkg")
    for package in outer:
        try:
            rows, skips, skip_log = prepare_debian_package(
                package, sample_rate, max_tracks=params.get("max_tracks_per_package"),
                min_seconds=min_seconds, max_seconds=max_seconds, tracks=tracks, skipped=skipped,
                progress=progress,
            )
        except DataError as exc:
            summary.errors[package] = str(exc)
            continue
        tracks, skipped = _merge(summary, tracks, skipped, rows, skips, skip_log)
        mf.write_table(tracks, mf.tracks_path())  # after each package: an interrupted run keeps it
        mf.write_table(skipped, mf.skipped_path())
    return tracks, skipped


def _prepare_music21(params: dict, summary: PrepareSummary, tracks: pd.DataFrame, skipped: pd.DataFrame,
                     progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rendered source (``rendered_tracks`` pieces), when the profile asks for it."""
    n_rendered = int(params.get("rendered_tracks", 0) or 0)
    if not n_rendered:
        return tracks, skipped
    rows, skips, skip_log, err = prepare_rendered(
        n_rendered, int(params["sample_rate"]), tracks=tracks, skipped=skipped, progress=progress,
        seed=int(params["seed"]),
    )
    if err:
        summary.errors["music21"] = err
    tracks, skipped = _merge(summary, tracks, skipped, rows, skips, skip_log)
    if len(skipped) and len(tracks):  # a piece skipped once (a stored time-out) and rendered now
        rendered_files = set(tracks.loc[tracks["source"] == "music21", "file"])
        skipped = skipped[~((skipped["source"] == "music21") & skipped["file"].isin(rendered_files))]
    mf.write_table(tracks, mf.tracks_path())
    mf.write_table(skipped, mf.skipped_path())
    return tracks, skipped


def prepare(profile: str = "smoke", progress: bool = True, verbose: bool = True) -> PrepareSummary:
    """Fetch and decode a profile's real-music sources and write the manifests.

    Steps: SAFE-DB check (soft), each Debian package of ``profile['debian_packages']`` (fetched,
    decoded, up to ``max_tracks_per_package``), the rendered-music source when the profile asks
    for ``rendered_tracks``, then the segment manifest ``segments_<profile>.csv``.

    Raises:
        DataError: after processing every package, if any package could not be fetched.
    """
    t0 = time.time()
    params = get_profile(profile)
    root = data_dir()
    summary = PrepareSummary(profile=profile, tracks=pd.DataFrame())
    with _lock(root):
        _, summary.safedb = ensure_safedb()
        tracks, skipped = mf.read_tracks(), mf.read_skipped()
        tracks, skipped = _prepare_debian(params, profile, summary, tracks, skipped, progress)
        tracks, skipped = _prepare_music21(params, summary, tracks, skipped, progress)
        selected = mf.load_manifest(profile) if not tracks.empty else pd.DataFrame(columns=mf.TRACK_COLUMNS + ["split"])
        summary.tracks = selected
        if len(selected):
            _write_segments(selected, profile, float(params["segment_seconds"]), root)
    summary.seconds = time.time() - t0
    if verbose:
        print(summary.text(), flush=True)
    if summary.errors and any(k != "music21" for k in summary.errors):
        raise DataError("; ".join(f"{k}: {v}" for k, v in summary.errors.items()))
    return summary
