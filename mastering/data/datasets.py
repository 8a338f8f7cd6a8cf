"""PyTorch datasets: demastered pairs and a multi-source mixture.

Reproducibility and workers. Every item derives its own seeds from ``(seed, [epoch,] index)``
with SHA-256 (:func:`derive_seed`); no global random state is used, so item ``i`` is the same in
the main process and in any ``DataLoader`` worker, whatever the number of workers. Random
offsets change with :meth:`PairedDataset.set_epoch` (call it before each epoch, as with
``DistributedSampler``; with ``persistent_workers=True`` the workers keep the epoch they were
started with). Fixed offsets (validation/test) ignore the epoch.

Cache. Audio is decoded once, by ``prepare``, into 16-bit stereo WAVs at the model rate
(:mod:`mastering.data.prepare`); a segment is then a seek and a copy. :class:`SegmentReader`
keeps the open files per process (an LRU of handles), so no epoch decodes compressed audio again.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import Dataset

from ..dsp.signals import pink_noise
from ..profiles import get_profile
from . import demaster as dm
from .manifest import load_manifest, segment_offsets

__all__ = [
    "derive_seed",
    "SegmentReader",
    "TrackSegments",
    "PinkNoiseSegments",
    "PairedDataset",
    "MultiSourceDataset",
    "build_paired_datasets",
]


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts (stable across processes and Python versions)."""
    text = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


class SegmentReader:
    """Reads ``[channels, samples]`` float32 segments from WAV/FLAC files, keeping up to
    ``max_open`` files open per process (safe after ``fork``: handles are keyed by the pid)."""

    def __init__(self, max_open: int = 32):
        self.max_open = int(max_open)
        self._pid = None
        self._files: OrderedDict[str, sf.SoundFile] = OrderedDict()

    def _handle(self, path: str) -> sf.SoundFile:
        if self._pid != os.getpid():  # a new worker process: never share parent handles
            self._files = OrderedDict()
            self._pid = os.getpid()
        fh = self._files.get(path)
        if fh is None:
            fh = sf.SoundFile(path)
            self._files[path] = fh
            while len(self._files) > self.max_open:
                _, old = self._files.popitem(last=False)
                old.close()
        else:
            self._files.move_to_end(path)
        return fh

    def read(self, path: str, start: int, frames: int) -> np.ndarray:
        """``frames`` samples from ``start``; zero-padded past the end of the file."""
        fh = self._handle(str(path))
        fh.seek(max(0, int(start)))
        data = fh.read(int(frames), dtype="float32", always_2d=True)
        if data.shape[0] < frames:
            data = np.concatenate([data, np.zeros((frames - data.shape[0], data.shape[1]), np.float32)])
        return np.ascontiguousarray(data.T)

    def __getstate__(self):  # pickled into workers without open handles
        return {"max_open": self.max_open, "_pid": None, "_files": OrderedDict()}

    def __setstate__(self, state):
        self.__dict__.update(state)


class TrackSegments:
    """Segments of prepared tracks (a :func:`mastering.data.load_manifest` frame).

    Args:
        tracks: manifest rows (``path``, ``duration_s``, ``sample_rate``, ``source``, ``track_id``,
            ``split``, ``license``).
        segment_seconds: segment length.
        offsets: ``"fixed"``: every full segment on a grid of ``hop_seconds`` (default: the
            segment length), one item each; ``"random"``: item ``i`` picks a track with
            probability proportional to its duration and a uniform offset, from its seed.
        hop_seconds: grid step for fixed offsets.
    """

    def __init__(self, tracks: pd.DataFrame, segment_seconds: float, offsets: str = "random",
                 hop_seconds: float | None = None, name: str = "real"):
        if offsets not in ("fixed", "random"):
            raise ValueError(f"offsets must be 'fixed' or 'random', got {offsets!r}")
        if len(tracks) == 0:
            raise ValueError(f"no tracks for source {name!r}: prepare the data (`make data`) or check the split")
        rates = set(int(r) for r in tracks["sample_rate"])
        if len(rates) != 1:
            raise ValueError(f"tracks have several sample rates {sorted(rates)}; prepare them at one rate")
        self.tracks = tracks.reset_index(drop=True)
        self.sample_rate = rates.pop()
        self.segment_seconds = float(segment_seconds)
        self.num_samples = int(round(segment_seconds * self.sample_rate))
        self.offsets = offsets
        self.name = name
        self.reader = SegmentReader()
        durations = self.tracks["duration_s"].to_numpy(float)
        if offsets == "fixed":
            grid = [(t, off) for t, d in enumerate(durations) for off in segment_offsets(d, segment_seconds, hop_seconds)]
            if not grid:
                raise ValueError(f"every track is shorter than one {segment_seconds} s segment")
            self.grid = grid
        else:
            usable = np.maximum(durations - segment_seconds, 0.0) + 1e-9
            self.weights = usable / usable.sum()

    @property
    def random_offsets(self) -> bool:
        return self.offsets == "random"

    def __len__(self) -> int:
        return len(self.grid) if self.offsets == "fixed" else len(self.tracks)

    def get(self, index: int, seed: int) -> tuple[np.ndarray, dict]:
        if self.offsets == "fixed":
            t, off = self.grid[index % len(self.grid)]
        else:
            rng = np.random.default_rng(seed)
            t = int(rng.choice(len(self.tracks), p=self.weights))
            span = max(float(self.tracks.at[t, "duration_s"]) - self.segment_seconds, 0.0)
            off = float(rng.uniform(0.0, span))
        row = self.tracks.iloc[t]
        start = int(round(off * self.sample_rate))
        audio = self.reader.read(row["path"], start, self.num_samples)
        meta = {"source": str(row["source"]), "kind": str(row.get("kind", self.name)),
                "track_id": str(row["track_id"]), "offset_s": round(start / self.sample_rate, 6),
                "split": str(row.get("split", "")), "license": str(row.get("license", ""))}
        return audio, meta


