"""Training data: the data layer's paired datasets, mixed, optionally cached, and batched.

:func:`build_datasets` composes :mod:`mastering.data.datasets` (demastered real and rendered
music, pink noise; mixed with the configuration's ``ratios``) for the training and validation
splits of the profile's manifest. Splits are by track, so no validation segment comes from a
training track. ``cache=True`` generates the pairs once and keeps them in memory
(:class:`CachedDataset`), which is what makes a CPU smoke run affordable; ``cache="disk"`` writes
them once to memory-mapped files under ``runs/pairs/`` (:class:`DiskPairs`), named by the data
settings, the manifest and the code, so every phase and every resumed run of a profile reads the
same pairs without making them again; otherwise every epoch draws fresh offsets and degradations
(``set_epoch``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.datasets import MultiSourceDataset, PairedDataset, PinkNoiseSegments, TrackSegments, derive_seed
from ..data.manifest import load_manifest
from ..runs import run_folder, run_key

__all__ = ["CachedDataset", "DiskPairs", "TensorPairs", "build_datasets", "collate", "pair_cache_folder"]

_TENSORS = ("degraded", "mastered", "params")


class CachedDataset(Dataset):
    """The items of ``dataset`` computed once (in order) and kept in memory.

    Args:
        dataset: any map-style dataset.
        progress: show a tqdm bar while generating.
        desc: bar label.
    """

    def __init__(self, dataset: Dataset, progress: bool = False, desc: str = "pairs"):
        self.items = [dataset[i] for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False)]
        self.sample_rate = getattr(dataset, "sample_rate", None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


class DiskPairs(Dataset):
    """The items of ``dataset`` made once (in order, by ``workers`` processes) into ``folder`` and
    read back memory-mapped: ``degraded.npy``, ``mastered.npy``, ``params.npy`` ``[items, ...]`` and
    ``items.json`` (the other fields). The folder is complete only once ``items.json`` exists
    (written last, atomically); an incomplete folder is made again.

    Args:
        dataset: a map-style dataset of pairs (every item has the same shapes).
        folder: where the pairs live.
        workers: processes making the pairs (``0``: this one).
        progress: show a tqdm bar while making them.
        desc: bar label.
    """

    def __init__(self, dataset: Dataset, folder: str | Path, workers: int = 0, progress: bool = False,
                 desc: str = "pairs"):
        self.folder = Path(folder)
        self.sample_rate = getattr(dataset, "sample_rate", None)
        if not (self.folder / "items.json").is_file():
            self._make(dataset, int(workers), progress, desc)
        self.meta = json.loads((self.folder / "items.json").read_text())["items"]
        self.arrays = {k: np.load(self.folder / f"{k}.npy", mmap_mode="r") for k in _TENSORS
                       if (self.folder / f"{k}.npy").is_file()}

    def _make(self, dataset: Dataset, workers: int, progress: bool, desc: str) -> None:
        tmp = self.folder.with_name(self.folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers)
        arrays: dict[str, np.ndarray] = {}
        meta = []
        for i, item in enumerate(tqdm(loader, total=len(dataset), desc=desc, disable=not progress, leave=False)):
            for key in _TENSORS:
                if key in item:
                    if key not in arrays:
                        value = item[key].numpy()
                        arrays[key] = np.lib.format.open_memmap(tmp / f"{key}.npy", mode="w+", dtype=value.dtype,
                                                                shape=(len(dataset), *value.shape))
                    arrays[key][i] = item[key].numpy()
            meta.append({k: v for k, v in item.items() if k not in _TENSORS})
        for array in arrays.values():
            array.flush()
        (tmp / "items.json").write_text(json.dumps({"items": meta}, default=_plain))
        if self.folder.exists():
            shutil.rmtree(self.folder)
        os.replace(tmp, self.folder)

    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {k: torch.from_numpy(np.array(a[index])) for k, a in self.arrays.items()}
        item.update(self.meta[index])
        return item


def _plain(value: Any) -> Any:
    """JSON for the NumPy scalars and tensors in an item's metadata."""
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.tolist()
    return str(value)


