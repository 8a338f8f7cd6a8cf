"""Demastering: degrade mastered audio the way an unmastered mix differs from its master.

:func:`sample_params` draws a seeded parameter record from :data:`PARAM_RANGES`. :func:`apply`
runs the chain of :data:`STAGE_ORDER` (each stage is described in its docstring) and, with
``return_log=True``, returns the record of what it applied, signal-dependent values included;
:func:`write_log` / :func:`read_log` store that record as JSON. :func:`demaster` draws and applies.
:func:`demaster_file` (``mastering demaster``) streams files of any length through
:func:`apply_stream` in bounded memory, equal to :func:`apply` to float rounding.
:func:`simple_degrade` is a simpler chain than training's (two shelves, one peaking band, a level
drop) for evaluating on inputs degraded otherwise than the training data.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
import torch
from scipy.signal import fftconvolve, sosfilt

from ..dsp.dynamics import (
    _branching_smoother,
    _detector_level_db,
    _static_curve_db,
    _time_constant_to_pole,
    compressor,
    expander,
)
from ..dsp.eq import parametric_eq, sos_from_params
from ..defaults import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from ..dsp.loudness import LoudnessMeter, loudness
from ..io import AudioError, audio_info, check_output_path, iter_audio
from ..provenance import atomic_write_text

__all__ = [
    "VERSION",
    "STAGE_ORDER",
    "PARAM_RANGES",
    "PARAM_VECTOR_NAMES",
    "sample_params",
    "apply",
    "demaster",
    "gaussian_eq_gain_db",
    "reverb_impulse_response",
    "params_vector",
    "write_log",
    "read_log",
    "MIN_SAMPLES",
    "BLOCK_FRAMES",
    "apply_stream",
    "demaster_file",
    "SIMPLE_RANGES",
    "simple_degrade",
]

VERSION = 1
STAGE_ORDER = ("dynamics", "tilt_eq", "gaussian_eq", "reverb", "echo", "level")

#: Documented ranges: ``(low, high)`` uniform, ``(low, high, "log")`` log-uniform; ``p`` is the
#: probability that the stage is present.
PARAM_RANGES: dict[str, dict[str, Any]] = {
    "dynamics": {
        "p": 0.8,
        "mode_probs": {"expand": 0.7, "compress": 0.3},
        "expand": {"depth_db": (2.0, 10.0), "ratio": (1.2, 2.0), "attack_ms": (0.5, 10.0, "log"),
                   "release_ms": (30.0, 300.0, "log"), "knee_db": (0.0, 6.0)},
        "compress": {"depth_db": (6.0, 18.0), "ratio": (1.5, 4.0), "attack_ms": (5.0, 50.0, "log"),
                     "release_ms": (50.0, 400.0, "log"), "knee_db": (0.0, 6.0)},
    },
    "tilt_eq": {
        "p": 0.8,
        "tilt_db": (-6.0, 6.0), "pivot_hz": (500.0, 2000.0, "log"),
        "low_shelf_gain_db": (-6.0, 6.0), "low_shelf_freq_hz": (60.0, 300.0, "log"),
        "high_shelf_gain_db": (-6.0, 6.0), "high_shelf_freq_hz": (3000.0, 12000.0, "log"),
        "shelf_q": 1.0 / math.sqrt(2.0),
    },
    "gaussian_eq": {
        "p": 0.8,
        "bands": (1, 3),  # integer, inclusive
        "frame_s": (0.5, 2.0),
        "freq_hz": (60.0, 12000.0, "log"), "q": (0.5, 4.0, "log"), "gain_db": (-8.0, 8.0),
        # random-walk step (standard deviation) between keyframes
        "step_octaves": 0.25, "step_log2_q": 0.2, "step_gain_db": 1.5,
    },
    "reverb": {"p": 0.4, "rt60_s": (0.2, 1.5), "wet_db": (-24.0, -8.0), "predelay_ms": (0.0, 30.0)},
    "echo": {"p": 0.2, "delay_ms": (60.0, 400.0), "gain_db": (-24.0, -10.0)},
    "level": {"p": 1.0, "target_lufs": (-30.0, -18.0), "headroom_db": (1.0, 6.0)},
}

#: Names of the fixed-length parameter vector :func:`params_vector` returns (absent stages give
#: their neutral values: 0 dB gains, ratio 1, zero times).
PARAM_VECTOR_NAMES: tuple[str, ...] = (
    "dyn_expand", "dyn_compress", "dyn_depth_db", "dyn_ratio", "dyn_attack_ms", "dyn_release_ms",
    "tilt_db", "pivot_hz", "low_shelf_gain_db", "low_shelf_freq_hz", "high_shelf_gain_db",
    "high_shelf_freq_hz",
    "geq_bands", "geq_mean_abs_gain_db",
    "reverb_wet_db", "reverb_rt60_s", "echo_gain_db", "echo_delay_ms",
    "level_gain_db", "level_target_lufs", "level_headroom_db",
)

#: Ranges of :func:`simple_degrade` (same notation as :data:`PARAM_RANGES`; every band always present).
SIMPLE_RANGES: dict[str, tuple] = {
    "low_shelf_freq_hz": (100.0, 200.0, "log"), "low_shelf_gain_db": (-6.0, 6.0),
    "high_shelf_freq_hz": (4000.0, 10000.0, "log"), "high_shelf_gain_db": (-6.0, 6.0),
    "peak_freq_hz": (200.0, 5000.0, "log"), "peak_gain_db": (-6.0, 6.0), "peak_q": (0.7, 2.0, "log"),
    "level_db": (-12.0, -3.0),
}

_STFT_N = 2048
_STFT_HOP = 512

#: Fewest samples the chain processes: the time-varying EQ's centred STFT reflects
#: ``_STFT_N // 2`` samples at each end of the signal, which needs one sample more than that.
MIN_SAMPLES = _STFT_N // 2 + 1

#: Samples per block of :func:`demaster_file` (about 6 s at 44.1 kHz; its working memory is a
#: few hundred MB at any sample rate).
BLOCK_FRAMES = 2**18


# --------------------------------------------------------------------------------------------
# drawing parameters


def _draw(rng: np.random.Generator, spec) -> float:
    low, high = float(spec[0]), float(spec[1])
    if len(spec) > 2 and spec[2] == "log":
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def _stage_rng(seed: int, stage: str) -> np.random.Generator:
    # one independent stream per stage: changing one stage's ranges never shifts another's draws
    return np.random.default_rng([int(seed), STAGE_ORDER.index(stage)])


def _sample_gaussian_eq(rng: np.random.Generator, r: dict, duration_s: float) -> dict:
    n_bands = int(rng.integers(r["bands"][0], r["bands"][1] + 1))
    frame_s = _draw(rng, r["frame_s"])
    n_keys = int(math.ceil(duration_s / frame_s)) + 1
    lo_f, hi_f = np.log2(r["freq_hz"][0]), np.log2(r["freq_hz"][1])
    lo_q, hi_q = np.log2(r["q"][0]), np.log2(r["q"][1])
    lo_g, hi_g = r["gain_db"][0], r["gain_db"][1]
    f = np.empty((n_keys, n_bands))
    q = np.empty((n_keys, n_bands))
    g = np.empty((n_keys, n_bands))
    f[0] = rng.uniform(lo_f, hi_f, n_bands)
    q[0] = rng.uniform(lo_q, hi_q, n_bands)
    g[0] = rng.uniform(lo_g, hi_g, n_bands)
    for k in range(1, n_keys):
        f[k] = np.clip(f[k - 1] + rng.normal(0, r["step_octaves"], n_bands), lo_f, hi_f)
        q[k] = np.clip(q[k - 1] + rng.normal(0, r["step_log2_q"], n_bands), lo_q, hi_q)
        g[k] = np.clip(g[k - 1] + rng.normal(0, r["step_gain_db"], n_bands), lo_g, hi_g)
    return {
        "bands": n_bands, "frame_s": frame_s,
        "times_s": [round(k * frame_s, 6) for k in range(n_keys)],
        "freq_hz": np.round(2.0 ** f, 4).tolist(), "q": np.round(2.0 ** q, 5).tolist(),
        "gain_db": np.round(g, 4).tolist(),
    }


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def sample_params(seed: int, duration_s: float = 10.0, ranges: dict | None = None) -> dict:
    """Draw one demastering configuration.

    Args:
        seed: the only source of randomness; the same seed gives the same parameters.
        duration_s: length of the audio it will be applied to (sets the number of keyframes of
            the time-varying EQ; a longer signal holds the last keyframe).
        ranges: override :data:`PARAM_RANGES` (same structure).

    Returns:
        ``{"version", "seed", "duration_s", "stages": {stage: dict or None}}`` (JSON-ready).

    Raises:
        ValueError: a negative or non-integer seed, a duration that is not positive.
    """
    _check_seed(seed)
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    r = copy.deepcopy(PARAM_RANGES if ranges is None else ranges)
    stages: dict[str, Any] = {}
    for stage in STAGE_ORDER:
        rng = _stage_rng(seed, stage)
        spec = r[stage]
        present = bool(rng.uniform() < spec["p"])
        if stage == "dynamics":
            modes = list(spec["mode_probs"])
            probs = np.array([spec["mode_probs"][m] for m in modes], float)
            mode = modes[int(rng.choice(len(modes), p=probs / probs.sum()))]
            vals = {"mode": mode, **{k: _draw(rng, v) for k, v in spec[mode].items()}}
        elif stage == "tilt_eq":
            vals = {k: _draw(rng, v) for k, v in spec.items() if k not in ("p", "shelf_q")}
            vals["shelf_q"] = float(spec["shelf_q"])
        elif stage == "gaussian_eq":
            vals = _sample_gaussian_eq(rng, spec, float(duration_s))
        else:
            vals = {k: _draw(rng, v) for k, v in spec.items() if k != "p"}
            if stage == "reverb":
                vals["ir_seed"] = int(rng.integers(0, 2**31 - 1))
        stages[stage] = vals if present else None
    return {"version": VERSION, "seed": int(seed), "duration_s": float(duration_s), "stages": stages}


# --------------------------------------------------------------------------------------------
# processing


def _as_batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if x.ndim == 2:
        return x[None], True
    if x.ndim == 3 and x.shape[0] == 1:
        return x, False
    raise ValueError(
        f"demaster processes one signal: [channels, samples] or [1, channels, samples], got {tuple(x.shape)}"
    )


def _dbfs(peak: float) -> float:
    return float(20 * np.log10(max(peak, 1e-12)))


def _peak_dbfs(x: torch.Tensor) -> float:
    return _dbfs(float(x.abs().max()))


def _lufs(x: torch.Tensor, sample_rate: int) -> float:

    gated = x.shape[-1] >= int(0.4 * sample_rate)
    return float(loudness(x.double(), sample_rate, gated=gated, floor_lufs=-70.0)[0])


def _dynamics_threshold(p: dict, peak_dbfs: float) -> tuple[float, dict]:
    """The threshold ``depth_db`` below the input's sample peak, and the applied record."""
    if p["mode"] not in ("expand", "compress"):
        raise ValueError(f"unknown dynamics mode {p['mode']!r}")
    threshold = peak_dbfs - p["depth_db"]
    return threshold, dict(p, threshold_db=round(threshold, 4))


