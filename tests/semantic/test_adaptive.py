"""Input-adaptive semantic EQ: identity at intensity 0, the applied EQ is the reported one, the
encoder reads "warm" EQ as warm, a warmer track gets less "warm", the baselines, the bundle, the
command line (`mastering master --style`, `mastering analyze`)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import signal

from mastering import cli, paths
from mastering.dsp.signals import pink_noise
from mastering.io import AudioError
from mastering.semantic.adaptive import (
    SemanticEQ,
    adaptive_semantic_eq,
    build_semantic_eq,
    floweq_eq,
    score_from_position,
    semantic_eq_settings,
    semantic_scores,
    static_eq,
    suggestion,
)
from mastering.semantic.evaluate import curve_metrics
from mastering.semantic.descriptors import training_index
from mastering.semantic.safedb import SAFEDB_FILENAME, load_safedb, params_array, safe_response_db
from mastering.semantic.vae import encode_settings


@pytest.fixture(scope="module")
def bundle():
    if not (paths.safedb_dir() / SAFEDB_FILENAME).is_file():
        pytest.skip("SAFE-DB not found (set MASTERING_SAFEDB_DIR or run `make data`)")
    model, folder = build_semantic_eq("smoke", progress=False)
    return model


def _music(seconds, sample_rate, channels, seed=0):
    """Pink noise shaped like a master (extra low end, high roll-off) with a rhythmic envelope."""
    x = pink_noise(int(seconds * sample_rate), channels=channels, batch=1, seed=seed, dtype=torch.float64)
    sos = signal.butter(2, min(6000.0, 0.4 * sample_rate), "low", fs=sample_rate, output="sos")
    x = torch.from_numpy(signal.sosfilt(sos, x.numpy(), axis=-1))
    t = torch.arange(x.shape[-1], dtype=torch.float64) / sample_rate
    return (x * (0.5 + 0.5 * torch.exp(-6 * (t % 0.5)))).float()


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_intensity_zero_is_the_identity(bundle, sample_rate, channels):
    x = _music(2.0, sample_rate, channels, seed=channels)
    for fn in (adaptive_semantic_eq, static_eq, floweq_eq):
        y, settings = fn(x, sample_rate, "warm", 0.0, bundle)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float((y - x).abs().max()) < 1e-6 * float(x.abs().max()), fn.__name__
    settings = semantic_eq_settings(bundle, x, sample_rate, "warm", 0.0, one_sided=False)
    assert np.abs(settings.response_db()).max() < 1e-6
    # ... and a real step is not.
    y, _ = adaptive_semantic_eq(x, sample_rate, "bright", 1.0, bundle)
    assert float((y - x).abs().max()) > 1e-3 * float(x.abs().max())


def test_adaptive_eq_is_the_step_between_two_decoded_settings(bundle):
    x = _music(3.0, 44100, 2)
    s = semantic_eq_settings(bundle, x, 44100, "warm", 0.7, one_sided=False)
    z_a, z_new = s.z_audio, s.z_new
    np.testing.assert_allclose(z_new, z_a + 0.7 * (s.z_target - z_a), atol=1e-12)
    freqs = bundle.reference_freqs_hz
    expected = safe_response_db(bundle.decode(z_new), freqs) - safe_response_db(bundle.decode(z_a), freqs)
    np.testing.assert_allclose(s.response_db(freqs), expected, atol=1e-6)
    assert len(s.kinds) == 10 and s.freq_hz.shape == (1, 10)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_the_applied_eq_is_the_reported_one(bundle, sample_rate):
    """Welch spectrum ratio of processed/unprocessed noise = the settings' magnitude response."""
    noise = pink_noise(8 * sample_rate, channels=1, batch=1, seed=4, dtype=torch.float64)
    y, s = static_eq(noise, sample_rate, "bright", 1.0, bundle)
    f, p_in = signal.welch(noise[0, 0].numpy(), fs=sample_rate, nperseg=8192)
    _, p_out = signal.welch(y[0, 0].numpy(), fs=sample_rate, nperseg=8192)
    band = (f > 100) & (f < 10000)
    measured = 10 * np.log10(p_out[band] / p_in[band])
    np.testing.assert_allclose(measured, s.response_db(f[band], sample_rate)[0], atol=0.3)


