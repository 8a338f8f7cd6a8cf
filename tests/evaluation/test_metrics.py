"""Objective metrics of notebook 06 against references: pyloudnorm, auraloss, sines, hand-computed SI-SDR."""

import math

import auraloss
import numpy as np
import pyloudnorm as pyln
import pytest
import torch

from mastering.dsp.signals import pink_noise
from mastering.evaluation import metrics as M
from tests.losses.test_stft import _music_like

RATES = (22050, 44100, 48000)
CHANNELS = (1, 2)


def _noise(sample_rate, channels, seconds=1.0, seed=0, level_dbfs=-20.0):
    return pink_noise(int(seconds * sample_rate), channels=channels, batch=1, seed=seed, level_dbfs=level_dbfs)[0].double()


def _sine(freq_hz, sample_rate, channels, seconds=1.0, amplitude=0.5, phase=0.0):
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * freq_hz * t + phase)).expand(channels, -1).clone()


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_identical_signals_give_zero_distances(sample_rate, channels):
    x = _noise(sample_rate, channels)
    m = M.evaluate_pair(x, x, sample_rate)
    assert m["mrstft"] == pytest.approx(0.0, abs=1e-6)
    assert m["band_error_db"] == pytest.approx(0.0, abs=1e-9)
    assert m["loudness_error_lu"] == pytest.approx(0.0, abs=1e-9)
    assert m["a_weighted_l1"] == pytest.approx(0.0, abs=1e-12)
    assert m["si_sdr_db"] > 100.0


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_a_known_gain_reads_as_that_gain_and_vanishes_at_matched_loudness(sample_rate, channels):
    gain_db = 3.0 if channels == 2 else -6.0
    ref = _noise(sample_rate, channels, seed=1)
    est = ref * 10 ** (gain_db / 20)
    assert M.band_energy_error_db(est, ref, sample_rate) == pytest.approx(abs(gain_db), abs=1e-6)
    assert M.loudness_error_lu(est, ref, sample_rate) == pytest.approx(abs(gain_db), abs=1e-6)
    m = M.evaluate_pair(est, ref, sample_rate)  # level-sensitive metrics at matched loudness
    assert m["band_error_db"] == pytest.approx(0.0, abs=1e-6)
    assert m["mrstft"] == pytest.approx(0.0, abs=1e-4)
    assert m["a_weighted_l1"] == pytest.approx(0.0, abs=1e-9)
    assert m["loudness_error_lu"] == pytest.approx(abs(gain_db), abs=1e-6)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_loudness_error_matches_pyloudnorm(sample_rate, channels):
    ref = _noise(sample_rate, channels, seconds=3.0, seed=2, level_dbfs=-18.0)
    est = _sine(997.0, sample_rate, channels, seconds=3.0, amplitude=0.1)
    meter = pyln.Meter(sample_rate)
    expected = abs(meter.integrated_loudness(est.numpy().T) - meter.integrated_loudness(ref.numpy().T))
    assert M.loudness_error_lu(est, ref, sample_rate) == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_match_loudness_reaches_the_reference_loudness(sample_rate, channels):
    ref = _noise(sample_rate, channels, seed=3, level_dbfs=-14.0)
    est = _noise(sample_rate, channels, seed=4, level_dbfs=-31.0)
    matched = M.match_loudness(est, ref, sample_rate)
    meter = pyln.Meter(sample_rate)
    assert meter.integrated_loudness(matched[0].numpy().T) == pytest.approx(meter.integrated_loudness(ref.numpy().T), abs=0.1)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_true_peak_of_sines(sample_rate, channels):
    # A 997 Hz sine of amplitude 0.5 peaks at -6.02 dBTP.
    assert M.true_peak_dbtp(_sine(997.0, sample_rate, channels), sample_rate) == pytest.approx(-6.02, abs=0.05)
    # At fs/4 with a 45 degree phase every sample sits at 0.5/sqrt(2) (-9.03 dBFS sample peak): only the 4x
    # oversampling of BS.1770-4 Annex 2 sees the peak between samples.
    x = _sine(sample_rate / 4, sample_rate, channels, phase=math.pi / 4)
    assert 20 * math.log10(float(x.abs().max())) == pytest.approx(-9.03, abs=0.01)
    assert M.true_peak_dbtp(x, sample_rate) == pytest.approx(-6.02, abs=0.2)


