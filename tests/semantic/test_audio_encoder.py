"""Audio encoder into the semantic latent: front end, objectives, a tiny real training run on
pink noise + SAFE-DB EQ, held-out descriptor separation, checkpoints."""

import numpy as np
import pytest
import torch

from mastering import paths
from mastering.dsp.signals import pink_noise
from mastering.semantic.encoder import (
    AudioLatentEncoder,
    axis_r2,
    encode_audio,
    encoder_loss,
    evaluate_encoder,
    load_encoder,
    render_batch,
    save_encoder,
    train_encoder,
)
from mastering.semantic.safedb import SAFEDB_FILENAME, load_safedb, params_array, safe_response_db
from mastering.semantic.vae import decode_settings, descriptor_embeddings, train_vae

SAFE_CSV = paths.safedb_dir() / SAFEDB_FILENAME
SMALL = dict(sample_rate=44100, n_fft=2048, hop_length=1024, n_mels=48, width=16)


@pytest.fixture(scope="module")
def setup():
    if not SAFE_CSV.is_file():
        pytest.skip(f"SAFE-DB not found at {SAFE_CSV} (set MASTERING_SAFEDB_DIR or run `make data`)")
    df = load_safedb()
    vae, history = train_vae(df, epochs=60, hidden_sizes=(64, 64), batch_size=256, lr=1e-2, patience=None, progress=False)
    enc, enc_history = train_encoder(vae, df, history["train_index"], model_kwargs=SMALL, steps=60, batch_size=16,
                                     lr=2e-3, segment_seconds=0.75, seed=0, progress=False)  # fmt: skip
    return df, vae, history, enc, enc_history


@pytest.mark.parametrize("arch", ["cnn", "transformer", "ltas"])
@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_shapes_and_level_invariance(arch, sample_rate, channels):
    enc = AudioLatentEncoder(latent_dim=3, arch=arch, sample_rate=sample_rate, n_fft=1024, hop_length=512, n_mels=32, width=8).eval()
    x = pink_noise(sample_rate // 4, channels=channels, batch=2, seed=1)
    with torch.no_grad():
        z = enc(x)
        assert z.shape == (2, 3)
        # A gain change leaves the features (and so the code) unchanged.
        torch.testing.assert_close(enc.features(x), enc.features(4.0 * x), atol=1e-4, rtol=0)
        torch.testing.assert_close(enc(x), enc(0.25 * x), atol=1e-4, rtol=0)


def test_ltas_features_are_the_long_term_spectrum():
    """The LTAS front end averages the mel power over the frames before the log: an excerpt and
    its frames reversed in time give the same features, and a +6 dB low shelf raises the low bands
    against the high ones by about 6 dB."""
    from mastering.dsp.eq import parametric_eq

    enc = AudioLatentEncoder(latent_dim=2, arch="ltas", n_fft=2048, hop_length=2048, n_mels=32, width=8).eval()
    x = pink_noise(2048 * 20, channels=1, batch=1, seed=3)
    frames = x.reshape(1, 1, 20, 2048).flip(2).reshape(1, 1, -1)
    f = enc.features(x)
    assert f.shape == (1, 32, 1)
    torch.testing.assert_close(f[..., 0].mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(f, enc.features(frames), atol=0.1, rtol=0)  # within 1 dB (the joins click)
    y = parametric_eq(x.double(), 44100, torch.tensor([[1000.0]]), torch.tensor([[6.0]]), torch.tensor([[0.707]]),
                      kinds=("low_shelf",), mode="exact").float()
    lift = (enc.features(y) - f)[0, :, 0] * 10.0  # dB
    assert 5.0 < float(lift[:3].mean() - lift[-8:].mean()) < 6.5


def test_axis_r2_reads_the_position_along_the_axis():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 2))
    clusters = np.repeat(np.arange(40), 5)
    axis = np.array([1.0, 1.0])
    r2, lo, hi = axis_r2(z, z, axis, clusters, n_boot=200)
    assert r2 == pytest.approx(1.0) and lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    # Errors across the axis do not count; the position's mean gives 0; noise along it lowers R2.
    across = z + 0.7 * np.array([1.0, -1.0]) * rng.normal(size=(200, 1))
    assert axis_r2(z, across, axis, clusters, n_boot=0)[0] == pytest.approx(1.0)
    mean_only = np.tile(z.mean(0), (200, 1))
    assert axis_r2(z, mean_only, axis, n_boot=0)[0] == pytest.approx(0.0, abs=1e-12)
    noisy = z + 0.5 * rng.normal(size=z.shape)
    r2, lo, hi = axis_r2(z, noisy, -3 * axis, clusters, n_boot=500, seed=1)
    assert 0.6 < r2 < 0.95 and lo < r2 < hi
    with pytest.raises(ValueError, match="direction"):
        axis_r2(z, z, np.zeros(2))


