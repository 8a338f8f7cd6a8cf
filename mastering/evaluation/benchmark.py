"""Running every system over the held-out test tracks: data, metrics, intervals, tests, speed.

Test data. The test split's real tracks (split by track, so no excerpt of them was ever trained
on), at full length in the ``full`` profile (excerpts of each in ``smoke`` and ``cpu``: the
profile's ``excerpts_per_track``, evenly spaced, each its own pair), are degraded by one of
:data:`CHAINS`: the data pipeline's demastering chain (:func:`mastering.data.demaster.demaster`)
or a simpler one training never used (:func:`mastering.data.demaster.simple_degrade`), with the
seed :func:`evaluation_seed` ``= derive_seed("evaluation", seed, track)`` (excerpt ``i > 0``: of
``"<track>#<i>"``). Training and validation draw their demastering seeds as
``derive_seed(item_seed, "demaster")`` from their own item seeds (:mod:`mastering.data.datasets`);
:func:`training_demaster_seeds` lists every such seed the profile's training and validation can
use and :func:`load_test_pairs` checks that no evaluation seed is among them.

Statistics (on the results of one chain). Per system and metric: the mean over excerpts and a
95 % percentile cluster bootstrap interval resampling tracks (:func:`cluster_bootstrap_ci`: the
excerpts of a track go together; :func:`scipy.stats.bootstrap`, seeded); paired tests of the
best Phase 1 system against every other system on the per-track values (means over a track's
excerpts): Wilcoxon signed-rank (:func:`scipy.stats.wilcoxon`) and paired t
(:func:`scipy.stats.ttest_rel`), Holm-corrected over the comparisons of each metric.

Speed. Seconds of audio mastered per second of wall time on the CPU (torch's thread count as set),
over the whole evaluation; and the latency of mastering a 5 s excerpt on each device a system
supports (the GPU when ``torch.cuda.is_available()``), beside the design's latency targets
(:data:`DESIGN_LATENCY_MS`). These are measurements to report, never assertions.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from .. import paths
from ..data import demaster as dm
from ..data import list_tracks
from ..data.datasets import build_paired_datasets, derive_seed
from ..dsp.loudness import loudness
from ..io import load_audio
from ..profiles import get_profile
from ..runs import run_folder, run_key
from ..training import build_datasets, train, train_config
from ..training.thesis import fit_or_load_thesis, thesis_config
from .metrics import METRICS, Reference, evaluate_pair
from .systems import (UNET_LSTM_DESCRIPTION, BandRegressionEQSystem, GriffinLimFloorSystem, IdentitySystem,
                      LoudnessNormSystem, MatcheringArm, Phase1System, StaticEQSystem, System, ThesisSystem,
                      band_corrections, band_levels, fit_predictor, fit_static_eq)

__all__ = [
    "DESIGN_LATENCY_MS",
    "TEST_METRICS",
    "evaluation_seed",
    "training_demaster_seeds",
    "CHAINS",
    "excerpt_offsets",
    "load_test_pairs",
    "phase_checkpoint",
    "static_eq_curve",
    "album_reference",
    "oracle_offset",
    "oracle_reference",
    "matchering_arms",
    "training_pairs",
    "profile_pairs",
    "band_set",
    "blind_band_eq",
    "thesis_budget",
    "thesis_system",
    "build_systems",
    "run_benchmark",
    "cluster_bootstrap_ci",
    "summarize",
    "best_system",
    "paired_tests",
    "throughput",
    "measure_latency",
    "speed_table",
]

DESIGN_LATENCY_MS: dict[str, dict[str, float]] = {"phase1b": {"cpu": 270.0, "cuda": 23.0}}
"""The design document's latency per 5 s of audio (Phase 1B: CPU 270 ms, GPU 23 ms)."""

TEST_METRICS = ("mrstft", "band_error_db", "loudness_error_lu", "a_weighted_l1", "si_sdr_db")
"""Metrics the paired tests compare (the true peak is a property judged against the ceiling)."""


# --------------------------------------------------------------------------------------------
# test data
# --------------------------------------------------------------------------------------------
def evaluation_seed(track_key: str, seed: int = 0) -> int:
    """The demastering seed of a test track (never drawn by training, see :func:`training_demaster_seeds`)."""
    return derive_seed("evaluation", int(seed), str(track_key))


def training_demaster_seeds(profile: str, seed: int | None = None, epochs: int | None = None,
                            items: int | None = None) -> set[int]:
    """Every demastering seed the profile's training and validation data can draw.

    Mirrors :func:`mastering.training.data.build_datasets` and
    :func:`mastering.data.datasets.build_paired_datasets`: per split and source a dataset seed
    ``derive_seed(seed, split, kind)``; item seeds ``derive_seed(dataset_seed, epoch, index)``
    (random offsets) or ``derive_seed(dataset_seed, index)`` (pink noise); the demastering seed
    ``derive_seed(item_seed, "demaster")``. Indices up to ``items`` (default: the larger of the
    profile's pair counts) and epochs up to ``epochs`` (default: the training profile's).
    """
    params = get_profile(profile)
    seeds = {int(params["seed"]) if seed is None else int(seed)}
    tp = params["train"]
    epochs = int(epochs if epochs is not None else max(tp["epochs"], 1))
    items = int(items if items is not None else max(tp["data"]["train_items"], tp["data"]["valid_items"],
                                                    params.get("pairs_per_epoch", 0), 64))
    out: set[int] = set()
    for s in seeds:
        for split in ("train", "valid"):
            for kind in ("real", "rendered", "pink"):
                ds = derive_seed(s, split, kind)
                for index in range(items):
                    out.add(derive_seed(derive_seed(ds, index), "demaster"))
                    for epoch in range(epochs):
                        out.add(derive_seed(derive_seed(ds, epoch, index), "demaster"))
    return out


