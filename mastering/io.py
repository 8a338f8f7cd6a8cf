"""Audio input and output at the edge of the package.

Inside the package audio is a ``torch.Tensor`` shaped ``[channels, samples]`` for one signal or
``[batch, channels, samples]`` for a batch. NumPy's ``(samples, channels)`` layout (soundfile,
pyloudnorm) appears only in this module.

Reading accepts anything libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...), at any sample
rate (resampled to the requested rate), mono or stereo. Bad input raises :class:`AudioError` with a
message that says what is wrong and what to do. Writing is atomic: a temporary file in the target
folder renamed over the destination, so a crash never leaves half a file, and an input file is
never overwritten.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch

__all__ = [
    "AudioError",
    "AudioInfo",
    "AudioReader",
    "iter_audio",
    "read_audio_span",
    "check_output_path",
    "audio_info",
    "load_audio",
    "save_audio",
    "check_finite",
    "to_channels",
    "resample",
]


class AudioError(ValueError):
    """Raised for audio that cannot be used: unreadable, empty, non-finite, unsupported layout."""


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header information of an audio file without decoding it.

    Raises:
        AudioError: if the file is missing, is not audio, or libsndfile cannot read it.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    frames = int(info.frames)
    # MP3 headers sometimes report a bogus frame count; trust what decodes (checked in load_audio).
    return AudioInfo(path, int(info.samplerate), int(info.channels), max(frames, 0), info.format, info.subtype)


class AudioReader:
    """Block access to an audio file as float32 ``[channels, samples]``, zeros outside the file.

    Reads only what is asked for, so memory does not depend on the file's length.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self.fh = sf.SoundFile(str(path))
        except Exception as exc:
            raise AudioError(f"{path}: not a readable audio file ({exc})") from None
        self.sample_rate = int(self.fh.samplerate)
        self.channels = int(self.fh.channels)
        self.frames = int(self.fh.frames)

    def blocks(self, block: int) -> Iterator[np.ndarray]:
        """The whole file in consecutive blocks of ``block`` frames (the last may be shorter)."""
        self.fh.seek(0)
        while True:
            try:
                data = self.fh.read(block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"{self.path}: could not decode audio ({exc})") from None
            if data.shape[0] == 0:
                return
            yield np.ascontiguousarray(data.T)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)``, zeros outside the file."""
        lo, hi = max(start, 0), min(stop, self.frames)
        out = np.zeros((self.channels, stop - start), np.float32)
        if hi > lo:
            self.fh.seek(lo)
            data = self.fh.read(hi - lo, dtype="float32", always_2d=True)
            out[:, lo - start: lo - start + data.shape[0]] = data.T
        return out

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_finite(x: torch.Tensor | np.ndarray, what: str = "audio") -> None:
    """Raise :class:`AudioError` when ``x`` holds NaN or Inf."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise AudioError(f"{what} holds {n_bad} NaN/Inf sample(s); repair or re-export the file")


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert ``[channels, samples]`` audio to 1 or 2 channels.

    Mono becomes stereo by duplication; stereo becomes mono by averaging. More than two channels
    are refused rather than guessed at (no downmix convention fits every layout).
    """
    have = x.shape[-2]
    if have == channels:
        return x
    if have > 2:
        raise AudioError(
            f"{have}-channel audio is not supported (mono or stereo only); downmix it to stereo "
            "first, e.g. `ffmpeg -i in.wav -ac 2 out.wav`"
        )
    if channels == 2 and have == 1:
        return x.expand(*x.shape[:-2], 2, x.shape[-1]).clone()
    if channels == 1 and have == 2:
        return x.mean(dim=-2, keepdim=True)
    raise AudioError(f"cannot convert {have} channel(s) to {channels}")


def resample(x: torch.Tensor, orig_sample_rate: int, sample_rate: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio's windowed-sinc, Kaiser window) along the last axis."""
    if orig_sample_rate == sample_rate:
        return x
    import torchaudio.functional as AF

    return AF.resample(
        x, int(orig_sample_rate), int(sample_rate),
        lowpass_filter_width=16, rolloff=0.95, resampling_method="sinc_interp_kaiser", beta=8.6,
    )


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    channels: int | None = None,
    max_duration_s: float | None = None,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, int]:
    """Read an audio file as a ``[channels, samples]`` tensor.

    Args:
        path: any file libsndfile reads.
        sample_rate: resample to this rate (``None`` keeps the file's rate).
        channels: 1 or 2 to convert (mono<->stereo); ``None`` keeps up to 2 channels.
        max_duration_s: refuse files longer than this (guards memory), ``None`` for no limit.
        offset_s: start reading here.
        duration_s: read at most this much (``None`` reads to the end).
        dtype: tensor dtype.

    Returns:
        ``(audio, sample_rate)``.

    Raises:
        AudioError: unreadable or non-audio file, zero-length audio, NaN/Inf samples, more than two
            channels, or a file longer than ``max_duration_s``.
    """
    info = audio_info(path)
    if info.sample_rate <= 0:
        raise AudioError(f"{path}: invalid sample rate {info.sample_rate}")
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise AudioError(
            f"{path}: {info.duration_s:.0f} s is longer than the limit of {max_duration_s:.0f} s; "
            "split the file or raise the limit"
        )
    start = int(round(offset_s * info.sample_rate))
    frames = -1 if duration_s is None else int(round(duration_s * info.sample_rate))
    try:
        data, file_rate = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: could not decode audio ({exc})") from None
    if data.size == 0:
        raise AudioError(f"{path}: holds no audio samples (zero length)")
    check_finite(data, f"{path}")
    x = torch.from_numpy(np.ascontiguousarray(data.T))
    if x.shape[0] > 2 and channels is None:
        to_channels(x, 2)  # raises the explanatory error
    if channels is not None:
        x = to_channels(x, channels)
    if sample_rate is not None and sample_rate != file_rate:
        x = resample(x, file_rate, sample_rate)
        file_rate = sample_rate
    return x.to(dtype), int(file_rate)


