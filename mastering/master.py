"""Mastering files of any length in bounded memory (``mastering master``), and measuring them (``analyze``).

:func:`master_file` streams the chain of :mod:`mastering.pipeline` over a file in passes: check
(NaN/Inf, DC offset, clipping, length), measure (BS.1770-4 loudness and true peak), analyse (one
latent for the whole track from evenly spread excerpts), process (blocks with the context on both
sides that this track's settings need, :func:`auto_context`, so that blocks give what one pass
over the file would; the Wave-U-Net in cache-sized pieces; into a temporary float file) and finish
(gain, block-wise true-peak limiter on the cores side by side, metering, retried). Memory depends
on the block length, not on the track's. The output is written under a temporary name beside
``OUT`` and renamed at the end, so a failure or a signal (see :mod:`mastering.cli`) leaves nothing
behind. :func:`analyze_file` streams the same meters plus a
Welch spectrum and the subsonic energy share.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from scipy import signal
from tqdm.auto import tqdm

from .defaults import (HIGHPASS_HZ, HIGHPASS_HZ_RANGE, INTENSITY_RANGE, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE,
                       TARGET_LUFS, TARGET_LUFS_RANGE, TRUE_PEAK_DBTP, TRUE_PEAK_DBTP_RANGE)
from .dsp.eq import parametric_eq
from .dsp.loudness import TRUE_PEAK_STREAM_MARGIN, LoudnessMeter
from .dsp.truepeak import LimiterForecast, true_peak_max
from .io import AudioError, AudioReader, audio_info, check_output_path
from .paths import runs_dir
from .signals import check_terminated
from .pipeline import (ANALYSIS_LUFS, HIGHPASS_PREROLL_S, chunk_residual, clean, encode_excerpts, excerpt_starts,
                       finish_limit, limit_to_target, load_model, process_block, scale_params, subsonic_highpass_sos,
                       unet_reach)
from .training.trainer import latest_checkpoint
from .weights import WeightsError, default_weights

__all__ = [
    "BANDS_HZ",
    "MasterError",
    "auto_context",
    "resolve_checkpoint",
    "analyze_file",
    "master_file",
    "format_report",
    "subsonic_highpass_sos",
]

BANDS_HZ: dict[str, tuple[float, float]] = {
    "sub_bass": (20.0, 60.0),
    "bass": (60.0, 250.0),
    "low_mid": (250.0, 500.0),
    "mid": (500.0, 2000.0),
    "high_mid": (2000.0, 4000.0),
    "presence": (4000.0, 6000.0),
    "brilliance": (6000.0, 20000.0),
}
"""Named bands of ``analyze`` (the customary mastering bands; upper edges capped at Nyquist)."""

SILENCE_LUFS = -70.0  # the BS.1770 absolute gate: nothing above it means nothing to master
_CLIP_LEVEL = 0.999
_CLIP_RUN = 3


class MasterError(ValueError):
    """A mastering request that cannot be carried out (no checkpoint, bad option...)."""


def _db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


@dataclass
class _Scan:
    frames: int = 0
    peak: float = 0.0
    clipped: int = 0
    sums: np.ndarray | None = None

    @property
    def dc(self) -> np.ndarray:
        return self.sums / max(self.frames, 1)


def _clipped_samples(x: np.ndarray) -> int:
    """Samples in runs of at least three consecutive samples at |x| >= 0.999 (hard clipping)."""
    hot = np.abs(x) >= _CLIP_LEVEL
    if not hot.any():
        return 0
    total = 0
    for row in hot:
        d = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        runs = stops - starts
        total += int(runs[runs >= _CLIP_RUN].sum())
    return total


def open_input(path: str | os.PathLike) -> AudioReader:
    """Open an input, refusing what cannot be mastered or measured, with a message saying why."""
    path = Path(path)
    info = audio_info(path)  # missing, folder, not audio
    if info.channels > 2:
        raise AudioError(
            f"{path}: {info.channels}-channel audio is not supported (mono or stereo only); downmix it to "
            "stereo first, e.g. `ffmpeg -i in.wav -ac 2 out.wav`"
        )
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{path}: sample rate {info.sample_rate} Hz is outside the supported "
                         f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    return AudioReader(path)


IN_MEMORY_BYTES = 256 * 2**20
"""An input whose float32 samples fit in this many bytes is decoded once and every pass reads it
from memory (3 minutes of 44.1 kHz stereo: 64 MB); a longer one is decoded again in each pass,
so memory does not grow with the file's length."""