CHAINS = ("demaster", "simple")
"""Degradations of the test inputs: the training data's chain (:func:`mastering.data.demaster.demaster`)
and a simpler one it never saw (:func:`mastering.data.demaster.simple_degrade`)."""


def excerpt_offsets(duration_s: float, max_seconds: float | None, n: int) -> list[float]:
    """Offsets (s) of ``n`` evenly spaced excerpts of ``max_seconds`` of a track of ``duration_s``.

    A track of at least ``n * max_seconds`` is cut into ``n`` equal parts and each excerpt is the
    middle of its part (no two overlap; ``n = 1`` is the middle of the track); a shorter track gets
    ``n`` excerpts from its start to its end, evenly spaced (overlapping); a track no longer than
    ``max_seconds`` (or ``max_seconds=None``) is one excerpt, the whole track (offset 0). Offsets
    are rounded to the millisecond, duplicates dropped.
    """
    n = max(int(n), 1)
    if max_seconds is None or duration_s <= max_seconds:
        return [0.0]
    m = float(max_seconds)
    if n == 1:
        offsets = [(duration_s - m) / 2.0]
    elif duration_s >= n * m:
        offsets = [(i + 0.5) * duration_s / n - m / 2.0 for i in range(n)]
    else:
        offsets = [i * (duration_s - m) / (n - 1) for i in range(n)]
    return list(dict.fromkeys(round(min(max(o, 0.0), duration_s - m), 3) for o in offsets))


def load_test_pairs(profile: str = "smoke", seed: int = 0, max_tracks: int | None = None,
                    max_seconds: float | None = None, kind: str | None = None, chain: str | None = None,
                    excerpts_per_track: int | None = None) -> list[dict[str, Any]]:
    """The degraded test tracks: ``[{"track", "item", "excerpt", "chain", "mastered", "degraded",
    "sample_rate", "seed", "offset_s", "duration_s", "record", "package", "path", "track_duration_s",
    "kind"}]`` with ``[channels, samples]`` tensors (``package``: the album or game the track belongs to).

    Defaults come from the profile's ``evaluation`` section (``chain``: the first of its ``chains``).
    Each track gives ``excerpts_per_track`` excerpts of ``max_seconds`` (:func:`excerpt_offsets`:
    evenly spaced, one from the middle when 1; ``max_seconds=None`` or a shorter track: the whole
    track once), each its own pair: ``item`` is ``"<track>#<excerpt>"`` and ``track`` the track (the
    unit :func:`summarize` resamples). Excerpt 0 is degraded with :func:`evaluation_seed` of the
    track, excerpt ``i > 0`` with that of ``"<track>#<i>"``; ``chain`` ``"demaster"`` degrades with
    the training data's chain, ``"simple"`` with :func:`mastering.data.demaster.simple_degrade`.

    Raises:
        FileNotFoundError: the profile's data is not prepared.
        ValueError: no test tracks, an unknown chain, or an evaluation seed that training could also draw.
    """
    ev = get_profile(profile)["evaluation"]
    max_tracks = ev["max_tracks"] if max_tracks is None else max_tracks
    max_seconds = ev["max_seconds"] if max_seconds is None else max_seconds
    kind = ev["kind"] if kind is None else kind
    chain = ev["chains"][0] if chain is None else chain
    excerpts_per_track = ev["excerpts_per_track"] if excerpts_per_track is None else excerpts_per_track
    if chain not in CHAINS:
        raise ValueError(f"unknown degradation chain {chain!r}; choose one of {CHAINS}")
    if int(excerpts_per_track) < 1:
        raise ValueError(f"excerpts_per_track must be >= 1, got {excerpts_per_track}")
    tracks = sorted(list_tracks(profile=profile, split="test", kind=kind), key=lambda t: t.key)
    if not tracks:
        raise ValueError(f"no {kind} test tracks in the {profile} profile; prepare the data (`make data PROFILE={profile}`)")
    if max_tracks:
        tracks = tracks[: int(max_tracks)]
    forbidden = training_demaster_seeds(profile, seed)
    pairs = []
    for t in tracks:
        offsets = excerpt_offsets(t.duration_s, max_seconds, int(excerpts_per_track))
        duration = float(max_seconds) if max_seconds is not None and t.duration_s > max_seconds else None
        for i, offset in enumerate(offsets):
            s = evaluation_seed(t.key if i == 0 else f"{t.key}#{i}", seed)
            if s in forbidden:
                raise ValueError(f"evaluation seed of {t.key} (excerpt {i}) is one training draws; change the evaluation seed")
            x, sr = load_audio(t.path, offset_s=offset, duration_s=duration, channels=2)
            if chain == "demaster":
                y, record = dm.demaster(x, sr, seed=s)
            else:
                y, record = dm.simple_degrade(x, sr, seed=s)
            pairs.append({"track": t.key, "item": f"{t.key}#{i}", "excerpt": i, "chain": chain, "mastered": x,
                          "degraded": y.float(), "sample_rate": int(sr), "seed": s, "offset_s": offset,
                          "duration_s": x.shape[-1] / sr, "record": record, "package": t.package,
                          "path": str(t.path), "track_duration_s": float(t.duration_s), "kind": kind})
    return pairs


