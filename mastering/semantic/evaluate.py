"""Objective evaluation of semantic EQ on real music: adaptive vs flowEQ-style vs static.

Entry points: :func:`music_clips` (excerpts of held-out tracks), :func:`evaluate_semantic_eq`
(every method of :data:`mastering.semantic.adaptive.METHODS` on every clip, descriptor and
intensity) and :func:`summarize_semantic_eq` (direction, amount, adaptivity, attainment and
monotonicity per descriptor and method, with track-bootstrap intervals from :func:`bootstrap_ci`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import list_tracks
from ..io import load_audio
from .adaptive import METHODS, SemanticEQ, semantic_eq_settings
from .axis import axis_measure_after, band_powers, warmth_measures
from .bootstrap import bootstrap_ci

__all__ = [
    "INTENSITIES",
    "music_clips",
    "spectral_tilt",
    "curve_metrics",
    "evaluate_semantic_eq",
    "summarize_semantic_eq",
    "summarize_direction",
    "bootstrap_ci",
]

#: Intensities of the monotonicity sweep (1 is the comparison point).
INTENSITIES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)

def music_clips(
    profile: str,
    split: str | Sequence[str] = "test",
    clip_seconds: float = 6.0,
    clips_per_track: int = 4,
    kind: str | None = "real",
    sample_rate: int = 44100,
    max_tracks: int | None = None,
) -> tuple[pd.DataFrame, torch.Tensor]:
    """Evenly spaced excerpts of the profile's tracks of ``split`` (whole held-out tracks).

    Returns:
        ``(meta, audio)``: ``meta`` with ``clip``, ``track``, ``split``, ``kind``, ``offset_s``;
        ``audio`` ``[clips, 2, samples]`` at ``sample_rate``. Silent excerpts are skipped.

    Raises:
        FileNotFoundError: no tracks prepared for the profile and split (run ``make data``).
    """

    splits = [split] if isinstance(split, str) else list(split)
    tracks = [t for s in splits for t in list_tracks(profile=profile, split=s, kind=kind)]
    tracks = sorted(tracks, key=lambda t: t.key)[:max_tracks]
    if not tracks:
        raise FileNotFoundError(f"no {kind or ''} tracks of split {splits} for profile {profile!r}; run `make data`")
    n = int(round(clip_seconds * sample_rate))
    rows, clips = [], []
    for t in tracks:
        for k in range(clips_per_track):
            offset = (k + 0.5) / clips_per_track * max(t.duration_s - clip_seconds, 0.0)
            audio, _ = load_audio(t.path, sample_rate=sample_rate, channels=2, offset_s=offset, duration_s=clip_seconds)
            if audio.shape[-1] < n:
                audio = torch.nn.functional.pad(audio, (0, n - audio.shape[-1]))
            if float(audio.abs().max()) < 1e-5:
                continue
            rows.append({"clip": f"{t.key}@{offset:.1f}", "track": t.key, "split": t.split, "kind": t.kind,
                         "offset_s": round(offset, 2)})
            clips.append(audio[:, :n])
    return pd.DataFrame(rows), torch.stack(clips)


def spectral_tilt(audio: torch.Tensor, sample_rate: int, f_lo_hz: float = 50.0, f_hi_hz: float = 16000.0) -> np.ndarray:
    """Spectral tilt ``[batch]`` in dB/octave: least-squares slope of the Welch power (mono
    downmix, 8192-point segments) in third-octave bands against log2 frequency."""
    from scipy import signal

    x = torch.as_tensor(audio).double().mean(dim=1).numpy()
    f, p = signal.welch(x, fs=sample_rate, nperseg=min(8192, x.shape[-1]), axis=-1)
    centres = f_lo_hz * 2.0 ** (np.arange(0, np.log2(f_hi_hz / f_lo_hz) + 1e-9, 1 / 3))
    levels = []
    for c in centres:
        band = (f >= c / 2 ** (1 / 6)) & (f < c * 2 ** (1 / 6))
        levels.append(10 * np.log10(p[:, band].sum(-1) + 1e-20))
    levels = np.stack(levels, -1)
    octs = np.log2(centres)
    octs = octs - octs.mean()
    return (levels - levels.mean(-1, keepdims=True)) @ octs / (octs @ octs)


def curve_metrics(curves_db: np.ndarray, reference_db: np.ndarray) -> dict[str, np.ndarray]:
    """``cosine``, ``amount_db`` (projection on the unit-RMS reference) and ``rms_db`` of EQ
    curves ``[n, freqs]`` against a reference curve ``[freqs]``, all with their means removed."""
    c = np.atleast_2d(curves_db) - np.atleast_2d(curves_db).mean(-1, keepdims=True)
    r = np.asarray(reference_db) - np.mean(reference_db)
    r_rms = np.sqrt((r**2).mean())
    c_rms = np.sqrt((c**2).mean(-1))
    amount = (c @ r) / len(r) / r_rms
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(c_rms > 1e-9, amount / c_rms, 0.0)
    return {"cosine": cosine, "amount_db": amount, "rms_db": c_rms}


@torch.no_grad()
def evaluate_semantic_eq(
    model: SemanticEQ,
    meta: pd.DataFrame,
    audio: torch.Tensor,
    sample_rate: int,
    descriptors: Sequence[str],
    methods: Sequence[str] = METHODS,
    intensities: Sequence[float] = INTENSITIES,
    progress: bool = True,
    extra_methods: Mapping[str, Callable[[torch.Tensor, int, str, float], Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Process every clip with every method, descriptor and intensity and measure the result.

    Args:
        model: the semantic EQ bundle.
        meta, audio: from :func:`music_clips`.
        sample_rate: the clips' rate.
        descriptors: e.g. ``("warm", "bright", "clear")``.
        extra_methods: further systems measured the same way, by name: ``(audio, sample_rate,
            descriptor, intensity) -> EQSettings`` (e.g. the end-to-end models of
            :mod:`mastering.semantic.e2e`); their settings are applied with the exact IIR cascade too.

    Returns:
        ``(results, curves)``: one row per clip x descriptor x method x intensity with
        ``position_before/after``, ``cosine``, ``amount_db``, ``rms_db``, ``tilt_before/after``,
        and the encoder-free readings of the audio before and after: ``axis_before/after`` (the
        descriptor's axis measure, :func:`mastering.semantic.axis.axis_measure`), ``centroid_before/after``
        (Hz) and ``low_share_before/after`` (power below 250 Hz, :func:`mastering.semantic.axis.warmth_measures`);
        and the applied curves at intensity 1 in long format (``clip``, ``descriptor``,
        ``method``, ``freq_hz``, ``gain_db``).
    """
    from tqdm.auto import tqdm

    words = [model.descriptor(d) for d in descriptors]
    z_raw = model.encode(audio, sample_rate)
    pos_before = model.positions(z_raw, words)
    tilt_before = spectral_tilt(audio, sample_rate)
    freqs = model.reference_freqs_hz
    powers_before = band_powers(audio, sample_rate, freqs)
    balance_before = warmth_measures(audio, sample_rate)
    rows, curves = [], []
    extra = dict(extra_methods or {})
    combos = [(j, d, m, i) for j, d in enumerate(words) for m in [*methods, *extra] for i in intensities]
    for j, d, m, i in tqdm(combos, desc="semantic EQ", disable=not progress, leave=False):
        if m in extra:
            settings = extra[m](audio, sample_rate, d, i)
        else:
            settings = semantic_eq_settings(model, audio, sample_rate, d, i, m, z_audio=z_raw, powers=powers_before)
        curve = settings.response_db(freqs, sample_rate)
        cm = curve_metrics(curve, model.reference_curves[d])
        out = settings.apply(audio, sample_rate)
        pos_after = model.positions(model.encode(out, sample_rate), [d])[:, 0]
        tilt_after = spectral_tilt(out, sample_rate)
        axis_before = axis_measure_after(powers_before, model.reference_curves[d])
        axis_after = axis_measure_after(band_powers(out, sample_rate, freqs), model.reference_curves[d])
        balance_after = warmth_measures(out, sample_rate)
        for k in range(len(meta)):
            rows.append({"clip": meta["clip"].iloc[k], "track": meta["track"].iloc[k], "descriptor": d, "method": m,
                         "intensity": float(i), "position_before": float(pos_before[k, j]),
                         "position_after": float(pos_after[k]), "cosine": float(cm["cosine"][k]),
                         "amount_db": float(cm["amount_db"][k]), "rms_db": float(cm["rms_db"][k]),
                         "tilt_before": float(tilt_before[k]), "tilt_after": float(tilt_after[k]),
                         "axis_before": float(axis_before[k]), "axis_after": float(axis_after[k]),
                         "centroid_before": float(balance_before["centroid_hz"][k]),
                         "centroid_after": float(balance_after["centroid_hz"][k]),
                         "low_share_before": float(balance_before["low_share"][k]),
                         "low_share_after": float(balance_after["low_share"][k])})
        if i == 1.0:
            for k in range(len(meta)):
                curves.append(pd.DataFrame({"clip": meta["clip"].iloc[k], "descriptor": d, "method": m,
                                            "freq_hz": freqs, "gain_db": curve[k]}))
    return pd.DataFrame(rows), (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame())