def _dynamics(x: torch.Tensor, sample_rate: int, p: dict) -> tuple[torch.Tensor, dict]:

    threshold, applied = _dynamics_threshold(p, _peak_dbfs(x))
    kw = dict(threshold_db=threshold, ratio=p["ratio"], attack_ms=p["attack_ms"], release_ms=p["release_ms"],
              knee_db=p["knee_db"])
    y = (expander if p["mode"] == "expand" else compressor)(x, sample_rate, **kw)
    return y, applied


def tilt_eq_bands(p: dict) -> tuple[list[float], list[float], list[float], tuple[str, ...]]:
    """The four biquad bands of the ``tilt_eq`` stage: ``(freq_hz, gain_db, q, kinds)``."""
    q = p["shelf_q"]
    return (
        [p["pivot_hz"], p["pivot_hz"], p["low_shelf_freq_hz"], p["high_shelf_freq_hz"]],
        [-p["tilt_db"] / 2, p["tilt_db"] / 2, p["low_shelf_gain_db"], p["high_shelf_gain_db"]],
        [q, q, q, q],
        ("low_shelf", "high_shelf", "low_shelf", "high_shelf"),
    )


def _tilt_eq(x: torch.Tensor, sample_rate: int, p: dict) -> torch.Tensor:
    # torch backend: the numba backend's OpenMP threads do not survive the fork of DataLoader workers
    f, g, q, kinds = tilt_eq_bands(p)
    return parametric_eq(x, sample_rate, torch.tensor([f], dtype=torch.float64),
                         torch.tensor([g], dtype=torch.float64), torch.tensor([q], dtype=torch.float64),
                         kinds=kinds, mode="exact", backend="torch")


