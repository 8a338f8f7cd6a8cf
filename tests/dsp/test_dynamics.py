"""Tests for mastering.dsp.dynamics.

References: the static curve of Giannoulis, Massberg & Reiss (JAES 2012, eq. 4) written out here in
NumPy; pedalboard.Compressor (JUCE) for steady-state gain reduction and ballistics; a 16x
``scipy.signal.resample_poly`` true-peak measure for the limiter.
"""

from __future__ import annotations

import math

import numpy as np
import pedalboard
import pytest
import torch
from scipy.signal import lfilter, resample_poly

from mastering.dsp.dynamics import (
    Compressor,
    Expander,
    _branching_smoother,
    compressor,
    compressor_gain_db,
    expander,
    expander_gain_db,
    limiter,
)

SAMPLE_RATES = (22050, 44100, 48000)
CHANNELS = (1, 2)


def giannoulis_static_db(level_db, threshold_db, ratio, knee_db):
    """Giannoulis et al. (2012), eq. 4: output level y_G for input level x_G (dB)."""
    x = np.asarray(level_db, dtype=np.float64)
    y = x.copy()
    over = x - threshold_db
    above = 2 * over > knee_db
    y[above] = threshold_db + over[above] / ratio
    if knee_db > 0:
        knee = np.abs(2 * over) <= knee_db
        y[knee] = x[knee] + (1 / ratio - 1) * (over[knee] + knee_db / 2) ** 2 / (2 * knee_db)
    return y


def level_ramp(sample_rate, channels, lo_db=-50.0, hi_db=0.0, seconds=1.0, offsets_db=(0.0, -6.0)):
    """Slowly rising DC level (dB linear in time): channel c sits ``offsets_db[c]`` below channel 0."""
    n = int(seconds * sample_rate)
    level = np.linspace(lo_db, hi_db, n)
    x = np.stack([10 ** ((level + offsets_db[c]) / 20) for c in range(channels)])
    return torch.from_numpy(x)[None], level


def true_peak_16x(y: np.ndarray) -> float:
    return float(20 * np.log10(np.abs(resample_poly(y, 16, 1, axis=-1)).max()))


def one_pole_63_time_ms(trace_db: np.ndarray, sample_rate: int, end: float | None = None) -> float:
    """Time for ``trace_db`` to cover 1 - 1/e of its move from its first value to ``end`` (default: last)."""
    start = trace_db[0]
    end = trace_db[-1] if end is None else end
    frac = (trace_db - start) / (end - start)
    idx = int(np.argmax(frac >= 1 - math.exp(-1)))
    # linear interpolation between the samples around the crossing
    f0, f1 = frac[idx - 1], frac[idx]
    return (idx - 1 + (1 - math.exp(-1) - f0) / (f1 - f0)) * 1000.0 / sample_rate


# ------------------------------------------------------------------------------------------------
# Branching smoother (Giannoulis eq. 17)
# ------------------------------------------------------------------------------------------------


def test_branching_smoother_matches_reference_loop():
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((3, 400))).cumsum(axis=1) % 7.0
    a_att = np.array([0.1, 0.5, 0.9])
    a_rel = np.array([0.99, 0.9, 0.3])
    ref = np.empty_like(x)
    for r in range(3):
        prev = 0.0
        for n in range(x.shape[1]):
            a = a_att[r] if x[r, n] > prev else a_rel[r]
            prev = a * prev + (1 - a) * x[r, n]
            ref[r, n] = prev
    out = _branching_smoother(torch.from_numpy(x), torch.from_numpy(a_att), torch.from_numpy(a_rel))
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-12)