def _spearman(frame: pd.DataFrame) -> float:
    from scipy.stats import spearmanr

    if frame["amount_db"].std() < 1e-9 or frame["position_before"].std() < 1e-9 or len(frame) < 3:
        return float("nan")
    return float(spearmanr(frame["position_before"], frame["amount_db"]).statistic)


def _monotone(group: pd.DataFrame, column: str, tol: float) -> bool:
    values = group.sort_values("intensity")[column].to_numpy()
    return bool(np.all(np.diff(values) >= -tol))


def summarize_semantic_eq(results: pd.DataFrame, intensity: float = 1.0, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per descriptor x method, from :func:`evaluate_semantic_eq`'s rows at ``intensity``.

    The measures: *direction*, the cosine between the applied curve and the descriptor's mean SAFE
    curve (:func:`curve_metrics`; ``direction_accuracy`` is the share of clips with a positive
    cosine); *amount*, the curve projected on the unit-RMS reference (dB); *adaptivity*, Spearman's
    rho between the clip's position before processing and its amount (negative when a warm clip gets
    less "warm" than a thin one; undefined, NaN, for the baselines, which give every clip the same
    curve); *attainment*, the position after processing and its spread over clips, and the
    encoder-free change of :func:`spectral_tilt`; *monotonicity*, the share of clips whose amount
    and position after processing never fall as the intensity rises (over all intensities).
    Intervals are percentile bootstraps over tracks (:func:`bootstrap_ci`, seeded).

    Columns: ``clips``, ``tracks``, ``direction_accuracy`` (+ ``_lo``/``_hi``), ``cosine``,
    ``amount_db``, ``amount_sd_db``, ``adaptivity_rho`` (+ ``_lo``/``_hi``), ``position_before``,
    ``position_after``, ``position_after_sd``, ``tilt_change``, ``monotone_amount``,
    ``monotone_position``.
    """
    out = []
    for (d, m), g in results.groupby(["descriptor", "method"], sort=False):
        at = g[np.isclose(g["intensity"], intensity)]
        acc = lambda f: float((f["cosine"] > 0).mean())  # noqa: E731
        lo, hi = bootstrap_ci(at, acc, n_boot=n_boot, seed=seed)
        rho = _spearman(at)
        rlo, rhi = bootstrap_ci(at, _spearman, n_boot=n_boot, seed=seed) if np.isfinite(rho) else (np.nan, np.nan)
        mono_a = g.groupby("clip").apply(lambda c: _monotone(c, "amount_db", 1e-6), include_groups=False)
        mono_p = g.groupby("clip").apply(lambda c: _monotone(c, "position_after", 0.02), include_groups=False)
        out.append({
            "descriptor": d, "method": m, "clips": int(at["clip"].nunique()), "tracks": int(at["track"].nunique()),
            "direction_accuracy": acc(at), "direction_accuracy_lo": lo, "direction_accuracy_hi": hi,
            "cosine": float(at["cosine"].mean()), "amount_db": float(at["amount_db"].mean()),
            "amount_sd_db": float(at["amount_db"].std(ddof=0)), "adaptivity_rho": rho,
            "adaptivity_rho_lo": rlo, "adaptivity_rho_hi": rhi,
            "position_before": float(at["position_before"].mean()), "position_after": float(at["position_after"].mean()),
            "position_before_sd": float(at["position_before"].std(ddof=0)),
            "position_after_sd": float(at["position_after"].std(ddof=0)),
            "tilt_change": float((at["tilt_after"] - at["tilt_before"]).mean()),
            "monotone_amount": float(mono_a.mean()), "monotone_position": float(mono_p.mean()),
        })  # fmt: skip
    return pd.DataFrame(out)


#: Tolerance of the audio-measured direction checks (dB on the axis measure): below the measure's
#: estimation noise, far below the change one intensity step makes.
AXIS_TOL_DB = 1e-3


def _added(frame: pd.DataFrame) -> pd.Series:
    return frame["axis_after"] - frame["axis_before"]


def _spearman_added(frame: pd.DataFrame) -> float:
    from scipy.stats import spearmanr

    added = _added(frame)
    if len(frame) < 3 or added.std() < 1e-9 or frame["axis_before"].std() < 1e-9:
        return float("nan")
    return float(spearmanr(frame["axis_before"], added).statistic)


def summarize_direction(results: pd.DataFrame, intensity: float = 1.0, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Direction and adaptivity measured on the audio, encoder-free: one row per descriptor x method.

    From :func:`evaluate_semantic_eq`'s ``axis_before/after`` (how much of the descriptor the audio
    has, on the descriptor's own axis): ``added`` (mean change at ``intensity``), ``reversed`` (share
    of excerpts left with less of the quality than they came with, at ``intensity``) and
    ``reversed_any`` (at any intensity above 0), ``monotone`` (share of excerpts whose measure never
    falls as the intensity rises), ``adaptivity_rho`` (Spearman's rho between the input's measure and
    what the method adds: negative when a track that already has the quality gets less of it, with a
    track-bootstrap interval; undefined where nothing varies), and the mean changes of the spectral
    centroid (Hz), the share of power below 250 Hz and the tilt (dB/octave).
    """
    out = []
    for (d, m), g in results.groupby(["descriptor", "method"], sort=False):
        at = g[np.isclose(g["intensity"], intensity)]
        pos = g[g["intensity"] > 0]
        mono = g.groupby("clip").apply(lambda c: _monotone(c, "axis_after", AXIS_TOL_DB), include_groups=False)
        rho = _spearman_added(at)
        rlo, rhi = bootstrap_ci(at, _spearman_added, n_boot=n_boot, seed=seed) if np.isfinite(rho) else (np.nan, np.nan)
        rev = lambda f: float((_added(f) < -AXIS_TOL_DB).mean())  # noqa: E731
        lo, hi = bootstrap_ci(at, rev, n_boot=n_boot, seed=seed)
        out.append({
            "descriptor": d, "method": m, "clips": int(at["clip"].nunique()), "tracks": int(at["track"].nunique()),
            "added": float(_added(at).mean()), "added_sd": float(_added(at).std(ddof=0)),
            "reversed": rev(at), "reversed_lo": lo, "reversed_hi": hi,
            "reversed_any": float(pos.groupby("clip").apply(lambda c: bool((_added(c) < -AXIS_TOL_DB).any()),
                                                           include_groups=False).mean()),
            "monotone": float(mono.mean()), "adaptivity_rho": rho, "adaptivity_rho_lo": rlo, "adaptivity_rho_hi": rhi,
            "centroid_change_hz": float((at["centroid_after"] - at["centroid_before"]).mean()),
            "low_share_change": float((at["low_share_after"] - at["low_share_before"]).mean()),
            "tilt_change": float((at["tilt_after"] - at["tilt_before"]).mean()),
        })  # fmt: skip
    return pd.DataFrame(out)
