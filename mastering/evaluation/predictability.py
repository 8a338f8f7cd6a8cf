"""How much of the tonal correction a blind corrector can know from its input alone.

A pair's correction is the master's 1/3-octave levels minus the degraded input's, centred over the
bands (level is the loudness finish's job). Regressors fitted on the profile's training pairs
predict it from the degraded input's own centred levels; :class:`BandRegressionEQSystem` applies a
prediction as an EQ (the linear-phase FIR of :class:`~mastering.evaluation.systems.StaticEQSystem`)
followed by the loudness finish. :func:`evaluate_predictability` measures every predictor on the
validation pairs with notebook 06's metric (MR-STFT at the master's loudness) next to loudness
normalisation, the oracle (each pair's true correction as the EQ) and, optionally, a trained Phase 1
model on the same excerpts. Only training and validation pairs are used; the test split is never
touched, so nothing here can tune on it.

Run:  python -m mastering.evaluation.predictability --profile cpu [--checkpoint runs/.../best.pt]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..provenance import git_commit
from ..training.config import train_config
from ..training.data import build_datasets
from .benchmark import cluster_bootstrap_ci
from .metrics import Reference, evaluate_pair, third_octave_levels_db
from .systems import LoudnessNormSystem, Phase1System, StaticEQSystem, System

__all__ = ["PREDICTORS", "band_levels", "band_corrections", "fit_predictor", "BandRegressionEQSystem",
           "profile_pairs", "evaluate_predictability", "summarize_predictability", "plot_band_r2"]

#: The regressors, simplest first: the training pairs' mean correction (input-blind), ridge
#: regression (its penalty chosen by cross-validation over training tracks) and extra trees.
PREDICTORS = ("mean", "ridge", "extra_trees")
RIDGE_ALPHAS = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5)
CV_FOLDS = 4

Predictor = Callable[[np.ndarray], np.ndarray]


def band_levels(x, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``(centres_hz, levels_db)``: :func:`~mastering.evaluation.metrics.third_octave_levels_db` of
    ``x`` (``[batch, channels, samples]`` or ``[channels, samples]``) minus each row's mean over the
    bands (``[batch, bands]``): the spectral balance, whatever the level."""
    centres, levels = third_octave_levels_db(x, sample_rate)
    return centres, levels - levels.mean(axis=-1, keepdims=True)


def band_corrections(degraded, mastered, sample_rate: int) -> np.ndarray:
    """What each pair's EQ would have to do in every 1/3-octave band (dB, centred): the master's
    balance minus the degraded input's (``[batch, bands]``)."""
    return band_levels(mastered, sample_rate)[1] - band_levels(degraded, sample_rate)[1]


def _folds(groups: Sequence[Any], folds: int, seed: int) -> np.ndarray:
    """Fold of every row, whole groups (tracks) per fold, groups shuffled by ``seed``."""
    names = sorted(set(map(str, groups)))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold_of[str(g)] for g in groups])


def _ridge(alpha: float):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha)


def fit_predictor(kind: str, features: np.ndarray, corrections: np.ndarray, groups: Sequence[Any] | None = None,
                  seed: int = 0) -> tuple[Predictor, dict[str, Any]]:
    """Fit one of :data:`PREDICTORS` from centred band levels to band corrections.

    Ridge's penalty is the one of :data:`RIDGE_ALPHAS` with the lowest squared error over
    :data:`CV_FOLDS` folds that keep each of ``groups`` (tracks; default: every row its own) whole.

    Returns:
        ``(predict, info)``: ``predict([n, bands]) -> [n, bands]`` and what was chosen.

    Raises:
        ValueError: unknown ``kind``, mismatched shapes or fewer than two pairs.
    """
    features, corrections = np.asarray(features, float), np.asarray(corrections, float)
    if kind not in PREDICTORS:
        raise ValueError(f"unknown predictor {kind!r}; choose from {', '.join(PREDICTORS)}")
    if features.ndim != 2 or features.shape != corrections.shape or len(features) < 2:
        raise ValueError(f"features and corrections must be equal [pairs >= 2, bands] arrays, got "
                         f"{features.shape} and {corrections.shape}")
    if kind == "mean":
        mean = corrections.mean(axis=0)
        return (lambda f: np.broadcast_to(mean, np.shape(f)).copy()), {}
    if kind == "extra_trees":
        from sklearn.ensemble import ExtraTreesRegressor

        model = ExtraTreesRegressor(n_estimators=300, min_samples_leaf=5, n_jobs=torch.get_num_threads(),
                                    random_state=int(seed)).fit(features, corrections)
        return model.predict, {"n_estimators": 300, "min_samples_leaf": 5}
    groups = np.arange(len(features)) if groups is None else np.asarray(groups)
    fold = _folds(groups, min(CV_FOLDS, len(set(map(str, groups)))), seed)
    errors = {}
    for alpha in RIDGE_ALPHAS:
        err = 0.0
        for k in np.unique(fold):
            fitted = _ridge(alpha).fit(features[fold != k], corrections[fold != k])
            err += float(((fitted.predict(features[fold == k]) - corrections[fold == k]) ** 2).sum())
        errors[alpha] = err / corrections.size
    alpha = min(errors, key=errors.get)
    return _ridge(alpha).fit(features, corrections).predict, {"alpha": alpha, "cv_mse_db2": errors[alpha]}


