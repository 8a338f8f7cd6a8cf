"""Demastering chain (mastering/data/demaster.py): logged parameters are the applied ones.

References: loudness by pyloudnorm (ITU-R BS.1770-4), filter responses by scipy.signal.sosfreqz,
spectra by scipy.signal.welch, the dynamics stage re-run through mastering.dsp.dynamics.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pyloudnorm as pyln
import pytest
import scipy.signal as ss
import torch

from mastering.data import demaster as dm
from mastering.dsp.signals import pink_noise
from mastering.io import AudioError, load_audio, save_audio


def only(params: dict, *stages: str) -> dict:
    """A copy of ``params`` with every stage but ``stages`` removed."""
    p = copy.deepcopy(params)
    p["stages"] = {k: (v if k in stages else None) for k, v in p["stages"].items()}
    return p


def first_seed_with(stage: str, **conditions) -> dict:
    for seed in range(500):
        p = dm.sample_params(seed, duration_s=4.0)
        s = p["stages"][stage]
        if s is not None and all(s.get(k) == v for k, v in conditions.items()):
            return p
    raise AssertionError(f"no seed below 500 draws {stage} {conditions}")


def pink(seconds, sample_rate, channels, seed=0, level_dbfs=-20.0):
    return pink_noise(int(seconds * sample_rate), channels=channels, seed=seed, level_dbfs=level_dbfs)[0]


def psd_db(x: np.ndarray, sample_rate: int):
    f, p = ss.welch(x, fs=sample_rate, nperseg=4096, axis=-1)
    return f, 10 * np.log10(p.mean(axis=0) + 1e-30)


# --------------------------------------------------------------------------------------------


def test_same_seed_same_params_and_audio_other_seed_differs():
    x = pink(2.0, 22050, 2, seed=3)
    a = dm.sample_params(11, duration_s=2.0)
    b = dm.sample_params(11, duration_s=2.0)
    assert a == b
    assert dm.sample_params(12, duration_s=2.0) != a
    ya, la = dm.apply(x, 22050, a, return_log=True)
    yb, lb = dm.apply(x, 22050, b, return_log=True)
    assert torch.equal(ya, yb) and la == lb
    assert json.loads(json.dumps(la)) == la  # JSON-ready


def test_params_stay_in_documented_ranges():
    r = dm.PARAM_RANGES
    seen = set()
    for seed in range(300):
        st = dm.sample_params(seed, duration_s=5.0)["stages"]
        seen |= {k for k, v in st.items() if v is not None}
        if st["dynamics"]:
            spec = r["dynamics"][st["dynamics"]["mode"]]
            for k, rng in spec.items():
                assert rng[0] <= st["dynamics"][k] <= rng[1], k
        if st["gaussian_eq"]:
            g = st["gaussian_eq"]
            assert r["gaussian_eq"]["bands"][0] <= g["bands"] <= r["gaussian_eq"]["bands"][1]
            assert np.all(np.abs(g["gain_db"]) <= 8.0 + 1e-9)
            assert np.all((np.array(g["freq_hz"]) >= 60 - 1e-3) & (np.array(g["freq_hz"]) <= 12000 + 1e-2))
            assert g["times_s"][-1] >= 5.0  # keyframes cover the whole signal
        for stage in ("reverb", "echo", "level"):
            if st[stage]:
                for k, rng in r[stage].items():
                    if k != "p":
                        assert rng[0] <= st[stage][k] <= rng[1], (stage, k)
    assert seen == set(dm.STAGE_ORDER)  # every stage occurs


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_logged_level_change_is_the_measured_loudness_change(sample_rate, channels):
    x = pink(3.0, sample_rate, channels, seed=1, level_dbfs=-14.0)
    params = only(dm.sample_params(5, duration_s=3.0), "level")
    params["stages"]["level"].update(target_lufs=-26.0, headroom_db=3.0)  # reachable without the peak cap
    y, log = dm.apply(x, sample_rate, params, return_log=True)
    meter = pyln.Meter(sample_rate)
    before = meter.integrated_loudness(x.numpy().T.astype(np.float64))
    after = meter.integrated_loudness(y.numpy().T.astype(np.float64))
    lv = log["stages"]["level"]
    assert not lv["headroom_limited"]
    assert after - before == pytest.approx(lv["gain_db"], abs=0.05)
    assert after == pytest.approx(-26.0, abs=0.1)
    assert log["output"]["loudness_lufs"] == pytest.approx(after, abs=0.1)
    assert log["input"]["loudness_lufs"] == pytest.approx(before, abs=0.1)


def test_headroom_caps_the_peak_and_logs_the_smaller_gain():
    x = pink(2.0, 44100, 2, seed=2, level_dbfs=-14.0)
    params = only(dm.sample_params(5, duration_s=2.0), "level")
    params["stages"]["level"].update(target_lufs=-6.0, headroom_db=4.0)  # would clip: capped
    y, log = dm.apply(x, 44100, params, return_log=True)
    lv = log["stages"]["level"]
    assert lv["headroom_limited"]
    assert 20 * np.log10(float(y.abs().max())) == pytest.approx(-4.0, abs=0.01)
    measured = 20 * np.log10(float(y.abs().max()) / float(x.abs().max()))
    assert measured == pytest.approx(lv["gain_db"], abs=0.01)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_logged_tilt_shelf_eq_is_the_measured_spectrum_ratio(sample_rate):
    x = pink(6.0, sample_rate, 2, seed=4)
    params = only(first_seed_with("tilt_eq"), "tilt_eq")
    params["stages"]["tilt_eq"].update(tilt_db=4.0, low_shelf_gain_db=-5.0, high_shelf_gain_db=3.0)
    y = dm.apply(x, sample_rate, params)
    f, px = psd_db(x.numpy(), sample_rate)
    _, py = psd_db(y.numpy(), sample_rate)
    freq, gain, q, kinds = dm.tilt_eq_bands(params["stages"]["tilt_eq"])
    sos = np.stack([_rbj_sos(k, fr, g, qq, sample_rate) for k, fr, g, qq in zip(kinds, freq, gain, q)])
    _, h = ss.sosfreqz(sos, worN=f, fs=sample_rate)
    expected = 20 * np.log10(np.abs(h))
    band = (f > 100) & (f < 0.4 * sample_rate)
    assert np.max(np.abs((py - px)[band] - expected[band])) < 0.3


def _rbj_sos(kind, f0, gain_db, q, fs):
    """RBJ Audio-EQ-Cookbook shelves written out here as the independent reference."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2 * q)
    c = np.cos(w0)
    s = 2 * np.sqrt(a) * alpha
    if kind == "low_shelf":
        b = [a * ((a + 1) - (a - 1) * c + s), 2 * a * ((a - 1) - (a + 1) * c), a * ((a + 1) - (a - 1) * c - s)]
        den = [(a + 1) + (a - 1) * c + s, -2 * ((a - 1) + (a + 1) * c), (a + 1) + (a - 1) * c - s]
    else:
        b = [a * ((a + 1) + (a - 1) * c + s), -2 * a * ((a - 1) + (a + 1) * c), a * ((a + 1) + (a - 1) * c - s)]
        den = [(a + 1) - (a - 1) * c + s, 2 * ((a - 1) - (a + 1) * c), (a + 1) - (a - 1) * c - s]
    return np.array(b + den) / den[0]


