"""Datasets of the semantic stage: audio processed with SAFE-DB equaliser settings.

Items follow the data layer's conventions (:mod:`mastering.data.datasets`): every item derives
its seeds from ``(seed, index)`` (:func:`~mastering.data.datasets.derive_seed`), so item ``i`` is
the same in any ``DataLoader`` worker; audio is ``[channels, samples]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..data.datasets import PinkNoiseSegments, TrackSegments, derive_seed
from ..dsp.eq import parametric_eq
from .safedb import load_safedb, normalize_params, params_array, safe_to_bands

__all__ = ["SafeEQPairs"]


class SafeEQPairs(Dataset):
    """Audio processed with SAFE-DB equaliser settings, for the semantic encoder.

    Item ``i`` takes SAFE setting ``order[i % n]`` (a seeded permutation of the rows), a dry
    signal (pink noise, or a real-music segment for the ablation: ``audio="music"`` with
    ``tracks``), and applies the setting's five bands (low shelf, three peaking, high shelf,
    :func:`mastering.semantic.safedb.safe_to_bands`) with :func:`mastering.dsp.eq.parametric_eq`.

    Returns dicts with ``audio`` (processed) and ``dry`` ``[channels, samples]``, ``params`` (the
    13 SAFE values, physical units, :data:`mastering.semantic.safedb.PARAM_NAMES` order),
    ``params_norm`` (0..1), ``descriptor`` (normalised word) and ``descriptor_index`` (position
    in :attr:`descriptors`, sorted).

    Args:
        safedb: a :func:`mastering.semantic.safedb.load_safedb` frame (loaded when ``None``).
        sample_rate, segment_seconds, channels: the audio.
        audio: ``"pink"`` or ``"music"``.
        tracks: manifest frame for ``audio="music"``.
        seed: fixes the order, the noise and the music offsets.
        length: items (default: number of SAFE rows).
    """

    def __init__(self, safedb: pd.DataFrame | None = None, sample_rate: int = 44100, segment_seconds: float = 3.0,
                 audio: str = "pink", tracks: pd.DataFrame | None = None, seed: int = 0, length: int | None = None,
                 channels: int = 2, level_dbfs: tuple[float, float] = (-30.0, -12.0)):
        if audio not in ("pink", "music"):
            raise ValueError(f"audio must be 'pink' or 'music', got {audio!r}")
        self.df = (load_safedb() if safedb is None else safedb).reset_index(drop=True)
        if len(self.df) == 0:
            raise ValueError("SAFE-DB frame is empty")
        self.params = params_array(self.df)
        self.params_norm = np.asarray(normalize_params(self.params, clip=True), dtype=np.float32)
        self.descriptors = sorted(set(self.df["descriptor"]))
        self._desc_index = {d: i for i, d in enumerate(self.descriptors)}
        self.order = np.random.default_rng(derive_seed(seed, "safe-order")).permutation(len(self.df))
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.length = len(self.df) if length is None else int(length)
        self.audio = audio
        if audio == "pink":
            self.source = PinkNoiseSegments(self.length, segment_seconds, sample_rate, level_dbfs, channels)
        else:
            if tracks is None:
                raise ValueError("audio='music' needs tracks (a load_manifest frame)")
            self.source = TrackSegments(tracks, segment_seconds, offsets="random")
            if self.source.sample_rate != self.sample_rate:
                raise ValueError(f"tracks are at {self.source.sample_rate} Hz, not {self.sample_rate} Hz")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        row = int(self.order[index % len(self.order)])
        dry, meta = self.source.get(index % len(self.source), derive_seed(self.seed, index, "safe-audio"))
        freq, gain, q, kinds = safe_to_bands(self.params[row])
        x = torch.from_numpy(dry)[None]
        y = parametric_eq(x, self.sample_rate, freq[None], gain[None], q[None], kinds=kinds, mode="exact",
                          backend="torch")[0]  # fork-safe in DataLoader workers (no OpenMP)
        desc = str(self.df.at[row, "descriptor"])
        return {"audio": y.float(), "dry": x[0].float(), "params": torch.from_numpy(self.params[row].astype(np.float32)),
                "params_norm": torch.from_numpy(self.params_norm[row]), "descriptor": desc,
                "descriptor_index": self._desc_index[desc], "safe_row": row, "track_id": meta["track_id"]}
