"""Demastering: degrade mastered audio the way an unmastered mix differs from its master.

Two steps, as in audiotools' ``instantiate``/``transform``: :func:`sample_params` draws every
parameter from the documented ranges (:data:`PARAM_RANGES`) with an explicit ``seed``;
:func:`apply` processes audio with given parameters and, with ``return_log=True``, also returns
the record of what it did, including the values that depend on the signal (the dynamics
threshold, the level gain). That record is what :func:`write_log` stores as JSON next to the
pair, so the logged parameters are the applied ones (``tests/data/test_demaster.py`` measures it).

The chain, in processing order (:data:`STAGE_ORDER`); each stage is present with probability
``p`` (drawn per seed; an absent stage is ``None`` in the record):

``dynamics``
    Undo the master's limiting/compression, or change it. Modes ``expand`` (upward expansion
    above a threshold ``depth_db`` below the input's sample peak: de-limiting), ``compress``
    (a bus-compressor variant: mixes are often compressed differently than masters) or
    ``none``. Processors: :func:`mastering.dsp.dynamics.expander` / ``compressor``
    (Giannoulis, Massberg & Reiss, JAES 2012), stereo-linked peak detector.
``tilt_eq``
    Static spectral balance: a tilt of ``tilt_db`` around ``pivot_hz`` (low shelf ``-tilt/2``,
    high shelf ``+tilt/2``) plus an independent low and high shelf; RBJ cookbook biquads
    (:func:`mastering.dsp.eq.parametric_eq`, exact IIR with the torch backend: the numba
    backend's OpenMP threads do not survive the ``fork`` of DataLoader workers).
``gaussian_eq``
    Time-varying EQ as in the thesis: ``bands`` Gaussian bumps on a log-frequency axis whose
    centre, Q and gain are given per keyframe (every ``frame_s`` seconds, a bounded random walk)
    and interpolated linearly (in octaves, log Q, dB) for every STFT frame. The gain of band k at
    frequency f is ``gain_db * exp(-0.5 (log2(f / freq_hz) / sigma)^2)`` with ``sigma`` the
    standard deviation (in octaves) of a Gaussian whose full width at half maximum equals the
    RBJ bandwidth of a peaking filter of that Q, ``BW = 2 asinh(1 / (2 Q)) / ln 2`` octaves.
    Applied as a zero-phase gain on a Hann STFT (2048 points, hop 512) and inverted by
    overlap-add.
``reverb``
    Convolution with an exponentially decaying noise impulse response (60 dB decay in
    ``rt60_s``; independent noise per channel, unit energy, after ``predelay_ms``), added at
    ``wet_db`` to the dry signal.
``echo``
    One delayed copy: ``y[n] = x[n] + 10^(gain_db/20) x[n - delay]``.
``level``
    Level drop and headroom: the signal is scaled to ``target_lufs`` (ITU-R BS.1770-4 integrated
    loudness, :func:`mastering.dsp.loudness.loudness`), then lowered further if needed so its
    sample peak is at most ``-headroom_db`` dBFS. The applied ``gain_db`` and the loudness before
    and after are logged.

Reverb and echo tails beyond the input's end are cut, so the degraded audio is sample-aligned
with the mastered audio and has the same length.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
    "demaster_file",
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

_STFT_N = 2048
_STFT_HOP = 512


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


def sample_params(seed: int, duration_s: float = 10.0, ranges: dict | None = None) -> dict:
    """Draw one demastering configuration.

    Args:
        seed: the only source of randomness; the same seed gives the same parameters.
        duration_s: length of the audio it will be applied to (sets the number of keyframes of
            the time-varying EQ; a longer signal holds the last keyframe).
        ranges: override :data:`PARAM_RANGES` (same structure).

    Returns:
        ``{"version", "seed", "duration_s", "stages": {stage: dict or None}}`` (JSON-ready).
    """
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


def _peak_dbfs(x: torch.Tensor) -> float:
    return float(20 * np.log10(max(float(x.abs().max()), 1e-12)))


def _lufs(x: torch.Tensor, sample_rate: int) -> float:
    from ..dsp.loudness import loudness

    gated = x.shape[-1] >= int(0.4 * sample_rate)
    return float(loudness(x.double(), sample_rate, gated=gated, floor_lufs=-70.0)[0])


def _dynamics(x: torch.Tensor, sample_rate: int, p: dict) -> tuple[torch.Tensor, dict]:
    from ..dsp.dynamics import compressor, expander

    applied = dict(p)
    threshold = _peak_dbfs(x) - p["depth_db"]
    applied["threshold_db"] = round(threshold, 4)
    kw = dict(threshold_db=threshold, ratio=p["ratio"], attack_ms=p["attack_ms"], release_ms=p["release_ms"],
              knee_db=p["knee_db"])
    if p["mode"] == "expand":
        y = expander(x, sample_rate, **kw)
    elif p["mode"] == "compress":
        y = compressor(x, sample_rate, **kw)
    else:
        raise ValueError(f"unknown dynamics mode {p['mode']!r}")
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
    from ..dsp.eq import parametric_eq

    f, g, q, kinds = tilt_eq_bands(p)
    return parametric_eq(x, sample_rate, torch.tensor([f], dtype=torch.float64),
                         torch.tensor([g], dtype=torch.float64), torch.tensor([q], dtype=torch.float64),
                         kinds=kinds, mode="exact", backend="torch")


def _q_to_sigma_octaves(q: np.ndarray) -> np.ndarray:
    bw = 2.0 * np.arcsinh(1.0 / (2.0 * q)) / np.log(2.0)  # RBJ peaking bandwidth in octaves
    return bw / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # FWHM -> standard deviation


def gaussian_eq_gain_db(p: dict, times_s: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """Gain in dB of the time-varying Gaussian EQ, ``[len(times_s), len(freqs_hz)]``.

    Keyframe values are interpolated linearly in log2 frequency, log2 Q and dB; times past the
    last keyframe hold it.
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
    from scipy.signal import fftconvolve

    n = x.shape[-1]
    ir = reverb_impulse_response(p, sample_rate, x.shape[1])
    xd = x[0].double().numpy()
    wet = np.stack([fftconvolve(xd[c], ir[c])[:n] for c in range(xd.shape[0])])
    y = xd + 10.0 ** (p["wet_db"] / 20.0) * wet
    return torch.from_numpy(y)[None].to(x.dtype)