@pytest.mark.parametrize("channels", [1, 2])
def test_logged_static_gaussian_eq_is_the_measured_spectrum_ratio(channels):
    sample_rate = 44100
    x = pink(6.0, sample_rate, channels, seed=5)
    params = only(first_seed_with("gaussian_eq"), "gaussian_eq")
    g = params["stages"]["gaussian_eq"]
    n = len(g["times_s"])
    g.update(bands=2, freq_hz=[[200.0, 3000.0]] * n, q=[[1.0, 2.0]] * n, gain_db=[[6.0, -8.0]] * n)
    y = dm.apply(x, sample_rate, params)
    f, px = psd_db(x.numpy(), sample_rate)
    _, py = psd_db(y.numpy(), sample_rate)
    expected = dm.gaussian_eq_gain_db(g, np.array([1.0]), f)[0]
    band = (f > 60) & (f < 16000)
    assert np.max(np.abs((py - px)[band] - expected[band])) < 0.3
    # the Gaussian's half-gain points are the RBJ bandwidth of Q = 1 (1.39 octaves) apart
    fine = np.geomspace(50, 1000, 20000)
    curve = dm.gaussian_eq_gain_db(g, np.array([0.0]), fine)[0]
    above = fine[curve >= 3.0]
    assert np.log2(above[-1] / above[0]) == pytest.approx(2 * np.arcsinh(0.5) / np.log(2), abs=0.02)


