"""Datasets (mastering/data/datasets.py): reproducibility, worker safety, splits, ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from mastering.data import demaster as dm
from mastering.data import manifest as mf
from mastering.data.datasets import (
    MultiSourceDataset, PairedDataset, PinkNoiseSegments, TrackSegments, build_paired_datasets,
    derive_seed,
)

SR = 22050


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    """Six 6 s stereo tracks of distinct tones in three packages, one package per split."""
    root = tmp_path_factory.mktemp("tracks")
    rows = []
    for i in range(6):
        t = np.arange(6 * SR) / SR
        x = 0.3 * np.stack([np.sin(2 * np.pi * (200 + 50 * i) * t), np.sin(2 * np.pi * (210 + 50 * i) * t)], 1)
        path = root / f"t{i}.wav"
        sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")
        rows.append({"source": "debian", "kind": "real", "package": f"p{i % 3}", "track_id": f"p{i % 3}/t{i}",
                     "path": str(path), "duration_s": 6.0, "sample_rate": SR, "license": "test", "order": i})
    return mf.assign_splits(pd.DataFrame(rows), seed=0, fractions={"train": 0.34, "valid": 0.33, "test": 0.33})


def pink_pairs(n=4, seconds=0.5, seed=0, **kw):
    return PairedDataset(PinkNoiseSegments(n, seconds, SR), seed=seed, **kw)


def test_items_are_reproducible_by_seed_and_index():
    a, b = pink_pairs(seed=1), pink_pairs(seed=1)
    for i in (3, 0, 2):  # order of access does not matter
        x, y = a[i], b[i]
        assert torch.equal(x["degraded"], y["degraded"]) and torch.equal(x["mastered"], y["mastered"])
        assert torch.equal(x["params"], y["params"])
    c = pink_pairs(seed=2)
    assert not torch.equal(a[0]["mastered"], c[0]["mastered"])
    with pytest.raises(IndexError):
        a[4]


def test_dataloader_workers_give_the_same_items_as_the_main_process():
    ds = pink_pairs(n=4, seconds=0.25, seed=3)
    direct = [ds[i] for i in range(4)]
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    got = torch.cat([b["degraded"] for b in batches])
    torch.testing.assert_close(got, torch.stack([d["degraded"] for d in direct]), atol=0, rtol=0)


def test_random_offsets_follow_the_epoch_fixed_offsets_do_not(tracks):
    train = tracks[tracks["split"] == "train"]
    rnd = PairedDataset(TrackSegments(train, 1.0, offsets="random"), seed=0, augment=False)
    first = rnd[0]["offset_s"]
    rnd.set_epoch(1)
    assert rnd[0]["offset_s"] != first
    rnd.set_epoch(0)
    assert rnd[0]["offset_s"] == first
    fixed = PairedDataset(TrackSegments(train, 1.0, offsets="fixed"), seed=0, augment=False)
    assert len(fixed) == 6 * len(train)
    before = fixed[3]
    fixed.set_epoch(5)
    assert torch.equal(fixed[3]["degraded"], before["degraded"]) and fixed[3]["offset_s"] == 3.0


def test_pairs_are_the_logged_demastering_of_the_segment_with_logged_augmentation(tracks):
    train = tracks[tracks["split"] == "train"]
    ds = PairedDataset(TrackSegments(train, 1.0, offsets="random"), seed=4, p_polarity=1.0, p_swap=1.0)
    item, rec = ds[1], ds.record(1)
    seg = rec["segment"]
    row = train[train["track_id"] == seg["track_id"]].iloc[0]
    start = int(round(seg["offset_s"] * SR))
    clean = torch.from_numpy(sf.read(row["path"], start=start, frames=SR, dtype="float32", always_2d=True)[0].T.copy())
    aug = rec["augment"]
    assert aug["polarity"] == -1.0 and aug["swap_channels"]
    torch.testing.assert_close(item["mastered"], -clean.flip(0))
    redo = dm.apply(clean, SR, dm.sample_params(rec["seed"], duration_s=1.0))
    gain = 10 ** (aug["input_gain_db"] / 20)
    torch.testing.assert_close(item["degraded"], -redo.flip(0) * gain, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(item["params"].numpy(), dm.params_vector(rec))


def test_no_segment_of_a_test_track_is_drawn_for_training(tracks):
    train = tracks[tracks["split"] == "train"]
    test_ids = set(tracks.loc[tracks["split"] == "test", "track_id"])
    assert test_ids and not test_ids & set(train["track_id"])
    src = TrackSegments(train, 1.0, offsets="random")
    drawn = {src.get(i, derive_seed(0, i))[1]["track_id"] for i in range(200)}
    assert drawn <= set(train["track_id"]) and len(drawn) == len(train)


def test_mixture_follows_its_ratios_and_drops_missing_sources():
    pink = pink_pairs(n=3)
    other = pink_pairs(n=5, seed=9)
    mix = MultiSourceDataset({"pink": pink, "real": other, "rendered": None},
                             {"pink": 0.3, "real": 0.5, "rendered": 0.2}, length=4000, seed=0)
    assert mix.ratios == pytest.approx({"pink": 0.375, "real": 0.625})
    counts = pd.Series([mix.choose(i)[0] for i in range(4000)]).value_counts(normalize=True)
    assert counts["pink"] == pytest.approx(0.375, abs=0.03) and counts["real"] == pytest.approx(0.625, abs=0.03)
    assert mix[0]["mixture_source"] in ("pink", "real")
    with pytest.raises(ValueError, match="none of the datasets"):
        MultiSourceDataset({"rendered": None}, {"rendered": 1.0}, length=1)


@pytest.mark.needs_data
def test_profile_mixture_uses_only_its_split():
    try:
        train = build_paired_datasets("smoke", "train", length=6)
        tracks = mf.load_manifest("smoke")
    except FileNotFoundError:
        pytest.skip("real-music cache not prepared (make data)")
    test_ids = set(tracks.loc[tracks["split"] == "test", "track_id"])
    for name, d in train.datasets.items():
        if name != "pink":
            assert not test_ids & set(d.source.tracks["track_id"])
            assert set(d.source.tracks["split"]) == {"train"}
    item = train[0]
    assert item["degraded"].shape == item["mastered"].shape == (2, int(3.0 * 44100))


def test_random_offset_mixtures_draw_a_new_segment_for_every_item():
    """A track source's own length is its number of tracks; the mixture must not reuse one
    segment per track for all of its items (it did: 96 smoke pairs held 25 distinct ones)."""
    from mastering.training.config import train_config
    from mastering.training.data import build_datasets

    try:
        mix = build_paired_datasets("smoke", "train", length=40)
        train, _ = build_datasets(train_config("1a", "smoke", data={"train_items": 40, "valid_items": 2,
                                                                     "cache": False}))
    except FileNotFoundError:
        pytest.skip("real-music cache not prepared (make data)")
    for mixture in (mix, train):
        real = [j for name, j in (mixture.choose(i) for i in range(len(mixture))) if name != "pink"]
        n_tracks = sum(len(d.source.tracks) for name, d in mixture.datasets.items() if name != "pink")
        assert len(real) > n_tracks  # enough real items to tell
        assert len(set(real)) > n_tracks
        seeds = {mixture.datasets[name].item_seed(j) for name, j in (mixture.choose(i) for i in range(len(mixture)))
                 if name != "pink"}
        assert len(seeds) > n_tracks