def pair_cache_folder(config, split: str, tracks: pd.DataFrame) -> Path:
    """``runs/pairs/<profile>-<split>-<hash>``: named by what makes the pairs (the data settings,
    segment length, rate and seed), the split's tracks (paths, durations, loudness) and the code."""
    settings = {"data": {k: v for k, v in config.data.items() if k not in ("cache", "num_workers")},
                "segment_seconds": float(config.segment_seconds), "sample_rate": int(config.sample_rate),
                "seed": int(config.seed), "split": split}
    rows = tracks.sort_values("path")[["path", "duration_s", "loudness_lufs"]].astype(str).to_csv(index=False) if len(tracks) else ""
    key = run_key(settings, ("mastering.training.data",), tracks=hashlib.sha1(rows.encode()).hexdigest())
    return run_folder("pairs", config.profile, key, label=split)


class TensorPairs(Dataset):
    """(degraded, mastered) pairs from tensors ``[items, channels, samples]`` (tests, notebooks).

    Args:
        degraded, mastered: input and target audio.
        sources: optional source label per item.
    """

    def __init__(self, degraded: torch.Tensor, mastered: torch.Tensor, sources: Sequence[str] | None = None):
        if degraded.shape != mastered.shape or degraded.dim() != 3:
            raise ValueError(f"need two [items, channels, samples] tensors of one shape, got "
                             f"{tuple(degraded.shape)} and {tuple(mastered.shape)}")
        self.degraded, self.mastered = degraded, mastered
        self.sources = list(sources) if sources is not None else ["tensor"] * degraded.shape[0]

    def __len__(self) -> int:
        return self.degraded.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"degraded": self.degraded[index], "mastered": self.mastered[index], "index": index,
                "mixture_source": self.sources[index], "track_id": f"tensor/{index}"}


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``degraded``/``mastered`` (and ``params`` when present) into batches; other keys become
    lists (``None`` where an item lacks the key: mixed sources carry different metadata)."""
    if not items:
        raise ValueError("empty batch")
    out: dict[str, Any] = {}
    keys = list(dict.fromkeys(k for item in items for k in item))  # sources may add their own keys
    for key in keys:
        values = [item.get(key) for item in items]
        if key in ("degraded", "mastered", "params") and isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out


def build_datasets(config) -> tuple[Dataset, Dataset]:
    """Training and validation datasets of a :class:`mastering.training.TrainConfig`.

    Real and rendered tracks come from the profile's manifest (``make data``), pink noise is
    generated; ``config.data["ratios"]`` mixes them (sources with no tracks are dropped and the
    ratios renormalized). Training segments have random offsets and augmentation; validation
    segments fixed offsets and none.

    Raises:
        FileNotFoundError: the profile's data has not been prepared.
    """

    data = config.data
    seg = float(config.segment_seconds)
    out = []
    for split, n in (("train", int(data["train_items"])), ("valid", int(data["valid_items"]))):
        tracks = load_manifest(config.profile, split=split)
        offsets = "random" if split == "train" else "fixed"
        parts: dict[str, Dataset | None] = {}
        for kind in ("real", "rendered"):
            sel = tracks[tracks["kind"] == kind]
            # random offsets: as many distinct draws as the mixture has items (a track source's own
            # length is its number of tracks, which would allow one segment per track and epoch)
            parts[kind] = (PairedDataset(TrackSegments(sel, seg, offsets=offsets, name=kind),
                                         seed=derive_seed(config.seed, split, kind), augment=split == "train",
                                         length=max(n, 1) if offsets == "random" else None)
                           if len(sel) else None)
        parts["pink"] = PairedDataset(PinkNoiseSegments(max(n, 1), seg, config.sample_rate),
                                      seed=derive_seed(config.seed, split, "pink"), augment=split == "train")
        mixture = MultiSourceDataset(parts, data["ratios"], length=n, seed=derive_seed(config.seed, split, "mixture"))
        if mixture.datasets[mixture.names[0]].sample_rate != config.sample_rate:
            raise ValueError(f"the prepared data is at {mixture.datasets[mixture.names[0]].sample_rate} Hz, "
                             f"the configuration at {config.sample_rate} Hz")
        if data.get("cache") == "disk":
            mixture = DiskPairs(mixture, pair_cache_folder(config, split, tracks), workers=int(data["num_workers"]),
                                progress=config.progress, desc=f"{split} pairs")
        elif data.get("cache"):
            mixture = CachedDataset(mixture, progress=config.progress, desc=f"{split} pairs")
        out.append(mixture)
    return out[0], out[1]
