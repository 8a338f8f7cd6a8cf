"""The CLAP ablation: the multi-source mixture pool, the shared evaluation subset, reuse of notebook
08's encoder runs, every arm under one protocol (tiny sizes), arms that cannot run, and the
report's table, figure and closing note."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mastering import paths
from mastering.profiles import PROFILES
from mastering.semantic import ablation, clap, encoder, report_clap
from mastering.semantic.safedb import SAFEDB_FILENAME, load_safedb

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clips(prefix: str, n: int, samples: int, seed: int) -> tuple[pd.DataFrame, torch.Tensor]:
    """Stand-in music excerpts: (meta, audio [n, 2, samples]) with a distinct tilt per clip."""
    g = torch.Generator().manual_seed(seed)
    audio = torch.cumsum(torch.randn(n, 2, samples, generator=g), dim=-1) * 1e-3  # brown-ish
    audio = audio - audio.mean(-1, keepdim=True) + 0.05 * torch.randn(n, 2, samples, generator=g)
    meta = pd.DataFrame({"clip": [f"{prefix}{k}@0.0" for k in range(n)], "track": [f"{prefix}{k // 2}" for k in range(n)]})
    return meta, audio


def test_mixture_pool_follows_the_source_ratios():
    real = _clips("real", 20, 4000, seed=1)
    rendered = _clips("rend", 6, 4000, seed=2)
    ratios = {"pink": 0.3, "real": 0.5, "rendered": 0.2}
    meta, audio = ablation.mixture_pool("smoke", real, rendered, seed=0, ratios=ratios)
    assert len(meta) == 40 == len(audio)  # 20 real excerpts at a 0.5 share
    assert audio.shape == (40, 2, 4000)
    counts = meta["source"].value_counts()
    assert set(counts.index) == {"pink", "real", "rendered"}
    # MultiSourceDataset's draws: binomial around the ratios (40 draws, 4 sigma).
    for source, p in ratios.items():
        assert abs(counts[source] - 40 * p) <= 4 * np.sqrt(40 * p * (1 - p))
    by_clip = dict(zip(real[0]["clip"], real[1]))
    for row, x in zip(meta.itertuples(), audio):
        if row.source == "real":
            assert torch.equal(x, by_clip[row.clip])
        elif row.source == "pink":
            rms_db = 20 * torch.log10(x.pow(2).mean().sqrt())
            assert float(rms_db) == pytest.approx(-20.0, abs=0.05)  # pink_noise's level
    again = ablation.mixture_pool("smoke", real, rendered, seed=0, ratios=ratios)
    assert again[0].equals(meta) and torch.equal(again[1], audio)
    other = ablation.mixture_pool("smoke", real, rendered, seed=1, ratios=ratios)
    assert not other[0]["clip"].equals(meta["clip"])


def test_mixture_pool_without_rendered_music_renormalizes():
    real = _clips("real", 10, 2000, seed=1)
    meta, audio = ablation.mixture_pool("smoke", real, None, seed=0, ratios={"pink": 0.3, "real": 0.5, "rendered": 0.2})
    assert len(meta) == 16  # real share 0.5 / 0.8
    assert set(meta["source"]) <= {"pink", "real"}
    with pytest.raises(ValueError, match="real"):
        ablation.mixture_pool("smoke", real, None, ratios={"pink": 1.0, "real": 0.0})
    with pytest.raises(ValueError, match="samples"):
        ablation.mixture_pool("smoke", real, _clips("rend", 2, 1000, seed=2), ratios={"pink": 0.3, "real": 0.5, "rendered": 0.2})


def test_eval_subset_is_seeded_and_shared():
    val = np.arange(100, 400, 3)
    assert np.array_equal(ablation.eval_subset(val, None), val)
    assert np.array_equal(ablation.eval_subset(val, 500), val)
    sub = ablation.eval_subset(val, 16, seed=0)
    assert len(sub) == 16 == len(set(sub)) and set(sub) <= set(val) and np.all(np.diff(sub) > 0)
    assert np.array_equal(sub, ablation.eval_subset(val, 16, seed=0))
    assert not np.array_equal(sub, ablation.eval_subset(val, 16, seed=1))


def test_custom_arms_reuse_notebook_08_runs(monkeypatch):
    """The CNN arms ask fit_or_load_encoder for exactly the settings compare_encoders trains with."""
    seen = {}

    def record(vae_model, vae_folder, df, tr, va, settings, profile, dry_pool=None, dry_pool_id=None, **kw):
        seen[dry_pool_id or "pink"] = settings
        raise StopIteration

    monkeypatch.setattr(encoder, "fit_or_load_encoder", record)
    for variant in ("cnn-mse", "cnn-mse-music"):
        music = (pd.DataFrame({"clip": ["a@0"]}), torch.zeros(1, 2, 10))
        with pytest.raises(StopIteration):
            encoder.compare_encoders(None, "vae", None, {"train_index": [0], "val_index": [1]}, "smoke", music, None,
                                     variants={variant: encoder.ENCODER_VARIANTS[variant]}, seed=7)  # fmt: skip
        key = "a@0" if variant.endswith("music") else "pink"
        assert seen[key] == encoder.variant_settings("smoke", encoder.ENCODER_VARIANTS[variant], 7)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    if not (paths.safedb_dir() / SAFEDB_FILENAME).is_file():
        pytest.skip("SAFE-DB not available")
    from mastering.semantic.vae import train_vae

    df = load_safedb()
    vae, history = train_vae(df, epochs=5, hidden_sizes=(16,), batch_size=512, lr=1e-2, patience=None, progress=False)
    history = {"train_index": list(history["train_index"]), "val_index": list(history["val_index"])}
    return df, vae, history, tmp_path_factory.mktemp("ablation")


@pytest.fixture()
def tiny_profiles(monkeypatch, tiny_setup):
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tiny_setup[3] / "runs"))
    monkeypatch.setitem(PROFILES["smoke"], "encoder", {
        "model": {"arch": "cnn", "sample_rate": 44100, "n_fft": 1024, "hop_length": 1024, "n_mels": 16, "width": 4},
        "train": {"loss": "mse", "steps": 5, "batch_size": 8, "lr": 2e-3, "segment_seconds": 0.25, "seed": 0}})  # fmt: skip
    monkeypatch.setitem(PROFILES["smoke"], "ablation", {
        "max_eval": 4, "n_train_examples": 4, "steps": 20, "batch_size": 4, "lr": 1e-2, "hidden": 8,
        "embed_batch_size": 4})  # fmt: skip


@pytest.mark.skipif(not clap.clap_available()[0], reason="optional extra `clap` not installed")
def test_every_arm_runs_under_one_protocol(tiny_setup, tiny_profiles, tmp_path, paper_dir):
    df, vae, history, _ = tiny_setup
    source, _ = clap.load_clap_audio_encoder(None, "HTSAT-tiny", seed=5)
    ckpt = tmp_path / "clap_tiny.pt"
    torch.save({"state_dict": {f"module.audio_branch.{k}": v for k, v in source.branch.state_dict().items()}}, ckpt)
    music_train, music_test = _clips("tr", 4, 22050, seed=1), _clips("te", 4, 22050, seed=2)
    mixture = ablation.mixture_pool("smoke", music_train, None, seed=0)
    table, arms = ablation.run_clap_ablation(vae, "vae-run", df, history, "smoke", music_train, music_test, mixture,
                                             clap_checkpoint=ckpt, seed=0, progress=False)  # fmt: skip
    names = [a[0] for a in ablation.ARMS]
    assert list(arms["arm"]) == names and set(arms["status"]) == {"ran"}
    assert list(table["arm"]) == [a for a in names for _ in range(2)]
    assert list(table["evaluated_on"]) == ["pink", "music"] * len(names)
    assert set(table["n"]) == {4}  # the same held-out subset for every arm
    assert dict(zip(table["arm"], table["trained_on"]))["custom-mixture"] == "mixture"
    clap_rows = table[table["arm"].str.startswith("clap")].drop_duplicates("arm").set_index("arm")
    assert clap_rows.loc["clap-random", "init"] == "random" and clap_rows.loc["clap-random", "checkpoint"] == ""
    assert clap_rows.loc["clap-pretrained", "init"] == "pretrained" and clap_rows.loc["clap-pretrained", "checkpoint"] == str(ckpt)
    assert set(clap_rows["trainable_parameters"]) == {768 * 8 + 8 + 8 * vae.latent_dim + vae.latent_dim}
    assert "200 tensors loaded, 0 missing, 0 unexpected" in arms.set_index("arm").loc["clap-pretrained", "reason"]
    assert np.isfinite(table["r2"]).all() and np.isfinite(table["latent_mse"]).all()
    # The checkpoint's weights and the random init give different predictions for the same examples.
    assert not np.allclose(table.loc[table["arm"] == "clap-random", "latent_mse"],
                           table.loc[table["arm"] == "clap-pretrained", "latent_mse"])  # fmt: skip

    tex = report_clap.table_clap_ablation(table, arms, "smoke").read_text()
    assert "CLAP, pretrained (frozen)" in tex and "clap\\_tiny.pt" in tex and "Not run" not in tex
    assert tex.count("\\\\\n") == 1 + len(names)  # header + one row per arm
    fig = report_clap.fig_clap_ablation(table, arms, "smoke")
    assert fig.is_file() and fig.with_suffix(".png").is_file()
    sidecar = json.loads((fig.parent / (fig.name + ".json")).read_text())
    assert sidecar["checkpoint"] == "clap_tiny.pt"
    note = report_clap.ablation_summary(table, arms)
    assert "Checkpoint: clap_tiny.pt" in note
    assert sum(line.startswith("  ") and "; music " in line for line in note.splitlines()) == len(names)


def test_arms_that_cannot_run_are_reported(tiny_setup, tiny_profiles, monkeypatch, paper_dir):
    df, vae, history, _ = tiny_setup
    monkeypatch.setattr(clap, "clap_available", lambda: (False, "the CLAP audio branch needs the optional extra `clap`"))
    table, arms = ablation.run_clap_ablation(vae, "vae-run", df, history, "smoke", None, None, None,
                                             clap_checkpoint="/nowhere/clap.pt", seed=0, progress=False)  # fmt: skip
    status = arms.set_index("arm")
    assert status.loc["custom-pink", "status"] == "ran"
    assert list(table["arm"]) == ["custom-pink"] and list(table["evaluated_on"]) == ["pink"]
    for arm in ("custom-music", "custom-mixture", "clap-random", "clap-pretrained"):
        assert status.loc[arm, "status"] == "skipped"
    assert "optional extra `clap`" in status.loc["clap-random", "reason"]
    assert "no music training audio" in status.loc["custom-music", "reason"]
    tex = report_clap.table_clap_ablation(table, arms, "smoke").read_text()
    assert "Not run" in tex and "optional extra" in tex
    note = report_clap.ablation_summary(table, arms)
    assert "Not run: CNN, real music" in note and "Checkpoint: none" in note
    with pytest.raises(ValueError, match="no ablation results"):
        report_clap.table_clap_ablation(table.iloc[:0], arms, "smoke")