def _q_to_sigma_octaves(q: np.ndarray) -> np.ndarray:
    bw = 2.0 * np.arcsinh(1.0 / (2.0 * q)) / np.log(2.0)  # RBJ peaking bandwidth in octaves
    return bw / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # FWHM -> standard deviation


def gaussian_eq_gain_db(p: dict, times_s: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """Gain in dB of the time-varying Gaussian EQ, ``[len(times_s), len(freqs_hz)]``.

    Band k adds ``gain_db * exp(-0.5 (log2(f / freq_hz) / sigma)^2)`` at frequency f, ``sigma`` the
    standard deviation (octaves) of a Gaussian whose full width at half maximum is the RBJ
    bandwidth of a peaking filter of that Q, ``2 asinh(1 / (2 Q)) / ln 2`` octaves. Keyframe values
    (a bounded random walk, one keyframe every ``frame_s``) are interpolated linearly in log2
    frequency, log2 Q and dB; times past the last keyframe hold it.
    """
    key_t = np.asarray(p["times_s"], float)
    times_s = np.asarray(times_s, float)
    f = np.log2(np.asarray(p["freq_hz"], float))
    q = np.log2(np.asarray(p["q"], float))
    g = np.asarray(p["gain_db"], float)

    def interp(v):
        return np.stack([np.interp(times_s, key_t, v[:, b]) for b in range(v.shape[1])], axis=1)

    fc, qq, gg = interp(f), 2.0 ** interp(q), interp(g)  # [frames, bands]
    sigma = _q_to_sigma_octaves(qq)
    with np.errstate(divide="ignore"):
        lf = np.log2(np.maximum(np.asarray(freqs_hz, float), 1e-6))
    d = (lf[None, None, :] - fc[:, :, None]) / sigma[:, :, None]
    return np.sum(gg[:, :, None] * np.exp(-0.5 * d * d), axis=1)


def _gaussian_eq(x: torch.Tensor, sample_rate: int, p: dict) -> torch.Tensor:
    batch, channels, n = x.shape
    window = torch.hann_window(_STFT_N, periodic=True, dtype=torch.float64)
    flat = x.reshape(batch * channels, n).double()
    spec = torch.stft(flat, _STFT_N, _STFT_HOP, window=window, center=True, return_complex=True)
    times = np.arange(spec.shape[-1]) * _STFT_HOP / sample_rate
    freqs = np.fft.rfftfreq(_STFT_N, 1.0 / sample_rate)
    gain = torch.from_numpy(10.0 ** (gaussian_eq_gain_db(p, times, freqs) / 20.0)).T  # [bins, frames]
    y = torch.istft(spec * gain[None], _STFT_N, _STFT_HOP, window=window, center=True, length=n)
    return y.reshape(batch, channels, n).to(x.dtype)


def reverb_impulse_response(p: dict, sample_rate: int, channels: int) -> np.ndarray:
    """The reverb's impulse responses ``[channels, taps]``: pre-delay, then Gaussian noise under
    ``10^(-3 t / rt60_s)`` (60 dB of decay in ``rt60_s``), 1.5 x ``rt60_s`` long, unit energy."""
    rng = np.random.default_rng(int(p["ir_seed"]))
    n = max(1, int(round(1.5 * p["rt60_s"] * sample_rate)))
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal((channels, n)) * 10.0 ** (-3.0 * t / p["rt60_s"])
    ir /= np.sqrt(np.sum(ir * ir, axis=-1, keepdims=True))
    pre = int(round(p["predelay_ms"] * 1e-3 * sample_rate))
    return np.concatenate([np.zeros((channels, pre)), ir], axis=-1)


def _reverb(x: torch.Tensor, sample_rate: int, p: dict) -> torch.Tensor:

    n = x.shape[-1]
    ir = reverb_impulse_response(p, sample_rate, x.shape[1])
    xd = x[0].double().numpy()
    wet = np.stack([fftconvolve(xd[c], ir[c])[:n] for c in range(xd.shape[0])])
    y = xd + 10.0 ** (p["wet_db"] / 20.0) * wet
    return torch.from_numpy(y)[None].to(x.dtype)


def _echo_delay(p: dict, sample_rate: int) -> tuple[int, dict]:
    """The echo's delay in samples, and the applied record."""
    d = int(round(p["delay_ms"] * 1e-3 * sample_rate))
    return d, dict(p, delay_samples=d)


def _echo(x: torch.Tensor, sample_rate: int, p: dict) -> tuple[torch.Tensor, dict]:
    d, applied = _echo_delay(p, sample_rate)
    y = x.clone()
    if 0 < d < x.shape[-1]:
        y[..., d:] = y[..., d:] + 10.0 ** (p["gain_db"] / 20.0) * x[..., :-d]
    return y, applied


def _level_gain(p: dict, before: float, peak: float) -> tuple[float, dict]:
    """Gain in dB of the ``level`` stage for a signal of loudness ``before`` (LUFS) and sample peak
    ``peak`` (dBFS), and the applied record."""
    gain = 0.0 if before <= -70.0 else p["target_lufs"] - before
    limited = peak + gain > -p["headroom_db"]
    if limited:
        gain = -p["headroom_db"] - peak
    applied = dict(p)
    applied.update({
        "gain_db": round(gain, 6), "loudness_before_lufs": round(before, 4),
        "loudness_after_lufs": round(before + gain, 4) if before > -70.0 else before,
        "peak_after_dbfs": round(peak + gain, 4), "headroom_limited": bool(limited),
    })
    return gain, applied


def _level(x: torch.Tensor, sample_rate: int, p: dict) -> tuple[torch.Tensor, dict]:
    gain, applied = _level_gain(p, _lufs(x, sample_rate), _peak_dbfs(x))
    return x * (10.0 ** (gain / 20.0)), applied


def _check_params(params: dict, samples: int) -> None:
    unknown = set(params.get("stages", {})) - set(STAGE_ORDER)
    if unknown:
        raise ValueError(f"unknown demastering stage(s) {sorted(unknown)}; known: {STAGE_ORDER}")
    if params["stages"].get("gaussian_eq") is not None and samples < MIN_SAMPLES:
        raise ValueError(f"the time-varying EQ needs at least {MIN_SAMPLES} samples, got {samples}")


def apply(x, sample_rate: int, params: dict, return_log: bool = False):
    """Degrade one signal with ``params`` from :func:`sample_params` (or a logged record).

    The stages, in :data:`STAGE_ORDER` (each present with probability ``p`` when drawn; an absent
    stage is ``None``):

    * ``dynamics``: mode ``expand`` (upward expansion above a threshold ``depth_db`` below the
      input's sample peak: de-limiting) or ``compress`` (a different bus compressor), stereo-linked
      peak detector (:func:`mastering.dsp.dynamics.expander` / ``compressor``).
    * ``tilt_eq``: a tilt of ``tilt_db`` around ``pivot_hz`` (low shelf ``-tilt/2``, high shelf
      ``+tilt/2``) plus independent low and high shelves (:func:`tilt_eq_bands`, exact RBJ biquads).
    * ``gaussian_eq``: time-varying Gaussian bumps on a log-frequency axis, keyframed every
      ``frame_s`` (:func:`gaussian_eq_gain_db`), applied as a zero-phase gain on a Hann STFT
      (2048 points, hop 512) and inverted by overlap-add.
    * ``reverb``: :func:`reverb_impulse_response` convolved and added at ``wet_db``.
    * ``echo``: one delayed copy, ``y[n] = x[n] + 10^(gain_db/20) x[n - delay]``.
    * ``level``: scaled to ``target_lufs`` (BS.1770-4, :func:`mastering.dsp.loudness.loudness`),
      then lowered further if needed so the sample peak is at most ``-headroom_db`` dBFS.

    Reverb and echo tails past the input's end are cut: the output is sample-aligned with the input
    and as long.

    Args:
        x: ``[channels, samples]`` or ``[1, channels, samples]`` mastered audio (tensor or array).
        sample_rate: Hz.
        params: the parameter record; ``None`` stages are skipped.
        return_log: also return the applied record (params plus the signal-dependent values:
            ``dynamics.threshold_db``, ``echo.delay_samples``, ``level.gain_db`` and the loudness
            before/after, and the input/output loudness and peak of the whole chain).

    Returns:
        The degraded audio with the shape of ``x`` (float32), or ``(audio, record)``.

    Raises:
        ValueError: bad shapes, an unknown stage or dynamics mode, a signal too short for the
            time-varying EQ (fewer than :data:`MIN_SAMPLES` samples).
    """
    xb, squeeze = _as_batch(x)
    xb = xb.float()
    _check_params(params, xb.shape[-1])
    record = copy.deepcopy(params)
    record["sample_rate"] = int(sample_rate)
    record["input"] = {"loudness_lufs": round(_lufs(xb, sample_rate), 4), "peak_dbfs": round(_peak_dbfs(xb), 4)}
    y = xb
    for stage in STAGE_ORDER:
        p = params["stages"].get(stage)
        if p is None:
            continue
        if stage == "dynamics":
            y, record["stages"][stage] = _dynamics(y, sample_rate, p)
        elif stage == "tilt_eq":
            y = _tilt_eq(y, sample_rate, p)
        elif stage == "gaussian_eq":
            y = _gaussian_eq(y, sample_rate, p)
        elif stage == "reverb":
            y = _reverb(y, sample_rate, p)
        elif stage == "echo":
            y, record["stages"][stage] = _echo(y, sample_rate, p)
        elif stage == "level":
            y, record["stages"][stage] = _level(y, sample_rate, p)
    y = y.float()
    record["output"] = {"loudness_lufs": round(_lufs(y, sample_rate), 4), "peak_dbfs": round(_peak_dbfs(y), 4)}
    out = y[0] if squeeze else y
    return (out, record) if return_log else out


def demaster(x, sample_rate: int, seed: int, ranges: dict | None = None):
    """:func:`sample_params` for the signal's length, then :func:`apply`; returns ``(y, record)``."""
    xb, _ = _as_batch(x)
    params = sample_params(seed, duration_s=xb.shape[-1] / sample_rate, ranges=ranges)
    return apply(x, sample_rate, params, return_log=True)


def _simple_params(seed: int) -> dict:
    """The drawn parameters of :func:`simple_degrade` (``numpy.random.default_rng(seed)``, in
    :data:`SIMPLE_RANGES` order), the shelves' Q fixed at 1/sqrt(2)."""
    _check_seed(seed)
    rng = np.random.default_rng(int(seed))
    params = {k: _draw(rng, spec) for k, spec in SIMPLE_RANGES.items()}
    params["shelf_q"] = 1.0 / math.sqrt(2.0)
    return params


def _apply_simple(x: torch.Tensor, sample_rate: int, p: dict) -> torch.Tensor:
    """The simple chain of parameters ``p`` on ``[batch, channels, samples]``: three exact RBJ
    biquads (:func:`mastering.dsp.eq.parametric_eq`), then the level drop."""
    f = [p["low_shelf_freq_hz"], p["peak_freq_hz"], p["high_shelf_freq_hz"]]
    g = [p["low_shelf_gain_db"], p["peak_gain_db"], p["high_shelf_gain_db"]]
    q = [p["shelf_q"], p["peak_q"], p["shelf_q"]]
    y = parametric_eq(x, sample_rate, torch.tensor(f, dtype=torch.float64), torch.tensor(g, dtype=torch.float64),
                      torch.tensor(q, dtype=torch.float64), kinds=("low_shelf", "peaking", "high_shelf"),
                      mode="exact", backend="torch")
    return y * (10.0 ** (p["level_db"] / 20.0))


def simple_degrade(x, sample_rate: int, seed: int) -> tuple[torch.Tensor, dict]:
    """Degrade with a simpler chain than :func:`demaster`'s: an evaluation input unlike training's.

    Drawn once from ``numpy.random.default_rng(seed)`` (:data:`SIMPLE_RANGES`): a low shelf
    (100-200 Hz, +-6 dB), a peaking band (200 Hz-5 kHz, +-6 dB, Q 0.7-2) and a high shelf (4-10 kHz,
    +-6 dB), exact RBJ biquads, shelves of Q 1/sqrt(2) (frequencies above ``0.49 * sample_rate`` are
    clamped there, as every EQ of the package); then a level drop of 3-12 dB. Every item of a batch
    gets the same parameters.

    Args:
        x: ``[channels, samples]`` or ``[batch, channels, samples]`` mastered audio (tensor or array).
        sample_rate: Hz.
        seed: non-negative integer; the same seed gives the same parameters and output.

    Returns:
        ``(y, record)``: the degraded audio (float32, the shape of ``x``) and
        ``{"chain": "simple", "seed", "sample_rate", <every drawn parameter>}``.

    Raises:
        ValueError: a negative or non-integer seed, a shape other than 2-D or 3-D.
    """
    params = _simple_params(seed)
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if x.ndim not in (2, 3):
        raise ValueError(f"simple_degrade takes [channels, samples] or [batch, channels, samples], got {tuple(x.shape)}")
    xb = x[None] if x.ndim == 2 else x
    y = _apply_simple(xb.float(), sample_rate, params).float()
    record = {"chain": "simple", "seed": int(seed), "sample_rate": int(sample_rate), **params}
    return (y[0] if x.ndim == 2 else y), record


def params_vector(record: dict) -> np.ndarray:
    """A fixed-length float32 summary of a record, in :data:`PARAM_VECTOR_NAMES` order."""
    s = record["stages"]
    v = dict.fromkeys(PARAM_VECTOR_NAMES, 0.0)
    v["dyn_ratio"] = 1.0
    if s.get("dynamics"):
        d = s["dynamics"]
        v.update(dyn_expand=float(d["mode"] == "expand"), dyn_compress=float(d["mode"] == "compress"),
                 dyn_depth_db=d["depth_db"], dyn_ratio=d["ratio"], dyn_attack_ms=d["attack_ms"],
                 dyn_release_ms=d["release_ms"])
    if s.get("tilt_eq"):
        t = s["tilt_eq"]
        v.update({k: t[k] for k in ("tilt_db", "pivot_hz", "low_shelf_gain_db", "low_shelf_freq_hz",
                                     "high_shelf_gain_db", "high_shelf_freq_hz")})
    if s.get("gaussian_eq"):
        gq = s["gaussian_eq"]
        v.update(geq_bands=gq["bands"], geq_mean_abs_gain_db=float(np.mean(np.abs(gq["gain_db"]))))
    if s.get("reverb"):
        v.update(reverb_wet_db=s["reverb"]["wet_db"], reverb_rt60_s=s["reverb"]["rt60_s"])
    if s.get("echo"):
        v.update(echo_gain_db=s["echo"]["gain_db"], echo_delay_ms=s["echo"]["delay_ms"])
    if s.get("level"):
        lv = s["level"]
        v.update(level_gain_db=lv.get("gain_db", 0.0), level_target_lufs=lv["target_lufs"],
                 level_headroom_db=lv["headroom_db"])
    return np.array([v[k] for k in PARAM_VECTOR_NAMES], dtype=np.float32)


def write_log(path, record: dict) -> Path:
    """Write a record as indented JSON (atomically)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def read_log(path) -> dict:
    return json.loads(Path(path).read_text())


# --------------------------------------------------------------------------------------------
# streaming: signals of any length in bounded memory

#: A signal given in blocks: each call returns a fresh iterable of float32 ``[channels, samples]``
#: NumPy blocks (of any sizes) covering the whole signal in order.
Blocks = Callable[[], Iterable[np.ndarray]]


class _Stats(NamedTuple):
    """What the streamed chain needs to know of a whole signal."""
    frames: int
    channels: int
    peak: float  # linear
    peak_dbfs: float
    lufs: float


class _Meter:
    """Length, sample peak and integrated loudness of a signal fed in ``[channels, samples]``
    blocks, read as :func:`_peak_dbfs` and :func:`_lufs` read the whole signal (the streaming
    BS.1770 meter is :class:`mastering.dsp.loudness.LoudnessMeter`; a signal shorter than one 400 ms
    block gets :func:`_lufs`'s ungated reading of its samples, which are kept for that)."""

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self.frames = 0
        self.channels = 0
        self.peak = 0.0
        self._meter = None
        self._head_frames = int(0.4 * self.sample_rate)
        self._head: list[np.ndarray] = []

    def update(self, x: np.ndarray) -> None:
        if x.shape[-1] == 0:
            return
        if self._meter is None:

            self.channels = x.shape[0]
            self._meter = LoudnessMeter(self.sample_rate, self.channels)
        if self.frames < self._head_frames:
            self._head.append(x[:, : self._head_frames - self.frames].copy())
        self.frames += x.shape[-1]
        self.peak = max(self.peak, float(np.abs(x).max()))
        self._meter.update(x)

    def stats(self) -> _Stats:
        if self.frames == 0:
            lufs = -70.0
        elif self.frames < self._head_frames:
            lufs = _lufs(torch.from_numpy(np.concatenate(self._head, axis=-1))[None], self.sample_rate)
        else:
            lufs = max(self._meter.integrated(), -70.0)
        return _Stats(self.frames, self.channels, self.peak, _dbfs(self.peak), lufs)


def _measure(blocks: Blocks, sample_rate: int) -> _Stats:
    meter = _Meter(sample_rate)
    for x in blocks():
        meter.update(x)
    return meter.stats()


class _DynamicsStream:
    """The ``dynamics`` stage block by block: :func:`mastering.dsp.dynamics.expander` /
    ``compressor`` (peak detector, stereo-linked) with the detector's smoother carried across blocks."""

    def __init__(self, sample_rate: int, p: dict, threshold_db: float):

        def f32(value):
            return torch.tensor([float(value)], dtype=torch.float32)

        self.sample_rate = int(sample_rate)
        self.expand = p["mode"] == "expand"
        ratio = f32(p["ratio"])
        slope = ratio if self.expand else 1.0 / ratio
        self.curve = tuple(v.view(1, 1, 1) for v in (f32(threshold_db), slope, f32(p["knee_db"])))
        self.a_att = _time_constant_to_pole(f32(p["attack_ms"]), self.sample_rate)
        self.a_rel = _time_constant_to_pole(f32(p["release_ms"]), self.sample_rate)
        self.state = 0.0  # the smoothed gain change (dB) after the last sample

    def __call__(self, x: np.ndarray, last: bool) -> np.ndarray:

        if x.shape[-1] == 0:
            return x
        xt = torch.from_numpy(np.ascontiguousarray(x))[None]
        level = _detector_level_db(xt, self.sample_rate, "peak", True, 10.0)
        change = (_static_curve_db(level, *self.curve) - level).abs()[0]  # [1, samples]
        # The smoother starts from zero: a first sample of state / (1 - a_att) rises above zero,
        # so the attack branch turns it into the carried state.
        prime = torch.full((1, 1), self.state / (1.0 - float(self.a_att)), dtype=change.dtype)
        smoothed = _branching_smoother(torch.cat([prime, change], dim=-1), self.a_att, self.a_rel)[:, 1:]
        self.state = float(smoothed[0, -1])
        gain_db = smoothed if self.expand else -smoothed
        return (xt[0] * torch.pow(10.0, gain_db / 20.0)).numpy()


class _TiltEqStream:
    """The ``tilt_eq`` stage block by block: the biquads (:func:`mastering.dsp.eq.sos_from_params`)
    run by ``scipy.signal.sosfilt``, which the exact mode of ``parametric_eq`` matches, with their
    state carried."""

    def __init__(self, sample_rate: int, p: dict, channels: int):

        freq, gain, q, kinds = tilt_eq_bands(p)
        self.sos = sos_from_params(np.array(freq), np.array(gain), np.array(q), kinds, sample_rate)
        self.zi = np.zeros((self.sos.shape[0], channels, 2))

    def __call__(self, x: np.ndarray, last: bool) -> np.ndarray:

        if x.shape[-1] == 0:
            return x
        y, self.zi = sosfilt(self.sos, x.astype(np.float64), axis=-1, zi=self.zi)
        return y.astype(np.float32)


class _GaussianEqStream:
    """The ``gaussian_eq`` stage block by block: the centred (reflect-padded) STFT of
    :func:`_gaussian_eq` as a streaming overlap-add, the window-square normalisation of
    ``torch.istft`` accumulated alongside. It holds back up to one frame of samples."""

    def __init__(self, sample_rate: int, p: dict, channels: int):
        self.sample_rate = int(sample_rate)
        self.p = p
        self.window = torch.hann_window(_STFT_N, periodic=True, dtype=torch.float64).numpy()
        self.freqs = np.fft.rfftfreq(_STFT_N, 1.0 / sample_rate)
        self.pad = _STFT_N // 2
        self.pending = np.zeros((channels, 0))  # samples not framed yet (padded once started)
        self.recent = np.zeros((channels, 0))  # the last pad + 1 input samples: the end's reflection
        self.tail = np.zeros((channels, _STFT_N - _STFT_HOP))  # overlap-add owed to coming frames
        self.tail_env = np.zeros(_STFT_N - _STFT_HOP)
        self.frame = 0  # index of the next frame
        self.started = False  # the start's reflection is in place
        self.to_drop = self.pad  # outputs of the start's reflection still to drop
        self.samples_in = 0
        self.samples_out = 0

    def __call__(self, x: np.ndarray, last: bool) -> np.ndarray:
        channels, n, hop = x.shape[0], _STFT_N, _STFT_HOP
        self.samples_in += x.shape[-1]
        x = x.astype(np.float64)
        self.recent = np.concatenate([self.recent, x], axis=-1)[:, -(self.pad + 1):]
        self.pending = np.concatenate([self.pending, x], axis=-1)
        if not self.started:
            if self.pending.shape[-1] <= self.pad:
                if last:
                    raise ValueError(f"the time-varying EQ needs at least {MIN_SAMPLES} samples, "
                                     f"got {self.samples_in}")
                return np.zeros((channels, 0), np.float32)
            self.pending = np.concatenate([self.pending[:, self.pad:0:-1], self.pending], axis=-1)
            self.started = True
        if last:
            self.pending = np.concatenate([self.pending, self.recent[:, -2::-1]], axis=-1)
        count = max(0, (self.pending.shape[-1] - n) // hop + 1)
        per = n // hop
        ola = np.zeros((channels, count + per - 1, hop))
        env = np.zeros((count + per - 1, hop))
        if count:
            frames = np.lib.stride_tricks.sliding_window_view(self.pending, n, axis=-1)[:, : (count - 1) * hop + 1: hop]
            times = (self.frame + np.arange(count)) * hop / self.sample_rate
            gain = 10.0 ** (gaussian_eq_gain_db(self.p, times, self.freqs) / 20.0)  # [frames, bins]
            out = np.fft.irfft(np.fft.rfft(frames * self.window, axis=-1) * gain, n=n, axis=-1) * self.window
            out = out.reshape(channels, count, per, hop)
            square = (self.window ** 2).reshape(per, hop)
            for q in range(per):
                ola[:, q: q + count] += out[:, :, q]
                env[q: q + count] += square[q]
        ola, env = ola.reshape(channels, -1), env.reshape(-1)
        ola[:, : n - hop] += self.tail
        env[: n - hop] += self.tail_env
        done = ola.shape[-1] if last else count * hop  # no coming frame reaches before this
        self.tail, self.tail_env = ola[:, done:].copy(), env[done:].copy()
        self.pending = self.pending[:, count * hop:]
        self.frame += count
        drop = min(self.to_drop, done)
        self.to_drop -= drop
        stop = min(done, drop + self.samples_in - self.samples_out)  # nothing past the input's end
        self.samples_out += stop - drop
        return (ola[:, drop:stop] / env[drop:stop]).astype(np.float32)


class _ReverbStream:
    """The ``reverb`` stage block by block: overlap-add convolution, the tail carried."""
    def __init__(self, sample_rate: int, p: dict, channels: int):
        self.ir = reverb_impulse_response(p, sample_rate, channels)
        self.wet = 10.0 ** (p["wet_db"] / 20.0)
        self.tail = np.zeros((channels, self.ir.shape[-1] - 1))

    def __call__(self, x: np.ndarray, last: bool) -> np.ndarray:

        n = x.shape[-1]
        if n == 0:
            return x
        xd = x.astype(np.float64)
        wet = fftconvolve(xd, self.ir, axes=-1)
        wet[:, : self.tail.shape[-1]] += self.tail
        self.tail = wet[:, n:].copy()
        return (xd + self.wet * wet[:, :n]).astype(np.float32)


class _EchoStream:
    """The ``echo`` stage block by block: a delay line of the last ``delay`` input samples."""
    def __init__(self, sample_rate: int, p: dict, channels: int):
        self.delay = _echo_delay(p, sample_rate)[0]
        self.gain = 10.0 ** (p["gain_db"] / 20.0)
        self.history = np.zeros((channels, self.delay), np.float32)

    def __call__(self, x: np.ndarray, last: bool) -> np.ndarray:
        if self.delay <= 0 or x.shape[-1] == 0:
            return x
        both = np.concatenate([self.history, x], axis=-1)
        self.history = both[:, -self.delay:].copy()
        return x + self.gain * both[:, : x.shape[-1]]


def _stream_stages(params: dict, sample_rate: int, channels: int, threshold_db: float | None) -> list:
    """The streaming stages of ``params`` before ``level``, in :data:`STAGE_ORDER`."""
    stages = []
    for name in STAGE_ORDER[:-1]:
        p = params["stages"].get(name)
        if p is None:
            continue
        if name == "dynamics":
            stages.append(_DynamicsStream(sample_rate, p, threshold_db))
        else:
            cls = {"tilt_eq": _TiltEqStream, "gaussian_eq": _GaussianEqStream, "reverb": _ReverbStream,
                   "echo": _EchoStream}[name]
            stages.append(cls(sample_rate, p, channels))
    return stages


def _run(blocks: Blocks, stages: list, channels: int) -> Iterator[np.ndarray]:
    """One pass of ``blocks`` through streaming stages; a last, empty block flushes them."""
    for x in blocks():
        for stage in stages:
            x = stage(x, False)
        if x.shape[-1]:
            yield x
    x = np.zeros((channels, 0), np.float32)
    for stage in stages:
        x = stage(x, True)
    if x.shape[-1]:
        yield x


def apply_stream(blocks: Blocks, sample_rate: int, params: dict, write: Callable[[np.ndarray], Any],
                 peak_ceiling: float | None = None, stats: _Stats | None = None) -> dict:
    """:func:`apply` to a signal given in blocks, in memory that does not grow with its length.

    Passes over ``blocks``: one measures the input (its peak sets the dynamics threshold), one
    runs the chain to the ``level`` stage and measures the loudness and peak it sets the gain from,
    the last runs the chain again and hands the output to ``write``. Every stage carries its state
    from block to block (detector smoother, biquad state, STFT overlap-add, reverb tail, echo delay
    line).

    Args:
        blocks: the mastered signal (:data:`Blocks`: called once per pass).
        sample_rate: Hz.
        params: the parameter record (:func:`sample_params`).
        write: receives the degraded signal, float32 ``[channels, samples]`` blocks in order.
        peak_ceiling: scale what ``write`` receives so that its sample peak is at most this,
            logged as ``output_normalized_by_db`` (the record's ``output`` is measured before).
        stats: the input's measurement (``_measure(blocks, sample_rate)``) from a pass already
            made (it saves that pass).

    Returns:
        The record of :func:`apply` (``return_log=True``), equal to float rounding.

    Raises:
        ValueError: an empty signal, an unknown stage or dynamics mode, a signal too short for the
            time-varying EQ.
    """
    stats = _measure(blocks, sample_rate) if stats is None else stats
    if stats.frames == 0:
        raise ValueError("the signal holds no samples")
    _check_params(params, stats.frames)
    st = params["stages"]
    record = copy.deepcopy(params)
    record["sample_rate"] = int(sample_rate)
    record["input"] = {"loudness_lufs": round(stats.lufs, 4), "peak_dbfs": round(stats.peak_dbfs, 4)}
    threshold = None
    if st.get("dynamics") is not None:
        threshold, record["stages"]["dynamics"] = _dynamics_threshold(st["dynamics"], stats.peak_dbfs)
    if st.get("echo") is not None:
        record["stages"]["echo"] = _echo_delay(st["echo"], sample_rate)[1]

    def chain() -> Iterator[np.ndarray]:
        return _run(blocks, _stream_stages(params, sample_rate, stats.channels, threshold), stats.channels)

    level = st.get("level")
    gain = scale = 1.0
    if level is not None or peak_ceiling is not None:
        before = _measure(chain, sample_rate)
        if level is not None:
            gain_db, record["stages"]["level"] = _level_gain(level, before.lufs, before.peak_dbfs)
            gain = 10.0 ** (gain_db / 20.0)
        peak = before.peak * gain
        if peak_ceiling is not None and peak > peak_ceiling:
            scale = peak_ceiling / peak
            record["output_normalized_by_db"] = round(20 * math.log10(scale), 4)
    after = _Meter(sample_rate)
    for y in chain():
        if level is not None:
            y = y * gain
        after.update(y)
        write(y if scale == 1.0 else y * scale)
    out = after.stats()
    record["output"] = {"loudness_lufs": round(out.lufs, 4), "peak_dbfs": round(out.peak_dbfs, 4)}
    return record


def _check_log_path(in_path: Path, log_path: Path, force: bool) -> None:
    """Refuse a parameter log that would overwrite the input, a folder, or an existing log without ``force``."""
    if in_path.resolve() == log_path.resolve() or (log_path.exists() and os.path.samefile(in_path, log_path)):
        raise AudioError(f"the parameter log {log_path} would overwrite the input file {in_path}; "
                         "choose another output name")
    if log_path.is_dir():
        raise AudioError(f"{log_path} (the parameter log) is a folder; choose another output name")
    if log_path.exists() and not force:
        raise AudioError(f"{log_path} already exists; pass --force (-y) to replace it")


def demaster_file(in_path, out_path, seed: int, sample_rate: int | None = None, force: bool = False,
                  block_frames: int = BLOCK_FRAMES) -> tuple[Path, Path]:
    """Degrade an audio file of any length; write the result (WAV/FLAC, 24-bit) and ``<OUT>.json``.

    The file is streamed in blocks (:func:`mastering.io.iter_audio`, :func:`apply_stream`: three passes over
    it), so memory does not grow with its length; the output equals :func:`demaster` of the whole
    file to float rounding. The audio goes to a temporary file beside ``OUT`` that replaces it at
    the end and is removed on any failure or interruption; then the record goes to ``OUT.json``.

    Args:
        in_path: mastered audio, any file libsndfile reads, mono or stereo.
        out_path: ``.wav`` or ``.flac``; neither it nor ``<out_path>.json`` may be ``in_path``.
        seed: seed of the parameter draw, >= 0.
        sample_rate: resample to this rate first (:func:`mastering.io.resample`'s filter);
            ``None`` keeps the file's. Either must lie in
            ``mastering.defaults.MIN_SAMPLE_RATE``-``MAX_SAMPLE_RATE`` (8000-384000 Hz).
        force: replace an existing ``OUT`` and ``OUT.json``.
        block_frames: samples per block.

    Returns:
        ``(audio path, JSON path)``.

    Raises:
        mastering.io.AudioError: unreadable input, NaN/Inf samples, more than two channels, fewer
            than :data:`MIN_SAMPLES` samples, a sample rate out of range; an output (or its JSON)
            that would overwrite the input, an existing output without ``force``, a missing or
            unwritable folder, a format other than WAV/FLAC.
        ValueError: a negative seed.
    """

    _check_seed(seed)
    in_path, out_path = Path(in_path), Path(out_path)
    info = audio_info(in_path)
    rate = info.sample_rate if sample_rate is None else int(sample_rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        what = f"the sample rate {rate} Hz" if sample_rate is not None else f"{in_path}: its sample rate {rate} Hz"
        hint = "" if sample_rate is not None else "; resample it (--sample-rate)"
        raise AudioError(f"{what} is outside the supported {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz{hint}")
    fmt = check_output_path(in_path, out_path, overwrite=force)
    log_path = Path(f"{out_path}.json")
    _check_log_path(in_path, log_path, force)

    def blocks() -> Iterator[np.ndarray]:
        return iter_audio(in_path, rate, block_frames=block_frames)

    stats = _measure(blocks, rate)
    if stats.frames < MIN_SAMPLES:
        raise AudioError(f"{in_path} is too short: {stats.frames} sample(s) at {rate} Hz; the demastering chain "
                         f"needs at least {MIN_SAMPLES} ({MIN_SAMPLES / rate * 1000:.0f} ms)")
    params = sample_params(seed, duration_s=stats.frames / rate)
    tmp = out_path.parent / f".{out_path.name}.tmp-{os.getpid()}"
    try:
        try:
            fh = sf.SoundFile(str(tmp), "w", samplerate=rate, channels=stats.channels, subtype="PCM_24", format=fmt)
        except (OSError, RuntimeError) as exc:
            raise AudioError(f"could not write {out_path}: {exc}") from None

        def write(y: np.ndarray) -> None:
            try:
                fh.write(y.T)
            except (OSError, RuntimeError) as exc:
                raise AudioError(f"could not write {out_path}: {exc}") from None

        with fh:
            record = apply_stream(blocks, rate, params, write, peak_ceiling=1.0, stats=stats)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    record["input_file"] = str(in_path)
    return out_path, write_log(log_path, record)