def test_encoder_reads_warm_eq_as_warm(bundle):
    """Pink noise through "warm" settings lands nearer the warm centroid than the bright one."""
    from mastering.profiles import get_profile
    from mastering.semantic.encoder import render_batch
    from mastering.semantic.safedb import load_safedb
    from mastering.semantic.vae import fit_or_load

    df = load_safedb()
    _, record, _ = fit_or_load(df, get_profile("smoke")["vae"]["train"], "smoke", progress=False)  # the bundle's run
    held_out = df.iloc[record["history"]["val_index"]]  # contributors unseen by the VAE and the encoder
    warm = held_out[held_out["descriptor"] == "warm"].head(40)
    bright = held_out[held_out["descriptor"] == "bright"].head(40)
    assert len(warm) >= 20 and len(bright) >= 20
    zw, zb = bundle.target_z("warm"), bundle.target_z("bright")
    for rows, own, other in ((warm, zw, zb), (bright, zb, zw)):
        audio = render_batch(params_array(rows), 44100, 44100, seed=7)
        z = bundle.encode(audio, 44100)
        nearer = np.linalg.norm(z - own, axis=1) < np.linalg.norm(z - other, axis=1)
        assert nearer.mean() >= 0.7
        assert np.linalg.norm(z.mean(0) - own) < np.linalg.norm(z.mean(0) - other)
    # The medoid setting itself, on fresh noise.
    audio = render_batch(bundle.static_settings["warm"][None], 44100, 2 * 44100, seed=8)
    z = bundle.encode(audio, 44100)[0]
    assert np.linalg.norm(z - zw) < np.linalg.norm(z - zb)


def test_a_warmer_track_gets_less_warm_eq_and_scores_warmer(bundle):
    x = _music(6.0, 44100, 2, seed=3)
    warmer, _ = static_eq(x, 44100, "warm", 1.0, bundle)
    ref = bundle.reference_curves["warm"]
    amounts = []
    for audio in (x, warmer):
        s = semantic_eq_settings(bundle, audio, 44100, "warm", 1.0)
        amounts.append(curve_metrics(s.response_db(), ref)["amount_db"][0])
    # The smoke encoder (a few steps on pink noise) reads the extra warmth only weakly (about 0.05 dB
    # less EQ); the direction is what must hold. The product's axis method is tested on music in
    # test_axis.py.
    assert amounts[1] < amounts[0]
    scores = [semantic_scores(a, 44100, bundle, ["warm"])["score"].iloc[0] for a in (x, warmer)]
    assert scores[1] > scores[0]
    # The baselines do not look at the audio.
    for method in ("static", "floweq"):
        r = [semantic_eq_settings(bundle, a, 44100, "warm", 1.0, method).response_db() for a in (x, warmer)]
        np.testing.assert_allclose(r[0], r[1])


def test_one_sided_step_never_goes_backwards_and_intensity_is_monotone(bundle):
    x = torch.cat([_music(3.0, 44100, 2, seed=s) for s in range(3)])
    warmer, _ = static_eq(x, 44100, "warm", 2.0, bundle)
    axis = bundle.target_z("warm") - bundle.neutral_z
    for audio in (x, warmer):
        z = bundle.encode(audio, 44100)
        along = []
        for i in (0.0, 0.5, 1.0, 1.5, 2.0):
            s = semantic_eq_settings(bundle, audio, 44100, "warm", i, z_audio=z)
            step = (s.z_new - s.z_audio) @ axis
            assert np.all(step >= -1e-9)
            along.append(step)
        assert np.all(np.diff(np.stack(along), axis=0) >= -1e-9)


def test_scores_and_suggestions():
    assert score_from_position(0.0) == pytest.approx(0.5)
    assert score_from_position(1.0) > 0.85 and score_from_position(-1.0) < 0.15
    text, intensity = suggestion("warm", 0.9)
    assert "already warm" in text and intensity == pytest.approx(0.1)
    text, intensity = suggestion("bright", 0.1)
    assert "not bright" in text and intensity == pytest.approx(0.9)


def test_bad_input_is_refused(bundle):
    x = _music(1.0, 44100, 2)
    with pytest.raises(ValueError, match="intensity"):
        adaptive_semantic_eq(x, 44100, "warm", 2.5, bundle)
    with pytest.raises(ValueError, match="intensity"):
        adaptive_semantic_eq(x, 44100, "warm", float("nan"), bundle)
    with pytest.raises(ValueError, match="unknown descriptor"):
        adaptive_semantic_eq(x, 44100, "purple", 1.0, bundle)
    with pytest.raises(ValueError, match="method"):
        semantic_eq_settings(bundle, x, 44100, "warm", 1.0, "magic")
    with pytest.raises(AudioError, match="silent"):
        adaptive_semantic_eq(torch.zeros(1, 2, 44100), 44100, "warm", 1.0, bundle)
    bad = x.clone()
    bad[0, 0, 10] = float("nan")
    with pytest.raises(AudioError, match="NaN"):
        adaptive_semantic_eq(bad, 44100, "warm", 1.0, bundle)
    with pytest.raises(AudioError, match="too short"):
        adaptive_semantic_eq(x[..., :100], 44100, "warm", 1.0, bundle)
    # Descriptors are normalized like SAFE-DB's.
    _, s = adaptive_semantic_eq(x, 44100, "  Warmer ", 0.5, bundle)
    assert s.descriptor == "warm"