class _MemoryReader:
    """An :class:`~mastering.io.AudioReader`'s samples decoded once: the same blocks and reads
    (float32 ``[channels, samples]`` copies, zeros outside the file)."""

    def __init__(self, src: AudioReader, block: int):
        self.path, self.sample_rate, self.channels = src.path, src.sample_rate, src.channels
        try:
            parts = list(src.blocks(block))  # an undecodable file raises the streaming reader's AudioError
        finally:
            src.close()
        self.data = np.concatenate(parts, axis=1) if parts else np.zeros((self.channels, 0), np.float32)
        self.frames = int(self.data.shape[1])

    def blocks(self, block: int):
        for start in range(0, self.frames, block):
            yield self.data[:, start: start + block].copy()

    def read(self, start: int, stop: int) -> np.ndarray:
        lo, hi = max(start, 0), min(stop, self.frames)
        out = np.zeros((self.channels, stop - start), np.float32)
        if hi > lo:
            out[:, lo - start: hi - start] = self.data[:, lo:hi]
        return out

    def close(self) -> None:
        pass


def _scan(src: AudioReader, block: int) -> _Scan:
    scan = _Scan(sums=np.zeros(src.channels))
    for x in src.blocks(block):
        if not np.all(np.isfinite(x)):
            bad = int(x.size - np.count_nonzero(np.isfinite(x)))
            raise AudioError(f"{src.path}: holds {bad}+ NaN/Inf sample(s); repair or re-export the file")
        scan.frames += x.shape[-1]
        scan.peak = max(scan.peak, float(np.abs(x).max(initial=0.0)))
        scan.sums += x.sum(axis=-1, dtype=np.float64)
        scan.clipped += _clipped_samples(x)
    if scan.frames == 0:
        raise AudioError(f"{src.path}: holds no audio samples (zero length)")
    src.frames = scan.frames  # trust what decodes (compressed formats may misreport)
    return scan


def _measure(src: AudioReader, block: int, dc: np.ndarray) -> tuple[LoudnessMeter, float]:
    """Loudness meter and linear true peak of the DC-free input, streamed: a block's true peak is
    found on a second thread while this one meters it (both release the interpreter lock)."""
    meter = LoudnessMeter(src.sample_rate, src.channels)
    margin = TRUE_PEAK_STREAM_MARGIN
    peak, pending = 0.0, None
    with ThreadPoolExecutor(1) as beside:
        for start in range(0, src.frames, block):
            stop = min(start + block, src.frames)
            x_ext = src.read(start - margin, stop + margin).astype(np.float64)
            x_ext[:, :] -= dc[:, None]
            # outside the file the signal is zero, not minus the offset
            if start - margin < 0:
                x_ext[:, : margin - start] = 0.0
            if stop + margin > src.frames:
                x_ext[:, x_ext.shape[-1] - (stop + margin - src.frames):] = 0.0
            if pending is not None:  # at most two blocks in memory
                peak = max(peak, pending.result())
            pending = beside.submit(true_peak_max, x_ext)
            meter.update(x_ext[:, margin: margin + (stop - start)])
        if pending is not None:
            peak = max(peak, pending.result())
    return meter, peak


@dataclass
class _CleanReader:
    """Reads the input as the model sees it (:func:`mastering.pipeline.clean`, times ``gain``).

    The high-pass starts ``preroll`` samples before each read (or at the file's start), so reads
    at any position agree with one pass over the whole file; outside the file the signal is zero.
    """

    src: AudioReader
    dc: np.ndarray
    gain: float
    sos: np.ndarray | None
    preroll: int

    def read(self, start: int, stop: int) -> np.ndarray:
        lo = max(start - (self.preroll if self.sos is not None else 0), 0)
        x = clean(self.src.read(lo, stop), self.sos, self.dc, valid=min(stop, self.src.frames) - lo)
        return x[:, start - lo:] * self.gain


# ------------------------------------------------------------------------------------------------
# analyze
# ------------------------------------------------------------------------------------------------