def _echo(x: torch.Tensor, sample_rate: int, p: dict) -> tuple[torch.Tensor, dict]:
    d = int(round(p["delay_ms"] * 1e-3 * sample_rate))
    applied = dict(p, delay_samples=d)
    y = x.clone()
    if 0 < d < x.shape[-1]:
        y[..., d:] = y[..., d:] + 10.0 ** (p["gain_db"] / 20.0) * x[..., :-d]
    return y, applied


def _level(x: torch.Tensor, sample_rate: int, p: dict) -> tuple[torch.Tensor, dict]:
    before = _lufs(x, sample_rate)
    peak = _peak_dbfs(x)
    gain = 0.0 if before <= -70.0 else p["target_lufs"] - before
    limited = peak + gain > -p["headroom_db"]
    if limited:
        gain = -p["headroom_db"] - peak
    y = x * (10.0 ** (gain / 20.0))
    applied = dict(p)
    applied.update({
        "gain_db": round(gain, 6), "loudness_before_lufs": round(before, 4),
        "loudness_after_lufs": round(before + gain, 4) if before > -70.0 else before,
        "peak_after_dbfs": round(peak + gain, 4), "headroom_limited": bool(limited),
    })
    return y, applied


def apply(x, sample_rate: int, params: dict, return_log: bool = False):
    """Degrade one signal with ``params`` from :func:`sample_params` (or a logged record).

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
        ValueError: bad shapes, an unknown stage or dynamics mode.
    """
    xb, squeeze = _as_batch(x)
    xb = xb.float()
    unknown = set(params.get("stages", {})) - set(STAGE_ORDER)
    if unknown:
        raise ValueError(f"unknown demastering stage(s) {sorted(unknown)}; known: {STAGE_ORDER}")
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
    from ..provenance import atomic_write_text

    path = Path(path)
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def read_log(path) -> dict:
    return json.loads(Path(path).read_text())


def demaster_file(in_path, out_path, seed: int, sample_rate: int | None = None) -> tuple[Path, Path]:
    """Degrade an audio file; write the result (WAV/FLAC, 24-bit) and ``<out>.json`` beside it.

    Returns:
        ``(audio path, JSON path)``.

    Raises:
        mastering.io.AudioError: unreadable input, an output equal to the input, bad folder.
    """
    from ..io import load_audio, save_audio

    x, rate = load_audio(in_path, sample_rate=sample_rate)
    y, record = demaster(x, rate, seed)
    record["input_file"] = str(in_path)
    peak = float(y.abs().max())
    if peak > 1.0:  # the level stage keeps headroom, so this only guards odd inputs
        y = y / peak
        record["output_normalized_by_db"] = round(-20 * math.log10(peak), 4)
    out = save_audio(out_path, y, rate, subtype="PCM_24", protect=(in_path,))
    log_path = write_log(Path(str(out) + ".json"), record)
    return out, log_path