class PinkNoiseSegments:
    """Seeded stereo pink noise (:func:`mastering.dsp.signals.pink_noise`, exact 1/f) segments at
    a level drawn uniformly from ``level_dbfs`` (RMS)."""

    random_offsets = False

    def __init__(self, num_items: int, segment_seconds: float, sample_rate: int,
                 level_dbfs: tuple[float, float] = (-30.0, -12.0), channels: int = 2):
        self.num_items = int(num_items)
        self.sample_rate = int(sample_rate)
        self.segment_seconds = float(segment_seconds)
        self.num_samples = int(round(segment_seconds * sample_rate))
        self.level_dbfs = level_dbfs
        self.channels = channels
        self.name = "pink"

    def __len__(self) -> int:
        return self.num_items

    def get(self, index: int, seed: int) -> tuple[np.ndarray, dict]:
        rng = np.random.default_rng(seed)
        level = float(rng.uniform(*self.level_dbfs))
        x = pink_noise(self.num_samples, channels=self.channels, batch=1, seed=int(rng.integers(2**62)),
                       level_dbfs=level)[0].numpy().astype(np.float32)
        return x, {"source": "pink", "kind": "pink", "track_id": f"pink/{index}", "offset_s": 0.0,
                   "split": "", "license": "synthetic", "level_dbfs": level}


class PairedDataset(Dataset):
    """(degraded, mastered, params) segments: the demastering chain applied to a segment source.

    Args:
        source: :class:`TrackSegments` or :class:`PinkNoiseSegments`.
        seed: dataset seed; with ``index`` (and the epoch, for random offsets) it fixes the
            segment, the demastering parameters and the augmentation.
        length: items per epoch (default: ``len(source)``).
        demaster_ranges: override :data:`mastering.data.demaster.PARAM_RANGES`.
        augment: apply the augmentation: a random polarity flip and channel swap (same for both
            signals, probability ``p_polarity``/``p_swap``) and a gain drawn from ``gain_db``
            applied to the degraded input only (input-level robustness; logged in the record).

    An item is a dict: ``degraded`` and ``mastered`` ``[channels, samples]`` float32 tensors,
    ``params`` (:func:`mastering.data.demaster.params_vector`, float32), ``index``, ``seed`` and
    the segment's ``source``/``kind``/``track_id``/``offset_s``/``split``. :meth:`record` returns
    the full demastering record of an item.
    """

    def __init__(self, source, seed: int = 0, length: int | None = None, demaster_ranges: dict | None = None,
                 augment: bool = True, gain_db: tuple[float, float] = (-6.0, 6.0), p_polarity: float = 0.5,
                 p_swap: float = 0.5):
        self.source = source
        self.seed = int(seed)
        self.length = len(source) if length is None else int(length)
        if self.length <= 0:
            raise ValueError("a dataset needs at least one item")
        self.demaster_ranges = demaster_ranges
        self.augment = augment
        self.gain_db = gain_db
        self.p_polarity = p_polarity
        self.p_swap = p_swap
        self.epoch = 0
        self.sample_rate = source.sample_rate

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (changes random offsets and draws; fixed-offset items stay the same)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def item_seed(self, index: int) -> int:
        if getattr(self.source, "random_offsets", False):
            return derive_seed(self.seed, self.epoch, index)
        return derive_seed(self.seed, index)

    def _make(self, index: int) -> tuple[dict, dict]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        s = self.item_seed(index)
        mastered, meta = self.source.get(index % len(self.source), derive_seed(s, "segment"))
        params = dm.sample_params(derive_seed(s, "demaster"), duration_s=mastered.shape[-1] / self.sample_rate,
                                  ranges=self.demaster_ranges)
        x = torch.from_numpy(mastered)
        degraded, record = dm.apply(x, self.sample_rate, params, return_log=True)
        aug = {"polarity": 1.0, "swap_channels": False, "input_gain_db": 0.0}
        if self.augment:
            rng = np.random.default_rng(derive_seed(s, "augment"))
            aug["polarity"] = -1.0 if rng.uniform() < self.p_polarity else 1.0
            aug["swap_channels"] = bool(rng.uniform() < self.p_swap) and x.shape[0] == 2
            aug["input_gain_db"] = float(rng.uniform(*self.gain_db))
            if aug["swap_channels"]:
                x, degraded = x.flip(0), degraded.flip(0)
            x = x * aug["polarity"]
            degraded = degraded * (aug["polarity"] * 10.0 ** (aug["input_gain_db"] / 20.0))
        record["augment"] = aug
        record["segment"] = meta
        item = {"degraded": degraded.float().contiguous(), "mastered": x.float().contiguous(),
                "params": torch.from_numpy(dm.params_vector(record)), "index": index, "seed": s, **meta}
        return item, record

    def __getitem__(self, index: int) -> dict:
        return self._make(index)[0]

    def record(self, index: int) -> dict:
        """The full demastering record of item ``index`` (parameters, applied values, augmentation)."""
        return self._make(index)[1]


