"""Real, mastered music from Debian's game-soundtrack packages.

:func:`fetch_package` downloads a package with ``apt-get download`` and unpacks it with
``dpkg-deb -x`` into the git-ignored cache (nothing is installed); :func:`music_files` lists its
music, :func:`decode_file` decodes and resamples one file (formats listed there) and
:func:`read_license` reads the licence from the package's ``/usr/share/doc/<package>/copyright``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..io import AudioError, load_audio, resample, to_channels

log = logging.getLogger(__name__)

__all__ = [
    "DataError",
    "SkipTrack",
    "MUSIC_EXTENSIONS",
    "TRACKER_EXTENSIONS",
    "RAW_FORMATS",
    "fetch_package",
    "read_license",
    "parse_license",
    "music_files",
    "unpack_archives",
    "decode_file",
    "natural_key",
]

#: Extensions libsndfile decodes directly.
SNDFILE_EXTENSIONS = {".ogg", ".oga", ".mp3", ".flac", ".wav", ".aiff", ".aif", ".opus"}
#: Tracker modules rendered with ``xmp``.
TRACKER_EXTENSIONS = {".xm", ".mod", ".it", ".s3m", ".mtm", ".669", ".med"}
MUSIC_EXTENSIONS = SNDFILE_EXTENSIONS | TRACKER_EXTENSIONS | {".raw"}


@dataclass(frozen=True)
class RawFormat:
    """Layout of a headerless PCM file (the package's documentation or player source says it)."""

    sample_rate: int
    channels: int
    subtype: str
    pattern: str  # regular expression on the file name
    reference: str


#: Raw PCM layouts by package. Files of other packages, or not matching, are skipped with a reason.
RAW_FORMATS: dict[str, RawFormat] = {
    "xblast-tnt-musics": RawFormat(
        sample_rate=22050, channels=2, subtype="PCM_U8", pattern=r"^xbsng\d+\.raw$",
        reference="XBlast xbsndsrv.c: SAMPLE_RATE 22050, SAMPLE_SIZE 8, songs stereo",
    ),
}


class DataError(RuntimeError):
    """A data source cannot be prepared (tool missing, package not downloadable, ...)."""


class SkipTrack(Exception):
    """A candidate file that is not used; ``reason`` says why (logged and counted)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def natural_key(text: str) -> list:
    """Sort key that orders ``track2`` before ``track10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(text))]


# --------------------------------------------------------------------------------------------
# fetching


@dataclass
class _AptState:
    updated: bool = False