def test_branching_smoother_gradcheck():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(np.abs(rng.standard_normal((2, 30))) * 3).requires_grad_()
    a_att = torch.tensor([0.3, 0.6], dtype=torch.float64, requires_grad=True)
    a_rel = torch.tensor([0.9, 0.8], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_branching_smoother, (x, a_att, a_rel), eps=1e-7, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Static curve
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("ratio, knee_db", [(4.0, 0.0), (4.0, 6.0), (10.0, 12.0)])
def test_static_curve_matches_giannoulis(sample_rate, channels, ratio, knee_db):
    threshold_db = -24.0
    x, level = level_ramp(sample_rate, channels, seconds=0.5)
    # 0.2 ms ballistics lag a 100 dB/s ramp by < 100 * 0.0002 = 0.02 dB
    gain = compressor_gain_db(x, sample_rate, threshold_db, ratio, 0.2, 0.2, knee_db=knee_db)[0, 0].numpy()
    expected = giannoulis_static_db(level, threshold_db, ratio, knee_db) - level  # linked: loudest channel
    settled = slice(int(0.01 * sample_rate), None)
    np.testing.assert_allclose(gain[settled], expected[settled], atol=0.03)

    below = level < threshold_db - knee_db / 2 - 0.5
    assert np.all(gain[below] == 0.0)  # unity gain, exactly
    above = level > threshold_db + knee_db / 2 + 0.5
    slope = np.polyfit(level[above], (level + gain)[above], 1)[0]
    assert slope == pytest.approx(1 / ratio, rel=0.01)
    if knee_db > 0:
        knee = np.abs(level - threshold_db) < knee_db / 2 - 0.2
        curvature = 2 * np.polyfit(level[knee], (level + gain)[knee], 2)[0]
        assert curvature == pytest.approx((1 / ratio - 1) / knee_db, rel=0.02)


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
def test_unlinked_channels_follow_their_own_level(sample_rate):
    x, level = level_ramp(sample_rate, 2, offsets_db=(0.0, -10.0))
    gain = compressor_gain_db(x, sample_rate, -30.0, 3.0, 0.5, 0.5, knee_db=4.0, stereo_link=False)[0].numpy()
    settled = slice(int(0.01 * sample_rate), None)
    for c, off in enumerate((0.0, -10.0)):
        expected = giannoulis_static_db(level + off, -30.0, 3.0, 4.0) - (level + off)
        np.testing.assert_allclose(gain[c, settled], expected[settled], atol=0.03)


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
def test_rms_detector_reads_sine_rms(sample_rate):
    n = sample_rate
    t = np.arange(n) / sample_rate
    amp_db = -6.0
    x = torch.from_numpy(10 ** (amp_db / 20) * np.sin(2 * np.pi * 1000 * t))[None, None]
    gain = compressor_gain_db(x, sample_rate, -20.0, 4.0, 5.0, 200.0, knee_db=0.0, detector="rms")[0, 0].numpy()
    rms_db = amp_db - 10 * math.log10(2)
    expected = -(rms_db + 20.0) * (1 - 1 / 4)
    assert np.abs(gain[n // 2:] - expected).max() < 0.1


def test_makeup_gain_and_batch_parameters():
    sample_rate = 44100
    x, _ = level_ramp(sample_rate, 2, seconds=0.3)
    xb = torch.cat([x, 0.5 * x])
    thr = torch.tensor([-30.0, -12.0], dtype=torch.float64)
    makeup = torch.tensor([3.0, 0.0], dtype=torch.float64)
    y = compressor(xb, sample_rate, thr, 4.0, 2.0, 80.0, knee_db=6.0, makeup_gain_db=makeup)
    for b in range(2):
        yb = compressor(xb[b:b + 1], sample_rate, float(thr[b]), 4.0, 2.0, 80.0, knee_db=6.0, makeup_gain_db=float(makeup[b]))
        torch.testing.assert_close(y[b:b + 1], yb, rtol=0, atol=1e-12)
    quiet = torch.full((1, 1, 1000), 1e-3, dtype=torch.float64)  # -60 dBFS, far below threshold
    torch.testing.assert_close(compressor(quiet, sample_rate, -20.0, 4.0, 1.0, 50.0, makeup_gain_db=6.0),
                               quiet * 10 ** (6 / 20), rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------------------
# Against pedalboard (JUCE dsp::Compressor)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("amp_db", [-30.0, -6.0, 0.0])
def test_steady_state_sine_matches_pedalboard(sample_rate, channels, amp_db):
    threshold_db, ratio, attack_ms, release_ms = -20.0, 4.0, 1.0, 200.0
    n = sample_rate
    t = np.arange(n) / sample_rate
    amps = [amp_db, amp_db - 6.0][:channels]
    x = np.stack([10 ** (a / 20) * np.sin(2 * np.pi * 997 * t) for a in amps]).astype(np.float32)
    # JUCE ballistics use exp(-2*pi*1000/(fs*t_ms)): its time parameter is 2*pi times the 63 % time.
    board = pedalboard.Compressor(threshold_db=threshold_db, ratio=ratio,
                                  attack_ms=2 * math.pi * attack_ms, release_ms=2 * math.pi * release_ms)
    ref = board(x, sample_rate)
    ours = compressor(torch.from_numpy(x)[None], sample_rate, threshold_db, ratio, attack_ms, release_ms,
                      knee_db=0.0, stereo_link=False)[0].numpy()  # JUCE compresses channels separately
    tail = slice(n // 2, None)
    for c in range(channels):
        power_in = np.mean(x[c, tail].astype(np.float64) ** 2)
        gr_ref = 10 * np.log10(np.mean(ref[c, tail].astype(np.float64) ** 2) / power_in)
        gr_ours = 10 * np.log10(np.mean(ours[c, tail].astype(np.float64) ** 2) / power_in)
        static = -max(0.0, amps[c] - threshold_db) * (1 - 1 / ratio)
        assert abs(gr_ours - gr_ref) < 0.5
        assert abs(gr_ours - static) < 0.5


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("attack_ms, release_ms", [(1.0, 50.0), (10.0, 200.0)])
def test_attack_and_release_are_63_percent_times(sample_rate, attack_ms, release_ms):
    """A DC level step makes the gain reduction move exponentially in dB (Giannoulis eq. 7, 17)."""
    n = int(1.5 * sample_rate)
    level = np.full(n, -30.0)
    level[n // 3: 2 * n // 3] = -6.0  # -20 dB threshold: 0 -> 10.5 dB -> 0 of gain reduction at ratio 4
    x = torch.from_numpy(10 ** (level / 20))[None, None]
    gain = compressor_gain_db(x, sample_rate, -20.0, 4.0, attack_ms, release_ms, knee_db=0.0)[0, 0].numpy()
    target = -(-6.0 + 20.0) * (1 - 1 / 4)
    t_att = one_pole_63_time_ms(gain[n // 3 - 1: 2 * n // 3], sample_rate, end=target)
    t_rel = one_pole_63_time_ms(gain[2 * n // 3 - 1:], sample_rate, end=0.0)
    one_sample_ms = 1000.0 / sample_rate  # the step lands between two samples
    assert abs(t_att - attack_ms) <= one_sample_ms
    assert abs(t_rel - release_ms) <= one_sample_ms


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("direction", ["attack", "release"])
def test_ballistics_match_pedalboard_time_constants(sample_rate, direction):
    """Same 63 % time as pedalboard (with its 2*pi time convention) for a 2 dB level step.

    JUCE smooths the linear envelope, we smooth in dB; for a 2 dB step the two exponentials'
    63 % times differ by -7 % (attack) / +7 % (release) of the time constant
    (``-ln(1 - (10**(0.632*0.1) - 1) / (10**0.1 - 1))`` = 0.93), hence the 12 % tolerance.
    """
    tau_ms = 5.0 if direction == "attack" else 40.0
    n = int(1.0 * sample_rate)
    lo, hi = -8.0, -6.0
    level = np.full(n, lo if direction == "attack" else hi)
    level[n // 2:] = hi if direction == "attack" else lo
    x = (10 ** (level / 20)).astype(np.float32)
    times = dict(attack_ms=tau_ms, release_ms=tau_ms)
    board = pedalboard.Compressor(threshold_db=-20.0, ratio=4.0, attack_ms=2 * math.pi * tau_ms,
                                  release_ms=2 * math.pi * tau_ms)
    gr_ref = 20 * np.log10(board(x[None], sample_rate)[0].astype(np.float64) / x)
    gr_ours = compressor_gain_db(torch.from_numpy(x.astype(np.float64))[None, None], sample_rate, -20.0, 4.0,
                                 knee_db=0.0, **times)[0, 0].numpy()
    t_ref = one_pole_63_time_ms(gr_ref[n // 2 - 1:], sample_rate)
    t_ours = one_pole_63_time_ms(gr_ours[n // 2 - 1:], sample_rate)
    assert t_ours == pytest.approx(tau_ms, abs=1000.0 / sample_rate)
    assert t_ref == pytest.approx(t_ours, rel=0.12)


# ------------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------------


def _short_test_signal(channels: int, n: int = 48) -> torch.Tensor:
    """Strictly positive, level-varying signal crossing threshold and knee, no ties between channels."""
    t = np.arange(n)
    env = 10 ** ((-26 + 22 * np.sin(np.pi * t / n)) / 20)
    x = np.stack([env * (0.75 + 0.25 * np.sin(0.3 * t + c)) * (1 - 0.3 * c) for c in range(channels)])
    return torch.from_numpy(x)[None]


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("detector", ["peak", "rms"])
def test_compressor_gradcheck(channels, detector):
    sample_rate = 22050
    x = _short_test_signal(channels).requires_grad_()
    params = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in (-14.0, 3.0, 0.3, 1.5, 6.0, 2.0)]

    def fn(x, thr, ratio, att, rel, knee, makeup):
        return compressor(x, sample_rate, thr, ratio, att, rel, knee, makeup, detector=detector, rms_window_ms=0.5)

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


def test_expander_gradcheck():
    sample_rate = 22050
    x = _short_test_signal(2).requires_grad_()
    params = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in (-14.0, 1.5, 0.3, 1.5, 6.0)]

    def fn(x, thr, ratio, att, rel, knee):
        return expander(x, sample_rate, thr, ratio, att, rel, knee)

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_gradient_flows_to_every_parameter(sample_rate, channels):
    gen = torch.Generator().manual_seed(0)
    n = sample_rate // 4
    bursts = torch.repeat_interleave(torch.tensor([0.05, 0.8, 0.1, 0.6, 0.02, 0.9]), n // 6 + 1)[:n]
    x = (torch.randn(2, channels, n, generator=gen) * bursts).requires_grad_()
    names = ["threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_gain_db"]
    values = [[-24.0, -18.0], [4.0, 8.0], [5.0, 1.0], [100.0, 50.0], [6.0, 3.0], [2.0, 0.0]]
    params = {k: torch.tensor(v, requires_grad=True) for k, v in zip(names, values)}
    y = compressor(x, sample_rate, **params)
    loss = (y - 0.1 * x.detach()).square().mean()
    loss.backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert (p.grad.abs() > 0).all(), name
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------
# Expander
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_expander_static_slope_and_inverse_of_compressor(sample_rate, channels):
    x, level = level_ramp(sample_rate, channels, seconds=0.5)
    threshold_db, ratio = -24.0, 3.0
    gain = expander_gain_db(x, sample_rate, threshold_db, ratio, 0.2, 0.2, knee_db=0.0)[0, 0].numpy()
    above = level > threshold_db + 0.5
    assert np.all(gain[level < threshold_db - 0.5] == 0.0)
    assert np.polyfit(level[above], (level + gain)[above], 1)[0] == pytest.approx(ratio, rel=0.01)
    # hard knee: the expander undoes the compressor's static curve (de-compression)
    squashed = compressor(x, sample_rate, threshold_db, ratio, 0.2, 0.2, knee_db=0.0)
    restored = expander(squashed, sample_rate, threshold_db, ratio, 0.2, 0.2, knee_db=0.0)
    settled = slice(int(0.01 * sample_rate), None)
    err_db = 20 * torch.log10(restored / x)[..., settled]
    assert err_db.abs().max() < 0.05


# ------------------------------------------------------------------------------------------------
# Limiter
# ------------------------------------------------------------------------------------------------


def music_like_bursts(sample_rate: int, channels: int, seed: int, seconds: float = 1.0) -> np.ndarray:
    """Pink + white noise in decaying bursts from -20 to +6 dB around -10 dBFS (transients, rests)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    white = rng.standard_normal((channels, n))
    # Kellet/Smith pink-noise filter
    pink = lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                   [1.0, -2.494956002, 2.017265875, -0.522189400], white, axis=-1)
    noise = 0.7 * pink / pink.std() + 0.3 * white
    env = np.zeros(n)
    k = 0
    while k < n:
        length = min(int(rng.uniform(0.05, 0.4) * sample_rate), n - k)
        decay = rng.uniform(0.02, 0.2) * sample_rate
        env[k:k + length] = 10 ** (rng.uniform(-20, 6) / 20) * np.exp(-np.arange(length) / decay)
        k += length + int(rng.uniform(0.0, 0.1) * sample_rate)
    return 0.3 * noise * env


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_limiter_true_peak_on_noise_bursts(sample_rate, channels):
    ceiling = -1.0
    x = np.stack([music_like_bursts(sample_rate, channels, seed) for seed in (0, 1)])
    x *= 10 ** ((3.0 - max(true_peak_16x(xb) for xb in x)) / 20)  # loudest item peaks at +3 dBTP
    y = limiter(torch.from_numpy(x).float(), sample_rate, ceiling_dbtp=ceiling).numpy()
    for b in range(2):
        tp = true_peak_16x(y[b])
        assert tp <= ceiling + 0.1
        assert float(20 * np.log10(np.abs(resample_poly(y[b], 4, 1, axis=-1)).max())) <= ceiling + 1e-4
        if true_peak_16x(x[b]) > ceiling + 1.0:
            assert tp > ceiling - 0.3  # brickwall, not a global turn-down


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_limiter_catches_inter_sample_peaks(sample_rate, channels):
    """fs/4 sine at 45 deg phase: samples at -3.01 dBFS, true peak 0 dBTP."""
    n = sample_rate // 4
    s = np.sin(2 * np.pi * np.arange(n) / 4 + np.pi / 4)
    x = np.repeat(s[None, None], channels, axis=1)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    y = limiter(torch.from_numpy(x).float(), sample_rate, ceiling_dbtp=-1.0).numpy()[0]
    assert -1.1 < true_peak_16x(y) <= -1.0 + 0.1


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_limiter_leaves_quiet_audio_untouched(sample_rate, channels):
    x = torch.from_numpy(music_like_bursts(sample_rate, channels, seed=3, seconds=1.0))[None].float()
    x = x * 10 ** ((-3.0 - true_peak_16x(x[0].numpy())) / 20)
    y = limiter(x, sample_rate, ceiling_dbtp=-1.0)
    assert torch.equal(y, x)


def test_limiter_acts_locally():
    sample_rate = 44100
    n = 2 * sample_rate
    t = np.arange(n) / sample_rate
    x = 0.2 * np.sin(2 * np.pi * 440 * t)
    burst = slice(n // 2, n // 2 + 2000)
    x[burst] *= 8.0
    y = limiter(torch.from_numpy(x)[None, None], sample_rate, ceiling_dbtp=-1.0, release_ms=50.0,
                lookahead_ms=5.0)[0, 0].numpy()
    lookahead = int(0.005 * sample_rate)
    np.testing.assert_array_equal(y[: n // 2 - lookahead - 1], x[: n // 2 - lookahead - 1])
    after = n // 2 + 2000 + int(0.6 * sample_rate)  # 12 release time constants later
    assert np.abs(20 * np.log10(np.abs(y[after:]).max() / np.abs(x[after:]).max())) < 1e-3
    assert true_peak_16x(y[None]) <= -1.0 + 0.1


def test_limiter_rejects_bad_input():
    x = torch.zeros(1, 1, 100)
    with pytest.raises(ValueError):
        limiter(x[0], 44100)
    with pytest.raises(ValueError):
        limiter(x, 44100, release_ms=0.0)
    with pytest.raises(ValueError):
        limiter(x, 44100, oversample=0)
    with pytest.raises(ValueError):
        limiter(x, 0)


# ------------------------------------------------------------------------------------------------
# Modules and argument checks
# ------------------------------------------------------------------------------------------------


def test_compressor_module_ranges_and_mapping():
    comp = Compressor()
    assert comp.param_ranges == {
        "threshold_db": (-60.0, 0.0), "ratio": (1.0, 20.0), "attack_ms": (0.1, 100.0),
        "release_ms": (10.0, 1000.0), "knee_db": (0.0, 12.0), "makeup_gain_db": (0.0, 24.0),
    }
    p01 = torch.tensor([[0.0] * 6, [1.0] * 6, [0.5] * 6], dtype=torch.float64)
    phys = comp.denormalize(p01)
    assert phys["ratio"].tolist() == pytest.approx([1.0, 20.0, math.sqrt(20.0)])
    assert phys["attack_ms"].tolist() == pytest.approx([0.1, 100.0, math.sqrt(10.0)])
    assert phys["threshold_db"].tolist() == pytest.approx([-60.0, 0.0, -30.0])
    torch.testing.assert_close(comp.normalize(**phys).to(torch.float64), p01)

    x, _ = level_ramp(44100, 2, seconds=0.1)
    x = x.expand(3, -1, -1)
    torch.testing.assert_close(comp.process_normalized(x, 44100, p01), compressor(x, 44100, **phys))


@pytest.mark.parametrize("bad", [
    torch.full((1, 6), 1.5),
    torch.full((1, 6), -0.1),
    torch.full((1, 6), float("nan")),
    torch.full((1, 5), 0.5),
    torch.full((6,), 0.5),
    torch.full((2, 6), 0.5),  # batch 2 for audio batch 1
])
def test_process_normalized_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        Compressor().process_normalized(torch.zeros(1, 2, 64), 44100, bad)


def test_expander_module():
    exp = Expander()
    assert exp.num_params == 5
    with pytest.raises(ValueError):
        exp.process_normalized(torch.zeros(1, 1, 64), 44100, torch.full((1, 6), 0.5))
    y = exp.process_normalized(torch.full((1, 1, 64), 0.01), 44100, torch.zeros(1, 5))  # ratio 1: identity
    torch.testing.assert_close(y, torch.full((1, 1, 64), 0.01))


@pytest.mark.parametrize("kwargs", [
    dict(ratio=0.5), dict(attack_ms=0.0), dict(release_ms=-1.0), dict(knee_db=-1.0),
    dict(detector="average"), dict(threshold_db=torch.zeros(3)), dict(threshold_db=float("nan")),
])
def test_compressor_rejects_bad_parameters(kwargs):
    args = dict(threshold_db=-20.0, ratio=4.0, attack_ms=1.0, release_ms=50.0)
    args.update(kwargs)
    with pytest.raises(ValueError):
        compressor(torch.zeros(2, 1, 64), 44100, **args)


@pytest.mark.parametrize("x", [
    torch.zeros(1, 64), torch.full((1, 1, 8), float("nan")), torch.zeros(1, 1, 0),
    torch.zeros(1, 1, 8, dtype=torch.float16),
])
def test_compressor_rejects_bad_audio(x):
    with pytest.raises(ValueError):
        compressor(x, 44100, -20.0, 4.0, 1.0, 50.0)
