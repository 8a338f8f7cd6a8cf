"""Demastering chain (mastering/data/demaster.py): logged parameters are the applied ones.

References: loudness by pyloudnorm (ITU-R BS.1770-4), filter responses by scipy.signal.sosfreqz,
spectra by scipy.signal.welch, the dynamics stage re-run through mastering.dsp.dynamics. The
streamed path (files of any length) is checked against the in-memory one; the command line's
refusals are checked for one clear line, the exit code, and an untouched input.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pyloudnorm as pyln
import pytest
import scipy.signal as ss
import soundfile as sf
import torch

from mastering.data import demaster as dm
from mastering.dsp.signals import pink_noise
from mastering.io import AudioError, iter_audio, load_audio, read_audio_span, save_audio


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
    with pytest.raises(ValueError, match="non-negative"):
        dm.sample_params(-5)
    with pytest.raises(ValueError, match=f"at least {dm.MIN_SAMPLES} samples"):
        dm.apply(torch.zeros(2, 10), 44100, first_seed_with("gaussian_eq"))


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


# --------------------------------------------------------------------------------------------
# streamed processing (demaster_file, `mastering demaster`)


def as_blocks(x: np.ndarray, size: int):
    """A ``[channels, samples]`` array as :data:`mastering.data.demaster.Blocks` of ``size`` samples."""
    return lambda: (x[:, i:i + size] for i in range(0, x.shape[-1], size))


def beat(seconds, sample_rate, channels, seed):
    """Pink noise under a 2 Hz on/off envelope: material that moves the dynamics stage."""
    x = pink(seconds, sample_rate, channels, seed=seed, level_dbfs=-14.0).numpy()
    t = np.arange(x.shape[-1]) / sample_rate
    return (x * np.where(t % 0.5 < 0.1, 1.0, 0.3)).astype(np.float32)


def streamed(blocks, sample_rate, params):
    out = []
    record = dm.apply_stream(blocks, sample_rate, params, out.append)
    return np.concatenate(out, axis=-1), record


@pytest.mark.parametrize(("seed", "sample_rate", "channels"), [(26, 44100, 2), (34, 44100, 2), (0, 22050, 1)])
def test_streamed_chain_equals_the_whole_signal_chain(seed, sample_rate, channels):
    # seeds 26 (expand) and 34 (compress) draw every stage; seed 0 has no tilt, reverb or echo
    x = beat(20.0, sample_rate, channels, seed=seed)
    params = dm.sample_params(seed, duration_s=x.shape[-1] / sample_rate)
    ref, ref_record = dm.apply(torch.from_numpy(x), sample_rate, params, return_log=True)
    for size in (3001, x.shape[-1]):  # odd blocks (not whole STFT hops), and one block
        y, record = streamed(as_blocks(x, size), sample_rate, params)
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.abs(y - ref.numpy()).max() < 1e-5, size
        assert record == ref_record


def test_streamed_chain_takes_blocks_shorter_than_an_stft_frame():
    x = beat(3.0, 44100, 2, seed=1)
    params = dm.sample_params(0, duration_s=3.0)  # dynamics, Gaussian EQ, level
    y, record = streamed(as_blocks(x, 700), 44100, params)
    ref, ref_record = dm.apply(torch.from_numpy(x), 44100, params, return_log=True)
    assert np.abs(y - ref.numpy()).max() < 1e-5 and record == ref_record
    with pytest.raises(ValueError, match=f"at least {dm.MIN_SAMPLES} samples"):
        streamed(as_blocks(x[:, :1000], 300), 44100, params)


@pytest.mark.parametrize(("rate", "channels"), [(48000, None), (22050, 1), (None, 2)])
def test_streamed_reading_equals_load_audio(tmp_path, rate, channels):
    src = tmp_path / "in.wav"
    sf.write(src, beat(3.0, 44100, 2, seed=2).T, 44100, subtype="FLOAT")
    whole, _ = load_audio(src, sample_rate=rate, channels=channels)
    blocks = list(iter_audio(src, sample_rate=rate, channels=channels, block_frames=1234))
    assert np.abs(np.concatenate(blocks, axis=-1) - whole.numpy()).max() < 1e-6
    for start, stop in ((0, 1000), (5000, 40000), (whole.shape[-1] - 777, whole.shape[-1])):
        span = read_audio_span(src, start, stop, sample_rate=rate, channels=channels)
        assert np.abs(span.numpy() - whole[:, start:stop].numpy()).max() < 1e-6
    with pytest.raises(AudioError, match="past the end"):
        read_audio_span(src, whole.shape[-1] - 10, whole.shape[-1] + 10, sample_rate=rate, channels=channels)


def test_streamed_resampling_has_no_seams(tmp_path):
    src = tmp_path / "sine.wav"
    t = np.arange(2 * 44100) / 44100
    sf.write(src, 0.5 * np.sin(2 * np.pi * 1000.0 * t), 44100, subtype="FLOAT")
    y = np.concatenate(list(iter_audio(src, sample_rate=48000, block_frames=1000)), axis=-1)[0]
    ideal = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(y.size) / 48000)
    inner = slice(480, y.size - 480)  # away from the zero padding at both ends
    assert np.abs(y - ideal)[inner].max() < 1e-3  # a block seam would leave a step far above this
    assert np.abs(np.diff(y[inner], 2)).max() < 1.01 * np.abs(np.diff(ideal[inner], 2)).max()


@pytest.mark.parametrize("sample_rate", [None, 48000])
def test_demaster_file_writes_what_the_in_memory_chain_gives(tmp_path, sample_rate):
    src = tmp_path / "in.flac"
    sf.write(src, beat(20.0, 44100, 2, seed=3).T, 44100, subtype="PCM_24")
    x, rate = load_audio(src, sample_rate=sample_rate)
    ref, ref_record = dm.demaster(x, rate, seed=26)  # the whole file in memory
    out, log_path = dm.demaster_file(src, tmp_path / "out.wav", seed=26, sample_rate=sample_rate,
                                     block_frames=30000)
    y, out_rate = load_audio(out)
    assert out_rate == rate and y.shape == ref.shape
    assert float((y - ref).abs().max()) < 1e-5  # 24-bit PCM holds 1.2e-7 steps
    record = dm.read_log(log_path)
    assert record.pop("input_file") == str(src)
    assert record == json.loads(json.dumps(ref_record))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.flac", "out.wav", "out.wav.json"]  # no temporaries


def demaster_cli(*args: str) -> tuple[int, str]:
    """``mastering demaster ARGS`` in this process: ``(exit code, stderr)``."""
    import contextlib
    import io

    from mastering.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["demaster", *args])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, err.getvalue()


@pytest.fixture()
def track(tmp_path):
    path = tmp_path / "in.wav"
    sf.write(path, beat(1.0, 22050, 2, seed=4).T, 22050, subtype="PCM_24")
    return path


def assert_refused(code: int, stderr: str, expected_code: int, *phrases: str) -> None:
    assert code == expected_code, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("mastering demaster: error: "), stderr
    assert "Traceback" not in stderr
    for phrase in phrases:
        assert phrase in stderr, stderr


@pytest.mark.parametrize(("args", "phrase"), [
    (["--seed", "-5"], "--seed: must be 0 or more"),
    (["--seed", "x"], "--seed: expected a whole number"),
    (["--seed", "1", "--sample-rate", "0"], "--sample-rate: must lie in 8000-384000 Hz"),
    (["--seed", "1", "--sample-rate", "1000000"], "--sample-rate: must lie in 8000-384000 Hz"),
])
def test_demaster_command_refuses_bad_arguments(tmp_path, track, args, phrase):
    before = track.read_bytes()
    assert_refused(*demaster_cli(str(track), str(tmp_path / "out.wav"), *args), 2, phrase)
    assert track.read_bytes() == before and not (tmp_path / "out.wav").exists()


def test_demaster_command_refuses_unusable_input(tmp_path):
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, np.full((10, 2), 0.1, np.float32), 44100)
    assert_refused(*demaster_cli(str(tiny), str(tmp_path / "a.wav"), "--seed", "1"), 1,
                   "too short: 10 sample(s)", f"at least {dm.MIN_SAMPLES}")
    bad = tmp_path / "nan.wav"
    data = np.zeros((4410, 2), np.float32)
    data[100] = np.nan
    sf.write(bad, data, 44100, subtype="FLOAT")
    assert_refused(*demaster_cli(str(bad), str(tmp_path / "b.wav"), "--seed", "1"), 1, "NaN/Inf")
    (tmp_path / "text.wav").write_text("not audio")
    assert_refused(*demaster_cli(str(tmp_path / "text.wav"), str(tmp_path / "c.wav"), "--seed", "1"), 1,
                   "not a readable audio file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav", "text.wav", "tiny.wav"]


def test_demaster_command_never_overwrites_its_input(tmp_path, track):
    before = track.read_bytes()
    assert_refused(*demaster_cli(str(track), str(track), "--seed", "1", "--force"), 1, "overwrite the input")
    named = tmp_path / "out.wav.json"  # IN named OUT.json: the record would replace it
    track.rename(named)
    assert_refused(*demaster_cli(str(named), str(tmp_path / "out.wav"), "--seed", "1", "--force"), 1,
                   "would overwrite the input file")
    assert named.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav.json"]


def test_demaster_command_replaces_an_existing_output_only_with_force(tmp_path, track):
    out, log = tmp_path / "out.wav", tmp_path / "out.wav.json"
    before = track.read_bytes()
    out.write_bytes(b"keep me")
    assert_refused(*demaster_cli(str(track), str(out), "--seed", "1"), 1, "already exists; pass --force")
    assert out.read_bytes() == b"keep me"
    out.unlink()
    log.write_text("{}")
    assert_refused(*demaster_cli(str(track), str(out), "--seed", "1"), 1, f"{log} already exists")
    assert log.read_text() == "{}" and not out.exists()
    out.write_bytes(b"replace me")
    for flag in ("--force", "-y"):
        assert demaster_cli(str(track), str(out), "--seed", "1", flag) == (0, "")
        assert load_audio(out)[0].shape == load_audio(track)[0].shape
        assert dm.read_log(log)["seed"] == 1
    assert track.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav", "out.wav.json"]


def write_long(path, seconds: float, sample_rate: int = 44100) -> None:
    """A stereo file written block by block (the test itself stays small in memory)."""
    with sf.SoundFile(path, "w", samplerate=sample_rate, channels=2, subtype="PCM_16") as fh:
        for k in range(int(np.ceil(seconds / 10))):
            fh.write(beat(min(10.0, seconds - 10 * k), sample_rate, 2, seed=k).T)


# The child's own peak: VmHWM belongs to the process image (getrusage's ru_maxrss would carry
# the peak of this test process, inherited through fork and exec).
_PEAK_RSS = """
import sys
from mastering.cli import main
code = main(sys.argv[1:])
print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])  # KiB
sys.exit(code)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status")
def test_demaster_memory_does_not_grow_with_the_track(tmp_path):
    # Seed 26 draws every stage (a 0.9 s reverb among them). Held in memory, two minutes of
    # stereo took about 2 GB more than ten seconds; streamed, the peak (torch's import, about
    # 1.1 GB, included) stays put.
    peaks = {}
    for seconds in (10.0, 120.0):
        src, out = tmp_path / f"in{seconds:.0f}.wav", tmp_path / f"out{seconds:.0f}.wav"
        write_long(src, seconds)
        res = subprocess.run([sys.executable, "-c", _PEAK_RSS, "demaster", str(src), str(out), "--seed", "26"],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        peaks[seconds] = int(res.stdout.split()[-1]) * 1024
    assert peaks[120.0] < peaks[10.0] + 100e6, peaks
    assert peaks[120.0] < 1.5e9, peaks


def test_demaster_command_removes_its_temporary_file_when_terminated(tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_long(src, 60.0)
    proc = subprocess.Popen([sys.executable, "-m", "mastering.cli", "demaster", str(src), str(out), "--seed", "26"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".out.wav.tmp-") for p in tmp_path.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


# --------------------------------------------------------------------------------------------
# the simple chain of the evaluation (simple_degrade)


def test_simple_degrade_is_seeded_and_records_every_drawn_parameter():
    x = pink(2.0, 22050, 2, seed=3)
    ya, ra = dm.simple_degrade(x, 22050, seed=7)
    yb, rb = dm.simple_degrade(x, 22050, seed=7)
    assert torch.equal(ya, yb) and ra == rb
    yc, rc = dm.simple_degrade(x, 22050, seed=8)
    assert rc != ra and not torch.allclose(ya, yc)
    assert ya.shape == x.shape and ya.dtype == torch.float32
    assert ra["chain"] == "simple" and ra["seed"] == 7 and ra["sample_rate"] == 22050
    assert set(dm.SIMPLE_RANGES) <= set(ra) and json.loads(json.dumps(ra)) == ra
    batch = torch.stack([x, 0.5 * x])  # [batch, channels, samples]: the same parameters for every item
    yd, rd = dm.simple_degrade(batch, 22050, seed=7)
    assert yd.shape == batch.shape and rd == ra
    assert torch.allclose(yd[0], ya, atol=1e-6) and torch.allclose(yd[1], 0.5 * ya, atol=1e-6)
    for seed in range(200):
        r = dm.simple_degrade(x[..., :2048], 22050, seed=seed)[1]
        for k, spec in dm.SIMPLE_RANGES.items():
            assert spec[0] <= r[k] <= spec[1], k
    with pytest.raises(ValueError, match="seed"):
        dm.simple_degrade(x, 22050, seed=-1)
    with pytest.raises(ValueError, match="channels, samples"):
        dm.simple_degrade(x[0], 22050, seed=1)


@pytest.mark.parametrize("sample_rate", [22050, 44100])
def test_simple_degrade_level_drop_is_the_measured_loudness_change(sample_rate):
    x = pink(3.0, sample_rate, 2, seed=1, level_dbfs=-14.0)
    meter = pyln.Meter(sample_rate)
    before = meter.integrated_loudness(x.numpy().T.astype(np.float64))
    for seed in range(3):
        p = dm._simple_params(seed)
        flat = dict(p, low_shelf_gain_db=0.0, peak_gain_db=0.0, high_shelf_gain_db=0.0)  # the level stage alone
        y = dm._apply_simple(x[None], sample_rate, flat)[0]
        after = meter.integrated_loudness(y.numpy().T.astype(np.float64))
        assert after - before == pytest.approx(p["level_db"], abs=0.5)
        assert -12.0 <= p["level_db"] <= -3.0
        # the whole chain: a 1 kHz tone changes by the drop plus the drawn bands' response there
        t = torch.arange(sample_rate * 2, dtype=torch.float64) / sample_rate
        tone = (0.1 * torch.sin(2 * np.pi * 1000.0 * t)).repeat(2, 1).float()
        yt, r = dm.simple_degrade(tone, sample_rate, seed=seed)
        sos = np.stack([_rbj_sos(k, r[f], r[g], r["shelf_q"], sample_rate)
                        for k, f, g in (("low_shelf", "low_shelf_freq_hz", "low_shelf_gain_db"),
                                        ("high_shelf", "high_shelf_freq_hz", "high_shelf_gain_db"))])
        _, h = ss.sosfreqz(sos, worN=[1000.0], fs=sample_rate)
        peak = ss.tf2sos(*_rbj_peak(r["peak_freq_hz"], r["peak_gain_db"], r["peak_q"], sample_rate))
        _, hp = ss.sosfreqz(peak, worN=[1000.0], fs=sample_rate)
        expected = r["level_db"] + 20 * np.log10(np.abs(h[0] * hp[0]))
        half = slice(sample_rate // 2, None)  # past the filters' onset
        measured = 20 * np.log10(float(yt[..., half].pow(2).mean().sqrt() / tone[..., half].pow(2).mean().sqrt()))
        assert measured == pytest.approx(expected, abs=0.1)


def _rbj_peak(f0, gain_db, q, fs):
    """RBJ Audio-EQ-Cookbook peaking filter, ``(b, a)``, written out here as the independent reference."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2 * q)
    c = np.cos(w0)
    return [1 + alpha * a, -2 * c, 1 - alpha * a], [1 + alpha / a, -2 * c, 1 - alpha / a]


def test_simple_degrade_shelves_move_the_low_and_high_band_in_the_drawn_direction():
    sample_rate = 44100
    x = pink(6.0, sample_rate, 2, seed=4)
    f, px = psd_db(x.numpy(), sample_rate)
    low, high = (f > 20) & (f < 50), (f > 16000) & (f < 20000)
    checked = 0
    for seed in range(12):
        y, r = dm.simple_degrade(x, sample_rate, seed=seed)
        _, py = psd_db(y.numpy(), sample_rate)
        d_low = float(np.mean(py[low] - px[low])) - r["level_db"]
        d_high = float(np.mean(py[high] - px[high])) - r["level_db"]
        for change, gain in ((d_low, r["low_shelf_gain_db"]), (d_high, r["high_shelf_gain_db"])):
            if abs(gain) > 1.5:  # the peaking band's skirt is well under this far from it
                assert np.sign(change) == np.sign(gain), (seed, change, gain)
                checked += 1
    assert checked >= 10
