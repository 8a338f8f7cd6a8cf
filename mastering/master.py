"""Mastering a real track with a trained model, and measuring one: ``mastering master`` / ``analyze``.

``master_file`` turns a mix of any length, rate and (mono/stereo) layout into a master at a loudness
target with a true-peak ceiling, in bounded memory. It streams the file in passes, never holding
the whole track:

1. **check** -- decode every block once: NaN/Inf, DC offset, sample peak, clipped runs, length.
2. **measure** -- integrated loudness (ITU-R BS.1770-4) and true peak of the DC-free input
   (:class:`mastering.dsp.loudness.LoudnessMeter`, :func:`~mastering.dsp.loudness.true_peak_stream`);
   digital silence stops here.
3. **analyse** -- up to ``max_excerpts`` excerpts spread over the track, each as long as the
   model's training segments, brought to the model rate and to ``analysis_lufs`` (the middle of the
   training input loudness), are encoded; the frame features are averaged into one latent ``z``
   for the whole track (the encoder's global average pooling taken over all excerpts), from which
   the controller predicts one set of EQ and compressor settings: a mastering engineer's single
   chain, not a per-block one.
4. **process** -- blocks of ``block_s`` seconds with ``context_s`` seconds of audio on both sides
   (so IIR filter and compressor states settle before the kept part; the Wave-U-Net residual of
   1B/1C runs on the same blocks at the model rate, overlap-and-discard) go through the EQ (exact
   IIR at the file's own rate), the residual and the compressor; the result streams to a temporary
   float file while its loudness is metered.
5. **finish** -- one gain to ``target_lufs``, the true-peak limiter (block-wise with context, aiming
   0.05 dB under the ceiling), and the output is metered; when limiting cost loudness the gain is
   raised by the shortfall, and when the measured true peak still exceeds the ceiling the limiter's
   ceiling is lowered by the excess, and the pass repeated (at most twice). The file is written to a temporary name in the output folder and
   renamed over ``OUT`` at the very end: any failure (or SIGINT/SIGTERM/SIGHUP, see
   :mod:`mastering.cli`) leaves nothing behind; ``OUT`` may never be ``IN``, and an existing ``OUT``
   is replaced only with ``overwrite``.

Memory therefore depends on ``block_s`` and ``context_s`` (and the sample rate), not on the length of
the track. Every read of the input in steps 3 and 4 removes the DC offset and high-passes the
subsonics (``highpass_hz``, default 20 Hz: 4th-order Butterworth, minimum phase), so the model and
the limiter spend no work on inaudible content. ``analyze_file`` streams the same meters plus a Welch power spectrum (spectral centroid,
band energies) and returns a JSON-ready dict.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from scipy import signal

from .defaults import (HIGHPASS_HZ, HIGHPASS_HZ_RANGE, HIGHPASS_ORDER, INTENSITY_RANGE, TARGET_LUFS,
                       TARGET_LUFS_RANGE, TRUE_PEAK_DBTP, TRUE_PEAK_DBTP_RANGE)
from .dsp.loudness import TRUE_PEAK_STREAM_MARGIN, LoudnessMeter, true_peak_stream
from .io import AudioError, AudioReader, audio_info, resample

__all__ = [
    "BANDS_HZ",
    "MasterError",
    "resolve_checkpoint",
    "analyze_file",
    "master_file",
    "format_report",
    "semantic_scores_file",
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

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000
SILENCE_LUFS = -70.0  # the BS.1770 absolute gate: nothing above it means nothing to master
_CLIP_LEVEL = 0.999
HIGHPASS_PREROLL_S = 1.0  # the filter's state settles well within this (slowest pole decays ~48/s at 20 Hz)
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
    notes: list[str] = field(default_factory=list)

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


def _open_checked(path: str | os.PathLike) -> AudioReader:
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
    """Loudness meter and linear true peak of the DC-free input, streamed."""
    meter = LoudnessMeter(src.sample_rate, src.channels)
    margin = TRUE_PEAK_STREAM_MARGIN
    peak = 0.0
    for start in range(0, src.frames, block):
        stop = min(start + block, src.frames)
        x_ext = src.read(start - margin, stop + margin).astype(np.float64)
        x_ext[:, :] -= dc[:, None]
        # outside the file the signal is zero, not minus the offset
        if start - margin < 0:
            x_ext[:, : margin - start] = 0.0
        if stop + margin > src.frames:
            x_ext[:, x_ext.shape[-1] - (stop + margin - src.frames):] = 0.0
        meter.update(x_ext[:, margin: margin + (stop - start)])
        peak = max(peak, true_peak_stream(x_ext))
    return meter, peak


def subsonic_highpass_sos(sample_rate: int, freq_hz: float = HIGHPASS_HZ, order: int = HIGHPASS_ORDER) -> np.ndarray | None:
    """Second-order sections of the chain's subsonic high-pass (Butterworth, minimum phase), or None for 0 Hz."""
    if not freq_hz:
        return None
    return signal.butter(order, float(freq_hz), btype="highpass", fs=int(sample_rate), output="sos")