def test_variant_settings_resolve_the_pool_length():
    from mastering.profiles import get_profile
    from mastering.semantic.encoder import ENCODER_VARIANTS, variant_settings

    s = variant_settings("smoke", ENCODER_VARIANTS["ltas-mse-music"], seed=3)
    assert s["model"]["arch"] == "ltas" and s["train"]["seed"] == 3
    assert s["train"]["segment_seconds"] == get_profile("smoke")["semantic_eval"]["pool_seconds"]
    assert variant_settings("smoke", ENCODER_VARIANTS["cnn-mse"])["train"]["segment_seconds"] == 0.75


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="arch"):
        AudioLatentEncoder(arch="rnn")
    with pytest.raises(ValueError, match="n_mels"):
        AudioLatentEncoder(n_mels=30)
    enc = AudioLatentEncoder(n_fft=1024, n_mels=16, width=4)
    with pytest.raises(ValueError, match=r"\[batch, channels, samples\]"):
        enc(torch.zeros(1000))
    with pytest.raises(ValueError, match="shorter than n_fft"):
        enc(torch.zeros(1, 1, 500))


def test_gradients_reach_the_audio():
    enc = AudioLatentEncoder(latent_dim=2, n_fft=256, hop_length=128, n_mels=16, width=2, sample_rate=8000).double()
    x = pink_noise(512, batch=1, seed=3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: enc(a), (x,), eps=1e-6, atol=1e-4, fast_mode=True)


def test_infonce_matches_cross_entropy_reference():
    torch.manual_seed(0)
    pred, target = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    d2 = ((pred[:, None, :] - target[None, :, :]) ** 2).sum(-1)
    log_p = torch.log_softmax(-d2 / 0.5, dim=1)
    ref = -log_p.diagonal().mean() + ((pred - target) ** 2).sum(-1).mean()
    torch.testing.assert_close(encoder_loss(pred, target, "infonce", temperature=0.5), ref)
    torch.testing.assert_close(encoder_loss(pred, target, "mse"), ((pred - target) ** 2).sum(-1).mean())
    with pytest.raises(ValueError, match="loss"):
        encoder_loss(pred, target, "l1")
    args = (pred.clone().requires_grad_(), target)
    assert torch.autograd.gradcheck(lambda p, t: encoder_loss(p, t, "infonce"), args)


def test_render_batch_applies_the_setting():
    """Rendered pink noise carries the SAFE curve: its spectrum over the dry noise's is the EQ."""
    setting = np.array([[9.0, 200.0, -6.0, 1000.0, 1.0, 0.0, 2000.0, 0.71, 0.0, 4000.0, 0.71, -9.0, 6000.0]])
    n = 2**15
    wet = render_batch(setting, 44100, n, seed=5, dry_pool=pink_noise(n, batch=1, seed=7))
    dry = pink_noise(n, batch=1, seed=7)
    ratio_db = 20 * np.log10(np.abs(np.fft.rfft(wet[0, 0].double().numpy())) / np.abs(np.fft.rfft(dry[0, 0].double().numpy())))
    f = np.fft.rfftfreq(n, 1 / 44100)
    for probe in (60.0, 1000.0, 15000.0):
        k = np.argmin(np.abs(f - probe))
        expected = safe_response_db(setting[0], f[k : k + 1], 44100)[0]
        # The transient at the start adds a little leakage; the steady-state gain holds to 0.5 dB.
        assert abs(np.median(ratio_db[k - 3 : k + 4]) - expected) < 0.5


def test_training_reduces_loss(setup):
    *_, enc_history = setup
    loss = enc_history["loss"]
    assert len(loss) == 60 and np.mean(loss[-10:]) < 0.8 * np.mean(loss[:10])  # measured 1.18 vs 1.95


