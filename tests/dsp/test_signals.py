"""Test-signal generators: sines, pink noise, EBU Tech 3341/3342 signals."""

import numpy as np
import pytest
import torch
from scipy import signal

from mastering.dsp.signals import (
    ebu_tech_3341_signals,
    ebu_tech_3342_signals,
    pink_noise,
    sine,
    sine_sequence,
)

RATES = (22050, 44100, 48000)
CHANNELS = (1, 2)


# ---------------------------------------------------------------------------------- sines


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_sine_shape_level_frequency_phase(sample_rate, channels):
    x = sine(1000.0, 0.5, sample_rate, amplitude_dbfs=-6.0, phase_rad=0.3, channels=channels, dtype=torch.float64)
    assert x.shape == (1, channels, sample_rate // 2) and x.dtype == torch.float64
    amplitude = 10 ** (-6.0 / 20)
    n = np.arange(x.shape[-1])
    expected = amplitude * np.sin(2 * np.pi * 1000.0 * n / sample_rate + 0.3)
    for c in range(channels):
        np.testing.assert_allclose(x[0, c].numpy(), expected, atol=1e-12)
    # RMS of a sine is its amplitude / sqrt(2); the spectrum peaks at 1 kHz.
    assert float(x[0, 0].pow(2).mean().sqrt()) == pytest.approx(amplitude / np.sqrt(2), rel=1e-3)
    spectrum = np.abs(np.fft.rfft(x[0, 0].numpy()))
    assert np.fft.rfftfreq(x.shape[-1], 1 / sample_rate)[np.argmax(spectrum)] == pytest.approx(1000.0, abs=2.0)


def test_sine_sequence_is_phase_continuous_with_stepped_levels():
    sample_rate = 8000
    x = sine_sequence([(-20.0, 0.25), (-10.0, 0.5)], 440.0, sample_rate, channels=2, dtype=torch.float64)
    assert x.shape == (1, 2, 6000)
    n = np.arange(6000)
    carrier = np.sin(2 * np.pi * 440.0 * n / sample_rate)
    envelope = np.where(n < 2000, 10 ** (-20 / 20), 10 ** (-10 / 20))
    np.testing.assert_allclose(x[0, 1].numpy(), envelope * carrier, atol=1e-12)
    assert torch.equal(x[0, 0], x[0, 1])


@pytest.mark.parametrize(
    "call",
    [
        lambda: sine(30000.0, 1.0, 48000),
        lambda: sine(1000.0, 0.0, 48000),
        lambda: sine(1000.0, 1.0, 48000, channels=0),
        lambda: sine(-5.0, 1.0, 48000),
        lambda: sine_sequence([], 1000.0, 48000),
        lambda: pink_noise(1),
        lambda: pink_noise(100, channels=0),
        lambda: pink_noise(100, reference="lufs"),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------------- pink noise


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("num_samples", (2**16, 48000 * 4 + 1))
def test_pink_noise_periodogram_is_exactly_one_over_f(channels, num_samples):
    x = pink_noise(num_samples, channels=channels, batch=2, seed=3, dtype=torch.float64)
    assert x.shape == (2, channels, num_samples)
    power = np.abs(np.fft.rfft(x.numpy(), axis=-1)) ** 2
    k = np.arange(power.shape[-1])
    scaled = power[..., 1:] * k[1:]  # constant for an exact 1/f power spectrum
    np.testing.assert_allclose(scaled, scaled[..., :1] * np.ones_like(scaled), rtol=1e-8)
    assert np.all(power[..., 0] < 1e-20)  # no DC


@pytest.mark.parametrize("sample_rate", RATES)
def test_pink_noise_slope_is_minus_3_db_per_octave(sample_rate):
    """Welch PSD fitted over 50 Hz-10 kHz: -3.01 dB/octave within 0.3 dB."""
    x = pink_noise(sample_rate * 8, channels=1, seed=11, dtype=torch.float64)[0, 0].numpy()
    f, psd = signal.welch(x, fs=sample_rate, nperseg=16384)
    band = (f >= 50) & (f <= 10000)
    slope_db_per_octave = np.polyfit(np.log2(f[band]), 10 * np.log10(psd[band]), 1)[0]
    assert slope_db_per_octave == pytest.approx(-10 * np.log10(2), abs=0.3)


def test_pink_noise_seeded_and_levelled():
    a = pink_noise(10000, channels=2, batch=3, seed=5)
    b = pink_noise(10000, channels=2, batch=3, seed=5)
    c = pink_noise(10000, channels=2, batch=3, seed=6)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.dtype == torch.float32
    # Every signal and channel at -20 dBFS RMS; channels are independent noises.
    rms_db = 20 * torch.log10(a.double().pow(2).mean(-1).sqrt())
    np.testing.assert_allclose(rms_db.numpy(), -20.0, atol=1e-4)
    correlation = np.corrcoef(a[0, 0].numpy(), a[0, 1].numpy())[0, 1]
    assert abs(correlation) < 0.2
    peak = pink_noise(10000, channels=2, seed=5, level_dbfs=-1.0, reference="peak", dtype=torch.float64)
    np.testing.assert_allclose(peak.abs().amax(-1).numpy(), 10 ** (-1 / 20), rtol=1e-12)


# ---------------------------------------------------------------------------------- EBU signals


@pytest.mark.parametrize("sample_rate", (22050, 48000))
def test_ebu_tech_3341_signals(sample_rate):
    cases = ebu_tech_3341_signals(sample_rate)
    assert [name.split("_")[0] for name, *_ in cases] == [f"case{i}" for i in range(1, 7)]
    durations = [20.0, 20.0, 80.0, 100.0, 60.1, 20.0]
    for (name, audio, expected, tolerance), duration in zip(cases, durations):
        channels = 5 if name.startswith("case6") else 2
        assert audio.shape == (1, channels, round(duration * sample_rate)), name
        assert tolerance == 0.1
        assert expected == (-33.0 if name.startswith("case2") else -23.0)
    # Peak levels of the segments of case 4: -72, -36, -23, -36, -72 dBFS for 10/10/60/10/10 s.
    audio = cases[3][1][0, 0].numpy()
    for start_s, level in [(0, -72), (10, -36), (20, -23), (80, -36), (90, -72)]:
        segment = audio[int((start_s + 1) * sample_rate): int((start_s + 9) * sample_rate)]
        assert 20 * np.log10(np.abs(segment).max()) == pytest.approx(level, abs=0.01)
    # Case 6 channel levels L, R, C, Ls, Rs.
    peaks = 20 * np.log10(cases[5][1][0].abs().amax(-1).numpy())
    np.testing.assert_allclose(peaks, [-28, -28, -24, -30, -30], atol=0.01)


def test_ebu_tech_3342_signals():
    sample_rate = 22050
    cases = ebu_tech_3342_signals(sample_rate)
    assert [expected for _, _, expected, _ in cases] == [10.0, 5.0, 20.0, 15.0]
    levels = [(-20, -30), (-20, -15), (-40, -20), (-50, -35, -20, -35, -50)]
    for (name, audio, _, tolerance), steps in zip(cases, levels):
        assert tolerance == 1.0
        assert audio.shape == (1, 2, 20 * sample_rate * len(steps)), name
        for i, level in enumerate(steps):
            segment = audio[0, 1, (20 * i + 1) * sample_rate: (20 * i + 19) * sample_rate].numpy()
            assert 20 * np.log10(np.abs(segment).max()) == pytest.approx(level, abs=0.01)