@dataclass
class _CleanReader:
    """Reads the input as the model sees it: DC offset removed, subsonics high-passed, times ``gain``.

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
        x = self.src.read(lo, stop).astype(np.float64)
        x[:, : max(0, min(stop, self.src.frames) - lo)] -= self.dc[:, None]
        if self.sos is not None:
            x = signal.sosfilt(self.sos, x, axis=-1)
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
    src = _open_checked(path)
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
    """The checkpoint to use and a sentence saying where it came from.

    Raises:
        MasterError: no checkpoint given and none trained yet (the message says how to get one).
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise MasterError(f"checkpoint {path} does not exist")
        return path, f"checkpoint {path}"
    from .training.trainer import latest_checkpoint

    record = latest_checkpoint()
    if record is None:
        from .paths import runs_dir

        raise MasterError(
            f"no trained model found under {runs_dir() / 'mastering'}; train one with `make reproduce` "
            "(the Phase 1 notebooks) or `python -m mastering.training --phase 1b --profile smoke`, or pass "
            "--checkpoint PATH"
        )
    path = Path(record["checkpoint"])
    return path, (f"checkpoint {path} (phase {record.get('phase')}, profile {record.get('profile')}, "
                  f"trained {record.get('date', '?')}; the last training run)")


def _check_output(in_path: Path, out_path: Path, overwrite: bool = False) -> str:
    """Refuse OUT == IN, an existing OUT (unless ``overwrite``), missing or unwritable folders and
    unknown formats; return the format."""
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
        import tempfile

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


def _to_model_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[0] == channels:
        return x
    if x.shape[0] == 1:
        return np.repeat(x, channels, axis=0)
    return x.mean(axis=0, keepdims=True)


def _intensity_params(params: dict, intensity: float) -> dict:
    """Scale the predicted processing: EQ gains, compressor ratio above 1, makeup (residual: by the caller)."""
    out = {stage: dict(values) for stage, values in params.items()}
    out["eq"]["gain_db"] = params["eq"]["gain_db"] * intensity
    if "dynamics" in params:
        out["dynamics"]["ratio"] = 1.0 + (params["dynamics"]["ratio"] - 1.0) * intensity
        out["dynamics"]["makeup_gain_db"] = params["dynamics"]["makeup_gain_db"] * intensity
    return out


@torch.no_grad()
def _encode_track(model, reader: _CleanReader, segment_s: float, max_excerpts: int) -> torch.Tensor:
    """One ``z`` for the whole track from evenly spread excerpts (see the module docstring)."""
    src = reader.src
    n_ex = int(round(segment_s * src.sample_rate))
    feats = []
    for s in _excerpt_starts(src.frames, n_ex, max_excerpts):
        x = reader.read(s, s + n_ex)  # zeros after the end of a short track
        x = torch.from_numpy(_to_model_channels(x, model.channels).astype(np.float32))[None]
        x = resample(x, src.sample_rate, model.sample_rate)
        feats.append(model.encoder.features(x).mean(dim=-1))
    return model.encoder.project(torch.cat(feats).mean(dim=0, keepdim=True))


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