_APT = _AptState()


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def fetch_package(package: str, dest_root: Path) -> Path:
    """Download a Debian package and unpack it to ``dest_root/<package>/`` (idempotent).

    A stamp file ``.extracted`` records the unpacked ``.deb``; when present nothing is fetched.
    When ``apt-get download`` fails (stale package lists) and we run as root, ``apt-get update``
    is tried once before giving up.

    Raises:
        DataError: ``apt-get``/``dpkg-deb`` missing, or the package cannot be downloaded.
    """
    target = Path(dest_root) / package
    stamp = target / ".extracted"
    if stamp.exists():
        unpack_archives(target)
        return target
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DataError(
                f"`{tool}` not found: the Debian soundtrack sources need a Debian/Ubuntu system "
                f"(package {package})"
            )
    Path(dest_root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_root, prefix=f".fetch-{package}-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)  # lets apt's sandbox user write when we are root
        res = _run(["apt-get", "download", package], cwd=tmp)
        if res.returncode != 0 and not _APT.updated and hasattr(os, "geteuid") and os.geteuid() == 0:
            log.info("apt-get download %s failed; running apt-get update once", package)
            _APT.updated = True
            _run(["apt-get", "update", "-qq"])
            res = _run(["apt-get", "download", package], cwd=tmp)
        debs = sorted(tmp.glob("*.deb"))
        if res.returncode != 0 or not debs:
            hint = (
                "run `sudo apt-get update` and retry" if os.geteuid() != 0
                else "check the network and that the package exists for this Debian release"
            )
            raise DataError(
                f"could not download Debian package {package!r}: "
                f"{(res.stderr or res.stdout).strip().splitlines()[-1:] or ['no .deb']}; {hint}"
            )
        staging = tmp / "root"
        res = _run(["dpkg-deb", "-x", str(debs[0]), str(staging)])
        if res.returncode != 0:
            raise DataError(f"dpkg-deb could not unpack {debs[0].name}: {res.stderr.strip()}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        stamp.write_text(debs[0].name + "\n")
    unpack_archives(target)
    return target


#: Game-data archives that hold music (``ufoai-music`` ships its OGG files in ``0music.pk3``, a zip).
ARCHIVE_EXTENSIONS = (".pk3", ".zip")


def unpack_archives(package_root: Path) -> list[Path]:
    """Extract the music members of zip archives (``.pk3``/``.zip``) of an unpacked package into
    ``<archive>.d/`` next to the archive (idempotent: a finished extraction leaves a ``.done``
    stamp; members with unsafe paths are ignored).

    Returns:
        The extracted music files.
    """
    import zipfile

    out = []
    root = Path(package_root)
    for archive in sorted(p for p in root.rglob("*") if p.suffix.lower() in ARCHIVE_EXTENSIONS and p.is_file()):
        dest = archive.with_name(archive.name + ".d")
        done = dest / ".done"
        if not done.exists():
            try:
                with zipfile.ZipFile(archive) as zf:
                    for info in zf.infolist():
                        name = Path(info.filename)
                        if info.is_dir() or name.is_absolute() or ".." in name.parts:
                            continue
                        if name.suffix.lower() not in MUSIC_EXTENSIONS:
                            continue
                        path = dest / name
                        path.parent.mkdir(parents=True, exist_ok=True)
                        tmp = path.with_name(f".{path.name}.part")
                        with zf.open(info) as src, open(tmp, "wb") as fh:
                            shutil.copyfileobj(src, fh)
                        os.replace(tmp, path)
            except zipfile.BadZipFile as exc:
                log.warning("%s: not a readable zip archive (%s); skipped", archive, exc)
                continue
            dest.mkdir(parents=True, exist_ok=True)
            done.write_text("")
        out.extend(p for p in dest.rglob("*") if p.suffix.lower() in MUSIC_EXTENSIONS and p.is_file())
    return sorted(out)


# --------------------------------------------------------------------------------------------
# licences

_GPL_RE = re.compile(
    r"(lesser|library)?\s*general public licen[cs]e[^.]*?version\s*(\d(?:\.\d)?)(.{0,60})",
    re.IGNORECASE | re.DOTALL,
)


def parse_license(text: str) -> str:
    """Short licence name from a Debian copyright file.

    Machine-readable (DEP-5) files give the ``License:`` of the ``Files: *`` paragraph; older
    free-form files are matched against the GPL/LGPL wording ("version 2 or later" -> ``GPL-2+``)
    and Creative Commons names. Unknown wording gives ``"see copyright"``.
    """
    paragraphs = re.split(r"\n\s*\n", text)
    for para in paragraphs:
        if re.search(r"^Files:\s*\*\s*$", para, re.MULTILINE):
            m = re.search(r"^License:\s*(\S.*)$", para, re.MULTILINE)
            if m:
                return m.group(1).strip()
    m = _GPL_RE.search(text)
    if m:
        prefix = "LGPL" if m.group(1) else "GPL"
        later = bool(re.search(r"or\s*\(?at your option\)?\s*any later|or later", m.group(3) + text[m.end():m.end() + 80], re.I))
        return f"{prefix}-{m.group(2)}{'+' if later else ''}"
    m = re.search(r"creative commons[^\n]*?(attribution[- ]share ?alike|attribution)[^\n]*?(\d\.\d)", text, re.I)
    if m:
        kind = "CC-BY-SA" if "share" in m.group(1).lower() else "CC-BY"
        return f"{kind}-{m.group(2)}"
    m = re.search(r"\bCC[- ]BY(-SA)?[- ](\d\.\d)", text)
    if m:
        return f"CC-BY{m.group(1) or ''}-{m.group(2)}"
    m = re.search(r"^License:\s*(\S.*)$", text, re.MULTILINE)
    if m:
        return m.group(1).strip()
    if re.search(r"public domain", text, re.I):
        return "public-domain"
    return "see copyright"


def read_license(package_root: Path, package: str) -> tuple[str, str]:
    """``(licence, path of the copyright file relative to the package root)``."""
    rel = Path("usr/share/doc") / package / "copyright"
    path = Path(package_root) / rel
    if not path.exists():
        return "unknown (no copyright file)", ""
    return parse_license(path.read_text(errors="replace")), str(rel)


# --------------------------------------------------------------------------------------------
# decoding


def music_files(package_root: Path) -> list[Path]:
    """Candidate music files of an unpacked package, in natural order.

    Documentation and symbolic links (drascula's per-language folders link the same files) are
    excluded, so each recording is a candidate once.
    """
    root = Path(package_root)
    files = sorted(
        (p for p in root.rglob("*")
         if p.suffix.lower() in MUSIC_EXTENSIONS and not p.is_symlink() and p.is_file()
         and "usr/share/doc" not in p.as_posix()),
        key=lambda p: natural_key(p.relative_to(root).as_posix()),
    )
    seen, unique = set(), []
    for p in files:  # hard links / identical copies (e.g. per-language folders) count once
        st = p.stat()
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


@dataclass
class Decoded:
    audio: torch.Tensor  # [2, samples] float32 at the target rate
    sample_rate: int
    orig_sample_rate: int
    orig_format: str
    notes: list[str] = field(default_factory=list)


def _render_tracker(path: Path, sample_rate: int, max_seconds: float) -> tuple[torch.Tensor, int]:
    if shutil.which("xmp") is None:
        raise SkipTrack("tracker module but `xmp` is not installed (apt-get install xmp)")
    with tempfile.TemporaryDirectory(prefix="xmp-") as tmp:
        out = Path(tmp) / "render.wav"
        cmd = [
            "xmp", "--quiet", "--norc", "--nocmd", "-d", "wav", "-f", str(int(sample_rate)),
            "-t", str(int(max_seconds)), "-o", str(out), str(path),
        ]
        try:
            res = _run(cmd, timeout=max(60.0, max_seconds))
        except subprocess.TimeoutExpired:
            raise SkipTrack("xmp timed out rendering the module") from None
        if res.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
            raise SkipTrack(f"xmp could not render the module ({res.stderr.strip()[:200] or 'no output'})")
        x, rate = load_audio(out, channels=2)
    return x, rate


def _read_raw(path: Path, package: str) -> tuple[torch.Tensor, int, str]:
    fmt = RAW_FORMATS.get(package)
    if fmt is None or not re.match(fmt.pattern, path.name):
        raise SkipTrack("headerless .raw file whose sample format is not documented for this package")
    try:
        data, rate = sf.read(
            str(path), format="RAW", subtype=fmt.subtype, samplerate=fmt.sample_rate,
            channels=fmt.channels, dtype="float32", always_2d=True,
        )
    except Exception as exc:
        raise SkipTrack(f"undecodable raw PCM ({exc})") from None
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate), f"RAW {fmt.subtype} {fmt.channels}ch"


def decode_file(
    path: Path,
    package: str,
    sample_rate: int,
    min_seconds: float = 60.0,
    max_seconds: float = 3600.0,
    silence_dbfs: float = -60.0,
) -> Decoded:
    """Decode one candidate file to stereo at ``sample_rate``.

    Formats met in the listed packages (Debian 12):

    =========================  ====================================================================
    ``asc-music``              MP3 (22.05 kHz stereo; upsampled, ``orig_sample_rate`` records it)
    ``drascula-music``         Ogg Vorbis, 44.1 kHz stereo (many short cues: skipped as jingles)
    ``fb-music-high``          FastTracker 2 module (``.xm``), rendered with Debian's ``xmp``
    ``planetblupi-music-ogg``  Ogg Vorbis, 44.1 kHz stereo
    ``wesnoth-1.16-music``     Ogg Vorbis
    ``ufoai-music``            Ogg Vorbis
    ``xblast-tnt-musics``      headerless PCM ``xbsng*.raw`` (:data:`RAW_FORMATS`): 8-bit unsigned,
                               stereo interleaved, 22 050 Hz; 19-55 s game loops, so the 60 s
                               jingle rule skips them with that reason.
    =========================  ====================================================================

    Raises:
        SkipTrack: unsupported/undocumented format, decoding error, shorter than ``min_seconds``
            (sound effects and jingles), longer than ``max_seconds``, or silent (peak below
            ``silence_dbfs``).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext in SNDFILE_EXTENSIONS:
        try:
            info = sf.info(str(path))
        except Exception as exc:
            raise SkipTrack(f"undecodable ({str(exc).splitlines()[0][:160]})") from None
        header_s = info.frames / info.samplerate if info.samplerate else 0.0
        # MP3 headers can misreport length; trust the header only for containers that store it.
        if ext != ".mp3" and 0 < header_s < min_seconds:
            raise SkipTrack(f"short: {header_s:.1f} s < {min_seconds:.0f} s (jingle, effect or loop)")
        if header_s > max_seconds:
            raise SkipTrack(f"longer than {max_seconds:.0f} s ({header_s:.0f} s)")
        try:
            x, rate = load_audio(path, channels=None)
        except AudioError as exc:
            raise SkipTrack(f"undecodable ({exc})") from None
        fmt = f"{info.format} {info.subtype}"
    elif ext in TRACKER_EXTENSIONS:
        x, rate = _render_tracker(path, sample_rate, max_seconds)
        fmt = f"tracker {ext[1:].upper()} (xmp)"
    elif ext == ".raw":
        x, rate, fmt = _read_raw(path, package)
    else:
        raise SkipTrack(f"unsupported extension {ext}")
    duration = x.shape[-1] / rate
    if duration < min_seconds:
        raise SkipTrack(f"short: {duration:.1f} s < {min_seconds:.0f} s (jingle, effect or loop)")
    peak = float(x.abs().max())
    if peak <= 10 ** (silence_dbfs / 20):
        raise SkipTrack(f"silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS)")
    try:
        x = to_channels(x, 2)
    except AudioError as exc:
        raise SkipTrack(str(exc)) from None
    orig_rate = rate
    if rate != sample_rate:
        x = resample(x, rate, sample_rate)
    return Decoded(audio=x.contiguous(), sample_rate=int(sample_rate), orig_sample_rate=int(orig_rate), orig_format=fmt)
