"""The fast true-peak stages of files equal the reference limiter and true-peak meter to float64 rounding."""

import time

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from mastering.dsp.dynamics import limiter
from mastering.dsp.loudness import TRUE_PEAK_STREAM_MARGIN, true_peak_stream
from mastering.dsp.truepeak import interval_peaks, limit_true_peak, true_peak_max


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