# --------------------------------------------------------------------------------------------
# the systems
# --------------------------------------------------------------------------------------------
def phase_checkpoint(phase: str, profile: str = "smoke", seed: int = 0, train_missing: bool = True,
                     progress: bool = False) -> tuple[Path, str]:
    """The ``best.pt`` of a phase's run and a note saying where it came from.

    In order: the run of the notebooks' configuration (``train_config(phase, profile, seed=seed)``,
    the folder notebooks 03-05 train into); else the newest run of that phase and profile (another
    commit or setting: the note says so); else, with ``train_missing``, that configuration trained
    now.

    Raises:
        FileNotFoundError: no run and ``train_missing`` is false.
    """
    config = train_config(phase, profile, seed=int(seed), progress=progress)
    folder = paths.runs_dir() / "mastering"
    exact = folder / config.run_name() / "best.pt"
    if exact.is_file():
        return exact, f"run {exact.parent.name}"
    others = sorted(folder.glob(f"phase{phase}-{profile}-*/best.pt"), key=lambda p: p.stat().st_mtime)
    if others:
        return others[-1], f"run {others[-1].parent.name} (newest {profile} run; not this commit's configuration)"
    if not train_missing:
        raise FileNotFoundError(f"no phase {phase} run under {folder}; run notebook 0{ord(phase[-1]) - ord('a') + 3}")
    trainer, _ = train(config)
    return trainer.run_dir / "best.pt", f"run {trainer.run_dir.name} (trained here)"


def training_pairs(profile: str = "smoke", seed: int = 0, items: int = 16, split: str = "train"
                   ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], int]:
    """``items`` (degraded, mastered) pairs of the data layer's mixture of ``split``
    (:func:`mastering.data.datasets.build_paired_datasets`: real, rendered and pink noise at the
    profile's ratios and segment length) and their sample rate."""
    ds = build_paired_datasets(profile, split, length=int(items), seed=seed)
    pairs = [(item["degraded"], item["mastered"]) for item in (ds[i] for i in range(len(ds)))]
    return pairs, int(next(iter(ds.datasets.values())).sample_rate)


def profile_pairs(profile: str = "cpu", seed: int = 0, progress: bool = False,
                  train_items: int | None = None) -> tuple[Any, Any, int]:
    """``(train, valid, sample_rate)``: the training and validation datasets the profile's Phase 1
    models learn from and are chosen on (:func:`mastering.training.data.build_datasets`; the pair
    cache of ``make reproduce``, made on first use).

    ``train_items`` other than the profile's draws that many training pairs from the same mixture
    (sources, ratios, chain, augmentation, seed), made as they are read and never cached: a pool
    larger than training used, for :func:`mastering.evaluation.predictability.learning_curve`. The
    validation pairs stay the profile's (the same pairs, then also made as read)."""
    config = train_config("1c", profile, seed=seed, progress=progress)
    if train_items is not None and int(train_items) != int(config.data["train_items"]):
        if int(train_items) < 1:
            raise ValueError(f"train_items must be >= 1, got {train_items}")
        config = train_config("1c", profile, seed=seed, progress=progress,
                              data={"train_items": int(train_items), "cache": None})
    train_data, valid_data = build_datasets(config)
    return train_data, valid_data, int(config.sample_rate)


def band_set(pairs: Any, sample_rate: int, keep_audio: bool = False, chunk: int = 64,
             progress: bool = False, desc: str = "pairs") -> dict[str, Any]:
    """Band features of pairs, read ``chunk`` at a time (memory stays that of a chunk): the degraded
    inputs' centred 1/3-octave levels (``features``, :func:`mastering.evaluation.systems.band_levels`),
    the corrections (``corrections``, :func:`~mastering.evaluation.systems.band_corrections`), the
    pairs' tracks (``groups``), ``centres_hz``, ``sample_rate`` and, with ``keep_audio``, the audio
    (``degraded``, ``mastered`` ``[n, channels, samples]`` float32).

    Args:
        pairs: a dataset of dicts with ``degraded``, ``mastered`` (``[channels, samples]``) and
            ``track_id``, or such a dict of stacked NumPy arrays with ``groups``.
    """
    if isinstance(pairs, dict):
        n = len(pairs["degraded"])
        get = lambda i: (pairs["degraded"][i], pairs["mastered"][i], str(pairs["groups"][i]))  # noqa: E731
    else:
        n = len(pairs)

        def get(i):
            item = pairs[i]
            return (item["degraded"].numpy(), item["mastered"].numpy(), str(item.get("track_id", i)))
    if n == 0:
        raise ValueError("no pairs")
    parts: dict[str, list] = {"features": [], "corrections": [], "groups": [], "degraded": [], "mastered": []}
    for lo in tqdm(range(0, n, chunk), desc=desc, disable=not progress, leave=False):
        items = [get(i) for i in range(lo, min(lo + chunk, n))]
        x, y = np.stack([it[0] for it in items]), np.stack([it[1] for it in items])
        centres, levels = band_levels(x, sample_rate)
        parts["features"].append(levels)
        parts["corrections"].append(band_corrections(x, y, sample_rate))
        parts["groups"] += [it[2] for it in items]
        if keep_audio:
            parts["degraded"].append(x.astype(np.float32))
            parts["mastered"].append(y.astype(np.float32))
    out = {"features": np.concatenate(parts["features"]), "corrections": np.concatenate(parts["corrections"]),
           "groups": parts["groups"], "centres_hz": centres, "sample_rate": int(sample_rate)}
    if keep_audio:
        out.update(degraded=np.concatenate(parts["degraded"]), mastered=np.concatenate(parts["mastered"]))
    return out


