import json

import pytest
import torch

from mastering.data.manifest import load_manifest
from mastering.training.config import train_config
from mastering.training.data import DiskPairs, TensorPairs, build_datasets, pair_cache_folder


class Counting(TensorPairs):
    """TensorPairs that counts the items it makes."""

    made = 0

    def __getitem__(self, index):
        Counting.made += 1
        item = super().__getitem__(index)
        item["params"] = torch.tensor([float(index), 2.0 * index])
        return item


def _pairs(n=5, samples=300):
    gen = torch.Generator().manual_seed(0)
    return Counting(torch.randn(n, 2, samples, generator=gen), torch.randn(n, 2, samples, generator=gen))


@pytest.mark.parametrize("workers", [0, 2])
def test_disk_pairs_are_the_dataset_items_made_once(tmp_path, workers):
    data = _pairs()
    Counting.made = 0
    cached = DiskPairs(data, tmp_path / "p", workers=workers)
    assert len(cached) == len(data)
    for i in range(len(data)):
        ref, got = data[i], cached[i]
        for key in ("degraded", "mastered", "params"):
            assert torch.equal(ref[key], got[key])
        assert got["track_id"] == ref["track_id"] and got["index"] == i
    Counting.made = 0
    again = DiskPairs(data, tmp_path / "p")  # complete folder: read, nothing made
    assert Counting.made == 0 and torch.equal(again[3]["degraded"], data[3]["degraded"])
    assert not list(tmp_path.glob("p.tmp*"))


def test_an_incomplete_pair_folder_is_made_again(tmp_path):
    data = _pairs(3)
    DiskPairs(data, tmp_path / "p")
    (tmp_path / "p" / "items.json").unlink()  # e.g. killed before the end
    Counting.made = 0
    cached = DiskPairs(data, tmp_path / "p")
    assert Counting.made == 3 and json.loads((tmp_path / "p" / "items.json").read_text())["items"]
    assert torch.equal(cached[2]["mastered"], data[2]["mastered"])


def test_the_pair_folder_follows_what_makes_the_pairs():
    tracks = load_manifest("smoke", split="train")
    base = train_config("1a", "smoke", data={"cache": "disk"})
    folder = pair_cache_folder(base, "train", tracks)
    assert folder.name.startswith("smoke-train-") and folder.parent.name == "pairs"
    assert pair_cache_folder(train_config("1c", "smoke", data={"cache": "disk"}), "train", tracks) == folder
    assert pair_cache_folder(train_config("1a", "smoke", data={"cache": "disk", "num_workers": 2}), "train",
                             tracks) == folder
    for changed in (dict(segment_seconds=2.0), dict(seed=1), dict(data={"train_items": 7})):
        assert pair_cache_folder(train_config("1a", "smoke", **changed), "train", tracks) != folder
    assert pair_cache_folder(base, "train", tracks.iloc[:-1]) != folder
    assert pair_cache_folder(base, "valid", tracks) != folder


def test_build_datasets_with_a_disk_cache_matches_the_memory_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path))
    small = {"train_items": 3, "valid_items": 2}
    mem = build_datasets(train_config("1a", "smoke", progress=False, data={**small, "cache": True}))
    disk = build_datasets(train_config("1a", "smoke", progress=False, data={**small, "cache": "disk"}))
    for a, b in zip(mem, disk):
        assert isinstance(b, DiskPairs) and len(a) == len(b)
        for i in range(len(a)):
            assert torch.equal(a[i]["degraded"], b[i]["degraded"]) and a[i]["track_id"] == b[i]["track_id"]
    assert len(list((tmp_path / "pairs").iterdir())) == 2