def test_logged_time_varying_gaussian_eq_follows_each_frame():
    sample_rate = 22050
    x = pink(8.0, sample_rate, 1, seed=6)
    params = only(first_seed_with("gaussian_eq"), "gaussian_eq")
    g = params["stages"]["gaussian_eq"]
    g.update(bands=1, frame_s=2.0, times_s=[0.0, 2.0, 4.0, 6.0, 8.0],
             freq_hz=[[300.0], [1000.0], [3000.0], [1000.0], [300.0]], q=[[1.0]] * 5,
             gain_db=[[8.0], [-8.0], [8.0], [-8.0], [8.0]])
    y = dm.apply(x, sample_rate, params)
    n_fft, hop = 2048, 512
    fx, tx, sx = ss.stft(x.numpy()[0], fs=sample_rate, nperseg=n_fft, noverlap=n_fft - hop)
    _, _, sy = ss.stft(y.numpy()[0], fs=sample_rate, nperseg=n_fft, noverlap=n_fft - hop)
    expected = dm.gaussian_eq_gain_db(g, tx, fx)  # [frames, bins]
    errors = []
    for lo in np.geomspace(150, 6000, 12):  # third-octave-ish bands, power ratio per frame
        sel = (fx >= lo) & (fx < lo * 2 ** (1 / 3))
        meas = 10 * np.log10(np.sum(np.abs(sy[sel]) ** 2, axis=0) / np.sum(np.abs(sx[sel]) ** 2, axis=0))
        exp = 10 * np.log10(np.mean(10 ** (expected[:, sel] / 10), axis=1))
        inner = (tx > 0.2) & (tx < 7.8)
        errors.append(np.abs(meas - exp)[inner])
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.3 and np.percentile(errors, 95) < 1.0


def test_logged_echo_is_the_measured_tap():
    sample_rate = 48000
    x = torch.zeros(2, sample_rate)
    x[:, 100] = 0.5
    params = only(first_seed_with("echo"), "echo")
    y, log = dm.apply(x, sample_rate, params, return_log=True)
    e = log["stages"]["echo"]
    d = e["delay_samples"]
    assert d == round(e["delay_ms"] * sample_rate / 1000)
    assert float(y[0, 100 + d]) == pytest.approx(0.5 * 10 ** (e["gain_db"] / 20), rel=1e-5)
    nonzero = torch.nonzero(y[0]).flatten().tolist()
    assert nonzero == [100, 100 + d]