def _load_semantic(semantic_model):
    from .semantic.adaptive import load_semantic_eq

    try:
        return load_semantic_eq(semantic_model)
    except FileNotFoundError as exc:
        raise MasterError(str(exc)) from None
    except (ValueError, RuntimeError, OSError) as exc:
        raise MasterError(f"semantic EQ model: {exc}") from None


def _excerpt_starts(frames: int, n_ex: int, max_excerpts: int) -> list[int]:
    if frames <= n_ex:
        return [0]
    count = max(1, min(max_excerpts, frames // n_ex))
    return np.linspace(0, frames - n_ex, count).round().astype(int).tolist()


@torch.no_grad()
def _style_settings(model, params, z, reader: _CleanReader, segment_s: float, max_excerpts: int, style: str,
                    style_intensity: float, semantic_model, residual_scale: float):
    """The adaptive semantic EQ for ``style``, decided on the model's output for evenly spread excerpts."""
    from .semantic.adaptive import semantic_eq_settings

    bundle = _load_semantic(semantic_model)
    try:
        word = bundle.descriptor(style)
    except ValueError as exc:
        raise MasterError(str(exc)) from None
    if not 0.0 <= float(style_intensity) <= 2.0:
        raise MasterError(f"style intensity must lie in [0, 2], got {style_intensity}")
    src = reader.src
    sr = src.sample_rate
    n_ex = int(round(max(segment_s, bundle.excerpt_s) * sr))
    codes = []
    for s in _excerpt_starts(src.frames, n_ex, max_excerpts):
        x = reader.read(s, min(s + n_ex, src.frames))
        xt = torch.from_numpy(_to_model_channels(x, model.channels).astype(np.float32))[None]
        y = model.process(xt, params, z, sample_rate=sr, eq_mode="exact", residual_scale=residual_scale)["output"]
        if float(y.abs().max()) > 1e-6:
            codes.append(bundle.encode(y, sr)[0])
    if not codes:
        raise MasterError("the processed excerpts are silent; cannot decide a semantic EQ")
    z_audio = np.mean(codes, axis=0, keepdims=True)
    settings = semantic_eq_settings(bundle, None, sr, word, float(style_intensity), "adaptive", z_audio=z_audio)
    position = float(bundle.positions(z_audio, [word])[0, 0])
    from .semantic.adaptive import score_from_position

    info = {"descriptor": word, "intensity": float(style_intensity), "method": "adaptive",
            "score_before": round(float(score_from_position(position)), 3), "excerpts": len(codes),
            "model": bundle.config.get("profile", "?") + " profile semantic EQ",
            "eq_bands": settings.bands(0)}
    freqs = np.array([63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0])
    freqs = freqs[freqs < 0.49 * sr]
    net = settings.response_db(freqs, sr)[0]
    info["net_response_db"] = {f"{f:g}": round(float(v), 2) for f, v in zip(freqs, net)}
    return settings, info


@torch.no_grad()
def master_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    target_lufs: float = TARGET_LUFS,
    true_peak_dbtp: float = TRUE_PEAK_DBTP,
    intensity: float = 1.0,
    analysis_lufs: float = -24.0,
    block_s: float = 10.0,
    context_s: float = 4.0,
    max_excerpts: int = 16,
    subtype: str = "PCM_24",
    progress: bool = False,
    style: str | None = None,
    style_intensity: float = 1.0,
    semantic_model: str | os.PathLike | None = None,
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
        block_s, context_s: block length and context on each side of the processing pass.
        max_excerpts: excerpts encoded for the track's latent.
        subtype: libsndfile subtype of the output (``PCM_16``, ``PCM_24``, ``FLOAT``).
        progress: tqdm bars on stderr.
        style: a semantic descriptor ("warm", "bright", ...): after the model's processing, the
            input-adaptive semantic EQ (:mod:`mastering.semantic.adaptive`) moves the track's
            spectral balance towards it, decided from excerpts of the model's output; loudness
            and limiting come after it.
        style_intensity: 0 (no change) to 2; 1 = the descriptor.
        semantic_model: a semantic EQ bundle folder (default: the newest built).
        highpass_hz: corner of the subsonic high-pass that every read of the input goes through
            (4th-order Butterworth, minimum phase, -3 dB at the corner); 0 turns it off.
        overwrite: replace an existing ``out_path`` (otherwise an existing file is an error).

    Returns:
        A report: input and output measurements, the checkpoint used, the applied EQ bands and
        compressor settings, the gains, and notes (DC removed, clipping, resampling...).

    Raises:
        AudioError: unusable input (unreadable, not audio, zero length, NaN/Inf, silent, more than two
            channels, unsupported rate, shorter than 0.4 s) or output (same as input, missing or
            unwritable folder, unknown format); nothing is written.
        MasterError: bad options or no checkpoint.
    """
    from tqdm.auto import tqdm

    from .models.mastering import model_from_checkpoint
    from .provenance import safe_torch_load

    in_path, out_path = Path(in_path), Path(out_path)
    for name, value, (lo, hi) in (("target_lufs", target_lufs, TARGET_LUFS_RANGE),
                                  ("true_peak_dbtp", true_peak_dbtp, TRUE_PEAK_DBTP_RANGE),
                                  ("intensity", intensity, INTENSITY_RANGE),
                                  ("highpass_hz", highpass_hz or HIGHPASS_HZ_RANGE[0], HIGHPASS_HZ_RANGE)):  # 0: off
        if not lo <= float(value) <= hi:
            raise MasterError(f"{name} must lie in [{lo:g}, {hi:g}], got {value}")
    if block_s <= 0 or context_s < 0:
        raise MasterError("block_s must be > 0 and context_s >= 0")
    fmt = _check_output(in_path, out_path, overwrite)
    src = _open_checked(in_path)
    report: dict[str, Any] = {"input": str(in_path), "output": str(out_path), "notes": []}
    notes = report["notes"]
    tmp_processed = out_path.parent / f".{out_path.name}.processed-{os.getpid()}.f32"
    tmp_out = out_path.parent / f".{out_path.name}.tmp-{os.getpid()}"
    processed = None
    try:
        sr, channels = src.sample_rate, src.channels
        block = max(int(round(block_s * sr)), 1)
        scan = _scan(src, block)
        if scan.frames < int(round(0.4 * sr)):
            raise AudioError(f"{in_path}: {scan.frames / sr:.3f} s is too short to master (at least 0.4 s, "
                             "one BS.1770 loudness block)")
        dc = scan.dc
        if np.abs(dc).max() > 1e-3:
            notes.append(f"DC offset removed ({', '.join(f'{v:+.4f}' for v in dc)})")
        else:
            dc = np.zeros(channels)
        if scan.clipped:
            notes.append(f"input has {scan.clipped} clipped samples (runs at full scale); clipping cannot be undone")
        meter_in, tp_in = _measure(src, block, dc)
        lufs_in = meter_in.integrated()
        if not lufs_in > SILENCE_LUFS:
            raise AudioError(f"{in_path}: digital silence (no 400 ms block above {SILENCE_LUFS:.0f} LUFS"
                             f"{' after removing the DC offset' if np.abs(scan.dc).max() > 1e-3 else ''}); "
                             "nothing to master")
        report["input_measured"] = {"sample_rate": sr, "channels": channels, "duration_s": round(scan.frames / sr, 3),
                                    "integrated_lufs": round(lufs_in, 2), "true_peak_dbtp": round(_db(tp_in), 2),
                                    "clipped_samples": scan.clipped}

        ckpt_path, where = resolve_checkpoint(checkpoint)
        try:
            state = safe_torch_load(ckpt_path)
        except ValueError as exc:  # its message names the file and why
            raise MasterError(str(exc)) from None
        try:
            model = model_from_checkpoint(state, eq_mode="exact")
        except ValueError as exc:
            raise MasterError(f"{ckpt_path}: {exc}") from None
        segment_s = float((state.get("config") or {}).get("segment_seconds", 3.0))
        del state
        report["checkpoint"] = where
        report["model"] = model.describe()
        if sr != model.sample_rate:
            notes.append(f"input at {sr} Hz: EQ and compressor run at {sr} Hz, the encoder"
                         f"{' and residual' if model.residual is not None else ''} at the model's {model.sample_rate} Hz")

        pre_gain_db = float(np.clip(analysis_lufs - lufs_in, -40.0, 40.0))
        pre_gain = 10.0 ** (pre_gain_db / 20.0)
        reader = _CleanReader(src, dc, pre_gain, subsonic_highpass_sos(sr, highpass_hz), int(HIGHPASS_PREROLL_S * sr))
        z = _encode_track(model, reader, segment_s, max_excerpts)
        params = _intensity_params(model.predict(z), float(intensity))
        report.update(_describe_params(model, params, sr))
        style_eq = None
        if style is not None:
            style_eq, report["style"] = _style_settings(model, params, z, reader, segment_s, max_excerpts,
                                                        style, style_intensity, semantic_model, float(intensity))

        # -- process: EQ (+ residual) + compressor, block by block with context -----------------
        ctx = int(round(context_s * sr))
        meter_proc = LoudnessMeter(sr, channels)
        n_blocks = math.ceil(scan.frames / block)
        with open(tmp_processed, "wb") as fh:
            for start in tqdm(range(0, scan.frames, block), total=n_blocks, desc="processing", disable=not progress,
                              file=sys.stderr, leave=False):
                stop = min(start + block, scan.frames)
                lo, hi = max(start - ctx, 0), min(stop + ctx, scan.frames)
                x = reader.read(lo, hi)
                xt = torch.from_numpy(_to_model_channels(x, model.channels).astype(np.float32))[None]
                out = model.process(xt, params, z, sample_rate=sr, eq_mode="exact", residual_scale=float(intensity))
                y = out["output"]
                if style_eq is not None:
                    y = style_eq.apply(y.double(), sr)
                y = y[0].numpy().astype(np.float64)
                y = y[:, start - lo: start - lo + (stop - start)]
                if channels == 1:
                    y = y.mean(axis=0, keepdims=True)
                if not np.all(np.isfinite(y)):
                    raise MasterError("the model produced non-finite audio; the checkpoint may be damaged")
                meter_proc.update(y)
                fh.write(np.ascontiguousarray(y.T, dtype=np.float32).tobytes())
        lufs_proc = meter_proc.integrated()
        if not math.isfinite(lufs_proc):
            raise MasterError("the processed audio is silent; the checkpoint may be damaged")

        # -- finish: gain to the target, true-peak limiting, metering --------------------------
        from .dsp.dynamics import limiter

        gain_db = float(target_lufs) - lufs_proc
        lim_ctx = int(round(0.5 * sr))
        margin = TRUE_PEAK_STREAM_MARGIN
        processed = open(tmp_processed, "rb")  # read back block by block (a memmap would stay resident)

        def read_processed(lo: int, hi: int) -> np.ndarray:
            processed.seek(lo * channels * 4)
            return np.fromfile(processed, dtype=np.float32, count=(hi - lo) * channels).reshape(hi - lo, channels)

        ceiling_db = float(true_peak_dbtp) - 0.05  # a little under: limiting is block-wise, output 24-bit
        for attempt in range(3):
            meter_out = LoudnessMeter(sr, channels)
            tp_out = 0.0
            max_reduction_db = 0.0
            g = 10.0 ** (gain_db / 20.0)
            with sf.SoundFile(str(tmp_out), "w", samplerate=sr, channels=channels, format=fmt, subtype=subtype) as fo:
                for start in tqdm(range(0, scan.frames, block), total=n_blocks, desc="limiting", disable=not progress,
                                  file=sys.stderr, leave=False):
                    stop = min(start + block, scan.frames)
                    lo, hi = max(start - lim_ctx, 0), min(stop + lim_ctx, scan.frames)
                    x = read_processed(lo, hi).astype(np.float64).T * g
                    y = limiter(torch.from_numpy(x)[None], sr, ceiling_dbtp=ceiling_db)[0].numpy()
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ratio = np.abs(y) / np.maximum(np.abs(x), 1e-12)
                    active = np.abs(x) > 1e-6
                    if active.any():
                        max_reduction_db = max(max_reduction_db, -20.0 * math.log10(max(float(ratio[active].min()), 1e-12)))
                    keep_lo = start - lo
                    kept = y[:, keep_lo: keep_lo + (stop - start)]
                    a, b = keep_lo - margin, keep_lo + (stop - start) + margin  # true-peak margins
                    ext = np.pad(y[:, max(a, 0): min(b, y.shape[-1])], ((0, 0), (max(-a, 0), max(b - y.shape[-1], 0))))
                    tp_out = max(tp_out, true_peak_stream(ext))
                    meter_out.update(kept)
                    fo.write(np.ascontiguousarray(kept.T, dtype=np.float32))
            lufs_out = meter_out.integrated()
            shortfall = float(target_lufs) - lufs_out
            excess = _db(tp_out) - float(true_peak_dbtp)
            if (shortfall <= 0.3 and excess <= 0.0) or attempt == 2:
                break
            if shortfall > 0.3:
                gain_db += shortfall
            if excess > 0.0:
                ceiling_db -= excess + 0.02
        os.replace(tmp_out, out_path)
        report["gain_db"] = round(gain_db, 2)
        report["analysis_gain_db"] = round(pre_gain_db, 2)
        report["limiter_max_reduction_db"] = round(max_reduction_db, 2)
        report["output_measured"] = {"integrated_lufs": round(lufs_out, 2), "true_peak_dbtp": round(_db(tp_out), 2),
                                     "sample_rate": sr, "channels": channels}
        if shortfall > 0.3:
            notes.append(f"{shortfall:.1f} LU short of {target_lufs} LUFS: the true-peak ceiling limits the level "
                         "of this material")
        return report
    except OSError as exc:  # disk full, folder removed meanwhile...
        raise AudioError(f"could not write {out_path}: {exc}") from None
    finally:
        src.close()
        if processed is not None:
            processed.close()
        for tmp in (tmp_processed, tmp_out):
            if tmp.exists():
                tmp.unlink()


@torch.no_grad()
def semantic_scores_file(path: str | os.PathLike, semantic_model: str | os.PathLike | None = None,
                         max_excerpts: int = 16) -> dict[str, Any]:
    """How warm/bright/clear a file already sounds (:func:`mastering.semantic.adaptive.semantic_scores`),
    from evenly spread excerpts read one at a time (bounded memory).

    Returns:
        ``{"available": True, "model": ..., "scores": {descriptor: {"score", "suggested_intensity",
        "suggestion"}}}``, or ``{"available": False, "note": why}`` when no semantic model is built.
    """
    from .semantic.adaptive import DEFAULT_DESCRIPTORS, score_from_position, suggestion

    try:
        bundle = _load_semantic(semantic_model)
    except MasterError as exc:
        return {"available": False, "note": str(exc)}
    src = _open_checked(path)
    try:
        n_ex = int(round(bundle.excerpt_s * src.sample_rate))
        codes = []
        for s in _excerpt_starts(src.frames, n_ex, max_excerpts):
            x = src.read(s, min(s + n_ex, src.frames)).astype(np.float32)
            x = x - x.mean(axis=1, keepdims=True)
            if np.abs(x).max() > 1e-6 and x.shape[-1] >= bundle.encoder.config["n_fft"]:
                codes.append(bundle.encode(torch.from_numpy(x)[None], src.sample_rate)[0])
    finally:
        src.close()
    if not codes:
        return {"available": False, "note": "the file is silent or too short for semantic scores"}
    words = [d for d in DEFAULT_DESCRIPTORS if d in bundle.centroids.index]
    t = bundle.positions(np.mean(codes, axis=0), words)[0]
    scores = {}
    for d, pos in zip(words, t):
        score = float(score_from_position(pos))
        text, suggested = suggestion(d, score)
        scores[d] = {"score": round(score, 3), "suggested_intensity": suggested, "suggestion": text}
    return {"available": True, "model": bundle.config.get("profile", "?") + " profile semantic EQ",
            "excerpts": len(codes), "scores": scores}


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
    lines.append(f"  gain {report['gain_db']:+.1f} dB into the limiter (max reduction "
                 f"{report['limiter_max_reduction_db']:.1f} dB)")
    lines.extend(f"  note: {n}" for n in report["notes"])
    return "\n".join(lines)