class MultiSourceDataset(Dataset):
    """A mixture of datasets drawn with given ratios (e.g. pink 0.3 / real 0.5 / rendered 0.2).

    Item ``i`` draws its dataset with probabilities ``ratios`` and an index within it from
    ``derive_seed(seed, epoch, i)``; datasets missing or empty are dropped and the ratios of the
    rest renormalised. The item gets ``mixture_source`` (the dataset's name).
    """

    def __init__(self, datasets: dict[str, Dataset], ratios: dict[str, float], length: int, seed: int = 0):
        avail = {k: d for k, d in datasets.items() if d is not None and len(d) > 0 and ratios.get(k, 0) > 0}
        if not avail:
            raise ValueError(f"none of the datasets {sorted(datasets)} is available with a ratio > 0 ({ratios})")
        if any(v < 0 for v in ratios.values()):
            raise ValueError(f"ratios must be >= 0, got {ratios}")
        self.names = sorted(avail)
        self.datasets = avail
        p = np.array([ratios[k] for k in self.names], float)
        self.probs = p / p.sum()
        self.length = int(length)
        self.seed = int(seed)
        self.epoch = 0

    @property
    def ratios(self) -> dict[str, float]:
        return dict(zip(self.names, self.probs.tolist()))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for d in self.datasets.values():
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def choose(self, index: int) -> tuple[str, int]:
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, index, "mixture"))
        name = self.names[int(rng.choice(len(self.names), p=self.probs))]
        return name, int(rng.integers(len(self.datasets[name])))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        name, j = self.choose(index)
        item = dict(self.datasets[name][j])
        item["mixture_source"] = name
        return item


def build_paired_datasets(profile: str, split: str = "train", length: int | None = None,
                          offsets: str | None = None, seed: int | None = None) -> MultiSourceDataset:
    """The profile's multi-source training/evaluation mixture.

    Real and rendered tracks of ``split`` from the manifest, pink noise, mixed with the profile's
    ``source_ratios``; segments of ``segment_seconds``; ``pairs_per_epoch`` items (or ``length``).
    Offsets are random for ``train`` and fixed otherwise unless ``offsets`` says.

    Raises:
        FileNotFoundError: data not prepared.
    """
    params = get_profile(profile)
    seed = int(params["seed"]) if seed is None else int(seed)
    seg = float(params["segment_seconds"])
    offsets = offsets or ("random" if split == "train" else "fixed")
    tracks = load_manifest(profile, split=split)
    n = int(length or params.get("pairs_per_epoch", 64))
    datasets: dict[str, Dataset | None] = {}
    for kind in ("real", "rendered"):
        sel = tracks[tracks["kind"] == kind]
        # random offsets: one distinct draw per mixture item, not one per track (len of the source)
        datasets[kind] = (PairedDataset(TrackSegments(sel, seg, offsets=offsets, name=kind),
                                        seed=derive_seed(seed, split, kind), augment=split == "train",
                                        length=n if offsets == "random" else None)
                          if len(sel) else None)
    datasets["pink"] = PairedDataset(PinkNoiseSegments(n, seg, int(params["sample_rate"])),
                                     seed=derive_seed(seed, split, "pink"), augment=split == "train")
    ratios = params.get("source_ratios", {"pink": 0.3, "real": 0.5, "rendered": 0.2})
    return MultiSourceDataset(datasets, ratios, length=n, seed=derive_seed(seed, split, "mixture"))