def test_bundle_round_trip(bundle, tmp_path):
    x = _music(2.0, 44100, 2)
    loaded = SemanticEQ.load(bundle.save(tmp_path / "bundle"))
    a = semantic_eq_settings(bundle, x, 44100, "bright", 0.8)
    b = semantic_eq_settings(loaded, x, 44100, "bright", 0.8)
    np.testing.assert_allclose(a.response_db(), b.response_db(), atol=1e-5)
    assert loaded.descriptors == bundle.descriptors == ["bright", "warm"]
    # Centroids and counts are the VAE's training contributors' (the smoke split), not every row's.
    df = load_safedb()
    train = training_index(df, "smoke")
    rows = df.iloc[train]
    for word in ("warm", "bright", "clear"):
        codes = encode_settings(bundle.vae, rows[rows["descriptor"] == word])
        # float32 codes: equal up to the order of the sums
        np.testing.assert_allclose(bundle.target_z(word), codes.mean(0), atol=1e-6)
        assert bundle.centroids.loc[word, "count"] == len(codes)
    assert bundle.config["descriptors"]["offered"] == {"bright": 446, "warm": 446}
    assert bundle.config["descriptors"]["min_settings"] == 50 and bundle.config["descriptors"]["train_rows"] == len(train)
    with pytest.raises(FileNotFoundError, match="semantic_eq.json"):
        SemanticEQ.load(tmp_path / "nowhere")


def test_stimulus_systems_for_the_listening_test(bundle):
    from listening_test.systems import stimulus_systems

    systems = stimulus_systems(bundle)
    assert set(systems) == {"adaptive_semantic_eq", "floweq_style", "static_eq"}
    x = _music(2.0, 44100, 2)
    for s in systems.values():
        assert not s.placeholder
        y = s.process(x, 44100, "clear")
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_master_with_style_and_analyze_scores(bundle, tmp_path, capsys):
    """`mastering master --style warm --intensity X` on a real checkpoint; intensity 0 adds nothing."""
    from mastering.training import TensorPairs, Trainer, train_config

    x = torch.cat([_music(0.5, 44100, 2, seed=s) for s in range(2)])
    data = TensorPairs(x, x * 3.0)
    tiny = dict(latent_dim=8, encoder={"stem_channels": 8, "block_channels": [8, 8, 8, 8]}, decoder_hidden=8,
                residual_channels=[4, 8, 8], dynamics_hidden=8)
    cfg = train_config("1a", "smoke", segment_seconds=0.5, batch_size=2, epochs=1, progress=False,
                       model=dict(tiny, dynamics=False))
    Trainer(cfg, data, data, run_dir=tmp_path / "run", publish=False).fit()
    ckpt = tmp_path / "run" / "best.pt"
    src = tmp_path / "in.wav"
    sf.write(str(src), (0.3 * _music(8.0, 44100, 2, seed=9)[0]).numpy().T, 44100, subtype="FLOAT")
    bundle_dir = bundle.save(tmp_path / "bundle")
    outs = {}
    for intensity in ("0", "1"):
        out = tmp_path / f"warm{intensity}.wav"
        rc = cli.main(["master", str(src), str(out), "--checkpoint", str(ckpt), "--style", "warm", "--intensity",
                       intensity, "--semantic-model", str(bundle_dir), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert rc == 0
        assert report["style"]["descriptor"] == "warm" and 0 <= report["style"]["score_before"] <= 1
        assert report["output_measured"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.5)
        outs[intensity] = sf.read(str(out))[0]
    rc = cli.main(["master", str(src), str(tmp_path / "plain.wav"), "--checkpoint", str(ckpt), "--json"])
    capsys.readouterr()
    plain = sf.read(str(tmp_path / "plain.wav"))[0]
    assert np.abs(outs["0"] - plain).max() < 1e-4
    assert np.abs(outs["1"] - plain).max() > 1e-3
    rc = cli.main(["master", str(src), str(tmp_path / "x.wav"), "--checkpoint", str(ckpt), "--style", "purple",
                   "--semantic-model", str(bundle_dir)])
    assert rc == 1 and "unknown style 'purple': available: bright, warm" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()
    rc = cli.main(["analyze", str(src), "--semantic-model", str(bundle_dir)])
    scores = json.loads(capsys.readouterr().out)["semantic_scores"]
    assert rc == 0 and scores["available"] and set(scores["scores"]) == {"warm", "bright"}
    assert all(0 <= v["score"] <= 1 for v in scores["scores"].values())
