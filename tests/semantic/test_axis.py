"""The axis-adaptive semantic EQ: physics of its measure and filter, and on real music, that a style
never reverses, grows with the intensity and gives less to a track that already has the quality."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import signal

from mastering.semantic.adaptive import axis_semantic_eq, semantic_eq_settings
from mastering.semantic.axis import (
    GAMMA,
    AxisEQ,
    axis_measure,
    axis_measure_after,
    band_powers,
    gain_for_target,
    min_phase_fir,
    warmth_measures,
)
from mastering.semantic.vae import response_freqs

FREQS = response_freqs(n_freqs=256, f_min_hz=20.0, f_max_hz=20000.0)
INTENSITIES = (0.25, 0.5, 1.0, 1.5, 2.0)


def test_the_axis_measure_never_falls_as_the_gain_rises():
    """For any spectrum and any curve the measure after the EQ ``s C`` is non-decreasing in ``s``,
    with the derivative the exponential-family variance ``gamma ln10/10 Var_w(C)``."""
    rng = np.random.default_rng(0)
    powers = np.exp(rng.normal(0.0, 3.0, (200, len(FREQS))))
    curves = rng.normal(0.0, 4.0, (200, len(FREQS)))
    gains = np.linspace(0.0, 4.0, 41)
    for p, c in zip(powers, curves):
        values = np.array([axis_measure_after(p, c, g)[0] for g in gains])
        assert np.all(np.diff(values) >= -1e-12)
    p, c, s, h = powers[0], curves[0], 0.7, 1e-5
    w = (p * 10 ** (s * c / 10)) ** GAMMA
    w /= w.sum()
    variance = (w * c**2).sum() - (w * c).sum() ** 2
    numeric = (axis_measure_after(p, c, s + h)[0] - axis_measure_after(p, c, s - h)[0]) / (2 * h)
    assert numeric == pytest.approx(GAMMA * np.log(10) / 10 * variance, rel=1e-4)


def test_gain_for_target_reaches_the_target_and_is_zero_when_already_there():
    rng = np.random.default_rng(1)
    powers = np.exp(rng.normal(0.0, 2.0, (5, len(FREQS))))
    curve = np.linspace(3.0, -3.0, len(FREQS))
    before = axis_measure_after(powers, curve)
    target = float(np.median(before)) + 0.3
    gain = gain_for_target(powers, curve, target)
    after = axis_measure_after(powers, curve, gain)
    needed = before < target
    assert np.allclose(after[needed], target, atol=1e-6)
    assert np.all(gain[~needed] == 0.0)


def test_band_powers_put_a_sine_in_its_band_with_its_power():
    sr = 44100
    t = np.arange(2 * sr) / sr
    x = np.stack([0.5 * np.sin(2 * np.pi * 1000.0 * t)] * 2)
    p = band_powers(x, sr, FREQS)[0]
    assert p.sum() == pytest.approx(2 * 0.125, rel=0.02)  # a^2/2 per channel, summed over channels
    near = np.abs(np.log2(FREQS / 1000.0)) < 0.05
    assert p[near].sum() / p.sum() > 0.99


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_the_fir_has_the_curves_magnitude_and_minimum_phase(sample_rate):
    curve = 6.0 * np.exp(-0.5 * (np.log2(FREQS / 250.0) / 1.2) ** 2) - 2.0 * (FREQS > 4000)
    curve = np.convolve(np.pad(curve, 8, mode="edge"), np.ones(17) / 17, mode="valid")  # smooth
    h = min_phase_fir(curve, FREQS, sample_rate)
    f, H = signal.freqz(h, worN=FREQS[(FREQS > 30) & (FREQS < 0.45 * sample_rate)], fs=sample_rate)
    want = np.interp(np.log(f), np.log(FREQS), curve)
    assert np.max(np.abs(20 * np.log10(np.abs(H)) - want)) < 0.02
    # minimum phase: no filter with the same magnitude has more energy in its first samples
    linear = np.roll(np.fft.irfft(np.abs(np.fft.rfft(h, len(h))), len(h)), len(h) // 2)
    e_min, e_lin = np.cumsum(h**2), np.cumsum(linear**2)
    assert np.all(e_min[: len(h) // 4] >= e_lin[: len(h) // 4] - 1e-9)


def test_intensity_zero_is_the_identity(tiny_semantic_bundle):
    bundle, _ = tiny_semantic_bundle
    x = torch.randn(1, 2, 44100, dtype=torch.float64) * 0.1
    y, settings = axis_semantic_eq(x, 44100, "warm", 0.0, bundle)
    assert torch.equal(y, x) and settings.gain[0] == 0.0


# ------------------------------------------------------------------------------------------------
# real music: bass-heavy, thin and neutral excerpts of the held-out album
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def music_excerpts():
    """Three 8 s excerpts of the smoke profile's held-out tracks (drascula-music), chosen by their
    share of power below 250 Hz: the most bass-heavy, the thinnest and the one nearest the median."""
    from mastering.semantic.evaluate import music_clips

    sr = 44100
    try:
        _, clips = music_clips("smoke", "test", clip_seconds=8.0, clips_per_track=3, sample_rate=sr)
    except FileNotFoundError:
        pytest.skip("no held-out music prepared (`make data`)")
    x = clips.double().numpy()
    share = warmth_measures(x, sr)["low_share"]
    order = np.argsort(share)
    pick = {"thin": order[0], "neutral": order[len(order) // 2], "bass-heavy": order[-1]}
    assert share[pick["bass-heavy"]] > 1.5 * share[pick["thin"]], share
    return {k: torch.from_numpy(x[i: i + 1]) for k, i in pick.items()}, sr


@pytest.fixture(scope="module")
def music_bundle(tiny_semantic_bundle, tmp_path_factory):
    """The tiny bundle with where typical music sits on each axis measured as
    :func:`mastering.semantic.adaptive.build_semantic_eq` does: on the smoke profile's real-music
    training tracks (another album than the test excerpts); saved: ``(bundle, folder)``."""
    import dataclasses

    from mastering.semantic.adaptive import _music_reference
    from mastering.semantic.axis import axis_reference

    bundle, _ = tiny_semantic_bundle
    _, powers, info = _music_reference(bundle.encoder, "smoke", bundle.reference_freqs_hz)
    if powers is None:
        pytest.skip(info["note"])
    refs = {d: axis_reference(powers, bundle.reference_curves[d]) for d in bundle.descriptors}
    music = dataclasses.replace(bundle, axis_reference=refs)
    return music, music.save(tmp_path_factory.mktemp("semantic") / "music")


@pytest.mark.parametrize("word", ["warm", "bright"])
def test_a_style_never_reverses_and_grows_with_the_intensity_on_real_music(music_excerpts, music_bundle, word):
    """On each excerpt, for every intensity in (0, 2]: the output has at least as much of the
    descriptor as the input, measured on the audio along the descriptor's own axis, and more
    intensity never gives less; the common readings agree (brighter: centroid up, less low end,
    tilt up; warmer: tilt down)."""
    bundle, _ = music_bundle
    excerpts, sr = music_excerpts
    curve = bundle.reference_curves[word]
    for kind, x in excerpts.items():
        before = axis_measure(x, sr, curve, FREQS)[0]
        base = warmth_measures(x, sr)
        measures, readings = [before], [base]
        for k in INTENSITIES:
            y, settings = axis_semantic_eq(x, sr, word, k, bundle)
            assert settings.gain[0] > 0
            measures.append(axis_measure(y, sr, curve, FREQS)[0])
            readings.append(warmth_measures(y, sr))
        assert np.all(np.diff(measures) > 0), (kind, measures)
        tilt = [r["tilt_db_per_oct"][0] for r in readings]
        if word == "bright":
            assert np.all(np.diff(tilt) > 0), (kind, tilt)
            assert np.all(np.diff([r["centroid_hz"][0] for r in readings]) > 0), kind
            assert np.all(np.diff([r["low_share"][0] for r in readings]) < 0), kind
        else:
            assert np.all(np.diff(tilt) < 0), (kind, tilt)


@pytest.mark.parametrize("word", ["warm", "bright"])
def test_a_track_that_already_has_the_quality_gets_less_of_it(music_excerpts, music_bundle, word):
    """Adaptivity measured on the audio, at intensity 1: the gain never rises with how much of the
    quality an excerpt has, and where the gains differ the excerpt with the most of it gains the
    least on the audio. The smoke excerpts span warmth ('warm' gains differ: the test has teeth)."""
    bundle, _ = music_bundle
    excerpts, sr = music_excerpts
    curve = bundle.reference_curves[word]
    before, added, gain = [], [], []
    for x in excerpts.values():
        y, settings = axis_semantic_eq(x, sr, word, 1.0, bundle)
        b = axis_measure(x, sr, curve, FREQS)[0]
        before.append(b)
        added.append(axis_measure(y, sr, curve, FREQS)[0] - b)
        gain.append(settings.gain[0])
    order = np.argsort(before)
    assert np.all(np.diff(np.asarray(gain)[order]) <= 1e-12), (before, gain)
    most, least = order[-1], order[0]
    if word == "warm":
        assert gain[most] < gain[least]
    if gain[most] < gain[least]:
        assert added[most] < added[least], (before, added)


def _shaped(x: torch.Tensor, curve: np.ndarray, gain: float) -> torch.Tensor:
    """``x`` through the curve at a signed gain (the opposite EQ for a negative one)."""
    sign = 1.0 if gain >= 0 else -1.0
    return AxisEQ("", 1.0, sign * curve, FREQS, np.array([abs(gain)]), np.ones(1), np.zeros(1), np.zeros(1)).apply(x, 44100)


@pytest.mark.parametrize("word", ["warm", "bright"])
def test_noise_that_already_has_the_quality_gets_less_on_the_audio(music_bundle, word):
    """Pink noise shaped to sit where typical music does on the axis, then half a curve below and
    above it: the one above gets the smaller gain and less of the quality added, read from the
    output audio, and both end where typical music ends with the full curve."""
    from mastering.dsp.signals import pink_noise

    bundle, _ = music_bundle
    curve, ref = bundle.reference_curves[word], bundle.axis_ref(word)
    pink = pink_noise(8 * 44100, channels=2, batch=1, seed=3).double()
    p = band_powers(pink, 44100, FREQS)
    grid = np.linspace(-8.0, 8.0, 3201)
    g0 = grid[np.searchsorted(axis_measure_after(np.repeat(p, len(grid), 0), curve, grid), ref["typical"])]
    added, gains, after = [], [], []
    for x in (_shaped(pink, curve, g0 - 0.5), _shaped(pink, curve, g0 + 0.5)):
        y, settings = axis_semantic_eq(x, 44100, word, 1.0, bundle)
        after.append(axis_measure(y, 44100, curve, FREQS)[0])
        added.append(after[-1] - axis_measure(x, 44100, curve, FREQS)[0])
        gains.append(settings.gain[0])
    assert gains[1] < gains[0] and added[1] < added[0], (gains, added)
    assert after == pytest.approx([ref["target"]] * 2, abs=0.02)


def test_mastering_with_a_style_is_monotone_and_intensity_zero_is_plain_mastering(music_excerpts, music_bundle, tmp_path):
    """Through ``master_file`` with the shipped weights (loudness stage and limiter included):
    ``--style warm`` at intensity 0 writes exactly the plain master; at 0.5, 1 and 2 the master is
    warmer than the plain one, and warmer with each step."""
    from mastering.master import master_file
    from mastering.semantic.style import StyleEQ

    bundle, folder = music_bundle
    excerpts, sr = music_excerpts
    src = tmp_path / "in.wav"
    sf.write(src, excerpts["neutral"][0].numpy().T, sr, subtype="FLOAT")
    curve = bundle.reference_curves["warm"]

    def run(name, post_eq=None):
        out = tmp_path / f"{name}.wav"
        report = master_file(src, out, post_eq=post_eq)
        y, _ = sf.read(out, dtype="float64", always_2d=True)
        return y.T, report

    plain, _ = run("plain")
    zero, report = run("zero", StyleEQ("warm", 0.0, folder))
    assert np.array_equal(zero, plain) and report["style"]["gain"] == 0.0
    measures = [axis_measure(plain[None], sr, curve, FREQS)[0]]
    for k in (0.5, 1.0, 2.0):
        y, report = run(f"warm{k}", StyleEQ("warm", k, folder))
        assert report["style"]["method"] == "axis" and report["style"]["gain"] == pytest.approx(k * report["style"]["amount"], abs=2e-3)
        measures.append(axis_measure(y[None], sr, curve, FREQS)[0])
    assert np.all(np.diff(measures) > 0), measures


def test_axis_settings_refuse_silence(tiny_semantic_bundle):
    from mastering.io import AudioError

    bundle, _ = tiny_semantic_bundle
    with pytest.raises(AudioError, match="silent"):
        semantic_eq_settings(bundle, torch.zeros(1, 2, 44100), 44100, "warm", 1.0, "axis")


def test_axis_eq_checks_the_batch():
    eq = AxisEQ("warm", 1.0, np.zeros(len(FREQS)), FREQS, np.array([1.0]), np.array([1.0]), np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="1 item"):
        eq.apply(torch.zeros(2, 2, 100), 44100)