#: The regressor of the blind band EQ in the comparison: the best of
#: :data:`mastering.evaluation.systems.PREDICTORS` on the cpu profile's validation pairs
#: (``python -m mastering.evaluation.predictability --profile cpu``), chosen there, never on test.
BLIND_EQ_PREDICTOR = "extra_trees"


def blind_band_eq(profile: str = "smoke", seed: int = 0, true_peak_dbtp: float = -1.0,
                  kind: str = BLIND_EQ_PREDICTOR, train: dict[str, Any] | None = None) -> BandRegressionEQSystem:
    """The blind band EQ of the comparison: :func:`mastering.evaluation.systems.fit_predictor` of
    ``kind`` fitted on the training pairs of the profile's Phase 1 models (:func:`profile_pairs`), or
    on ``train`` (a :func:`band_set`), as a :class:`BandRegressionEQSystem` ending in the loudness
    finish; its ``trained_on`` says on how many pairs and tracks, its ``train_set`` is the band set."""
    if train is None:
        data, _, sr = profile_pairs(profile, seed)
        train = band_set(data, sr)
    predict, info = fit_predictor(kind, train["features"], train["corrections"], train["groups"], seed)
    system = BandRegressionEQSystem(predict, f"band_{kind}", f"blind band EQ ({kind.replace('_', ' ')})", true_peak_dbtp)
    system.trained_on = {"pairs": len(train["groups"]), "tracks": len(set(train["groups"])), **info}
    system.train_set = train  # for the predictability study beside it (no second pass over the pairs)
    return system


def static_eq_curve(profile: str = "smoke", seed: int = 0, items: int | None = None,
                    pairs: tuple[list, int] | None = None) -> dict[str, Any]:
    """The mean correction over ``items`` training pairs (:func:`training_pairs`, or the given
    ``(pairs, sample_rate)``), cached in a run folder (:mod:`mastering.runs`) by its settings and code."""
    items = int(items or get_profile(profile)["evaluation"]["static_eq_items"])
    key = run_key({"seed": seed, "items": items}, [__name__], pairs="training_pairs")
    cache = run_folder("static_eq", profile, key) / "static_eq.npz"
    if cache.is_file():
        data = np.load(cache)
        return {"freqs_hz": data["freqs_hz"], "gain_db": data["gain_db"], "items": int(data["items"]),
                "sample_rate": int(data["sample_rate"])}
    pairs, sample_rate = pairs if pairs is not None else training_pairs(profile, seed, items)
    curve = fit_static_eq(pairs[:items], sample_rate)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in curve.items()})
    tmp.replace(cache)
    return curve


def _track_excerpt(path: str, offset_s: float, seconds: float | None) -> tuple[torch.Tensor, int, float]:
    x, sr = load_audio(path, offset_s=offset_s, duration_s=seconds, channels=2)
    return x, int(sr), float(offset_s)


def _loudness_matched(x: torch.Tensor, sample_rate: int, target_lufs: float) -> torch.Tensor:
    """``x`` with the gain that brings its integrated loudness to ``target_lufs`` (no limiting)."""
    lufs = float(loudness(x[None].double(), sample_rate))
    if not math.isfinite(lufs):
        return x
    return (x.double() * 10.0 ** ((float(target_lufs) - lufs) / 20.0)).float()


def album_reference(pair: dict[str, Any], tracks: Sequence[Any], seconds: float | None = None, seed: int = 0
                    ) -> dict[str, Any]:
    """matchering's same-album reference for a test excerpt: another track of the excerpt's package.

    The reference is drawn (seeded by the excerpt's track) from ``tracks`` (the profile's test
    tracks, :func:`mastering.data.list_tracks`) of the same ``package`` as the pair, never the pair's
    own track; its middle ``seconds`` (the whole track when shorter or ``None``), brought by a pure
    gain to the integrated loudness of the excerpt's original master (the evaluation's target).

    Returns:
        ``{"audio", "sample_rate", "name", "track", "package", "offset_s", "lufs"}``.

    Raises:
        ValueError: the package has no other track.
    """
    others = sorted((t for t in tracks if t.package == pair["package"] and t.key != pair["track"]), key=lambda t: t.key)
    if not others:
        raise ValueError(f"no other track of package {pair['package']!r} for {pair['track']}'s same-album reference")
    t = others[int(np.random.default_rng(derive_seed("evaluation", "matchering", int(seed), pair["track"])).integers(len(others)))]
    offset = (t.duration_s - seconds) / 2.0 if seconds is not None and t.duration_s > seconds else 0.0
    duration = float(seconds) if seconds is not None and t.duration_s > seconds else None
    x, sr, offset = _track_excerpt(str(t.path), offset, duration)
    target = float(loudness(pair["mastered"][None].double(), pair["sample_rate"]))
    return {"audio": _loudness_matched(x, sr, target), "sample_rate": sr, "name": f"{t.key} (same album)",
            "track": t.key, "package": t.package, "offset_s": offset, "lufs": target}