def test_si_sdr_against_a_hand_computed_case():
    sample_rate = 8000
    t = torch.arange(sample_rate, dtype=torch.float64) / sample_rate
    s = torch.sin(2 * math.pi * 100 * t)[None]           # reference
    n = 0.1 * torch.sin(2 * math.pi * 250 * t)[None]     # orthogonal over whole periods
    y = 2.0 * s + n
    # a = <y, s> / <s, s> = 2; target = 2 s; noise = n: SI-SDR = 10 lg(4 |s|^2 / |n|^2) = 10 lg(4 / 0.01)
    assert M.si_sdr_db(y, s) == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-6)
    assert M.si_sdr_db(3.7 * y, s) == pytest.approx(M.si_sdr_db(y, s), abs=1e-9)  # scale-invariant
    assert M.si_sdr_db(torch.cos(2 * math.pi * 100 * t)[None], s) < -60  # orthogonal estimate


@pytest.mark.parametrize("sample_rate", (22050, 48000))
def test_mrstft_equals_auraloss(sample_rate):
    ref = _noise(sample_rate, 2, seed=5).float()
    est = (ref + 0.05 * _noise(sample_rate, 2, seed=6).float())
    expected = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[2048, 1024, 512, 256], hop_sizes=[512, 256, 128, 64],
                                                     win_lengths=[2048, 1024, 512, 256])(est[None], ref[None])
    assert M.mrstft_distance(est, ref, sample_rate, ignore_below_hz=0) == pytest.approx(float(expected), rel=1e-5)
    assert M.mrstft_distance(est, ref) == pytest.approx(float(expected), rel=1e-5)
    assert M.mrstft_distance(est, ref) > 0.01


def test_mrstft_ignores_what_lies_below_20_hz():
    """An offset and a 5 Hz drift kept by one signal do not count; audible differences still do."""
    sample_rate = 44100
    ref = _noise(sample_rate, 2, seed=5).float()
    t = torch.arange(ref.shape[-1]) / sample_rate
    drift = 0.2 + 0.1 * torch.sin(2 * math.pi * 5.0 * t)
    base = M.mrstft_distance(ref + 0.02 * _noise(sample_rate, 2, seed=6).float(), ref, sample_rate)
    with_drift = M.mrstft_distance(ref + 0.02 * _noise(sample_rate, 2, seed=6).float() + drift, ref, sample_rate)
    assert with_drift == pytest.approx(base, rel=0.05)
    assert M.mrstft_distance(ref + drift, ref, sample_rate, ignore_below_hz=0) > 0.2
    assert M.mrstft_distance(ref + drift, ref, sample_rate) < 0.05


@pytest.mark.parametrize("sample_rate", RATES)
def test_a_weighted_l1_follows_the_a_weighting_curve(sample_rate):
    # An error at 100 Hz counts 19.1 dB less than the same error at 1 kHz (IEC 61672-1 table: A(100 Hz) = -19.1 dB).
    ref = torch.zeros(1, sample_rate, dtype=torch.float64)
    low = M.a_weighted_l1(ref + _sine(100.0, sample_rate, 1, amplitude=0.1), ref, sample_rate)
    mid = M.a_weighted_l1(ref + _sine(1000.0, sample_rate, 1, amplitude=0.1), ref, sample_rate)
    assert 20 * math.log10(low / mid) == pytest.approx(-19.1, abs=0.3)


