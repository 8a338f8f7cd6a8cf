"""The SAFE-DB β-VAE: objective, contributor split, a tiny real training run, checkpoints,
descriptor embeddings and reconstruction error in dB."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mastering import paths
from mastering.profiles import get_profile
from mastering.semantic.safedb import SAFEDB_FILENAME, load_safedb, params_array, safe_response_db
from mastering.semantic.vae import (
    SemanticVAE,
    centroid_curves,
    decode_settings,
    descriptor_embeddings,
    descriptor_separation,
    encode_settings,
    fit_or_load,
    latent_codes,
    load_vae,
    mean_setting_error_db,
    reconstruction_error_db,
    save_vae,
    split_by_contributor,
    train_vae,
    vae_loss,
)

SAFE_CSV = paths.safedb_dir() / SAFEDB_FILENAME

# A tiny run (about 10 s on a busy 2-core CPU): 60 epochs of 5 minibatches.
TINY = dict(epochs=60, hidden_sizes=(64, 64), batch_size=256, lr=1e-2, patience=None, beta=0.02,
            spectral_weight=0.01, seed=0, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def safe():
    if not SAFE_CSV.is_file():
        pytest.skip(f"SAFE-DB not found at {SAFE_CSV} (set MASTERING_SAFEDB_DIR or run `make data`)")
    return load_safedb()


@pytest.fixture(scope="module")
def trained(safe):
    return train_vae(safe, **TINY)


@pytest.fixture(scope="module")
def untrained():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SemanticVAE(latent_dim=2, hidden_sizes=(64, 64)).eval()


# ---------------------------------------------------------------------------------------------
# Model and objective
# ---------------------------------------------------------------------------------------------


def test_kl_term_matches_torch_distributions():
    torch.manual_seed(1)
    mu, logvar = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    x = torch.rand(5, 13, dtype=torch.float64)
    recon = torch.rand(5, 13, dtype=torch.float64)
    terms = vae_loss({"recon": recon, "mu": mu, "logvar": logvar}, x, beta=0.5)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    kl = torch.distributions.kl_divergence(q, p).sum(-1).mean()
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(terms["recon"], ((recon - x) ** 2).sum(-1).mean())
    torch.testing.assert_close(terms["loss"], terms["recon"] + 0.5 * kl)
    zero = vae_loss({"recon": x, "mu": torch.zeros_like(mu), "logvar": torch.zeros_like(mu)}, x, beta=1.0)
    assert float(zero["loss"]) == 0.0


def test_objective_gradients():
    torch.manual_seed(2)
    x = torch.rand(3, 13, dtype=torch.float64)
    args = [torch.rand(3, 13, dtype=torch.float64, requires_grad=True),
            torch.randn(3, 2, dtype=torch.float64, requires_grad=True),
            torch.randn(3, 2, dtype=torch.float64, requires_grad=True)]  # fmt: skip

    def f(recon, mu, logvar):
        return vae_loss({"recon": recon, "mu": mu, "logvar": logvar}, x, beta=0.1)["loss"]

    assert torch.autograd.gradcheck(f, args)


def test_model_shapes_and_errors():
    m = SemanticVAE(latent_dim=3, hidden_sizes=(16,)).eval()
    x = torch.rand(4, 13)
    with torch.no_grad():
        out = m(x)
    assert out["recon"].shape == (4, 13) and out["mu"].shape == (4, 3)
    assert float(out["recon"].min()) >= 0 and float(out["recon"].max()) <= 1
    torch.testing.assert_close(out["z"], out["mu"])  # eval mode decodes the posterior mean
    for bad in (0, 33, 2.5):
        with pytest.raises(ValueError, match="latent_dim"):
            SemanticVAE(latent_dim=bad)
    with pytest.raises(ValueError, match="beta"):
        SemanticVAE(beta=-1.0)
    with pytest.raises(ValueError, match=r"\[batch, 13\]"):
        m.encode(torch.rand(4, 12))
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        m.decode(torch.rand(4, 2))
    cond = SemanticVAE(latent_dim=2, descriptors=["warm", "bright"])
    with pytest.raises(ValueError, match="descriptor"):
        cond.encode(x)
    assert cond.descriptor_index(["Warm ", "bright", "muddy"], 3).tolist() == [1, 2, 0]


# ---------------------------------------------------------------------------------------------
# Data split and training
# ---------------------------------------------------------------------------------------------


def test_split_by_contributor_holds_out_whole_contributors(safe):
    tr, va = split_by_contributor(safe, 0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(safe)
    assert not set(safe["contributor"].iloc[tr]) & set(safe["contributor"].iloc[va])
    assert 0.17 <= len(va) / len(safe) <= 0.23
    tr2, va2 = split_by_contributor(safe, 0.2, seed=0)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, split_by_contributor(safe, 0.2, seed=1)[1])
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_contributor(safe, 1.0)
    with pytest.raises(ValueError, match="contributor"):
        split_by_contributor(pd.DataFrame({"x": [1]}))


def test_training_reduces_loss_and_is_seeded(trained, safe):
    model, history = trained
    assert history["epochs_run"] == TINY["epochs"]
    assert history["train_loss"][-1] < 0.65 * history["train_loss"][0]  # measured 0.47 / 0.86
    assert min(history["val_loss"]) < 0.65 * history["val_loss"][0]
    assert history["val_loss"][history["best_epoch"]] == min(history["val_loss"])
    assert history["settings"]["seed"] == 0 and not model.training
    # Same seed, same weights (first 3 epochs).
    a, _ = train_vae(safe, **{**TINY, "epochs": 3})
    b, _ = train_vae(safe, **{**TINY, "epochs": 3})
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_reconstruction_error_db_on_held_out_contributors(trained, untrained, safe):
    model, history = trained
    held_out = safe.iloc[history["val_index"]]
    err = reconstruction_error_db(model, held_out)
    assert err.shape == (len(held_out),) and np.isfinite(err).all()
    baseline = mean_setting_error_db(safe, history["train_index"], history["val_index"])
    # Measured for this tiny run: 2.13 dB on unseen contributors; the mean training setting gives
    # 4.72 dB and the untrained network 4.9 dB (the smoke profile reaches 2.11 dB).
    assert err.mean() < 3.0
    assert err.mean() < 0.65 * baseline.mean()
    assert reconstruction_error_db(untrained, held_out).mean() > 4.0


def test_reconstruction_error_is_the_curve_difference(trained, safe):
    model, _ = trained
    rows = safe.iloc[:4]
    freqs = np.geomspace(20, 20000, 256)
    z = encode_settings(model, rows)
    rec = decode_settings(model, z)
    manual = np.abs(safe_response_db(params_array(rows), freqs) - safe_response_db(rec, freqs)).mean(-1)
    np.testing.assert_allclose(reconstruction_error_db(model, rows), manual, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Descriptor embeddings
# ---------------------------------------------------------------------------------------------


def test_descriptor_embeddings_are_posterior_means(trained, safe):
    model, _ = trained
    emb = descriptor_embeddings(model, safe, min_count=5)
    assert list(emb.columns) == ["z_0", "z_1", "count", "spread"]
    assert emb.index[:2].tolist() == ["warm", "bright"] and emb.loc["warm", "count"] == 537
    assert (emb["count"] >= 5).all() and (emb["spread"] >= 0).all()
    mu = encode_settings(model, safe[safe["descriptor"] == "warm"])
    np.testing.assert_allclose(emb.loc["warm", ["z_0", "z_1"]].to_numpy(float), mu.mean(0), rtol=1e-6)
    rms = np.sqrt(((mu - mu.mean(0)) ** 2).sum(1).mean())
    assert emb.loc["warm", "spread"] == pytest.approx(rms, rel=1e-6)
    # From saved codes gives the same as from the model.
    pd.testing.assert_frame_equal(descriptor_embeddings(latent_codes(model, safe), min_count=5), emb)


def test_warm_and_bright_separate_only_after_training(trained, untrained, safe):
    model, _ = trained
    sep = descriptor_separation(descriptor_embeddings(model, safe))
    sep_untrained = descriptor_separation(descriptor_embeddings(untrained, safe))
    # Distance between the centroids exceeds their RMS spread (measured 1.20 for this run; the
    # untrained encoder gives 0.22, other random initializations 0.8).
    assert sep > 1.0
    assert sep_untrained < 1.0
    with pytest.raises(ValueError, match="no embedding"):
        descriptor_separation(descriptor_embeddings(model, safe), "warm", "nonexistent")


def test_decoded_centroids_sound_warm_and_bright(trained, safe):
    model, _ = trained
    emb = descriptor_embeddings(model, safe)
    curves = centroid_curves(model, emb, ["warm", "bright"])

    def band(d, lo, hi):
        c = curves[(curves["descriptor"] == d) & curves["freq_hz"].between(lo, hi)]
        return c["gain_db"].mean()

    # SAFE's warm boosts the low mids (100-400 Hz), bright the highs (3-10 kHz).
    assert band("warm", 100, 400) > band("bright", 100, 400) + 2.0
    assert band("bright", 3000, 10000) > band("warm", 3000, 10000) + 2.0


# ---------------------------------------------------------------------------------------------
# Checkpoints and cached runs
# ---------------------------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_outputs(trained, tmp_path, safe):
    model, history = trained
    path = save_vae(model, tmp_path / "vae.pt", history={"best_epoch": history["best_epoch"]}, note="x")
    loaded, extra = load_vae(path, return_extra=True)
    assert loaded.config == model.config and extra == {"history": {"best_epoch": history["best_epoch"]}, "note": "x"}
    x = torch.rand(16, 13)
    for a, b in zip(model(x).values(), loaded(x).values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(encode_settings(model, safe.iloc[:20]), encode_settings(loaded, safe.iloc[:20]))
    # A conditional model rebuilds from the checkpoint alone, vocabulary included.
    cond = SemanticVAE(latent_dim=3, hidden_sizes=(8,), descriptors=["warm", "bright"]).eval()
    c_loaded = load_vae(save_vae(cond, tmp_path / "cond.pt"))
    idx = cond.descriptor_index(["warm", "bright", "other"], 3)
    assert c_loaded.descriptors == ["warm", "bright"]
    assert torch.equal(cond(x[:3], idx)["recon"], c_loaded(x[:3], idx)["recon"])


def test_load_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_vae(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a SemanticVAE checkpoint"):
        load_vae(tmp_path / "other.pt")


def test_conditional_training_runs(safe):
    model, history = train_vae(safe, **{**TINY, "epochs": 2, "conditional": True, "min_count": 5})
    assert model.conditional and {"warm", "bright"} <= set(model.descriptors)
    z = np.zeros((1, 2))
    warm, bright = decode_settings(model, z, "warm"), decode_settings(model, z, "bright")
    assert warm.shape == (1, 13) and not np.allclose(warm, bright)


def test_fit_or_load_reuses_an_identical_run(safe, tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path / "runs"))
    safe = safe.iloc[:400].reset_index(drop=True)  # keeps the cleaning record in .attrs
    assert safe.attrs["cleaning"]["rows"] == 1496
    settings = {**get_profile("smoke")["vae"]["train"], "epochs": 2, "patience": None}
    model, record, folder = fit_or_load(safe, settings, "smoke", progress=False)
    assert folder.parent == tmp_path / "runs" / "semantic_vae" and folder.name.startswith("smoke-")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_val"] + metrics["n_train"] == len(safe) and metrics["latent_dim"] == 2
    assert record["provenance"]["profile"] == "smoke"
    again, record2, folder2 = fit_or_load(safe, settings, "smoke", progress=False)
    assert folder2 == folder and record2["metrics"] == metrics
    x = torch.rand(8, 13)
    assert torch.equal(model(x)["recon"], again(x)["recon"])
    _, _, other = fit_or_load(safe, {**settings, "beta": 0.05}, "smoke", progress=False)
    assert other != folder