def save_audio(
    path: str | os.PathLike,
    audio: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_24",
    protect: tuple[str | os.PathLike, ...] = (),
) -> Path:
    """Write ``[channels, samples]`` audio to a WAV/FLAC file atomically.

    The samples are written to a temporary file in the destination folder which is then renamed
    over ``path``; on any error nothing is left behind.

    Args:
        path: destination (``.wav`` or ``.flac``).
        audio: ``[channels, samples]`` (or ``[samples]`` for mono) in [-1, 1].
        sample_rate: sample rate in Hz.
        subtype: libsndfile subtype, e.g. ``PCM_16``, ``PCM_24``, ``FLOAT``.
        protect: paths that must never be overwritten (e.g. the input file).

    Raises:
        AudioError: non-finite or empty audio, a destination equal to a protected path, or a
            folder that does not exist or cannot be written.
    """
    path = Path(path)
    for p in protect:
        if Path(p).exists() and path.exists() and os.path.samefile(p, path):
            raise AudioError(f"refusing to overwrite the input file {p}; choose another output path")
        if Path(p).resolve() == path.resolve():
            raise AudioError(f"refusing to overwrite the input file {p}; choose another output path")
    arr = audio.detach().cpu().float().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio, np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] == 0:
        raise AudioError(f"expected [channels, samples] audio with samples, got shape {tuple(arr.shape)}")
    check_finite(arr, "output audio")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AudioError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise AudioError(f"output folder {folder} is not writable")
    fmt = {"wav": "WAV", "flac": "FLAC"}.get(path.suffix.lower().lstrip("."))
    if fmt is None:
        raise AudioError(f"{path}: write .wav or .flac (got {path.suffix or 'no extension'})")
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    try:
        sf.write(str(tmp), arr.T, int(sample_rate), subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"could not write {path}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _resample_steps(orig_sample_rate: int, sample_rate: int) -> tuple[int, int, int]:
    """``(input step, output step, context)`` of :func:`resample` streamed.

    A chunk starting at a multiple of the input step has outputs starting at a multiple of the
    output step; with ``context`` real input samples on each side (twice what the filter reaches:
    16 zero crossings of the lower rate at rolloff 0.95, plus one input step) its outputs equal
    those of the whole signal.

    Raises:
        AudioError: a rate pair whose filter bank would take more than 256 MB (rates with a small
            common divisor, e.g. 44100 -> 44101 Hz).
    """
    g = math.gcd(int(orig_sample_rate), int(sample_rate))
    step_in, step_out = int(orig_sample_rate) // g, int(sample_rate) // g
    width = math.ceil(16 / 0.95 * max(1.0, step_in / step_out))
    bank_bytes = 4 * step_out * (2 * width + step_in)
    if bank_bytes > 256 * 2**20:
        raise AudioError(f"resampling {orig_sample_rate} Hz to {sample_rate} Hz needs a {bank_bytes / 2**30:.1f} GB "
                         "filter bank (the rates share only a small divisor); choose a common rate such as "
                         "44100 or 48000 Hz")
    return step_in, step_out, step_in * math.ceil((2 * width + step_in) / step_in)


class _ResampleStream:
    """:func:`resample` block by block: chunks of whole input steps, each resampled
    with :func:`_resample_steps`'s context of real neighbours (zeros only outside the signal, as
    for the whole signal)."""

    def __init__(self, orig_sample_rate: int, sample_rate: int):
        self.rates = (int(orig_sample_rate), int(sample_rate))
        self.step_in, self.step_out, self.context = _resample_steps(*self.rates)
        self.buf: np.ndarray | None = None
        self.buf_start = 0  # input index of buf[:, 0]
        self.done = 0  # input samples whose outputs were returned (a multiple of step_in until the end)
        self.total = 0  # input samples received

    def __call__(self, x: np.ndarray, last: bool) -> np.ndarray:
        self.buf = x if self.buf is None else np.concatenate([self.buf, x], axis=-1)
        self.total += x.shape[-1]
        end = self.total if last else (self.total - self.context) // self.step_in * self.step_in
        if end <= self.done:
            return np.zeros((x.shape[0], 0), np.float32)
        lo, hi = max(self.done - self.context, 0), min(end + self.context, self.total)
        y = resample(torch.from_numpy(self.buf[:, lo - self.buf_start: hi - self.buf_start]), *self.rates)
        first = (self.done - lo) // self.step_in * self.step_out
        count = -(-end * self.step_out // self.step_in) - self.done // self.step_in * self.step_out
        self.done = end
        keep = max(end - self.context, 0)
        self.buf, self.buf_start = self.buf[:, keep - self.buf_start:], keep
        return y[:, first: first + count].numpy()


def _open_audio(path: Path):
    audio_info(path)  # missing, a folder, not audio: one clear message
    try:
        return sf.SoundFile(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None


def _decoded(path: Path, data: np.ndarray, channels: int | None) -> torch.Tensor:
    """Samples read from ``path`` as :func:`load_audio` checks and converts them."""
    check_finite(data, f"{path}")
    x = torch.from_numpy(np.ascontiguousarray(data.T))
    if x.shape[0] > 2 and channels is None:
        to_channels(x, 2)  # raises the explanatory error
    return x if channels is None else to_channels(x, channels)


def iter_audio(path, sample_rate: int | None = None, channels: int | None = None,
               block_frames: int = 1 << 18) -> Iterator[np.ndarray]:
    """An audio file as float32 ``[channels, samples]`` NumPy blocks, in bounded memory: together
    what :func:`load_audio` returns (resampling streamed, equal to float rounding).

    Args:
        path: any file libsndfile reads.
        sample_rate: resample to this rate (``None`` keeps the file's).
        channels: 1 or 2 to convert; ``None`` keeps up to 2 channels.
        block_frames: samples read per block (resampled blocks vary around that).

    Raises:
        AudioError: as :func:`load_audio` (reported when the offending block is read).
    """
    path = Path(path)
    with _open_audio(path) as fh:
        resampler = None
        if sample_rate is not None and sample_rate != fh.samplerate:
            resampler = _ResampleStream(fh.samplerate, sample_rate)
        while True:
            try:
                data = fh.read(block_frames, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"{path}: could not decode audio ({exc})") from None
            last = data.shape[0] == 0
            x = _decoded(path, data, channels).numpy()
            if resampler is not None:
                x = resampler(x, last)
            if x.shape[-1]:
                yield x
            if last:
                return


def read_audio_span(path, start: int, stop: int, sample_rate: int | None = None,
                    channels: int | None = None) -> torch.Tensor:
    """Samples ``[start, stop)`` of ``load_audio(path, sample_rate, channels)[0]``, decoding only that
    span (and, when resampling, the filter's reach around it; equal to float rounding).

    Raises:
        AudioError: as :func:`load_audio`, or a span past the end of the file.
    """
    if not 0 <= start <= stop:
        raise ValueError(f"expected 0 <= start <= stop, got {start}, {stop}")
    path = Path(path)
    with _open_audio(path) as fh:
        rate = fh.samplerate
        resampling = sample_rate is not None and sample_rate != rate
        lo, hi = start, stop
        if resampling:
            step_in, step_out, context = _resample_steps(rate, sample_rate)
            lo = max(start // step_out * step_in - context, 0)
            hi = -(-stop // step_out) * step_in + context
        try:
            fh.seek(lo)
            data = fh.read(hi - lo, dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioError(f"{path}: could not decode audio ({exc})") from None
    x = _decoded(path, data, channels)
    if resampling:
        x = resample(x, rate, sample_rate)
        first = start - lo // step_in * step_out
        x = x[:, first: first + stop - start]
    if x.shape[-1] < stop - start:
        raise AudioError(f"{path}: samples {start}-{stop} run past the end of the file")
    return x


def check_output_path(in_path: str | os.PathLike, out_path: str | os.PathLike, overwrite: bool = False) -> str:
    """Refuse OUT == IN, an existing OUT (unless ``overwrite``), missing or unwritable folders and
    unknown formats (only .wav and .flac are written); return the libsndfile format name."""
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.exists() and out_path.exists() and os.path.samefile(in_path, out_path):
        raise AudioError(f"refusing to overwrite the input file {in_path}; choose another output path")
    if in_path.resolve() == out_path.resolve():
        raise AudioError(f"refusing to overwrite the input file {in_path}; choose another output path")
    folder = out_path.parent if str(out_path.parent) else Path(".")
    if not folder.is_dir():
        raise AudioError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AudioError(f"output folder {folder} is not writable")
    try:  # access() says yes to root even on read-only file systems: try it
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{out_path.name}.probe-"):
            pass
    except OSError as exc:
        raise AudioError(f"output folder {folder} is not writable ({exc.strerror})") from None
    if out_path.is_dir():
        raise AudioError(f"{out_path} is a folder; give an output file name")
    if out_path.exists() and not overwrite:
        raise AudioError(f"{out_path} already exists; pass --force (-y) to replace it")
    fmt = {"wav": "WAV", "flac": "FLAC"}.get(out_path.suffix.lower().lstrip("."))
    if fmt is None:
        raise AudioError(f"{out_path}: write .wav or .flac (got {out_path.suffix or 'no extension'})")
    return fmt