def test_warm_and_bright_pink_noise_land_nearer_their_own_centroid(setup):
    df, vae, history, enc, _ = setup
    emb = descriptor_embeddings(vae, df.iloc[history["train_index"]])
    zc = ["z_0", "z_1"]
    warm, bright = emb.loc["warm", zc].to_numpy(float), emb.loc["bright", zc].to_numpy(float)
    settings = decode_settings(vae, np.stack([warm, bright]))  # the EQ of each centroid
    audio = render_batch(settings, 44100, 44100, seed=11)
    z = encode_audio(enc, audio, 44100)
    assert np.linalg.norm(z[0] - warm) < np.linalg.norm(z[0] - bright)
    assert np.linalg.norm(z[1] - bright) < np.linalg.norm(z[1] - warm)
    # The same holds for the real SAFE settings of held-out contributors, most of the time:
    # measured 0.93 on these 80 (0.89 on all 301 held-out rows); an untrained encoder gives 0.44.
    val = np.asarray(history["val_index"])
    pair = val[df["descriptor"].iloc[val].isin(["warm", "bright"]).to_numpy()][:80]
    _, summary = evaluate_encoder(enc, vae, df, pair, history["train_index"])
    assert summary["pair_accuracy"] > 0.75
    assert summary["r2"] > 0.5  # measured 0.72; untrained -0.10
    untrained = AudioLatentEncoder(latent_dim=2, **SMALL).eval()
    _, base = evaluate_encoder(untrained, vae, df, pair, history["train_index"])
    assert base["pair_accuracy"] < 0.75 and base["r2"] < 0.5


def test_save_load_round_trip(setup, tmp_path):
    *_, enc, _ = setup
    loaded, extra = load_encoder(save_encoder(enc, tmp_path / "enc.pt", note="x"), return_extra=True)
    assert loaded.config == enc.config and extra == {"note": "x"}
    x = pink_noise(22050, channels=2, batch=3, seed=2)
    with torch.no_grad():
        assert torch.equal(enc(x), loaded(x))
    # encode_audio resamples: 48 kHz input gives (nearly) the code of the 44.1 kHz original.
    from mastering.io import resample

    z44 = encode_audio(enc, x, 44100)
    z48 = encode_audio(enc, resample(x, 44100, 48000), 48000)
    np.testing.assert_allclose(z44, z48, atol=0.05)
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="AudioLatentEncoder"):
        load_encoder(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "missing.pt")


def test_music_ablation_and_infonce_run(setup):
    df, vae, history, *_ = setup
    music_like = pink_noise(44100, channels=2, batch=4, seed=9) * torch.linspace(0.2, 1.0, 44100)  # level-varying
    enc, hist = train_encoder(vae, df, history["train_index"], model_kwargs={**SMALL, "arch": "transformer"},
                              loss="infonce", steps=3, batch_size=8, dry_pool=music_like, progress=False)  # fmt: skip
    assert hist["settings"]["audio"] == "music" and hist["settings"]["loss"] == "infonce" and len(hist["loss"]) == 3
    assert np.isfinite(hist["loss"]).all()
    with pytest.raises(ValueError, match="dry_pool"):
        render_batch(params_array(df)[:2], 44100, 88200, seed=0, dry_pool=music_like)


def test_fit_or_load_reuses_an_identical_run_and_tabulates(setup, tmp_path, monkeypatch, paper_dir):
    from mastering.semantic.encoder import fit_or_load_encoder
    from mastering.semantic.report import fig_encoder_predictions, table_encoder_comparison

    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path / "runs"))
    df, vae, history, _, _ = setup
    settings = {"model": SMALL, "train": {"steps": 3, "batch_size": 8, "segment_seconds": 0.5, "seed": 0}}
    args = (vae, tmp_path / "vae-run", df, history["train_index"], history["val_index"][:40], settings, "smoke")
    enc, record, folder = fit_or_load_encoder(*args, progress=False)
    assert (folder / "encoder.pt").is_file() and (folder / "evaluation.csv").is_file()
    again, record2, folder2 = fit_or_load_encoder(*args, progress=False)
    assert folder2 == folder and record2["evaluation"] == record["evaluation"]
    for a, b in zip(enc.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)
    other = fit_or_load_encoder(*args[:5], {**settings, "train": {**settings["train"], "seed": 1}}, "smoke", progress=False)
    assert other[2] != folder
    with pytest.raises(ValueError, match="dry_pool_id"):
        fit_or_load_encoder(*args, dry_pool=torch.zeros(2, 2, 44100), progress=False)
    import pandas as pd

    table = pd.DataFrame([{"variant": "cnn-mse", "arch": "cnn", "loss": "mse", "trained_on": "pink", "evaluated_on": e,
                           "run": folder.name, **record["evaluation"]} for e in ("pink", "music")])
    tex = table_encoder_comparison(table, "smoke").read_text()
    assert "$R^2$" in tex and "CNN / MSE" in tex
    rows = pd.read_csv(folder / "evaluation.csv")
    assert fig_encoder_predictions(rows, "smoke").is_file()