def oracle_offset(track_duration_s: float, offset_s: float, duration_s: float, seconds: float | None
                  ) -> tuple[float, float | None]:
    """Offset and length (s) of the oracle's section: up to ``seconds`` of the same track that do not
    overlap the excerpt ``[offset_s, offset_s + duration_s)``, centred in the longer of the gaps
    before and after it. A track with no gap (the excerpt is the whole track) gives the whole track
    (``(0, None)``: then the reference contains the excerpt)."""
    before, after = offset_s, track_duration_s - (offset_s + duration_s)
    gap_start, gap = (0.0, before) if before >= after else (offset_s + duration_s, after)
    if gap <= 0.5:
        return 0.0, None
    length = min(gap, float(seconds)) if seconds is not None else gap
    return round(gap_start + (gap - length) / 2.0, 3), round(length, 3)


def oracle_reference(pair: dict[str, Any], seconds: float | None = None) -> dict[str, Any]:
    """matchering's oracle reference: another section of the excerpt's own original master
    (:func:`oracle_offset`), as a reference-based tool would get with a perfect reference; at the
    master's own level (no gain).

    Returns:
        ``{"audio", "sample_rate", "name", "track", "offset_s", "overlaps"}``.
    """
    offset, length = oracle_offset(pair["track_duration_s"], pair["offset_s"], pair["duration_s"], seconds)
    x, sr, offset = _track_excerpt(pair["path"], offset, length)
    return {"audio": x, "sample_rate": sr, "name": f"{pair['track']} @ {offset:g} s (oracle)", "track": pair["track"],
            "offset_s": offset, "overlaps": length is None}


def matchering_arms(profile: str = "smoke", seed: int = 0, true_peak_dbtp: float = -1.0) -> list[MatcheringArm]:
    """The two matchering arms: the same-album reference (:func:`album_reference`) and the oracle
    (:func:`oracle_reference`), each with the profile's ``reference_seconds``; both end in the finish."""
    ev = get_profile(profile)["evaluation"]
    tracks = list_tracks(profile=profile, split="test", kind=ev["kind"])
    seconds = ev["reference_seconds"]
    return [MatcheringArm(lambda pair: album_reference(pair, tracks, seconds, seed), "matchering_album",
                          "matchering, same-album ref.", "baseline", true_peak_dbtp),
            MatcheringArm(lambda pair: oracle_reference(pair, seconds), "matchering_oracle",
                          "matchering, oracle ref.", "oracle", true_peak_dbtp)]


def thesis_budget(profile: str = "smoke", seed: int = 0) -> dict[str, Any]:
    """The U-Net+LSTM baseline's training budget next to Phase 1B's (:func:`mastering.training.thesis.thesis_config`
    against :func:`mastering.training.config.train_config`): ``{"baseline": {...}, "phase1": {...}, "equal": bool}``
    over epochs, steps per epoch, batch size, training and validation pairs, segment length and learning rate."""
    keys = ("epochs", "steps_per_epoch", "batch_size", "segment_seconds", "lr", "seed")

    def budget(config) -> dict[str, Any]:
        out = {k: getattr(config, k) for k in keys}
        out.update(train_items=config.data["train_items"], valid_items=config.data["valid_items"],
                   ratios=config.data.get("ratios"))
        return out

    base, phase1 = budget(thesis_config(profile, seed, progress=False)[0]), budget(train_config("1b", profile, seed=seed))
    return {"baseline": base, "phase1": phase1, "equal": base == phase1}


def thesis_system(profile: str = "smoke", seed: int = 0, progress: bool = False, phase: str = "griffin_lim"
                  ) -> ThesisSystem:
    """The U-Net+LSTM baseline trained on Phase 1B's pairs with Phase 1B's budget (the profile's
    ``thesis`` section, through :func:`mastering.training.thesis.fit_or_load_thesis` and the one fit
    loop), or its cached run; ``phase``: Griffin-Lim or the input's phase."""
    ev = get_profile(profile)["evaluation"]
    model, info = fit_or_load_thesis(profile=profile, seed=seed, progress=progress)
    return ThesisSystem(model, info, phase=phase, true_peak_dbtp=ev["true_peak_dbtp"])


