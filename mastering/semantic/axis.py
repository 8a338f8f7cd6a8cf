"""Semantic EQ along the descriptor's own curve, with an amount read from the audio's spectrum.

A descriptor's *curve* ``C(f)`` is its mean SAFE-DB response (dB) over the VAE's training
contributors. The EQ applied is ``s C(f)`` with a gain ``s >= 0`` (a minimum-phase FIR of that
magnitude), so it can only add the quality, never its opposite. How much of the quality audio has
is measured on its spectrum, encoder-free: the *axis measure* ``A`` is the mean of ``C`` over
log-spaced bands weighted by compressed band power ``P^gamma``. Applying ``s C`` makes the weights
``(P 10^(s C / 10))^gamma``, an exponential family in ``s``, so ``dA/ds`` is a variance: ``A`` never
falls as ``s`` rises, for any input. The gain is ``s = intensity * amount``; ``amount`` is the
gain that brings the track to the level typical music reaches with the full curve (clipped to
:data:`AMOUNT_RANGE`), so a track that already has the quality gets less of the curve. Intensity
0 is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "GAMMA",
    "AMOUNT_RANGE",
    "FIR_TAPS",
    "band_powers",
    "axis_measure",
    "axis_measure_after",
    "gain_for_target",
    "axis_reference",
    "min_phase_fir",
    "AxisEQ",
    "warmth_measures",
]

#: Power compression of the axis measure's band weights (Stevens' loudness exponent).
GAMMA = 0.3
#: Range of the adaptive amount at intensity 1 (times the descriptor's curve): a track that already
#: has the quality still gets a light touch; a track far from it at most twice the curve.
AMOUNT_RANGE = (0.2, 2.0)
#: Length of the minimum-phase FIR that realises ``s C(f)`` (at 44.1 kHz: 186 ms; scaled with the rate).
FIR_TAPS = 8192
_MAX_GAIN = 8.0  # bisection bracket for the gain (times the curve)
_NYQUIST_SHARE = 0.45


def _band_edges(freqs_hz: np.ndarray) -> np.ndarray:
    f = np.asarray(freqs_hz, dtype=float)
    mid = np.sqrt(f[1:] * f[:-1])
    return np.concatenate([[f[0] ** 2 / mid[0]], mid, [f[-1] ** 2 / mid[-1]]])


def band_powers(audio: Any, sample_rate: int, freqs_hz: np.ndarray, nperseg: int = 16384) -> np.ndarray:
    """Power ``[batch, bands]`` of audio ``[batch, channels, samples]`` (or ``[channels, samples]``)
    in log-spaced bands centred on ``freqs_hz`` (edges at the geometric midpoints): the Welch power
    spectrum summed over channels, integrated over each band (bands above 0.45 of the rate get 0)."""
    from scipy import signal

    x = torch.as_tensor(audio).double().numpy() if not isinstance(audio, np.ndarray) else np.asarray(audio, float)
    if x.ndim == 2:
        x = x[None]
    seg = int(min(nperseg, x.shape[-1]))
    f, p = signal.welch(x, fs=sample_rate, nperseg=seg, axis=-1)
    p = p.sum(axis=1)  # [batch, bins]
    df = f[1] - f[0]
    cum = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(p, axis=-1) * df], axis=-1)
    grid = np.concatenate([[0.0], f + df / 2])  # cumulative power up to each bin's upper edge
    edges = _band_edges(freqs_hz)
    upper = np.array([np.interp(edges, grid, c) for c in cum])
    out = np.diff(upper, axis=-1)
    out[:, np.asarray(freqs_hz) >= _NYQUIST_SHARE * sample_rate] = 0.0
    return np.maximum(out, 0.0)


def _weights(powers: np.ndarray, curve_db: np.ndarray, gain: Any, gamma: float) -> np.ndarray:
    p = np.atleast_2d(powers)
    g = np.asarray(gain, dtype=float).reshape(-1, 1)
    with np.errstate(divide="ignore"):
        log_w = gamma * (np.log(np.maximum(p, 1e-300)) + g * np.asarray(curve_db)[None] * np.log(10.0) / 10.0)
    log_w = np.where(p > 0, log_w, -np.inf)
    log_w = log_w - log_w.max(axis=-1, keepdims=True)
    return np.exp(log_w)


def axis_measure_after(powers: np.ndarray, curve_db: np.ndarray, gain: Any = 0.0, gamma: float = GAMMA) -> np.ndarray:
    """The axis measure ``[batch]`` (dB) of audio with band powers ``powers`` after the EQ
    ``gain * curve_db``: ``sum_k w_k C_k / sum_k w_k`` with ``w_k = (P_k 10^(gain C_k / 10))^gamma``.
    Non-decreasing in ``gain`` for every input (its derivative is a variance)."""
    w = _weights(powers, curve_db, gain, gamma)
    return (w * np.asarray(curve_db)[None]).sum(-1) / w.sum(-1)


def axis_measure(audio: Any, sample_rate: int, curve_db: np.ndarray, freqs_hz: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """How much of a descriptor audio ``[batch, channels, samples]`` has, measured on its spectrum
    (:func:`axis_measure_after` at gain 0 of :func:`band_powers`): higher = more of the quality."""
    return axis_measure_after(band_powers(audio, sample_rate, freqs_hz), curve_db, 0.0, gamma)


def gain_for_target(powers: np.ndarray, curve_db: np.ndarray, target: float, gamma: float = GAMMA,
                    iterations: int = 40) -> np.ndarray:
    """The smallest gain ``s >= 0`` (``[batch]``, at most 8) at which the axis measure reaches
    ``target`` (0 where it already does), by bisection on the monotone :func:`axis_measure_after`."""
    p = np.atleast_2d(powers)
    lo, hi = np.zeros(len(p)), np.full(len(p), _MAX_GAIN)
    done = axis_measure_after(p, curve_db, 0.0, gamma) >= target
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        reached = np.array([axis_measure_after(p[i: i + 1], curve_db, mid[i], gamma)[0] >= target for i in range(len(p))])
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid)
    return np.where(done, 0.0, hi)


def axis_reference(powers: np.ndarray, curve_db: np.ndarray, gamma: float = GAMMA) -> dict[str, float]:
    """Where typical music sits on a descriptor's axis: the median measure of reference excerpts
    (``typical``) and their median after the full curve (``target``), from their band powers."""
    p = np.atleast_2d(powers)
    return {"typical": float(np.median(axis_measure_after(p, curve_db, 0.0, gamma))),
            "target": float(np.median(axis_measure_after(p, curve_db, 1.0, gamma))), "excerpts": int(len(p))}


def min_phase_fir(curve_db: np.ndarray, freqs_hz: np.ndarray, sample_rate: int, taps: int | None = None,
                  n_fft: int = 1 << 17) -> np.ndarray:
    """A minimum-phase FIR ``[taps]`` whose magnitude is ``curve_db`` (dB at ``freqs_hz``, interpolated
    on log frequency, flat beyond its ends): the folded real cepstrum of the log magnitude, truncated
    with a half-Hann fade over its last eighth (default length :data:`FIR_TAPS` at 44.1 kHz)."""
    taps = int(taps or 2 ** int(np.ceil(np.log2(FIR_TAPS * sample_rate / 44100.0))))
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    fr = np.asarray(freqs_hz, dtype=float)
    mag_db = np.interp(np.log(np.maximum(f, fr[0])), np.log(fr), np.asarray(curve_db, dtype=float))
    cep = np.fft.irfft(mag_db * np.log(10.0) / 20.0, n_fft)
    fold = np.zeros(n_fft)
    fold[0], fold[n_fft // 2] = 1.0, 1.0
    fold[1: n_fft // 2] = 2.0
    h = np.fft.irfft(np.exp(np.fft.rfft(cep * fold)), n_fft)[:taps]
    fade = taps // 8
    h[-fade:] *= 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, fade)))
    return h


@dataclass
class AxisEQ:
    """A descriptor's curve at a gain per item, decided by :func:`mastering.semantic.adaptive.semantic_eq_settings`
    (method ``"axis"``); applied as a minimum-phase FIR.

    Attributes:
        descriptor: the (normalized) descriptor.
        intensity: the intensity asked for.
        curve_db: the descriptor's curve on ``freqs_hz`` (dB).
        freqs_hz: its frequencies.
        gain: ``[batch]`` gains (``intensity * amount``).
        amount: ``[batch]`` the adaptive amount at intensity 1.
        measure_before: ``[batch]`` the axis measure of the input.
        position_before: ``[batch]`` the input's place on the axis (0 typical music, 1 typical music
            with the full curve).
    """

    descriptor: str
    intensity: float
    curve_db: np.ndarray
    freqs_hz: np.ndarray
    gain: np.ndarray
    amount: np.ndarray
    measure_before: np.ndarray
    position_before: np.ndarray
    method: str = "axis"

    @property
    def batch(self) -> int:
        return int(len(self.gain))

    def response_db(self, freqs_hz: Any = None, sample_rate: int = 44100) -> np.ndarray:
        """Magnitude response ``[batch, freqs]`` in dB (default on :attr:`freqs_hz`)."""
        f = self.freqs_hz if freqs_hz is None else np.asarray(freqs_hz, dtype=float)
        c = np.interp(np.log(np.maximum(f, self.freqs_hz[0])), np.log(self.freqs_hz), self.curve_db)
        return self.gain[:, None] * c[None]

    def apply(self, audio: Any, sample_rate: int) -> torch.Tensor:
        """Filter ``audio`` ``[batch, channels, samples]`` (same batch, or 1 item for batch 1); items
        with gain 0 come back unchanged (intensity 0 is exactly the identity)."""
        from scipy import signal

        x = torch.as_tensor(audio)
        squeeze = x.ndim == 2
        x = x[None] if squeeze else x
        if x.shape[0] != self.batch:
            raise ValueError(f"settings for {self.batch} item(s), audio has {x.shape[0]}")
        out = x.clone()
        for i, g in enumerate(self.gain):
            if g > 0:
                h = min_phase_fir(g * self.curve_db, self.freqs_hz, sample_rate)
                y = signal.oaconvolve(x[i].double().cpu().numpy(), h[None], axes=-1)[:, : x.shape[-1]]
                out[i] = torch.from_numpy(y).to(x.dtype)
        return out[0] if squeeze else out

    def bands(self, item: int = 0) -> list[dict[str, Any]]:
        """The applied curve at octave points, as JSON-ready dicts (``freq_hz``, ``gain_db``)."""
        pts = [f for f in (63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)]
        return [{"freq_hz": f, "gain_db": round(float(v), 2)} for f, v in zip(pts, self.response_db(pts)[item])]


def warmth_measures(audio: Any, sample_rate: int, low_hz: float = 250.0) -> dict[str, np.ndarray]:
    """Common encoder-free readings of spectral balance, per item ``[batch]``: ``centroid_hz`` (power
    spectral centroid), ``low_share`` (share of power below ``low_hz``) and ``tilt_db_per_oct``
    (:func:`mastering.semantic.evaluate.spectral_tilt`'s definition, on 20 Hz-0.45 fs bands here)."""
    freqs = np.geomspace(20.0, 20000.0, 121)
    p = band_powers(audio, sample_rate, freqs)
    total = p.sum(-1)
    centroid = (p * freqs[None]).sum(-1) / total
    low = p[:, freqs < low_hz].sum(-1) / total
    keep = (freqs >= 50.0) & (freqs <= min(16000.0, _NYQUIST_SHARE * sample_rate))
    octs = np.log2(freqs[keep])
    octs = octs - octs.mean()
    # band powers of equal log width: the level slope per octave is the spectral density's
    levels = 10 * np.log10(p[:, keep] + 1e-30)
    tilt = (levels - levels.mean(-1, keepdims=True)) @ octs / (octs @ octs)
    return {"centroid_hz": centroid, "low_share": low, "tilt_db_per_oct": tilt}
