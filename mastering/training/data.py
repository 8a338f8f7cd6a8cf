"""Training data: the data layer's paired datasets, mixed, optionally cached, and batched.

:func:`build_datasets` composes :mod:`mastering.data.datasets` (demastered real and rendered
music, pink noise; mixed with the configuration's ``ratios``) for the training and validation
splits of the profile's manifest. Splits are by track, so no validation segment comes from a
training track. ``cache=True`` generates the pairs once and keeps them in memory
(:class:`CachedDataset`), which is what makes a CPU smoke run affordable; otherwise every epoch
draws fresh offsets and degradations (``set_epoch``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from ..data.datasets import MultiSourceDataset, PairedDataset, PinkNoiseSegments, TrackSegments, derive_seed
from ..data.manifest import load_manifest

__all__ = ["CachedDataset", "TensorPairs", "build_datasets", "collate"]


class CachedDataset(Dataset):
    """The items of ``dataset`` computed once (in order) and kept in memory.

    Args:
        dataset: any map-style dataset.
        progress: show a tqdm bar while generating.
        desc: bar label.
    """

    def __init__(self, dataset: Dataset, progress: bool = False, desc: str = "pairs"):
        from tqdm.auto import tqdm

        self.items = [dataset[i] for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False)]
        self.sample_rate = getattr(dataset, "sample_rate", None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


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
        if data.get("cache"):
            mixture = CachedDataset(mixture, progress=config.progress, desc=f"{split} pairs")
        out.append(mixture)
    return out[0], out[1]
