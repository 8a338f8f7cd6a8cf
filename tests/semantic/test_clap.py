"""The frozen CLAP audio branch: offline construction, checkpoint loading (key prefixes, sizes),
CLAP's input handling (48 kHz, repeat-padding, level), frozen backbone vs trainable head, and a
clear error when the optional extra is missing."""

import math
import os
import socket
import sys

import numpy as np
import pytest
import torch

from mastering.dsp.signals import pink_noise
from mastering.semantic import clap

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(not clap.clap_available()[0], reason="optional extra `clap` not installed")]


def _block_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _forget_htsat(monkeypatch):
    """Make the next build import HTS-AT afresh (monkeypatch restores the cached modules after)."""
    for name in [n for n in sys.modules if n.startswith(clap._PRIVATE_PACKAGE)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(clap, "_HTSAT", None)


@pytest.fixture(scope="module")
def tiny():
    """HTS-AT tiny, random init (seed 0), built from a fresh import with every socket connection refused."""
    with pytest.MonkeyPatch.context() as mp:
        _block_network(mp)
        _forget_htsat(mp)
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        with pytest.raises(OSError, match="blocked"):  # the block is real
            socket.create_connection(("pypi.org", 443), timeout=1)
        embedder, info = clap.load_clap_audio_encoder(None, "HTSAT-tiny", seed=0)
        offline_env = os.environ.get("HF_HUB_OFFLINE")
    return embedder, info, offline_env


@pytest.fixture(scope="module")
def source():
    """Another random HTS-AT tiny (seed 3): the "pretrained" weights the checkpoint tests save."""
    return clap.load_clap_audio_encoder(None, "HTSAT-tiny", seed=3)[0]


def test_builds_offline_without_the_text_side(tiny):
    embedder, info, offline_env = tiny
    assert info["init"] == "random" and info["checkpoint"] is None and info["seed"] == 0
    assert info["embedding_dim"] == embedder.embedding_dim == 768
    assert 25e6 < info["parameters"] < 40e6  # HTS-AT tiny: about 31 M parameters
    assert offline_env == "1"  # set before the import
    # Neither laion_clap's package __init__ (text tokenizers from the hub) nor transformers ran.
    assert "laion_clap" not in sys.modules and "transformers" not in sys.modules


def test_config_matches_the_package(tiny):
    for amodel in clap.CLAP_AMODELS:
        config = clap.clap_audio_config(amodel)
        assert config["sample_rate"] == clap.CLAP_SAMPLE_RATE == 48000
        assert config["clip_samples"] == clap.CLAP_CLIP_SAMPLES and config["mel_bins"] == 64
    assert clap.clap_audio_config("HTSAT-tiny")["model_name"] == "tiny"
    assert clap.clap_audio_config("HTSAT-base")["model_name"] == "base"
    assert tiny[0].branch.patch_embed.proj.weight.shape[0] == 96 and tiny[0].branch.num_features == 768
    with pytest.raises(ValueError, match="amodel"):
        clap.clap_audio_config("HTSAT-huge")


PREFIXES = {"bare": "audio_branch.", "model": "model.audio_branch.", "module": "module.audio_branch.",
            "module_model": "module.model.audio_branch.", "module_module": "module.module.audio_branch."}  # fmt: skip


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("layout", sorted(PREFIXES))
def test_key_prefixes(layout, nested):
    weights = {"patch_embed.proj.weight": torch.randn(96, 1, 4, 4), "bn0.running_mean": torch.randn(64)}
    state = {PREFIXES[layout] + k: v for k, v in weights.items()}
    state.update({"module.text_branch.embeddings.weight": torch.zeros(3), "logit_scale_a": torch.ones(()),
                  "audio_projection.0.weight": torch.zeros(2, 2)})  # fmt: skip
    out = clap.clap_audio_state_dict({"epoch": 15, "state_dict": state} if nested else state)
    assert set(out) == set(weights)
    assert all(out[k] is weights[k] for k in weights)


def test_checkpoint_round_trip(tiny, source, tmp_path):
    """LAION-CLAP's release layout (``state_dict`` / ``module.`` keys, text branch included) loads exactly."""
    branch_state = source.branch.state_dict()
    state = {PREFIXES["module_model"] + k: v for k, v in branch_state.items()}
    state["module.text_branch.embeddings.weight"] = torch.zeros(3)
    path = tmp_path / "clap.pt"
    torch.save({"epoch": 15, "state_dict": state}, path)
    assert clap.infer_clap_amodel(path) == "HTSAT-tiny"
    loaded, info = clap.load_clap_audio_encoder(path, "HTSAT-tiny", seed=0)  # seed 0 differs from the source's 3
    assert info["init"] == "pretrained" and info["checkpoint"] == str(path)
    assert info["loaded_keys"] == len(branch_state) and not info["missing_keys"] and not info["unexpected_keys"]
    for k, v in loaded.branch.state_dict().items():
        torch.testing.assert_close(v, branch_state[k], rtol=0, atol=0)
    # The seeded random init differs from the source, and is reproducible.
    assert not torch.equal(tiny[0].branch.patch_embed.proj.weight, source.branch.patch_embed.proj.weight)
    x = pink_noise(11025, channels=2, batch=1, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=1e-5, atol=1e-5)


def test_partial_checkpoint_reports_missing_keys_and_wrong_sizes_are_refused(tiny, source, tmp_path):
    given = ["patch_embed.proj.weight", "patch_embed.proj.bias", "bn0.weight"]
    own = source.branch.state_dict()
    state = {f"audio_branch.{k}": own[k] for k in given}
    state["audio_branch.extra.weight"] = torch.zeros(2)
    torch.save({"state_dict": state}, tmp_path / "partial.pt")
    partial, info = clap.load_clap_audio_encoder(tmp_path / "partial.pt", "HTSAT-tiny", seed=0)
    assert info["loaded_keys"] == 3 and set(info["missing_keys"]) == {
        k for k in own if k not in given and not k.endswith("num_batches_tracked")}  # BatchNorm fills that in
    assert info["unexpected_keys"] == ["extra.weight"]
    torch.testing.assert_close(partial.branch.patch_embed.proj.weight, own["patch_embed.proj.weight"], rtol=0, atol=0)
    # What the checkpoint lacks keeps the seeded random init: the same as another seed-0 build's.
    torch.testing.assert_close(partial.branch.head.weight, tiny[0].branch.head.weight, rtol=0, atol=0)
    assert not torch.equal(partial.branch.head.weight, source.branch.head.weight)
    # A base-size checkpoint (patch embedding 128 wide) is named as such.
    state["audio_branch.patch_embed.proj.weight"] = torch.zeros(128, 1, 4, 4)
    torch.save(state, tmp_path / "base.pt")
    assert clap.infer_clap_amodel(tmp_path / "base.pt") == "HTSAT-base"
    with pytest.raises(ValueError, match="amodel='HTSAT-base'"):
        clap.load_clap_audio_encoder(tmp_path / "base.pt", "HTSAT-tiny")


def test_bad_checkpoints_are_refused(tmp_path):
    torch.save({"state_dict": {"text_branch.w": torch.zeros(2)}}, tmp_path / "text.pt")
    with pytest.raises(ValueError, match="audio_branch"):
        clap.load_clap_audio_encoder(tmp_path / "text.pt")
    with pytest.raises(FileNotFoundError, match="no CLAP checkpoint"):
        clap.load_clap_audio_encoder(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="mapping"):
        clap.clap_audio_state_dict({"state_dict": [1, 2]}["state_dict"])


def test_missing_package_gives_a_clear_error(monkeypatch):
    _forget_htsat(monkeypatch)
    monkeypatch.setitem(sys.modules, "laion_clap", None)  # find_spec then reports it absent
    with pytest.raises(clap.ClapUnavailableError, match=r"pip install --no-deps laion-clap==1\.1\.7"):
        clap.build_clap_audio_branch()
    ok, why = clap.clap_available()
    assert not ok and "laion-clap is not installed" in why


def test_missing_runtime_dependency_gives_a_clear_error(monkeypatch):
    _forget_htsat(monkeypatch)
    for name in {"torchlibrosa", "torchlibrosa.stft", *[n for n in sys.modules if n.startswith("torchlibrosa.")]}:
        monkeypatch.setitem(sys.modules, name, None)  # importing torchlibrosa then fails
    with pytest.raises(clap.ClapUnavailableError, match="torchlibrosa"):
        clap.build_clap_audio_branch()
    assert clap._PRIVATE_PACKAGE not in sys.modules  # nothing half-imported is left behind


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_input_is_48k_mono_levelled_and_repeat_padded(tiny, sample_rate, channels):
    embedder = clap.ClapAudioEmbedder(tiny[0].branch, "HTSAT-tiny", sample_rate=sample_rate)
    seconds = 0.75
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    tone = torch.sin(2 * np.pi * 1000.0 * t).float()
    x = torch.stack([0.3 * tone] * channels)[None]
    prepared = embedder.prepare(x)
    assert prepared.shape == (1, clap.CLAP_CLIP_SAMPLES)
    n = math.ceil(x.shape[-1] * 48000 / sample_rate)  # torchaudio's output length
    reps = clap.CLAP_CLIP_SAMPLES // n
    # -20 dBFS RMS, a 1 kHz tone at 48 kHz (the resampler is torchaudio's; compare away from the edges).
    first = prepared[0, :n].double()
    assert float(first.pow(2).mean().sqrt()) == pytest.approx(0.1, rel=0.02)
    ref = 0.1 * np.sqrt(2) * torch.sin(2 * np.pi * 1000.0 * torch.arange(n, dtype=torch.float64) / 48000)
    torch.testing.assert_close(first[500:-500], ref[500:-500], atol=2e-3, rtol=0)
    # Tiled, then zero-padded to 10 s.
    torch.testing.assert_close(prepared[0, n : 2 * n], prepared[0, :n])
    assert torch.all(prepared[0, reps * n :] == 0) and float(prepared[0, (reps - 1) * n :].abs().max()) > 0.1
    # Gain does not change the embedding; longer audio keeps its first 10 s.
    if sample_rate == 44100 and channels == 2:
        with torch.no_grad():
            torch.testing.assert_close(embedder(x), embedder(4.0 * x), rtol=1e-4, atol=1e-4)
    long = torch.randn(1, channels, 11 * sample_rate)
    torch.testing.assert_close(embedder.prepare(long), embedder.prepare(long[..., : 10 * sample_rate + sample_rate // 2]),
                               rtol=0, atol=0)  # fmt: skip
    with pytest.raises(ValueError, match=r"\[batch, channels, samples\]"):
        embedder(torch.zeros(100))


def test_frozen_backbone_gets_no_gradient_but_the_head_does(tiny):
    enc = clap.ClapLatentEncoder(tiny[0], latent_dim=2, hidden=16, seed=0)
    enc.train()
    assert not enc.backbone.branch.training  # frozen: no SpecAugment / dropout even in training mode
    x = pink_noise(8000, channels=1, batch=2, seed=1, dtype=torch.float32)
    enc(x).pow(2).sum().backward()
    assert all(p.grad is None for p in enc.backbone.parameters())
    assert all(not p.requires_grad for p in enc.backbone.parameters())
    head = list(enc.head.parameters())
    assert [p for p in enc.trainable_parameters()] == head
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in head)
    with pytest.raises(ValueError, match="latent_dim"):
        clap.ClapLatentEncoder(tiny[0], latent_dim=0)


def test_projection_fits_the_cached_embeddings(tiny):
    """train_clap_projection on a stand-in VAE: the head learns targets that are a function of the EQ."""
    from mastering.semantic.safedb import SAFEDB_FILENAME, load_safedb
    from mastering import paths

    if not (paths.safedb_dir() / SAFEDB_FILENAME).is_file():
        pytest.skip("SAFE-DB not available")
    from mastering.semantic.vae import train_vae

    df = load_safedb()
    vae, history = train_vae(df, epochs=5, hidden_sizes=(16,), batch_size=512, lr=1e-2, patience=None, progress=False)
    enc = clap.ClapLatentEncoder(tiny[0], latent_dim=vae.latent_dim, hidden=32, seed=0)
    before = [p.detach().clone() for p in tiny[0].parameters()]
    enc, hist = clap.train_clap_projection(enc, vae, df, history["train_index"], n_examples=8, segment_seconds=0.25,
                                           steps=150, batch_size=8, lr=1e-2, embed_batch_size=8, seed=0,
                                           progress=False)  # fmt: skip
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    assert hist["settings"]["n_examples"] == 8 and hist["embed_seconds"] > 0
    assert float(enc.feature_std.min()) > 0
    assert all(torch.equal(a, b) for a, b in zip(before, tiny[0].parameters()))
    with pytest.raises(ValueError, match="dimensions"):
        clap.train_clap_projection(clap.ClapLatentEncoder(tiny[0], latent_dim=vae.latent_dim + 1), vae, df,
                                   history["train_index"], n_examples=4, progress=False)  # fmt: skip
