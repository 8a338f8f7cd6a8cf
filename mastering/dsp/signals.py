"""Synthetic test signals: sines, pink noise, and the EBU loudness conformance signals.

All generators return ``[batch, channels, samples]`` tensors (batch 1 unless stated) and are
deterministic; random ones take an explicit ``seed``.

EBU Tech 3341 (loudness metering, "EBU mode") and EBU Tech 3342 (loudness range) define their
minimum-requirement test cases as 1 kHz sine tones whose peak level (dBFS) steps through given
values; those are generated here exactly. Cases that need the EBU's recorded programme files
(Tech 3341 case 7 and the later ones, Tech 3342 cases 5 and 6) are not reproduced.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "sine",
    "sine_sequence",
    "pink_noise",
    "ebu_tech_3341_signals",
    "ebu_tech_3342_signals",
]


def _check_positive(value: float, name: str) -> None:
    if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def sine_sequence(
    segments: list[tuple[float, float]] | tuple[tuple[float, float], ...],
    freq_hz: float,
    sample_rate: int,
    channels: int = 1,
    phase_rad: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A phase-continuous sine whose peak level steps through ``segments``.

    Args:
        segments: ``(amplitude_dbfs, duration_s)`` pairs played one after the other; the
            amplitude is the peak level in dBFS (0 dBFS = amplitude 1).
        freq_hz: frequency in Hz, below ``sample_rate / 2``.
        sample_rate: sample rate in Hz.
        channels: number of identical channels.
        phase_rad: starting phase in radians.
        dtype: tensor dtype (computed in float64).

    Returns:
        ``[1, channels, samples]``, each segment ``round(duration_s * sample_rate)`` samples long.
    """
    _check_positive(freq_hz, "freq_hz")
    _check_positive(sample_rate, "sample_rate")
    _check_count(channels, "channels")
    if freq_hz >= sample_rate / 2:
        raise ValueError(f"freq_hz={freq_hz} must lie below Nyquist ({sample_rate / 2} Hz)")
    if len(segments) == 0:
        raise ValueError("segments is empty; give at least one (amplitude_dbfs, duration_s) pair")
    lengths, amplitudes = [], []
    for amplitude_dbfs, duration_s in segments:
        _check_positive(duration_s, "duration_s")
        lengths.append(int(round(duration_s * sample_rate)))
        amplitudes.append(10.0 ** (amplitude_dbfs / 20.0))
    n = np.arange(sum(lengths), dtype=np.float64)
    x = np.sin(n * (2.0 * np.pi * freq_hz / sample_rate) + phase_rad)
    x *= np.repeat(np.asarray(amplitudes), lengths)
    return torch.from_numpy(x).to(dtype).expand(1, channels, -1).contiguous()


def sine(
    freq_hz: float,
    duration_s: float,
    sample_rate: int,
    amplitude_dbfs: float = 0.0,
    phase_rad: float = 0.0,
    channels: int = 1,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A sine ``10**(amplitude_dbfs/20) * sin(2 pi freq_hz n / sample_rate + phase_rad)``.

    Returns:
        ``[1, channels, round(duration_s * sample_rate)]``, identical in every channel.
    """
    return sine_sequence([(amplitude_dbfs, duration_s)], freq_hz, sample_rate, channels, phase_rad, dtype)


def pink_noise(
    num_samples: int,
    channels: int = 1,
    batch: int = 1,
    seed: int = 0,
    level_dbfs: float = -20.0,
    reference: str = "rms",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pink noise with an exact 1/f power spectrum, built in the frequency domain.

    Every positive-frequency DFT bin k gets magnitude ``1/sqrt(k)`` and a uniformly random phase
    (the Nyquist bin of an even length a random sign), DC is zero; the inverse real FFT gives a
    periodic signal whose periodogram is exactly proportional to 1/f, -3.01 dB per octave. Each
    signal and channel is then scaled to ``level_dbfs``.

    Args:
        num_samples: length in samples (>= 2).
        channels: channels per signal (independent noise).
        batch: number of signals.
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same noise.
        level_dbfs: target level in dBFS.
        reference: ``"rms"`` (RMS level, 0 dBFS = RMS 1) or ``"peak"`` (sample peak).
        dtype: tensor dtype (generated in float64).

    Returns:
        ``[batch, channels, num_samples]``.
    """
    _check_count(num_samples, "num_samples")
    _check_count(channels, "channels")
    _check_count(batch, "batch")
    if num_samples < 2:
        raise ValueError("num_samples must be at least 2")
    if reference not in ("rms", "peak"):
        raise ValueError(f"reference must be 'rms' or 'peak', got {reference!r}")
    rng = np.random.default_rng(seed)
    bins = num_samples // 2 + 1
    k = np.arange(bins, dtype=np.float64)
    magnitude = np.zeros(bins)
    magnitude[1:] = 1.0 / np.sqrt(k[1:])
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(batch, channels, bins))
    spectrum = magnitude * np.exp(1j * phase)
    if num_samples % 2 == 0:
        spectrum[..., -1] = magnitude[-1] * np.sign(np.cos(phase[..., -1]))
    x = np.fft.irfft(spectrum, n=num_samples, axis=-1)
    if reference == "rms":
        current = np.sqrt(np.mean(x * x, axis=-1, keepdims=True))
    else:
        current = np.max(np.abs(x), axis=-1, keepdims=True)
    x = x * (10.0 ** (level_dbfs / 20.0) / current)
    return torch.from_numpy(x).to(dtype)