@pytest.mark.parametrize("sample_rate", RATES)
def test_third_octave_bands_follow_iec_61260(sample_rate):
    centres = M.third_octave_centres_hz(sample_rate)
    assert np.any(np.isclose(centres, 1000.0))
    assert np.allclose(centres[1:] / centres[:-1], 10 ** 0.1)
    assert centres[0] == pytest.approx(25.12, abs=0.01)
    assert centres[-1] * 10 ** (1 / 20) < sample_rate / 2
    # a 1 kHz sine puts its energy into the 1 kHz band
    c, levels = M.third_octave_levels_db(_sine(1000.0, sample_rate, 2), sample_rate)
    assert c[int(np.argmax(levels[0]))] == pytest.approx(1000.0)


def test_bad_input_is_refused():
    x = torch.zeros(2, 44100)
    with pytest.raises(ValueError, match="one shape"):
        M.evaluate_pair(x, x[:, :-1], 44100)
    with pytest.raises(ValueError, match="NaN"):
        M.si_sdr_db(x + float("nan"), x)
    with pytest.raises(ValueError, match="sample_rate"):
        M.band_energy_error_db(x, x, 0)
    with pytest.raises(ValueError, match="channels, samples"):
        M.true_peak_dbtp(torch.zeros(1, 1, 1, 10), 44100)


@pytest.mark.parametrize("sample_rate, channels", [(44100, 2), (48000, 1)])
def test_a_reference_measured_once_gives_the_same_numbers(sample_rate, channels):
    ref = _noise(sample_rate, channels, seconds=1.5, seed=1)
    ref_once = M.Reference(ref, sample_rate)
    for seed, gain in ((2, 0.5), (3, 1.3)):  # one Reference, several estimates
        est = 0.8 * ref + _noise(sample_rate, channels, seconds=1.5, seed=seed, level_dbfs=-40.0)
        est = est * gain
        assert M.evaluate_pair(est, ref_once, sample_rate) == M.evaluate_pair(est, ref, sample_rate)
        assert M.mrstft_distance(est, ref_once, sample_rate, ignore_below_hz=0) == \
            M.mrstft_distance(est, ref, sample_rate, ignore_below_hz=0) == M.mrstft_distance(est, ref)
    assert len(ref_once._cache) >= 4  # loudness (two gates), filtered copy, spectra, band levels kept
    with pytest.raises(ValueError, match="measured at"):
        M.evaluate_pair(ref, ref_once, sample_rate // 2)
    with pytest.raises(ValueError, match="sample_rate"):
        M.mrstft_distance(ref, ref_once)
    with pytest.raises(ValueError, match="one shape"):
        M.evaluate_pair(ref[..., :-10], ref_once, sample_rate)



def test_evaluation_mrstft_equals_the_loss_and_auraloss_with_kept_spectra():
    from mastering.losses import MultiResolutionSTFTLoss

    x, y = _music_like(seed=0), _music_like(seed=1)
    fast = M.EvaluationMRSTFT()
    peer = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[2048, 1024, 512, 256], hop_sizes=[512, 256, 128, 64],
                                                 win_lengths=[2048, 1024, 512, 256])
    assert all(loss.stft(x[0])[1] is None for loss in fast.stft_losses)  # no phase spectrum
    spectra = fast.target_spectra(y)
    assert len(spectra) == 4 and spectra[0].shape[-2] == 2048 // 2 + 1
    values = [float(f) for f in (fast(x, y), fast.with_spectra(x, spectra), MultiResolutionSTFTLoss()(x, y), peer(x, y))]
    assert values == pytest.approx([values[-1]] * 4, rel=1e-6)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    fast.with_spectra(xa, spectra).backward()
    peer(xb, y).backward()
    assert torch.allclose(xa.grad, xb.grad, rtol=1e-5, atol=1e-12)
    assert float(fast.with_spectra(y, spectra)) < 1e-6
    with pytest.raises(ValueError, match="do not match"):
        fast.with_spectra(x[..., :22050], spectra)
    with pytest.raises(ValueError, match="one per resolution"):
        fast.with_spectra(x, spectra[:2])