def test_logged_reverb_decays_by_its_rt60_at_its_wet_level():
    sample_rate = 44100
    params = only(first_seed_with("reverb"), "reverb")
    rv = params["stages"]["reverb"]
    rv.update(rt60_s=0.8, wet_db=-10.0, predelay_ms=20.0)
    x = torch.zeros(1, 2 * sample_rate)
    x[0, 0] = 1.0
    y = dm.apply(x, sample_rate, params).double().numpy()[0]
    wet = y.copy()
    wet[0] -= 1.0  # remove the dry impulse
    pre = int(round(0.02 * sample_rate))
    assert np.all(np.abs(wet[: pre - 1]) < 1e-6)  # nothing before the pre-delay
    assert np.sum(wet ** 2) == pytest.approx(10 ** (-10.0 / 10), rel=0.01)  # unit-energy IR at -10 dB
    # Schroeder backward integration (ISO 3382-1), T20 fit from -5 to -25 dB, extrapolated to 60 dB
    edc = np.cumsum(wet[pre:][::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    t = np.arange(len(edc_db)) / sample_rate
    sel = (edc_db <= -5) & (edc_db >= -25)
    slope = np.polyfit(t[sel], edc_db[sel], 1)[0]
    assert -60.0 / slope == pytest.approx(0.8, rel=0.05)


@pytest.mark.parametrize("mode", ["expand", "compress"])
def test_logged_dynamics_reproduce_the_stage_and_move_the_crest_factor(mode):
    from mastering.dsp.dynamics import compressor, expander

    sample_rate = 44100
    x, env = _drum_like(sample_rate)
    params = only(first_seed_with("dynamics", mode=mode), "dynamics")
    params["stages"]["dynamics"].update(depth_db=8.0, knee_db=2.0, ratio=1.5 if mode == "expand" else 3.0,
                                        release_ms=20.0)
    y, log = dm.apply(x, sample_rate, params, return_log=True)
    d = log["stages"]["dynamics"]
    assert d["threshold_db"] == pytest.approx(20 * np.log10(float(x.abs().max())) - d["depth_db"], abs=1e-3)
    fn = expander if mode == "expand" else compressor
    ref = fn(x[None], sample_rate, threshold_db=d["threshold_db"], ratio=d["ratio"], attack_ms=d["attack_ms"],
             release_ms=d["release_ms"], knee_db=d["knee_db"])[0]
    torch.testing.assert_close(y, ref, atol=2e-4, rtol=0)

    loud, quiet = torch.from_numpy(env > 0.5), torch.from_numpy(env < 0.5)

    def burst_to_bed_db(s):  # level of the bursts over the bed (RMS), the range the stage changes
        s = s.double()
        return float(10 * torch.log10(s[:, loud].pow(2).mean() / s[:, quiet].pow(2).mean()))

    change = burst_to_bed_db(y) - burst_to_bed_db(x)
    if mode == "expand":
        assert change > 1.0
    else:
        assert change < -1.0


def _drum_like(sample_rate):
    """1 kHz tone bursts (80 ms at 0.9, every 250 ms) over a bed at 0.05: a clear crest factor."""
    n = 2 * sample_rate
    t = np.arange(n) / sample_rate
    env = np.where((t % 0.25) < 0.08, 0.9, 0.05)
    tone = np.sin(2 * np.pi * 1000 * t)
    x = torch.from_numpy(np.stack([tone * env, tone * env * 0.8]).astype(np.float32))
    return x, env


def test_full_chain_keeps_shape_and_length_and_params_vector_is_fixed_length():
    x = pink(2.0, 44100, 2, seed=7)
    for seed in range(3):
        y, log = dm.demaster(x, 44100, seed)
        assert y.shape == x.shape and torch.isfinite(y).all()
        v = dm.params_vector(log)
        assert v.shape == (len(dm.PARAM_VECTOR_NAMES),) and np.isfinite(v).all()
    yb = dm.apply(x[None], 44100, dm.sample_params(0, 2.0))
    assert yb.shape == (1, 2, x.shape[-1])


def test_bad_input_is_refused():
    params = dm.sample_params(0, 1.0)
    with pytest.raises(ValueError, match="one signal"):
        dm.apply(torch.zeros(2, 2, 44100), 44100, params)
    bad = copy.deepcopy(params)
    bad["stages"]["chorus"] = {}
    with pytest.raises(ValueError, match="unknown demastering stage"):
        dm.apply(torch.zeros(2, 44100), 44100, bad)
    with pytest.raises(ValueError, match="duration_s"):
        dm.sample_params(0, duration_s=0.0)


def test_demaster_command_writes_audio_and_the_applied_parameters(tmp_path):
    src = tmp_path / "in.wav"
    save_audio(src, pink(2.0, 22050, 2, seed=8, level_dbfs=-12.0), 22050)
    out = tmp_path / "out.wav"
    res = subprocess.run([sys.executable, "-m", "mastering.cli", "demaster", str(src), str(out), "--seed", "4"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    log = json.loads((tmp_path / "out.wav.json").read_text())
    assert log["seed"] == 4 and log["stages"] == dm.apply(load_audio(src)[0], 22050, dm.sample_params(4, 2.0),
                                                          return_log=True)[1]["stages"]
    y, rate = load_audio(out)
    meter = pyln.Meter(rate)
    assert meter.integrated_loudness(y.numpy().T.astype(np.float64)) == pytest.approx(
        log["output"]["loudness_lufs"], abs=0.1)
    with pytest.raises(AudioError, match="overwrite"):
        dm.demaster_file(src, src, seed=1)
