"""Which SAFE-DB descriptors the semantic EQ offers, and their statistics from training contributors only.

A descriptor is *offered* (``mastering master --style WORD``, the scores of ``mastering analyze``,
the paper's descriptor table) when it is a single lower-case word after
:func:`~mastering.semantic.safedb.normalize_descriptor` (letters only: "re27" or "lv2" never are,
:func:`is_word`) with at least :data:`MIN_DESCRIPTOR_SETTINGS` SAFE-DB settings saved by the VAE's
*training* contributors. Below that a centroid rests on a handful of people (SAFE-DB's "clear":
10 settings in all, 6 from training contributors), and a user would get one person's EQ under a
word that sounds as trustworthy as "warm".

The split is the VAE's own, never a second rule: :func:`mastering.semantic.vae.split_by_contributor`
(every contributor on one side only) with the profile's ``vae.train.val_fraction`` and the run seed
(:func:`training_index`); :func:`mastering.semantic.adaptive.build_semantic_eq` uses the
``train_index`` recorded by the trained VAE run itself. Descriptor centroids and every other
per-descriptor quantity used at inference (:func:`descriptor_centroids`, the medoid settings) are
computed on those rows only, so held-out contributors neither vote for a word nor move its centroid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..profiles import get_profile
from .safedb import descriptor_counts, normalize_descriptor
from .vae import descriptor_embeddings, latent_codes, split_by_contributor

__all__ = [
    "MIN_DESCRIPTOR_SETTINGS",
    "is_word",
    "training_index",
    "training_counts",
    "offered_descriptors",
    "offered_from_centroids",
    "descriptor_centroids",
    "unknown_style_message",
]

#: Least number of SAFE-DB settings from the VAE's training contributors for a descriptor to be offered.
MIN_DESCRIPTOR_SETTINGS = 50

_WORD = re.compile(r"[a-z]+")


def is_word(descriptor: Any) -> bool:
    """Whether a normalized descriptor looks like a word: lower-case letters only ("re27" does not)."""
    return isinstance(descriptor, str) and _WORD.fullmatch(descriptor) is not None


def training_index(df: pd.DataFrame, profile: str = "smoke", seed: int | None = None) -> np.ndarray:
    """Row positions in ``df`` of the VAE's training contributors for ``profile``.

    The split of :func:`mastering.semantic.vae.train_vae`: :func:`split_by_contributor` with the
    profile's ``vae.train.val_fraction`` and ``seed`` (default the profile's run seed, which
    notebook 07 and :func:`mastering.semantic.adaptive.build_semantic_eq` pass to the VAE).
    """
    P = get_profile(profile)
    seed = int(P["seed"] if seed is None else seed)
    return split_by_contributor(df, float(P["vae"]["train"]["val_fraction"]), seed)[0]


def training_counts(df: pd.DataFrame, train_index: Sequence[int] | np.ndarray) -> pd.Series:
    """Settings per word-like descriptor (:func:`is_word`) among the rows ``train_index``, most first."""
    counts = descriptor_counts(df.iloc[np.asarray(train_index, dtype=int)])
    return counts[[is_word(d) for d in counts.index]]


def offered_descriptors(
    df: pd.DataFrame, train_index: Sequence[int] | np.ndarray, min_settings: int = MIN_DESCRIPTOR_SETTINGS
) -> pd.Series:
    """The offered descriptors and their training-contributor setting counts, most first (ties alphabetical)."""
    counts = training_counts(df, train_index)
    return counts[counts >= int(min_settings)]


def descriptor_centroids(
    model: Any, df: pd.DataFrame, train_index: Sequence[int] | np.ndarray, min_count: int = 1
) -> pd.DataFrame:
    """Latent centroids of the word-like descriptors, from the training contributors' rows only.

    :func:`mastering.semantic.vae.descriptor_embeddings` of the VAE's posterior means of
    ``df.iloc[train_index]``: ``z_0..`` (the centroid), ``count`` (training settings) and ``spread``,
    for descriptors with at least ``min_count`` training settings. Which of them are offered to
    users is :func:`offered_from_centroids`; the others stay available to the research code (e.g.
    "clear", a listening-test target).
    """
    codes = latent_codes(model, df.iloc[np.asarray(train_index, dtype=int)])
    codes = codes[codes["descriptor"].map(is_word)]
    return descriptor_embeddings(codes, min_count=min_count)


def offered_from_centroids(centroids: pd.DataFrame, min_settings: int = MIN_DESCRIPTOR_SETTINGS) -> list[str]:
    """The offered descriptors of a centroid table (its ``count`` is of training settings), most first."""
    keep = [d for d in centroids.index if is_word(d) and int(centroids.loc[d, "count"]) >= int(min_settings)]
    return sorted(keep, key=lambda d: (-int(centroids.loc[d, "count"]), d))


def unknown_style_message(word: Any, offered: Iterable[str], min_settings: int = MIN_DESCRIPTOR_SETTINGS) -> str:
    """The one-line error for a word that is not offered, listing those that are."""
    available = ", ".join(sorted(offered)) or "none"
    shown = word if isinstance(word, str) else str(word)
    norm = normalize_descriptor(word)
    also = f" (read as {norm!r})" if norm and norm != shown.strip() else ""
    return (f"unknown style {shown!r}{also}: available: {available} (descriptors with >= {int(min_settings)} "
            "SAFE-DB settings from the training contributors)")