def analyze_file(path: str | os.PathLike, block_s: float = 10.0, n_fft: int = 4096) -> dict[str, Any]:
    """Measurements of an audio file, streamed in bounded memory.

    Returns:
        A JSON-ready dict: ``path``, ``sample_rate``, ``channels``, ``duration_s``,
        ``integrated_lufs`` (ITU-R BS.1770-4; ``None`` for silence), ``true_peak_dbtp`` (4x,
        Annex 2), ``loudness_range_lu`` (EBU Tech 3342; ``None`` under 3 s), ``sample_peak_dbfs``,
        ``rms_dbfs``, ``dc_offset``, ``clipped_samples``, ``subsonic_energy_share`` (share of the
        energy, DC offset included, that the chain's 20 Hz subsonic high-pass removes),
        ``spectral_centroid_hz`` (of the Welch
        power spectrum, Hann window of ``n_fft``, half overlap) and ``band_energies_db`` (energy of
        each :data:`BANDS_HZ` band relative to the total from 20 Hz up, in dB).

    Raises:
        AudioError: unreadable or non-audio file, zero length, NaN/Inf samples, more than two
            channels, or a sample rate outside 8-384 kHz.
    """
    src = open_input(path)
    try:
        block = max(int(block_s * src.sample_rate), n_fft)
        scan = _scan(src, block)
        meter, tp = _measure(src, block, np.zeros(src.channels))
        window = signal.get_window("hann", n_fft)
        power = np.zeros(n_fft // 2 + 1)
        frames = 0
        sum_sq = 0.0
        sos = subsonic_highpass_sos(src.sample_rate)
        zi = np.zeros((sos.shape[0], src.channels, 2))
        hp_sq = 0.0  # energy left after the chain's subsonic high-pass (offset removed first)
        for x in src.blocks(block):
            sum_sq += float(np.sum(x.astype(np.float64) ** 2))
            hp, zi = signal.sosfilt(sos, x.astype(np.float64) - scan.dc[:, None], axis=-1, zi=zi)
            hp_sq += float(np.sum(hp * hp))
            if x.shape[-1] >= n_fft:
                f, t, z = signal.stft(x, nperseg=n_fft, noverlap=n_fft // 2, window=window, boundary=None,
                                      padded=False, return_onesided=True)
                power += (np.abs(z) ** 2).sum(axis=(0, 2))
                frames += z.shape[0] * z.shape[-1]
        freqs = np.fft.rfftfreq(n_fft, 1.0 / src.sample_rate)
        bands: dict[str, float | None] = {}
        centroid = None
        if frames and power[freqs >= 20.0].sum() > 0:
            audible = freqs >= 20.0
            total = power[audible].sum()
            centroid = float((freqs[audible] * power[audible]).sum() / total)
            for name, (lo, hi) in BANDS_HZ.items():
                sel = (freqs >= lo) & (freqs < min(hi, src.sample_rate / 2))
                e = power[sel].sum()
                bands[name] = round(10.0 * math.log10(e / total), 2) if sel.any() and e > 0 else None
        integrated = meter.integrated()
        lra = meter.loudness_range() if math.isfinite(integrated) else None
        rms = math.sqrt(sum_sq / (scan.frames * src.channels))
        subsonic = 1.0 - min(hp_sq / sum_sq, 1.0) if sum_sq > 0 else None
        return {
            "path": str(Path(path)),
            "sample_rate": src.sample_rate,
            "channels": src.channels,
            "duration_s": round(scan.frames / src.sample_rate, 3),
            "integrated_lufs": round(integrated, 2) if math.isfinite(integrated) else None,
            "true_peak_dbtp": round(_db(tp), 2) if tp > 0 else None,
            "loudness_range_lu": round(lra, 2) if lra is not None else None,
            "sample_peak_dbfs": round(_db(scan.peak), 2) if scan.peak > 0 else None,
            "rms_dbfs": round(_db(rms), 2) if rms > 0 else None,
            "dc_offset": [round(float(v), 6) for v in scan.dc],
            "clipped_samples": scan.clipped,
            "subsonic_energy_share": round(subsonic, 4) if subsonic is not None else None,
            "spectral_centroid_hz": round(centroid, 1) if centroid is not None else None,
            "band_energies_db": bands,
        }
    finally:
        src.close()


# ------------------------------------------------------------------------------------------------
# master
# ------------------------------------------------------------------------------------------------


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> tuple[Path, str]:
    """The checkpoint to use and a sentence saying where it came from: ``checkpoint`` when given,
    else the last local training run, else the released default weights (``weights/``, checked
    against their model card).

    Raises:
        MasterError: a missing file, a damaged release, or no model at all (the message says how to get one).
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise MasterError(f"checkpoint {path} does not exist")
        return path, f"checkpoint {path}"
    record = latest_checkpoint()
    if record is not None:
        path = Path(record["checkpoint"])
        return path, (f"checkpoint {path} (phase {record.get('phase')}, profile {record.get('profile')}, "
                      f"trained {record.get('date', '?')}; the last training run)")
    try:
        release = default_weights()
    except WeightsError as exc:
        raise MasterError(str(exc)) from None
    if release is None:
        raise MasterError(
            f"no trained model found under {runs_dir() / 'mastering'} and no released weights in weights/; "
            "`make weights` builds them, `make reproduce` trains the notebooks' models, or pass --checkpoint PATH"
        )
    path, card = release
    return path, (f"released weights {path.name} (phase {card.get('phase')}, profile {card.get('profile')}, "
                  f"commit {str(card.get('commit', '?'))[:10]}, sha256 {card['sha256'][:12]}...)")


def _prepare_input(src: AudioReader, block: int, report: dict[str, Any]) -> tuple[_Scan, np.ndarray, float]:
    """Check and measure the input (steps 1-2); returns the scan, the DC offset to remove and its loudness."""
    sr = src.sample_rate
    scan = _scan(src, block)
    if scan.frames < int(round(0.4 * sr)):
        raise AudioError(f"{src.path}: {scan.frames / sr:.3f} s is too short to master (at least 0.4 s, "
                         "one BS.1770 loudness block)")
    dc = scan.dc if np.abs(scan.dc).max() > 1e-3 else np.zeros(src.channels)
    if dc.any():
        report["notes"].append(f"DC offset removed ({', '.join(f'{v:+.4f}' for v in dc)})")
    if scan.clipped:
        report["notes"].append(f"input has {scan.clipped} clipped samples (runs at full scale); clipping cannot "
                               "be undone")
    meter_in, tp_in = _measure(src, block, dc)
    lufs_in = meter_in.integrated()
    if not lufs_in > SILENCE_LUFS:
        raise AudioError(f"{src.path}: digital silence (no 400 ms block above {SILENCE_LUFS:.0f} LUFS"
                         f"{' after removing the DC offset' if dc.any() else ''}); nothing to master")
    report["input_measured"] = {"sample_rate": sr, "channels": src.channels,
                                "duration_s": round(scan.frames / sr, 3), "integrated_lufs": round(lufs_in, 2),
                                "true_peak_dbtp": round(_db(tp_in), 2), "clipped_samples": scan.clipped}
    return scan, dc, lufs_in


def _load(checkpoint, sample_rate: int, report: dict[str, Any]):
    """The model and its segment length; the report says which checkpoint and model."""
    ckpt_path, where = resolve_checkpoint(checkpoint)
    try:
        model, segment_s = load_model(ckpt_path)
    except ValueError as exc:  # its message names the file and why
        raise MasterError(str(exc)) from None
    report["checkpoint"] = where
    report["model"] = model.describe()
    chunk_residual(model)  # the same residual, computed in pieces that stay in the CPU's caches
    if sample_rate != model.sample_rate:
        report["notes"].append(
            f"input at {sample_rate} Hz: EQ and compressor run at {sample_rate} Hz, the encoder"
            f"{' and residual' if model.residual is not None else ''} at the model's {model.sample_rate} Hz")
    return model, segment_s


CONTEXT_TOLERANCE = 1e-6
"""Largest error (full scale = 1 at the level the model sees) that the processing pass's automatic
context may leave at a block's edge: -120 dBFS before the final gain."""
MAX_CONTEXT_S = 20.0  # automatic context never exceeds this (a 1 s compressor release needs ~16 s)
FINISH_BLOCK_S = 10.0  # the limiter's blocks: longer ones cost more per second (memory traffic), shorter more context
POST_EQ_CONTEXT_S = 4.0  # a post EQ's decay is not known here: at least the former fixed context
_RESAMPLER_SAMPLES = 1024  # covers the kernels of io.resample in and out (16 zero crossings: < 1 ms)


@contextlib.contextmanager
def _subnormals_flushed():
    """Impulse responses decay into subnormal numbers (below 2.2e-308), on which x86 arithmetic is
    some hundred times slower: 78 % of a 20 s EQ response on a 3-minute track, 1.7 s of its master.
    Meanwhile this thread flushes them to zero (``torch.set_flush_denormal``, which also governs the
    compiled filters and SciPy run on it); the tails and norms read from the responses do not change.
    Left off afterwards (torch's default; torch cannot tell whether it was on before)."""
    flushed = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def _tail_samples(h: np.ndarray, tolerance: float) -> int:
    """First ``n`` with ``sum(|h[n:]|) <= tolerance``: starting a filter from zero state ``n``
    samples early leaves an error below ``tolerance`` times the input's peak."""
    tail = np.cumsum(np.abs(h[::-1]))[::-1]
    above = np.flatnonzero(tail > tolerance)
    return int(above[-1]) + 1 if above.size else 0


def _alignment(model, sample_rate: int) -> int:
    """Block starts are multiples of this, so every block sees the Wave-U-Net's decimation grid, its
    padding at the file's end and the resampler's phase exactly where one pass over the whole file
    would: blocks then differ from that pass only by their edges, which the context covers."""
    if model.residual is None:
        return 1
    return 2 ** (model.residual.unet.depth + 1) * (sample_rate // math.gcd(sample_rate, model.sample_rate))


def auto_context(model, params: dict, sample_rate: int, peak: float,
                 tolerance: float = CONTEXT_TOLERANCE) -> tuple[int, dict[str, float]]:
    """Context (samples on each side of a processing block) after which a block's output equals one
    pass over the whole file to within ``tolerance``, for this track's settings; and its parts in seconds.

    The processing is a sum of parts that forget their start: the EQ (an IIR cascade: the L1 norm of
    its impulse response's tail bounds what a zero start leaves, times the input's ``peak``), the
    residual (the Wave-U-Net's receptive field, the resampler's kernels, the residual's DC blocker,
    bounded like the EQ), then the compressor, whose smoother contracts by at least
    ``exp(-1 / (tau * rate))`` per sample, ``tau`` its slower time constant, from a gain error no
    larger than its largest gain change. The parts' lengths add up; the total is capped at
    :data:`MAX_CONTEXT_S`.
    """
    parts: dict[str, float] = {}
    n_max = int(MAX_CONTEXT_S * sample_rate)
    impulse = torch.zeros(1, 1, n_max, dtype=torch.float64)
    impulse[..., 0] = 1.0
    eq_params = {k: v.double() for k, v in params["eq"].items()}
    with _subnormals_flushed():
        h_eq = model.decoder.equalize(impulse, sample_rate, eq_params, mode="exact")[0, 0].numpy()
    parts["eq"] = _tail_samples(h_eq, tolerance / max(peak, 1e-12)) / sample_rate
    peak_eq = max(peak, 1e-12) * float(np.abs(h_eq).sum())
    if model.residual is not None:
        reach = unet_reach(model.residual.unet) * sample_rate / model.sample_rate + _RESAMPLER_SAMPLES
        parts["residual"] = reach / sample_rate
        if model.residual.dc_block_hz:
            one = torch.ones(1, 1, dtype=torch.float64)
            with _subnormals_flushed():
                h_dc = parametric_eq(impulse[..., : n_max // 4], sample_rate, one * model.residual.dc_block_hz,
                                     one * 0.0, one * math.sqrt(0.5), kinds=("highpass",), mode="exact")[0, 0].numpy()
            parts["residual"] += _tail_samples(h_dc, tolerance / peak_eq) / sample_rate
    if "dynamics" in params:
        d = {k: float(v.reshape(-1)[0]) for k, v in params["dynamics"].items()}
        level_db = 20.0 * math.log10(4.0 * peak_eq)  # room for the residual, which the EQ path dwarfs
        change_db = (1.0 - 1.0 / d["ratio"]) * max(level_db - d["threshold_db"] + 0.5 * d["knee_db"], 0.0)
        # a gain error of e dB changes the output by at most |y| * (10**(e/20) - 1) <= |y| * 0.115 e
        error = 0.116 * change_db * 4.0 * peak_eq * 10.0 ** (d["makeup_gain_db"] / 20.0)
        tau_s = max(d["attack_ms"], d["release_ms"]) / 1000.0
        parts["compressor"] = tau_s * math.log(error / tolerance) if error > tolerance else 0.0
    total = min(sum(parts.values()), MAX_CONTEXT_S)
    return int(math.ceil(total * sample_rate)), parts


def _highpass_gain(sos: np.ndarray | None) -> float:
    """Largest factor by which the subsonic high-pass can raise a peak (the L1 norm of its impulse response)."""
    if sos is None:
        return 1.0
    impulse = np.zeros(1 << 19)
    impulse[0] = 1.0
    with _subnormals_flushed():
        return float(np.abs(signal.sosfilt(sos, impulse)).sum())


def _decide_post_eq(post_eq, model, params, z, reader: _CleanReader, segment_s: float, max_excerpts: int,
                    intensity: float, report: dict[str, Any]):
    """Let ``post_eq`` decide its EQ from evenly spread excerpts of the model's output."""
    src = reader.src
    n_ex = int(round(max(segment_s, post_eq.excerpt_s) * src.sample_rate))
    excerpts = [process_block(model, reader.read(s, min(s + n_ex, src.frames)), src.sample_rate, params, z, intensity)
                for s in excerpt_starts(src.frames, n_ex, max_excerpts)]
    eq, report["style"] = post_eq.decide(excerpts, src.sample_rate)
    return eq


def _process_pass(model, params, z, reader: _CleanReader, block: int, context: int, intensity: float, post_eq,
                  path: Path, progress: bool, forecast: LimiterForecast) -> float:
    """Step 4: the model's processing, block by block with context, into a float32 file; its loudness
    (and the ``forecast`` of the limiting fed). Metering and writing a block overlap the processing
    of the next."""
    src = reader.src
    meter = LoudnessMeter(src.sample_rate, src.channels)

    def keep(fh, y: np.ndarray) -> None:  # in block order, on one thread beside the next block's processing
        meter.update(y)
        forecast.update(y)
        fh.write(np.ascontiguousarray(y.T, dtype=np.float32).tobytes())

    with open(path, "wb") as fh, ThreadPoolExecutor(1) as after:
        pending = None
        for start in tqdm(range(0, src.frames, block), total=math.ceil(src.frames / block), desc="processing",
                          disable=not progress, file=sys.stderr, leave=False):
            check_terminated()  # a signal whose exception was swallowed stops the run here
            stop = min(start + block, src.frames)
            lo, hi = max(start - context, 0), min(stop + context, src.frames)
            try:
                y = process_block(model, reader.read(lo, hi), src.sample_rate, params, z, intensity, post_eq)
            except ValueError as exc:  # non-finite output
                raise MasterError(str(exc)) from None
            if pending is not None:
                pending.result()  # at most one block waits; its error surfaces here
            pending = after.submit(keep, fh, y[:, start - lo: start - lo + (stop - start)])
        if pending is not None:
            pending.result()
    return meter.integrated()


def _finish_pass(processed: Path, out: Path, frames: int, sample_rate: int, channels: int, block: int, fmt: str,
                 subtype: str, progress: bool, limiter_reduction: list[float],
                 workers: int = 2) -> Callable[[float, float], tuple]:
    """Step 5 as a :func:`mastering.pipeline.limit_to_target` pass: gain, true-peak limiter (block-wise
    with 0.5 s of context; :func:`mastering.pipeline.finish_limit`), output file, meters. ``workers`` threads limit blocks side by side (NumPy and
    SciPy release the interpreter lock); blocks are written and metered in order, at most
    ``workers + 1`` of them in memory."""
    context = int(round(0.5 * sample_rate))
    margin = TRUE_PEAK_STREAM_MARGIN

    def read(fh, lo: int, hi: int) -> np.ndarray:  # read back block by block (a memmap would stay resident)
        fh.seek(lo * channels * 4)
        return np.fromfile(fh, dtype=np.float32, count=(hi - lo) * channels).reshape(hi - lo, channels).T

    def limit_block(x: np.ndarray, start: int, stop: int, lo: int, ceiling_db: float):
        """The kept part of one limited block, its largest gain reduction (dB) and its true peak."""
        y, gain = finish_limit(x, sample_rate, ceiling_db, return_gain=True)
        reduction = 0.0
        active = np.abs(x).max(axis=0) > 1e-6  # the gain where some channel is not silent
        if active.any():
            reduction = -20.0 * math.log10(max(float(gain[active].min()), 1e-12))
        keep = start - lo
        a, b = keep - margin, keep + (stop - start) + margin  # true-peak margins
        ext = np.pad(y[:, max(a, 0): min(b, y.shape[-1])], ((0, 0), (max(-a, 0), max(b - y.shape[-1], 0))))
        return y[:, keep: keep + (stop - start)], reduction, true_peak_max(ext)

    def run_pass(gain_db: float, ceiling_db: float) -> tuple[float, float]:
        meter, tp, reduction, g = LoudnessMeter(sample_rate, channels), 0.0, 0.0, 10.0 ** (gain_db / 20.0)
        pending: deque = deque()

        def drain_one() -> None:
            nonlocal tp, reduction
            kept, red, peak = pending.popleft().result()
            reduction, tp = max(reduction, red), max(tp, peak)
            meter.update(kept)
            fo.write(np.ascontiguousarray(kept.T, dtype=np.float32))

        with open(processed, "rb") as fi, sf.SoundFile(str(out), "w", samplerate=sample_rate, channels=channels,
                                                       format=fmt, subtype=subtype) as fo, \
                ThreadPoolExecutor(max(int(workers), 1)) as pool:
            for start in tqdm(range(0, frames, block), total=math.ceil(frames / block), desc="limiting",
                              disable=not progress, file=sys.stderr, leave=False):
                check_terminated()
                stop = min(start + block, frames)
                lo, hi = max(start - context, 0), min(stop + context, frames)
                pending.append(pool.submit(limit_block, read(fi, lo, hi).astype(np.float64) * g, start, stop, lo,
                                           ceiling_db))
                if len(pending) > max(int(workers), 1):
                    drain_one()
            while pending:
                drain_one()
        limiter_reduction[:] = [reduction]
        return meter.integrated(), tp

    return run_pass


def _describe_params(model, params: dict, sample_rate: int) -> dict[str, Any]:
    eq = params["eq"]
    bands = []
    for k, kind in enumerate(model.decoder.eq.kinds):
        band = {"kind": kind, "freq_hz": round(float(eq["freq_hz"][0, k]), 1),
                "gain_db": round(float(eq["gain_db"][0, k]), 2), "q": round(float(eq["q"][0, k]), 3)}
        if "gate" in eq:
            band["gate"] = round(float(eq["gate"][0, k]), 3)
        if band["freq_hz"] > 0.49 * sample_rate:
            band["note"] = f"above 0.49 x {sample_rate} Hz, applied at {0.49 * sample_rate:.0f} Hz"
        bands.append(band)
    out: dict[str, Any] = {"eq_bands": bands}
    if "dynamics" in params:
        out["compressor"] = {k: round(float(v[0]), 3) for k, v in params["dynamics"].items()}
    return out


@torch.no_grad()
def master_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    target_lufs: float = TARGET_LUFS,
    true_peak_dbtp: float = TRUE_PEAK_DBTP,
    intensity: float = 1.0,
    analysis_lufs: float = ANALYSIS_LUFS,
    block_s: float = 30.0,
    context_s: float | None = None,
    max_excerpts: int = 16,
    subtype: str = "PCM_24",
    progress: bool = False,
    post_eq: Any = None,
    highpass_hz: float = HIGHPASS_HZ,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Master ``in_path`` into ``out_path`` with a trained Phase 1 model (see the module docstring).

    Args:
        in_path: any file libsndfile reads, mono or stereo, 8-384 kHz.
        out_path: ``.wav`` or ``.flac``; written atomically, at the input's rate and channel count.
        checkpoint: a training checkpoint; ``None`` takes the last trained one
            (``runs/mastering/latest.json``).
        target_lufs: integrated loudness of the master (ITU-R BS.1770-4), -40 to -5.
        true_peak_dbtp: true-peak ceiling of the master, -12 to 0 dBTP.
        intensity: scales the predicted processing (EQ gains, compression ratio above 1, residual);
            0 leaves only loudness and limiting, 1 is the model as trained, at most 2.
        analysis_lufs: level the model sees the input at (the middle of its training inputs'
            loudness); the final gain makes this irrelevant to the output level.
        block_s: block length of the processing pass (rounded up to a multiple of the Wave-U-Net's
            decimation grid; memory grows with it, not with the track); the finishing pass limits
            blocks of at most :data:`FINISH_BLOCK_S`.
        context_s: context on each side of a processing block; ``None`` (default) takes what
            :func:`auto_context` finds this track's settings need (the Wave-U-Net's receptive field,
            the decay of the EQ, the residual's DC blocker and the compressor to 1e-6 of full
            scale; at least 4 s with a ``post_eq``), so that blocks give what one pass over the whole
            file would.
        max_excerpts: excerpts encoded for the track's latent.
        subtype: libsndfile subtype of the output (``PCM_16``, ``PCM_24``, ``FLOAT``).
        progress: tqdm bars on stderr.
        post_eq: an EQ after the model's processing, before loudness and limiting, decided from
            excerpts of the model's output: an object with ``excerpt_s`` and ``decide(excerpts,
            sample_rate) -> (eq, info)``, the ``eq`` having ``apply(y, sample_rate)`` (e.g.
            :class:`mastering.semantic.style.StyleEQ`, the ``--style`` of the command line).
        highpass_hz: corner of the subsonic high-pass that every read of the input goes through
            (4th-order Butterworth, minimum phase, -3 dB at the corner); 0 turns it off.
        overwrite: replace an existing ``out_path`` (otherwise an existing file is an error).

    Returns:
        A report: input and output measurements, the checkpoint used, the applied EQ bands and
        compressor settings, the gains, each limiting pass of the loudness finish
        (``finish_passes``: gain, limiter ceiling, loudness and true peak it gave), and notes (DC
        removed, clipping, resampling...).

    Raises:
        AudioError: unusable input (unreadable, not audio, zero length, NaN/Inf, silent, more than two
            channels, unsupported rate, shorter than 0.4 s) or output (same as input, existing without
            ``overwrite``, missing or unwritable folder, unknown format); nothing is written.
        MasterError: bad options or no checkpoint.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    for name, value, (lo, hi) in (("target_lufs", target_lufs, TARGET_LUFS_RANGE),
                                  ("true_peak_dbtp", true_peak_dbtp, TRUE_PEAK_DBTP_RANGE),
                                  ("intensity", intensity, INTENSITY_RANGE),
                                  ("highpass_hz", highpass_hz or HIGHPASS_HZ_RANGE[0], HIGHPASS_HZ_RANGE)):  # 0: off
        if not lo <= float(value) <= hi:
            raise MasterError(f"{name} must lie in [{lo:g}, {hi:g}], got {value}")
    if block_s <= 0 or (context_s is not None and context_s < 0):
        raise MasterError("block_s must be > 0 and context_s >= 0")
    fmt = check_output_path(in_path, out_path, overwrite)
    report: dict[str, Any] = {"input": str(in_path), "output": str(out_path), "notes": []}
    tmp_processed = out_path.parent / f".{out_path.name}.processed-{os.getpid()}.f32"
    tmp_out = out_path.parent / f".{out_path.name}.tmp-{os.getpid()}"
    src = open_input(in_path)
    try:
        sr, intensity = src.sample_rate, float(intensity)
        in_block = max(int(round(block_s * sr)), 1)
        if src.frames * src.channels * 4 <= IN_MEMORY_BYTES:  # decoded once, not in every pass
            src = _MemoryReader(src, in_block)
        scan, dc, lufs_in = _prepare_input(src, in_block, report)
        model, segment_s = _load(checkpoint, sr, report)
        align = _alignment(model, sr)
        block = max(int(math.ceil(block_s * sr / align)), 1) * align
        # -- analyse: one z and one set of settings for the whole track
        pre_gain_db = float(np.clip(analysis_lufs - lufs_in, -40.0, 40.0))
        reader = _CleanReader(src, dc, 10.0 ** (pre_gain_db / 20.0), subsonic_highpass_sos(sr, highpass_hz),
                              int(HIGHPASS_PREROLL_S * sr))
        n_ex = int(round(segment_s * sr))
        z = encode_excerpts(model, (reader.read(s, s + n_ex) for s in excerpt_starts(scan.frames, n_ex, max_excerpts)),
                            sr)  # zeros after the end of a short track
        params = scale_params(model.predict(z), intensity)
        report.update(_describe_params(model, params, sr))
        eq = None if post_eq is None else _decide_post_eq(post_eq, model, params, z, reader, segment_s, max_excerpts,
                                                          intensity, report)
        if context_s is None:
            peak = reader.gain * (scan.peak + float(np.abs(dc).max(initial=0.0))) * _highpass_gain(reader.sos)
            context, parts = auto_context(model, params, sr, peak)
            if eq is not None:
                context = max(context, int(POST_EQ_CONTEXT_S * sr))
            report["context_s"] = {"total": round(context / sr, 3), **{k: round(v, 3) for k, v in parts.items()}}
        else:
            context = int(round(context_s * sr))
        context = int(math.ceil(context / align)) * align  # block starts minus context stay on the grid
        # -- process, then finish: gain to the target, true-peak limiting, metering, retried
        forecast = LimiterForecast(sr)
        lufs_proc = _process_pass(model, params, z, reader, block, context, intensity, eq, tmp_processed, progress,
                                  forecast)
        if not math.isfinite(lufs_proc):
            raise MasterError("the processed audio is silent; the checkpoint may be damaged")
        reduction = [0.0]
        run_pass = _finish_pass(tmp_processed, tmp_out, scan.frames, sr, src.channels,
                                max(int(round(min(block_s, FINISH_BLOCK_S) * sr)), 1), fmt, subtype, progress,
                                reduction, workers=torch.get_num_threads())
        passes = []

        def counted_pass(gain_db: float, ceiling_db: float) -> tuple[float, float]:
            lufs, tp = run_pass(gain_db, ceiling_db)
            passes.append({"gain_db": round(gain_db, 3), "ceiling_dbtp": round(ceiling_db, 3),
                           "integrated_lufs": round(lufs, 3), "true_peak_dbtp": round(_db(tp), 3)})
            return lufs, tp

        gain_db, lufs_out, tp_out = limit_to_target(counted_pass, float(target_lufs) - lufs_proc, target_lufs,
                                                    true_peak_dbtp, forecast=forecast)
        check_terminated()
        os.replace(tmp_out, out_path)
    except OSError as exc:  # disk full, folder removed meanwhile...
        raise AudioError(f"could not write {out_path}: {exc}") from None
    finally:
        src.close()
        for tmp in (tmp_processed, tmp_out):
            if tmp.exists():
                tmp.unlink()
    report.update(gain_db=round(gain_db, 2), analysis_gain_db=round(pre_gain_db, 2),
                  limiter_max_reduction_db=round(reduction[0], 2), finish_passes=passes,
                  output_measured={"integrated_lufs": round(lufs_out, 2), "true_peak_dbtp": round(_db(tp_out), 2),
                                   "sample_rate": sr, "channels": src.channels})
    shortfall = float(target_lufs) - lufs_out
    if shortfall > 0.3:
        report["notes"].append(f"{shortfall:.1f} LU short of {target_lufs} LUFS: the true-peak ceiling limits the "
                               "level of this material")
    return report


def format_report(report: dict[str, Any]) -> str:
    """Human-readable summary of :func:`master_file`'s report."""
    lines = [f"mastered {report['input']} -> {report['output']}", f"  using {report['checkpoint']}",
             f"  model: {report['model']}"]
    i, o = report["input_measured"], report["output_measured"]
    lines.append(f"  loudness: {i['integrated_lufs']:.1f} LUFS -> {o['integrated_lufs']:.1f} LUFS; true peak "
                 f"{i['true_peak_dbtp']:.1f} -> {o['true_peak_dbtp']:.1f} dBTP")
    lines.append("  EQ bands applied:")
    for b in report["eq_bands"]:
        gate = f"  gate {b['gate']:.2f}" if "gate" in b else ""
        lines.append(f"    {b['kind']:<10} {b['freq_hz']:>8.1f} Hz  {b['gain_db']:+6.2f} dB  Q {b['q']:.2f}{gate}")
    if "compressor" in report:
        c = report["compressor"]
        lines.append(f"  compressor: threshold {c['threshold_db']:.1f} dBFS, ratio {c['ratio']:.2f}:1, attack "
                     f"{c['attack_ms']:.1f} ms, release {c['release_ms']:.0f} ms, knee {c['knee_db']:.1f} dB")
    if "style" in report:
        st = report["style"]
        lines.append(f"  style '{st['descriptor']}' at intensity {st['intensity']:g} (how {st['descriptor']} before: "
                     f"{st['score_before']:.2f} of 1; {st['model']}):")
        lines.append("    net change: " + ", ".join(f"{f} Hz {v:+.1f} dB" for f, v in st["net_response_db"].items()))
    passes = len(report.get("finish_passes", [None]))
    lines.append(f"  gain {report['gain_db']:+.1f} dB into the limiter (max reduction "
                 f"{report['limiter_max_reduction_db']:.1f} dB" + (f"; {passes} passes to meet the targets)"
                                                                  if passes > 1 else ")"))
    lines.extend(f"  note: {n}" for n in report["notes"])
    return "\n".join(lines)
