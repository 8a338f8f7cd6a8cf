"""The fast true-peak stages of files equal the reference limiter and true-peak meter to float64 rounding."""

import time

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly, upfirdn

from mastering.dsp.dynamics import limiter
from mastering.dsp.loudness import TRUE_PEAK_FIR_4X, TRUE_PEAK_STREAM_MARGIN, true_peak_stream
from mastering.dsp.loudness import LoudnessMeter
from mastering.dsp.truepeak import (LimiterForecast, gain_bounds, interval_peaks, limit_true_peak, meter_peaks,
                                    true_peak_max)


def _music(n, seed, channels=2):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    x = np.sin(2 * np.pi * 110 * t) + 0.5 * np.sin(2 * np.pi * 17000 * t + 1.0) + 0.4 * rng.standard_normal((channels, n))
    return x * (0.3 + 0.7 * np.exp(-6 * (t % 0.4)))


def test_interval_peaks_are_the_oversampled_maxima():
    x = _music(5001, 0)
    up = np.abs(resample_poly(x, 8, 1, axis=-1)).reshape(2, 5001, 8).max(axis=-1)
    assert np.abs(interval_peaks(x) - up).max() < 1e-13


@pytest.mark.parametrize("ceiling_dbtp,gain,sample_rate", [(-1.0, 3.0, 44100), (-0.3, 10.0, 48000),
                                                          (-6.0, 1.0, 96000), (0.0, 0.1, 44100)])
def test_limiter_equals_the_reference(ceiling_dbtp, gain, sample_rate):
    x = gain * _music(int(0.7 * sample_rate), 1)
    ref = limiter(torch.from_numpy(x)[None], sample_rate, ceiling_dbtp=ceiling_dbtp)[0].numpy()
    y = limit_true_peak(x, sample_rate, ceiling_dbtp=ceiling_dbtp)
    assert np.abs(y - ref).max() < 1e-12 * max(1.0, gain)
    if gain < 1.0:  # under the ceiling: unchanged, bit for bit
        assert np.array_equal(y, x)


def test_limiter_mono_short_and_trimmed_cases_equal_the_reference():
    for x, passes in ((5.0 * _music(300, 2, channels=1), 4), (8.0 * _music(4000, 3), 1)):
        ref = limiter(torch.from_numpy(x)[None], 44100, ceiling_dbtp=-1.0, max_passes=passes)[0].numpy()
        assert np.abs(limit_true_peak(x, 44100, -1.0, max_passes=passes) - ref).max() < 1e-11
    assert limit_true_peak(np.zeros((2, 0)), 44100).shape == (2, 0)


def test_true_peak_max_equals_the_streamed_meter():
    m = TRUE_PEAK_STREAM_MARGIN
    for x in (_music(20000, 4), _music(m + 1, 5), _music(5, 6)):
        assert true_peak_max(x) == pytest.approx(true_peak_stream(x), rel=1e-13, abs=1e-300)