def ebu_tech_3341_signals(sample_rate: int) -> list[tuple[str, torch.Tensor, float, float]]:
    """The synthetic minimum-requirement test signals of EBU Tech 3341 (2016), cases 1-6.

    Each is a 1 kHz sine at the stated peak levels (dBFS) in every channel; the expected value is
    the integrated loudness, with the standard's tolerance of +/-0.1 LU:

    1. stereo, -23 dBFS for 20 s: -23.0 LUFS
    2. stereo, -33 dBFS for 20 s: -33.0 LUFS
    3. stereo, -36 / -23 / -36 dBFS for 10 / 60 / 10 s: -23.0 LUFS (relative gate removes -36)
    4. stereo, -72 / -36 / -23 / -36 / -72 dBFS for 10 / 10 / 60 / 10 / 10 s: -23.0 LUFS
       (absolute gate removes -72, relative gate -36)
    5. stereo, -26 / -20 / -26 dBFS for 20 / 20.1 / 20 s: -23.0 LUFS (all blocks kept)
    6. five channels (L, R, C, Ls, Rs) at -28, -28, -24, -30, -30 dBFS for 20 s: -23.0 LUFS
       (surround weights 1.41)

    Case 7 and up need the EBU's programme files or test momentary/short-term meter ballistics
    and true peak on recorded material; they are not generated.

    Returns:
        ``[(name, audio [1, channels, samples], expected_lufs, tolerance_lu), ...]``.
    """
    f = 1000.0
    stereo = [
        ("case1_stereo_-23dBFS", [(-23.0, 20.0)], -23.0),
        ("case2_stereo_-33dBFS", [(-33.0, 20.0)], -33.0),
        ("case3_stereo_-36_-23_-36dBFS", [(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),
        (
            "case4_stereo_-72_-36_-23_-36_-72dBFS",
            [(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)],
            -23.0,
        ),
        ("case5_stereo_-26_-20_-26dBFS", [(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
    ]
    cases = [(name, sine_sequence(segments, f, sample_rate, 2), expected, 0.1) for name, segments, expected in stereo]
    levels_5ch = (-28.0, -28.0, -24.0, -30.0, -30.0)
    five = torch.cat([sine_sequence([(level, 20.0)], f, sample_rate, 1) for level in levels_5ch], dim=1)
    cases.append(("case6_5ch_-28_-28_-24_-30_-30dBFS", five, -23.0, 0.1))
    return cases


def ebu_tech_3342_signals(sample_rate: int) -> list[tuple[str, torch.Tensor, float, float]]:
    """The synthetic loudness-range test signals of EBU Tech 3342 (2016), cases 1-4.

    Stereo 1 kHz sines whose peak level steps every 20 s; expected LRA with tolerance +/-1 LU:

    1. -20, -30 dBFS: 10 LU
    2. -20, -15 dBFS: 5 LU
    3. -40, -20 dBFS: 20 LU
    4. -50, -35, -20, -35, -50 dBFS: 15 LU

    Cases 5 and 6 are recorded programme and are not generated.

    Returns:
        ``[(name, audio [1, 2, samples], expected_lra_lu, tolerance_lu), ...]``.
    """
    specs = [
        ("case1_-20_-30dBFS", (-20.0, -30.0), 10.0),
        ("case2_-20_-15dBFS", (-20.0, -15.0), 5.0),
        ("case3_-40_-20dBFS", (-40.0, -20.0), 20.0),
        ("case4_-50_-35_-20_-35_-50dBFS", (-50.0, -35.0, -20.0, -35.0, -50.0), 15.0),
    ]
    return [
        (name, sine_sequence([(level, 20.0) for level in levels], 1000.0, sample_rate, 2), expected, 1.0)
        for name, levels, expected in specs
    ]