def build_systems(profile: str = "smoke", seed: int = 0, phases: Sequence[str] = ("1a", "1b", "1c"),
                  thesis: bool = True, progress: bool = False) -> tuple[list[System], pd.DataFrame]:
    """Every system of the comparison and a table of where each came from.

    Every system but the unprocessed input ends in the same loudness finish (the original master's
    loudness, the profile's true-peak ceiling). matchering (an optional extra) is left out with a
    note when it is not installed.

    Returns:
        ``(systems, sources)``: the systems in table order (Phase 1A-1C; the U-Net+LSTM baseline
        with Griffin-Lim and with the input's phase, and the Griffin-Lim floor of the input; the
        unprocessed input, loudness normalisation, static EQ, matchering with a same-album and with
        an oracle reference), and a frame ``system, label, group, source``.
    """
    import importlib.util

    ev = get_profile(profile)["evaluation"]
    tp = ev["true_peak_dbtp"]
    finish = f"gain to the target and true-peak limiter at {tp:g} dBTP"
    systems: list[System] = []
    notes: dict[str, str] = {}
    for phase in phases:
        path, note = phase_checkpoint(phase, profile, seed, train_missing=ev["train_missing"], progress=progress)
        system = Phase1System(phase, path, true_peak_dbtp=tp)
        systems.append(system)
        notes[system.name] = note
    if thesis:
        model, info = fit_or_load_thesis(profile=profile, seed=seed, progress=progress)
        budget = info["config"]["train"]
        trained = (f"run {Path(str(info['run_dir'])).name}: {info['epochs']} epochs of "
                   f"{budget['data']['train_items']} pairs (Phase 1B's data and budget)")
        for phase in ("griffin_lim", "input"):
            system = ThesisSystem(model, info, phase=phase, true_peak_dbtp=tp)
            systems.append(system)
            notes[system.name] = f"{UNET_LSTM_DESCRIPTION}; {trained}; then {finish}"
        floor = GriffinLimFloorSystem(model.config, true_peak_dbtp=tp)
        systems.append(floor)
        notes[floor.name] = (f"the input's STFT magnitude through {model.griffin_lim_iters} Griffin-Lim iterations "
                             f"(the baseline's STFT and chunks), then {finish}")
    systems.append(IdentitySystem())
    notes["identity"] = "the degraded input as it is (not finished: the reference point)"
    systems.append(LoudnessNormSystem(tp))
    notes["loudnorm"] = f"the degraded input, {finish} (BS.1770-4)"
    curve = static_eq_curve(profile, seed)
    systems.append(StaticEQSystem(curve, tp))
    notes["static_eq"] = f"mean correction over {curve['items']} training pairs, then {finish}"
    blind = blind_band_eq(profile, seed, tp)
    systems.append(blind)
    notes[blind.name] = (f"a correction per 1/3-octave band predicted from the input's own balance by "
                         f"{BLIND_EQ_PREDICTOR.replace('_', ' ')} fitted on the Phase 1 models' "
                         f"{blind.trained_on['pairs']} training pairs, as a linear-phase FIR; then {finish}")
    if importlib.util.find_spec("matchering") is not None:
        for arm in matchering_arms(profile, seed, tp):
            systems.append(arm)
        notes["matchering_album"] = (f"reference: another track of the test excerpt's album (package), its middle "
                                     f"{ev['reference_seconds']} s at the master's loudness; then {finish}")
        notes["matchering_oracle"] = (f"reference: another {ev['reference_seconds']} s of the excerpt's own master "
                                      f"(not overlapping it); then {finish}")
    else:
        notes["matchering (skipped)"] = "matchering is not installed (pip install matchering): both arms left out"
    rows = [{"system": s.name, "label": s.label, "group": s.group, "source": notes[s.name]} for s in systems]
    rows += [{"system": k, "label": k, "group": "skipped", "source": v} for k, v in notes.items() if "skipped" in k]
    return systems, pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# running and summarizing
# --------------------------------------------------------------------------------------------
def run_benchmark(systems: Sequence[System], pairs: Sequence[dict[str, Any]], keep_outputs: int = 1,
                  progress: bool = False) -> tuple[pd.DataFrame, dict[str, dict[str, torch.Tensor]]]:
    """Master every test pair with every system on the CPU and measure it against the original.

    Each system gets the original master's integrated loudness as its target (the protocol: every
    finished system is compared at the master's own loudness) and is run as ``system.for_pair(pair)``
    (matchering binds the excerpt's reference there).

    Returns:
        ``(results, outputs)``: one row per system x pair (``system``, ``label``, ``group``,
        ``track``, ``item`` (the pair's, else its track), ``excerpt`` (else 0), ``chain`` (else
        ``"demaster"``), ``duration_s``, ``seconds`` of wall time, ``target_lufs``, ``finished``
        (the system ends in the loudness finish), ``warnings`` (how many the call raised, e.g.
        matchering's) and ``warning_text``, ``reference`` (matchering's), every metric of
        :data:`mastering.evaluation.metrics.METRICS`), and the outputs of the first
        ``keep_outputs`` pairs as ``{item: {system: audio}}`` (plus ``"degraded"`` and
        ``"mastered"``).
    """
    rows: list[dict[str, Any]] = []
    outputs: dict[str, dict[str, torch.Tensor]] = {}
    for k, pair in enumerate(pairs):
        sr = pair["sample_rate"]
        item = pair.get("item", pair["track"])
        target = float(loudness(pair["mastered"][None].double(), sr))
        keep = k < keep_outputs
        reference = Reference(pair["mastered"], sr)  # measured once for every system
        if keep:
            outputs[item] = {"degraded": pair["degraded"], "mastered": pair["mastered"]}
        for system in tqdm(systems, desc=item, disable=not progress, leave=False):
            bound = system.for_pair(pair)
            start = time.perf_counter()
            y = bound.master(pair["degraded"], sr, target)
            seconds = time.perf_counter() - start
            row = {"system": system.name, "label": system.label, "group": system.group, "track": pair["track"],
                   "item": item, "excerpt": int(pair.get("excerpt", 0)), "chain": pair.get("chain", "demaster"),
                   "duration_s": pair["duration_s"], "seconds": seconds, "target_lufs": target,
                   "finished": bool(system.finished), "warnings": len(bound.last_warnings),
                   "warning_text": " | ".join(bound.last_warnings), "reference": str(bound.info().get("reference", ""))}
            row.update(evaluate_pair(y, reference, sr))
            rows.append(row)
            if keep:
                outputs[item][system.name] = y
    return pd.DataFrame(rows), outputs