def _quiet_then_loud(n, seed):
    """Music whose first half is 30 dB down: most of its peaks are far under a ceiling near full scale."""
    x = 3.0 * _music(n, seed)
    x[:, : n // 2] *= 10 ** (-30 / 20)
    return x


@pytest.mark.parametrize("peaks", [interval_peaks, meter_peaks])
def test_peaks_under_a_floor_are_bounded_and_the_rest_exact(peaks):
    """With a floor, a peak that may reach it is the exact one to the bit; one certainly under it is
    an upper bound that stays under it, and the quiet half is not computed at all."""
    x = _quiet_then_loud(20011, 11)
    exact = peaks(x)
    for floor in (1.0, 2.0, 4.0):
        got = peaks(x, floor=floor)
        assert np.all(got >= exact)
        assert np.array_equal(got[exact >= floor], exact[exact >= floor])
        assert np.all(got[got != exact] < floor)
        assert np.all(got[:, 100: 9900] != exact[:, 100: 9900])  # skipped: a bound, not the sum
    assert np.array_equal(peaks(x, floor=0.0), exact)


def test_skipping_peaks_under_the_ceiling_changes_no_limited_sample(monkeypatch):
    x = _quiet_then_loud(30011, 12)
    skipped = [limit_true_peak(x, 44100, c, hold_meter=h, tolerance_db=t)
               for c, h, t in ((-1.0, False, 0.0), (-1.0, True, 0.02), (-0.1, True, 0.0))]
    monkeypatch.setattr("mastering.dsp.truepeak._SKIP_UNDER", 0.0)  # every peak computed
    computed = [limit_true_peak(x, 44100, c, hold_meter=h, tolerance_db=t)
                for c, h, t in ((-1.0, False, 0.0), (-1.0, True, 0.02), (-0.1, True, 0.0))]
    for a, b in zip(skipped, computed):
        assert np.array_equal(a, b)


def _limiter_pass_gain(x, ceiling_dbtp=-1.0):
    """The gain [samples] of one limiting of ``x``: a real, time-varying gain with steep ramps."""
    y, gain = limit_true_peak(x, 44100, ceiling_dbtp, max_passes=1, return_gain=True)
    return gain


@pytest.mark.parametrize("peaks", [interval_peaks, meter_peaks])
def test_gain_bounds_bound_the_peaks_after_a_gain(peaks):
    """From the peaks before a gain (exact or only bounded under a floor) and the gain, each block's
    bound is at or above every peak of the gained signal in it, and near the exact value where the
    gain is steady."""
    x = _broadband(20011, 21)
    gain = _limiter_pass_gain(x)
    assert gain.min() < 0.5  # a deep, fast gain change
    after = peaks(x * gain[None, :])
    blocks = -(-x.shape[1] // 32)
    padded = np.pad(after, ((0, 0), (0, blocks * 32 - x.shape[1]))).reshape(2, blocks, 32).max(axis=-1)
    for before in (peaks(x), np.maximum(interval_peaks(x, floor=3.0), meter_peaks(x, floor=3.0))):
        bound = gain_bounds(x, np.maximum(before, peaks(x)), gain)
        assert bound.shape == (2, blocks) and np.all(bound >= padded)
    steady = np.ones(x.shape[1]) * 0.5
    tight = gain_bounds(x, peaks(x), steady)
    exact = np.pad(peaks(0.5 * x), ((0, 0), (0, blocks * 32 - x.shape[1]))).reshape(2, blocks, 32).max(axis=-1)
    assert np.all(tight >= exact) and np.all(tight <= exact * (1 + 1e-8) + 1e-9)
    with pytest.raises(ValueError, match="gain"):
        gain_bounds(x, peaks(x), gain[:-1])


def test_later_passes_compute_only_the_peaks_near_the_ceiling_and_give_the_same_limiting(monkeypatch):
    """A pass after the first computes only the blocks whose bound reaches the ceiling: the output is
    the same, bit for bit, as with every block computed; the gain returned is what the output got."""
    import mastering.dsp.truepeak as tp

    x = _broadband(30011, 22)
    cases = ((-1.0, False, 0.0), (-1.0, True, 0.0), (-0.5, True, 0.02))
    bounded = [limit_true_peak(x, 44100, c, hold_meter=h, tolerance_db=t, return_gain=True) for c, h, t in cases]
    computed_blocks = []
    real_near = tp._peaks_near

    def counting(peaks, y, bounds, floor):
        computed_blocks.append(float((bounds >= floor).any(axis=0).mean()))
        return real_near(peaks, y, bounds, floor)

    monkeypatch.setattr(tp, "_peaks_near", counting)
    limit_true_peak(x, 44100, -1.0, hold_meter=True)
    assert computed_blocks and max(computed_blocks) < 0.5  # most blocks of the later passes are skipped
    monkeypatch.setattr(tp, "gain_bounds", lambda x, peaks, gain: np.full((x.shape[0], -(-x.shape[1] // 32)), np.inf))
    for (y, gain), (c, h, t) in zip(bounded, cases):
        assert np.array_equal(y, limit_true_peak(x, 44100, c, hold_meter=h, tolerance_db=t))
        assert np.all(gain <= 1.0) and gain.min() < 0.5
        assert np.allclose(y, x * gain[None, :], rtol=1e-12, atol=0)
    y, gain = limit_true_peak(0.1 * x / np.abs(x).max(), 44100, -1.0, return_gain=True)
    assert np.array_equal(gain, np.ones(x.shape[1]))  # under the ceiling: untouched, gain 1


def test_true_peak_max_finds_an_inter_sample_peak_away_from_the_loudest_sample():
    """A quarter-rate sine sampled at 45 degrees peaks at 1.0 between samples of 0.707; a click of
    0.9 elsewhere is the loudest sample. The meter must still read the sine's peak."""
    n = 4000
    x = np.zeros((2, n))
    x[1, 2000:3000] = np.sin(np.pi / 2 * np.arange(1000) + np.pi / 4)
    x[0, 500] = 0.9
    assert true_peak_max(x) == pytest.approx(true_peak_stream(x), rel=1e-13)
    assert true_peak_max(x) > 0.99


def _broadband(n, seed, sample_rate=44100):
    """Loud music-like audio with a strong top end: where BS.1770's 4x meter reads above the 8x envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    x = np.cumsum(rng.standard_normal((2, n)), axis=-1)
    x = (x - x.mean(axis=-1, keepdims=True)) / np.abs(x).max() + 0.5 * rng.standard_normal((2, n))
    return 4.0 * x * (0.3 + 0.7 * np.exp(-6 * (t % 0.4)))


def test_meter_peaks_are_the_bs1770_interpolation_around_each_sample():
    """At sample n: the largest |.| of the 4x interpolation (the Annex 2 filter, scipy's upfirdn) at
    times n - 7/8 ... n + 7/8 (outputs 4n + 20 ... 4n + 27); its maximum is the meter's reading."""
    x = _broadband(3000, 8)
    h = np.asarray(TRUE_PEAK_FIR_4X).T.reshape(-1)  # h[4k + p] = phase p, tap k
    up = np.abs(upfirdn(h, x, up=4, axis=-1))
    got = meter_peaks(x)
    n = np.arange(2, 2990)
    want = np.stack([up[:, 4 * i + 20: 4 * i + 28].max(axis=-1) for i in n], axis=-1)
    assert np.abs(got[:, n] - want).max() < 1e-12
    m = TRUE_PEAK_STREAM_MARGIN
    assert got.max() == pytest.approx(true_peak_max(np.pad(x, ((0, 0), (m, m)))), rel=1e-13)
    assert got.max() == pytest.approx(up.max(), rel=1e-13)  # the edges' ringing is held by the end samples
    assert meter_peaks(np.zeros((1, 0))).shape == (1, 0)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_holding_the_meter_puts_the_metered_true_peak_under_the_ceiling(sample_rate):
    """The plain 8x envelope lets BS.1770's meter read over the ceiling on broadband music; with
    ``hold_meter`` the first limiting meets it, at a negligible cost in level."""
    m = TRUE_PEAK_STREAM_MARGIN
    over = []
    for seed in range(4):
        x = _broadband(2 * sample_rate, seed, sample_rate)
        plain = limit_true_peak(x, sample_rate, ceiling_dbtp=-1.0)
        held = limit_true_peak(x, sample_rate, ceiling_dbtp=-1.0, hold_meter=True)
        metered = [20 * np.log10(true_peak_max(np.pad(y, ((0, 0), (m, m))))) for y in (plain, held)]
        over.append(metered[0] > -1.0 + 1e-3)
        assert metered[1] <= -1.0 + 1e-9
        assert 20 * np.log10(interval_peaks(held).max()) <= -1.0 + 1e-9  # the 8x envelope still holds too
        level = [10 * np.log10((y ** 2).mean()) for y in (plain, held)]
        assert level[0] - level[1] == pytest.approx(0.0, abs=0.02)
    assert any(over)  # the case exists: without the meter the test above could not fail


def test_a_tolerance_ends_the_passes_within_it_at_the_same_level():
    """``tolerance_db``: the output may meter up to that far over the ceiling (never more), is the exact
    limiter's output to within the tolerance, and audio already within it comes back unchanged."""
    m = TRUE_PEAK_STREAM_MARGIN
    for seed in range(3):
        x = _broadband(2 * 44100, seed)
        exact = limit_true_peak(x, 44100, ceiling_dbtp=-1.0, hold_meter=True)
        loose = limit_true_peak(x, 44100, ceiling_dbtp=-1.0, hold_meter=True, tolerance_db=0.02)
        metered = 20 * np.log10(true_peak_max(np.pad(loose, ((0, 0), (m, m)))))
        assert -1.0 - 0.05 < metered <= -1.0 + 0.02
        assert 20 * np.log10(interval_peaks(loose).max()) <= -1.0 + 0.02
        assert np.abs(20 * np.log10(np.abs(loose[exact != 0] / exact[exact != 0]))).max() <= 0.02 + 1e-9
    within = x * 10 ** (-1.01 / 20) / interval_peaks(x).max()  # 0.01 dB under: over nothing by the 8x measure
    assert np.array_equal(limit_true_peak(within * 10 ** (0.015 / 20), 44100, ceiling_dbtp=-1.0, tolerance_db=0.02),
                          within * 10 ** (0.015 / 20))


def _lufs(y, sample_rate=44100):
    meter = LoudnessMeter(sample_rate, y.shape[0])
    meter.update(y)
    return meter.integrated()


def _song(seconds, seed, sample_rate=44100):
    """Drums over a bass line and noise: peaks that a limiter takes at different depths."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-18 * (t % 0.5))
    bass = 0.3 * np.sin(2 * np.pi * 82.4 * t + np.sin(2 * np.pi * 0.5 * t))
    hats = 0.2 * rng.standard_normal((2, t.size)) * np.exp(-60 * ((t + 0.25) % 0.25))
    return 0.25 * (kick + bass + hats + 0.05 * rng.standard_normal((2, t.size)))


@pytest.mark.parametrize("gain_db", [8.0, 12.0, 16.0])
def test_the_forecast_gives_the_loudness_that_limiting_takes(gain_db):
    """Within a quarter of it (here the forecast is 3-20 % high: it weighs the bass-heavy frames that
    limiting takes by their energy, the meter by its K-weighting; on real music it was within 2 %)."""
    x = _song(8.0, 1)
    forecast = LimiterForecast(44100)
    for start in range(0, x.shape[-1], 30001):  # uneven blocks, as a file is processed
        forecast.update(x[:, start: start + 30001])
    gained = x * 10 ** (gain_db / 20)
    taken = _lufs(limit_true_peak(gained, 44100, -1.05, hold_meter=True, tolerance_db=0.02)) - _lufs(gained)
    assert taken < -0.1  # limiting takes something here
    assert forecast.cost_db(gain_db, -1.05) == pytest.approx(taken, rel=0.25)
    assert forecast.cost_db(gain_db - 10.0, -1.05) == 0.0  # 10 dB lower nothing reaches the ceiling


def test_the_forecast_gain_reaches_the_target_in_one_limiting():
    x = _song(8.0, 2)
    forecast = LimiterForecast(44100)
    forecast.update(x)
    plain = -12.0 - _lufs(x)
    gain = forecast.gain_for(_lufs(x), -12.0, -1.05)
    assert gain > plain + 0.5  # limiting to -12 LUFS costs this material more than half an LU
    y = limit_true_peak(x * 10 ** (gain / 20), 44100, -1.05, hold_meter=True, tolerance_db=0.02)
    assert _lufs(y) == pytest.approx(-12.0, abs=0.3)  # what the finish accepts without another pass
    quiet = LimiterForecast(44100)
    quiet.update(0.01 * x)
    assert quiet.cost_db(0.0, -1.0) == 0.0 and quiet.gain_for(-40.0, -20.0, -1.0) == 20.0  # under the ceiling
    silent = LimiterForecast(48000)
    silent.update(np.zeros((2, 48000)))
    assert silent.cost_db(20.0, -1.0) == 0.0 and LimiterForecast(48000).cost_db(0.0, -1.0) == 0.0


def test_limiter_is_faster_than_the_reference():
    x = 4.0 * _music(44100 * 4, 7)
    limit_true_peak(x, 44100)  # compile
    start = time.perf_counter()
    ref = limiter(torch.from_numpy(x)[None], 44100)
    slow = time.perf_counter() - start
    start = time.perf_counter()
    limit_true_peak(x, 44100)
    fast = time.perf_counter() - start
    assert ref.shape[-1] == x.shape[-1] and fast < slow, (fast, slow)