class BandRegressionEQSystem(System):
    """A blind, input-adaptive EQ: the input's centred 1/3-octave levels -> a predicted correction per
    band (:func:`fit_predictor`) -> that curve as :class:`~mastering.evaluation.systems.StaticEQSystem`'s
    linear-phase FIR -> the loudness finish. ``predict=None`` with ``curve_db`` given applies that
    fixed band curve instead (the oracle arm: a pair's true correction)."""

    group = "baseline"

    def __init__(self, predict: Predictor | None, name: str, label: str, true_peak_dbtp: float = -1.0,
                 numtaps: int = 2047, curve_db: np.ndarray | None = None):
        if predict is None and curve_db is None:
            raise ValueError("give a predictor or a fixed curve_db")
        self.predict, self.curve_db = predict, curve_db
        self.name, self.label = name, label
        self.true_peak_dbtp, self.numtaps = float(true_peak_dbtp), int(numtaps)

    def curve(self, audio, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """``(centres_hz, gain_db)`` this system applies to ``audio``."""
        centres, levels = band_levels(audio, sample_rate)
        gain = self.curve_db if self.predict is None else self.predict(levels)[0]
        return centres, np.asarray(gain, float)

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        centres, gain = self.curve(audio, sample_rate)
        eq = StaticEQSystem({"freqs_hz": centres, "gain_db": gain}, self.true_peak_dbtp, self.numtaps)
        return eq.master(audio, sample_rate, target_lufs)


def profile_pairs(profile: str = "cpu", seed: int = 0, progress: bool = False) -> dict[str, dict[str, Any]]:
    """The training and validation pairs the profile's Phase 1 models learn from (the pair cache of
    ``make reproduce``; made on first use): ``{"train"|"valid": {"degraded", "mastered"
    [n, channels, samples] float32, "groups" (track ids), "sample_rate"}}``."""
    config = train_config("1c", profile, seed=seed, progress=progress)
    out = {}
    for split, data in zip(("train", "valid"), build_datasets(config)):
        items = [data[i] for i in range(len(data))]
        out[split] = {"degraded": np.stack([it["degraded"].numpy() for it in items]),
                      "mastered": np.stack([it["mastered"].numpy() for it in items]),
                      "groups": [str(it.get("track_id", i)) for i, it in enumerate(items)],
                      "sample_rate": int(config.sample_rate)}
    return out


def evaluate_predictability(train: dict[str, Any], valid: dict[str, Any], model: System | None = None,
                            seed: int = 0, true_peak_dbtp: float = -1.0,
                            progress: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit every predictor on ``train`` and measure it on ``valid`` (both as :func:`profile_pairs` gives).

    Each validation pair is mastered by loudness normalisation, the oracle band EQ, every predictor's
    :class:`BandRegressionEQSystem` and ``model`` (if given), all finished at the master's loudness
    under ``true_peak_dbtp``, then measured against the master with
    :func:`~mastering.evaluation.metrics.evaluate_pair`.

    Returns:
        ``(results, fits)``: one row per pair and system (``pair``, ``group``, ``system``, ``label``,
        the metrics, and ``band_mse_db2``: the squared error of the system's band curve against the
        pair's true correction, NaN for the model) and per predictor what was fitted, its band-wise
        R² on the validation pairs (``band_r2``), the bands' centres and the pairs' counts.
    """
    sr = int(train["sample_rate"])
    if int(valid["sample_rate"]) != sr:
        raise ValueError(f"training pairs at {sr} Hz, validation pairs at {valid['sample_rate']} Hz")
    centres, f_train = band_levels(train["degraded"], sr)
    d_train = band_corrections(train["degraded"], train["mastered"], sr)
    _, f_valid = band_levels(valid["degraded"], sr)
    d_valid = band_corrections(valid["degraded"], valid["mastered"], sr)
    systems: list[System] = [LoudnessNormSystem(true_peak_dbtp)]
    fits: dict[str, Any] = {"centres_hz": centres.tolist(), "train_pairs": len(f_train),
                            "valid_pairs": len(f_valid), "train_tracks": len(set(train["groups"])),
                            "valid_tracks": len(set(valid["groups"])), "predictors": {}}
    for kind in PREDICTORS:
        predict, info = fit_predictor(kind, f_train, d_train, train["groups"], seed)
        pred = predict(f_valid)
        ss_res, ss_tot = ((pred - d_valid) ** 2).sum(0), ((d_valid - d_valid.mean(0)) ** 2).sum(0)
        fits["predictors"][kind] = dict(info, band_r2=(1.0 - ss_res / np.maximum(ss_tot, 1e-12)).tolist())
        systems.append(BandRegressionEQSystem(predict, f"band_{kind}", f"blind band EQ ({kind.replace('_', ' ')})",
                                              true_peak_dbtp))
    if model is not None:
        systems.append(model)
    rows = []
    for i in tqdm(range(len(f_valid)), desc="validation pairs", disable=not progress, leave=False):
        x = torch.from_numpy(valid["degraded"][i])
        y = Reference(torch.from_numpy(valid["mastered"][i]), sr)  # measured once for every arm
        target = float(y.lufs()[0])
        arms = systems + [BandRegressionEQSystem(None, "oracle_band", "oracle band EQ (true correction)",
                                                 true_peak_dbtp, curve_db=d_valid[i])]
        for system in arms:
            out = system.master(x, sr, target)
            row = {"pair": i, "group": valid["groups"][i], "system": system.name, "label": system.label,
                   **evaluate_pair(out, y, sr)}
            if isinstance(system, BandRegressionEQSystem):
                row["band_mse_db2"] = float(((system.curve(x, sr)[1] - d_valid[i]) ** 2).mean())
            elif system.name == "loudnorm":
                row["band_mse_db2"] = float((d_valid[i] ** 2).mean())
            else:
                row["band_mse_db2"] = math.nan
            rows.append(row)
    return pd.DataFrame(rows), fits


def summarize_predictability(results: pd.DataFrame, reference: str = "loudnorm", n_boot: int = 1000,
                             seed: int = 0) -> pd.DataFrame:
    """Per system: mean MR-STFT, its change against ``reference`` in percent with the paired 95 %
    interval (bootstrap over tracks), the share of pairs it leaves further from the master than the
    reference, and the mean squared band error of its curve."""
    base = results[results["system"] == reference].set_index("pair")["mrstft"]
    rows = []
    for system, frame in results.groupby("system", sort=False):
        frame = frame.set_index("pair")
        diff = frame["mrstft"] - base.loc[frame.index]
        mean, lo, hi, n = cluster_bootstrap_ci(diff.to_numpy(), frame["group"].to_numpy(), n_boot=n_boot, seed=seed)
        ref = float(base.loc[frame.index].mean())
        rows.append({"system": system, "label": frame["label"].iloc[0], "mrstft": float(frame["mrstft"].mean()),
                     "change_pct": 100.0 * mean / ref, "ci_low_pct": 100.0 * lo / ref, "ci_high_pct": 100.0 * hi / ref,
                     "worse_share": float((diff > 0).mean()), "band_mse_db2": float(frame["band_mse_db2"].mean()),
                     "pairs": int(len(frame)), "tracks": n})
    return pd.DataFrame(rows)


def plot_band_r2(fits: dict[str, Any], path: str | Path | None = None):
    """Band-wise R² of each predictor on the validation pairs (how much of each band's correction the
    input's own spectrum reveals); saved to ``path`` when given. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    centres = np.asarray(fits["centres_hz"])
    for kind, info in fits["predictors"].items():
        ax.semilogx(centres, info["band_r2"], marker="o", ms=3, label=kind.replace("_", " "))
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set(xlabel="1/3-octave band centre (Hz)", ylabel="R² of the band correction",
           title=f"Blind band-correction prediction, {fits['valid_pairs']} validation pairs "
                 f"({fits.get('profile', '?')} profile)")
    ax.set_ylim(min(-0.5, float(np.nanmin([min(i['band_r2']) for i in fits['predictors'].values()]))), 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--checkpoint", default=None,
                        help="a Phase 1 model measured on the same pairs (e.g. runs/mastering/<run>/best.pt)")
    parser.add_argument("--phase", default="1c", help="the checkpoint's phase (for its label)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--true-peak-dbtp", type=float, default=-1.0)
    parser.add_argument("--out", default=None, help="folder for the JSON and the figure (default build/predictability-<profile>)")
    args = parser.parse_args(argv)
    pairs = profile_pairs(args.profile, args.seed, progress=True)
    model = Phase1System(args.phase, args.checkpoint, args.true_peak_dbtp) if args.checkpoint else None
    results, fits = evaluate_predictability(pairs["train"], pairs["valid"], model, args.seed, args.true_peak_dbtp,
                                            progress=True)
    fits.update(profile=args.profile, commit=git_commit(), checkpoint=args.checkpoint, seed=args.seed)
    summary = summarize_predictability(results, seed=args.seed)
    out = Path(args.out or f"build/predictability-{args.profile}")
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "results.csv", index=False)
    (out / "summary.json").write_text(json.dumps({"fits": fits, "summary": summary.to_dict("records")}, indent=2) + "\n")
    plot_band_r2(fits, out / "band_r2.png")
    print(f"# {fits['valid_pairs']} validation pairs ({fits['valid_tracks']} tracks), predictors fitted on "
          f"{fits['train_pairs']} training pairs ({fits['train_tracks']} tracks), profile {args.profile}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.drop(columns=["label"]).round(4).to_string(index=False))
    print(f"# written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