def _one_chain(results: pd.DataFrame) -> None:
    if "chain" in results and results["chain"].nunique() > 1:
        raise ValueError(f"results of several degradation chains ({sorted(results['chain'].unique())}); "
                         "summarize and test each chain's results on their own")


def _ratio_of_sums(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(sums, axis=axis) / np.sum(counts, axis=axis)


def cluster_bootstrap_ci(values, groups, n_boot: int = 1000, seed: int = 0, level: float = 0.95
                         ) -> tuple[float, float, float, int]:
    """Mean of ``values`` and its percentile bootstrap interval resampling ``groups`` (tracks).

    Each resample draws as many groups as there are, with replacement, and takes the mean over
    every value of the drawn groups (a group drawn twice counts twice): excerpts of one track are
    never treated as independent, so repeating a track's rows never narrows the interval. With one
    value per group this is :func:`scipy.stats.bootstrap` of the mean over groups (the same
    resamples from ``numpy.random.default_rng(seed)``, the same interval). Fewer than two groups
    give NaN bounds; groups whose means are all equal give that value as both bounds.

    Returns:
        ``(mean, ci_low, ci_high, groups)``.
    """
    frame = pd.DataFrame({"value": np.asarray(values, float), "group": np.asarray(groups)})
    g = frame.groupby("group", sort=True)["value"]
    sums, counts = g.sum().to_numpy(float), g.count().to_numpy(float)
    mean = float(sums.sum() / counts.sum())
    lo = hi = math.nan
    if len(sums) >= 2 and np.ptp(sums / counts) > 0:
        ci = stats.bootstrap((sums, counts), _ratio_of_sums, n_resamples=int(n_boot), confidence_level=level,
                             method="percentile", vectorized=True, paired=True,
                             random_state=np.random.default_rng(seed)).confidence_interval
        lo, hi = float(ci.low), float(ci.high)
    elif len(sums) >= 2:
        lo = hi = float(sums[0] / counts[0])
    return mean, lo, hi, int(len(sums))


def summarize(results: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Mean and bootstrap interval (resampling tracks) of every metric per system.

    The mean is over every row (excerpt) of the system; the interval is the cluster percentile
    bootstrap of :func:`cluster_bootstrap_ci`: tracks drawn with replacement, the mean over all
    excerpts of the drawn tracks (vectorized, ``n_boot`` resamples from
    ``numpy.random.default_rng(seed)``). With one excerpt per track it is
    :func:`scipy.stats.bootstrap` of the mean over tracks, the same interval as
    :func:`mastering.semantic.evaluate.bootstrap_ci` with ``groups="track"``; fast enough for
    10 000 resamples of every system and metric. Fewer than two tracks give NaN bounds.

    Returns:
        One row per system x metric: ``system``, ``label``, ``group``, ``metric``, ``mean``,
        ``ci_low``, ``ci_high``, ``n`` (tracks), ``rank`` (1 = best where the metric has a better
        direction) and ``best`` (the system ranked first). Systems of group ``oracle`` (they see the
        master) are not ranked: their rank is NaN and they are never best.

    Raises:
        ValueError: results of more than one degradation chain (summarize each on its own).
    """
    _one_chain(results)
    rows = []
    order = list(dict.fromkeys(results["system"]))
    for metric in [m for m in METRICS if m in results]:
        for system in order:
            part = results[results["system"] == system]
            mean, lo, hi, n = cluster_bootstrap_ci(part[metric], part["track"], n_boot=n_boot, seed=seed, level=level)
            rows.append({"system": system, "label": part["label"].iloc[0], "group": part["group"].iloc[0],
                         "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi, "n": n})
    out = pd.DataFrame(rows)
    out["rank"] = np.nan
    for metric, better in ((m, METRICS[m]["better"]) for m in out["metric"].unique()):
        if better is None:
            continue
        sel = (out["metric"] == metric) & (out["group"] != "oracle")
        out.loc[sel, "rank"] = out.loc[sel, "mean"].rank(ascending=better == "lower", method="min")
    out["best"] = out["rank"] == 1
    return out


def best_system(summary: pd.DataFrame, metric: str = "mrstft", group: str | None = "proposed") -> str:
    """The system with the best mean ``metric`` (within ``group``; all systems when ``None``)."""
    sel = summary[summary["metric"] == metric]
    if group is not None and (sel["group"] == group).any():
        sel = sel[sel["group"] == group]
    if sel.empty:
        raise ValueError(f"no {metric} values in the summary")
    ascending = METRICS[metric]["better"] != "higher"
    return str(sel.sort_values("mean", ascending=ascending)["system"].iloc[0])


def paired_tests(results: pd.DataFrame, best: str, metrics: Iterable[str] = TEST_METRICS) -> pd.DataFrame:
    """Paired tests of ``best`` against every other system on the per-track values.

    A track with several excerpts enters as the mean over its excerpts (the tests' units are the
    tracks, not their correlated excerpts; one excerpt per track: its value). For each metric and
    other system: the mean difference over tracks (best minus other; negative favours ``best``
    where lower is better), Wilcoxon signed-rank and paired-t p-values, and Holm-adjusted p-values
    over the comparisons of the metric (``statsmodels``). Tests that are undefined (fewer than two
    tracks, all differences zero) give NaN.

    Raises:
        ValueError: ``best`` not in the results; results of more than one degradation chain; two
            rows of one system for one item (one track, where there is no ``item`` column).
    """
    from statsmodels.stats.multitest import multipletests

    if best not in set(results["system"]):
        raise ValueError(f"system {best!r} is not in the results")
    _one_chain(results)
    metrics = list(metrics)
    item = "item" if "item" in results else "track"
    if results.duplicated(["system", item]).any():  # one row per system and excerpt
        raise ValueError(f"several rows of one system for one {item}")
    wide = {m: results.pivot_table(index="track", columns="system", values=m, aggfunc="mean", dropna=False)
            for m in metrics}
    labels = dict(zip(results["system"], results["label"]))
    rows = []
    for metric in metrics:
        table = wide[metric]
        part = []
        for other in [s for s in dict.fromkeys(results["system"]) if s != best]:
            both = table[[best, other]].dropna()
            diff = (both[best] - both[other]).to_numpy(float)
            p_w = p_t = math.nan
            if len(diff) >= 2 and np.any(diff != 0):
                p_w = float(stats.wilcoxon(both[best], both[other]).pvalue)
                if np.std(diff) > 0:
                    p_t = float(stats.ttest_rel(both[best], both[other]).pvalue)
            part.append({"metric": metric, "best": best, "best_label": labels[best], "other": other,
                         "other_label": labels[other],
                         "n": len(diff), "mean_difference": float(diff.mean()) if len(diff) else math.nan,
                         "wilcoxon_p": p_w, "ttest_p": p_t})
        for key in ("wilcoxon_p", "ttest_p"):
            p = np.array([r[key] for r in part], float)
            adj = np.full_like(p, np.nan)
            ok = np.isfinite(p)
            if ok.any():
                adj[ok] = multipletests(p[ok], method="holm")[1]
            for r, a in zip(part, adj):
                r[key.replace("_p", "_p_holm")] = float(a)
        rows.extend(part)
    return pd.DataFrame(rows)


def throughput(results: pd.DataFrame) -> pd.DataFrame:
    """Seconds of audio mastered per second of wall time per system, over the whole evaluation (CPU)."""
    g = results.groupby("system", sort=False)
    out = pd.DataFrame({"label": g["label"].first(), "audio_s": g["duration_s"].sum(), "wall_s": g["seconds"].sum()})
    out["cpu_realtime"] = out["audio_s"] / out["wall_s"]
    return out.reset_index()


def measure_latency(systems: Sequence[System], audio: torch.Tensor, sample_rate: int, seconds: float = 5.0,
                    repeats: int = 3, devices: Sequence[str] | None = None, warmup: bool = True) -> pd.DataFrame:
    """Wall time to master the first ``seconds`` of ``audio`` per system and device (median of
    ``repeats``, after one warm-up run with ``warmup``: loading, compilation); CUDA only where
    available and the system supports it (always warmed up).

    Returns:
        ``system, label, device, ms_per_excerpt, excerpt_s, realtime`` (audio seconds per second).
    """
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    n = min(int(round(seconds * sample_rate)), audio.shape[-1])
    x = audio[..., :n].contiguous()
    target = float(loudness(x[None].double(), sample_rate))
    rows = []
    for system in systems:
        for device in devices:
            if device.split(":")[0] not in system.devices:
                continue
            if warmup or device != "cpu":
                system.master(x, sample_rate, target, device=device)
            times = []
            for _ in range(max(int(repeats), 1)):
                start = time.perf_counter()
                system.master(x, sample_rate, target, device=device)
                times.append(time.perf_counter() - start)
            t = float(np.median(times))
            rows.append({"system": system.name, "label": system.label, "device": device.split(":")[0],
                         "ms_per_excerpt": 1000.0 * t, "excerpt_s": n / sample_rate, "realtime": n / sample_rate / t})
    return pd.DataFrame(rows)


def speed_table(results: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """One row per system: CPU throughput over the evaluation, latency per 5 s excerpt on each
    device (ms), and the design's targets (:data:`DESIGN_LATENCY_MS`) where it gives them."""
    out = throughput(results)[["system", "label", "cpu_realtime"]]
    for device in ("cpu", "cuda"):
        sel = latency[latency["device"] == device] if len(latency) else latency
        col = (dict(zip(sel["system"], sel["ms_per_excerpt"] * 5.0 / sel["excerpt_s"])) if len(sel) else {})
        out[f"{device}_ms_per_5s"] = [col.get(s, math.nan) for s in out["system"]]
        out[f"design_{device}_ms_per_5s"] = [DESIGN_LATENCY_MS.get(s, {}).get(device, math.nan) for s in out["system"]]
    return out
