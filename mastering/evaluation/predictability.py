"""How much of the tonal correction a blind corrector can know from its input alone.

A pair's correction is the master's 1/3-octave levels minus the degraded input's, centred over the
bands (level is the loudness finish's job). Regressors fitted on the profile's training pairs
predict it from the degraded input's own centred levels
(:func:`mastering.evaluation.systems.fit_predictor`);
:class:`~mastering.evaluation.systems.BandRegressionEQSystem` applies a prediction as an EQ followed
by the loudness finish. :func:`evaluate_predictability` measures every predictor on the
validation pairs with notebook 06's metric (MR-STFT at the master's loudness) next to loudness
normalisation, the oracle (each pair's true correction as the EQ) and, optionally, a trained Phase 1
model on the same excerpts. Only training and validation pairs are used; the test split is never
touched, so nothing here can tune on it. :func:`learning_curve` asks whether more pairs would help:
the predictors fitted on ever more pairs drawn from the training mixture, measured on the same
validation pairs.

Run:  python -m mastering.evaluation.predictability --profile cpu [--checkpoint runs/.../best.pt]
      python -m mastering.evaluation.predictability --profile cpu --learning-curve [128,256,...,8192]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..profiles import get_profile
from ..provenance import git_commit
from .benchmark import band_set, cluster_bootstrap_ci, profile_pairs
from .metrics import Reference, evaluate_pair
from .systems import PREDICTORS, BandRegressionEQSystem, LoudnessNormSystem, Phase1System, System, fit_predictor

__all__ = ["evaluate_predictability", "summarize_predictability", "plot_band_r2", "learning_curve",
           "plot_learning_curve", "learning_sizes", "LEARNING_SIZES"]


def learning_sizes(train_items: int, halvings: int = 3, doublings: int = 3) -> list[int]:
    """Training-pair counts of a learning curve around a profile's ``train_items``: that count,
    ``halvings`` halvings below it (never under 2 pairs) and ``doublings`` doublings above it."""
    if int(train_items) < 2 or halvings < 0 or doublings < 0:
        raise ValueError(f"need train_items >= 2 and non-negative steps, got {train_items}, {halvings}, {doublings}")
    below = [int(train_items) >> k for k in range(halvings, 0, -1)]
    return sorted({n for n in below if n >= 2} | {int(train_items) << k for k in range(doublings + 1)})


#: Training-pair counts of :func:`learning_curve` by default: doublings around the cpu profile's 1024.
LEARNING_SIZES = tuple(learning_sizes(1024))


def evaluate_predictability(train: dict[str, Any], valid: dict[str, Any], model: System | None = None,
                            seed: int = 0, true_peak_dbtp: float = -1.0,
                            progress: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit every predictor on ``train`` and measure it on ``valid`` (both
    :func:`mastering.evaluation.benchmark.band_set`, ``valid`` with its audio).

    Each validation pair is mastered by loudness normalisation, the oracle band EQ, every predictor's
    :class:`BandRegressionEQSystem` and ``model`` (if given), all finished at the master's loudness
    under ``true_peak_dbtp``, then measured against the master with
    :func:`~mastering.evaluation.metrics.evaluate_pair`.

    Returns:
        ``(results, fits)``: one row per pair and system (``pair``, ``group``, ``system``, ``label``,
        the metrics, and ``band_mse_db2``: the squared error of the system's band curve against the
        pair's true correction, NaN for the model) and per predictor what was fitted, its band-wise
        R² on the validation pairs (``band_r2``), the bands' centres, the pairs' counts, and the
        median over bands of the corrections' and of the masters' balances' standard deviation
        across the validation pairs (``correction_sd_db``, ``master_balance_sd_db``).
    """
    sr = int(train["sample_rate"])
    if int(valid["sample_rate"]) != sr:
        raise ValueError(f"training pairs at {sr} Hz, validation pairs at {valid['sample_rate']} Hz")
    if "degraded" not in valid:
        raise ValueError("the validation band set needs its audio (band_set(..., keep_audio=True))")
    centres, f_train, d_train = train["centres_hz"], train["features"], train["corrections"]
    f_valid, d_valid = valid["features"], valid["corrections"]
    systems: list[System] = [LoudnessNormSystem(true_peak_dbtp)]
    fits: dict[str, Any] = {"centres_hz": centres.tolist(), "train_pairs": len(f_train),
                            # how much the corrections vary across the validation pairs, and how much the
                            # masters' own balance does (median over bands of the standard deviations, dB)
                            "correction_sd_db": float(np.median(d_valid.std(axis=0))),
                            "master_balance_sd_db": float(np.median((f_valid + d_valid).std(axis=0))),
                            "valid_pairs": len(f_valid), "train_tracks": len(set(train["groups"])),
                            "valid_tracks": len(set(valid["groups"])), "predictors": {}}
    curves = {"loudnorm": np.zeros_like(d_valid), "oracle_band": d_valid}  # each arm's band curve per pair
    for kind in PREDICTORS:
        predict, info = fit_predictor(kind, f_train, d_train, train["groups"], seed)
        pred = curves[f"band_{kind}"] = predict(f_valid)
        fits["predictors"][kind] = dict(info, band_r2=_band_r2(pred, d_valid).tolist())
        systems.append(BandRegressionEQSystem(predict, f"band_{kind}", f"blind band EQ ({kind.replace('_', ' ')})",
                                              true_peak_dbtp))
    if model is not None:
        systems.append(model)
    results = _score(systems, valid, true_peak_dbtp, progress)
    results["band_mse_db2"] = [float(((curves[name][i] - d_valid[i]) ** 2).mean()) if name in curves else math.nan
                               for i, name in zip(results["pair"], results["system"])]
    return results, fits


def _score(systems: Sequence[System], valid: dict[str, Any], true_peak_dbtp: float, progress: bool) -> pd.DataFrame:
    """Every validation pair mastered by each of ``systems`` and by the oracle band EQ (its own true
    correction), finished at the master's loudness, scored against the master: one row per pair and
    system (``pair``, ``group``, ``system``, ``label``, :func:`~mastering.evaluation.metrics.evaluate_pair`)."""
    sr, rows = int(valid["sample_rate"]), []
    for i in tqdm(range(len(valid["features"])), desc="validation pairs", disable=not progress, leave=False):
        x = torch.from_numpy(valid["degraded"][i])
        y = Reference(torch.from_numpy(valid["mastered"][i]), sr)  # measured once for every arm
        target = float(y.lufs()[0])
        oracle = BandRegressionEQSystem(None, "oracle_band", "oracle band EQ (true correction)", true_peak_dbtp,
                                        curve_db=valid["corrections"][i])
        for system in [*systems, oracle]:
            rows.append({"pair": i, "group": valid["groups"][i], "system": system.name, "label": system.label,
                         **evaluate_pair(system.master(x, sr, target), y, sr)})
    return pd.DataFrame(rows)


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


def _band_r2(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    ss_res, ss_tot = ((pred - truth) ** 2).sum(0), ((truth - truth.mean(0)) ** 2).sum(0)
    return 1.0 - ss_res / np.maximum(ss_tot, 1e-12)


def learning_curve(pool: dict[str, Any], valid: dict[str, Any], sizes: Sequence[int] = LEARNING_SIZES,
                   kinds: Sequence[str] = ("ridge", "extra_trees"), render: Sequence[str] = ("extra_trees",),
                   seed: int = 0, true_peak_dbtp: float = -1.0, n_boot: int = 1000,
                   progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Whether more training pairs would let a blind corrector know more: each of ``kinds`` (of
    :data:`~mastering.evaluation.systems.PREDICTORS`) fitted on the first ``n`` pairs of ``pool``
    for every ``n`` in ``sizes`` (nested sets), measured on ``valid`` (both
    :func:`mastering.evaluation.benchmark.band_set`; ``valid`` with its audio when ``render`` is
    not empty).

    The band-wise R² and squared error of the predicted corrections need no audio; the predictors
    in ``render`` are also applied as :class:`BandRegressionEQSystem` through the loudness finish and
    scored with MR-STFT at the master's loudness against loudness normalisation (paired interval
    over tracks, :func:`summarize_predictability`), beside the oracle (each pair's true correction),
    the most any band EQ can reach.

    Returns:
        ``(curve, results)``: ``curve`` one row per size and kind (``train_pairs``, ``train_tracks``:
        the distinct groups among them, each pink-noise pair its own, ``kind``, ``r2_median`` and
        ``r2_max`` over bands, ``band_mse_db2``, the fit's ``info`` and, for rendered kinds,
        ``mrstft``, ``change_pct``, ``ci_low_pct``, ``ci_high_pct``, ``worse_share``); ``results`` the per-pair rows of every rendered arm (systems
        ``loudnorm``, ``oracle_band``, ``band_<kind>_<n>``).

    Raises:
        ValueError: a size outside 2..len(pool), an unknown kind, or audio missing for ``render``.
    """
    sizes = sorted({int(n) for n in sizes})
    n_pool = len(pool["features"])
    if not sizes or sizes[0] < 2 or sizes[-1] > n_pool:
        raise ValueError(f"sizes must lie in [2, {n_pool}] (the pool's pairs), got {sizes}")
    unknown = sorted(set(kinds) - set(PREDICTORS)) + sorted(set(render) - set(kinds))
    if unknown:
        raise ValueError(f"unknown or unfitted predictor(s) {unknown}; kinds from {', '.join(PREDICTORS)}, "
                         "render a subset of kinds")
    if render and "degraded" not in valid:
        raise ValueError("rendering needs the validation audio (band_set(..., keep_audio=True))")
    sr = int(valid["sample_rate"])
    if int(pool["sample_rate"]) != sr:
        raise ValueError(f"pool at {pool['sample_rate']} Hz, validation pairs at {sr} Hz")
    f_valid, d_valid = valid["features"], valid["corrections"]
    groups = np.asarray(pool["groups"])
    rows, systems = [], [LoudnessNormSystem(true_peak_dbtp)]
    for n in tqdm(sizes, desc="fitting", disable=not progress, leave=False):
        for kind in kinds:
            predict, info = fit_predictor(kind, pool["features"][:n], pool["corrections"][:n], groups[:n], seed)
            pred = predict(f_valid)
            r2 = _band_r2(pred, d_valid)
            rows.append({"train_pairs": n, "train_tracks": len(set(groups[:n].tolist())), "kind": kind,
                         "r2_median": float(np.median(r2)), "r2_max": float(r2.max()),
                         "band_mse_db2": float(((pred - d_valid) ** 2).mean()), "info": json.dumps(info)})
            if kind in render:
                systems.append(BandRegressionEQSystem(predict, f"band_{kind}_{n}",
                                                      f"blind band EQ ({kind.replace('_', ' ')}, {n} pairs)",
                                                      true_peak_dbtp))
    curve, results = pd.DataFrame(rows), pd.DataFrame()
    if render:
        results = _score(systems, valid, true_peak_dbtp, progress)
        results["band_mse_db2"] = math.nan
        summary = summarize_predictability(results, n_boot=n_boot, seed=seed).set_index("system")
        cols = ["mrstft", "change_pct", "ci_low_pct", "ci_high_pct", "worse_share"]
        for col in cols:
            curve[col] = [summary.loc[f"band_{k}_{n}", col] if f"band_{k}_{n}" in summary.index else math.nan
                          for k, n in zip(curve["kind"], curve["train_pairs"])]
        curve.attrs.update(oracle={c: float(summary.loc["oracle_band", c]) for c in cols},
                           loudnorm_mrstft=float(summary.loc["loudnorm", "mrstft"]))
    return curve, results


def plot_learning_curve(curve: pd.DataFrame, path: str | Path | None = None, title: str = ""):
    """Left: median and best band R² against training pairs per predictor; right (rendered
    predictors): MR-STFT change against loudness normalisation with its 95 % interval, and the
    oracle band EQ's. Saved to ``path`` when given. Returns the figure."""
    import matplotlib.pyplot as plt

    rendered = curve.dropna(subset=["change_pct"]) if "change_pct" in curve else curve.iloc[:0]
    fig, axes = plt.subplots(1, 2 if len(rendered) else 1, figsize=(10.0 if len(rendered) else 5.5, 3.4),
                             squeeze=False)
    colour = {kind: f"C{i}" for i, kind in enumerate(dict.fromkeys(curve["kind"]))}  # one per predictor, both panels
    sizes = sorted(set(curve["train_pairs"]))
    ax = axes[0, 0]
    for kind, frame in curve.groupby("kind", sort=False):
        name = kind.replace("_", " ")
        ax.plot(frame["train_pairs"], frame["r2_median"], marker="o", ms=3, color=colour[kind], label=f"{name}, median band")
        ax.plot(frame["train_pairs"], frame["r2_max"], marker="^", ms=3, ls="--", color=colour[kind],
                label=f"{name}, best band")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set(xlabel="training pairs", ylabel="R² of the band correction (validation)")
    ax.legend(fontsize=7)
    if len(rendered):
        ax = axes[0, 1]
        for kind, frame in rendered.groupby("kind", sort=False):
            ax.errorbar(frame["train_pairs"], frame["change_pct"],
                        yerr=[frame["change_pct"] - frame["ci_low_pct"], frame["ci_high_pct"] - frame["change_pct"]],
                        marker="o", ms=3, capsize=2, color=colour[kind],
                        label=f"blind band EQ ({kind.replace('_', ' ')}), 95 % interval")
        oracle = curve.attrs.get("oracle")
        if oracle:
            ax.axhline(oracle["change_pct"], color="0.3", ls=":", label="oracle band EQ (true correction)")
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set(xlabel="training pairs", ylabel="MR-STFT vs loudness norm. (%)")
        ax.legend(fontsize=7)
    for ax in axes[0]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    return fig


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


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"give training-pair counts as 128,256,...; got {text!r}") from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError(f"training-pair counts must be >= 2, got {text!r}")
    return sizes


def _run_learning_curve(args, out: Path) -> int:
    sizes = sorted(set(args.learning_curve or learning_sizes(get_profile(args.profile)["train"]["data"]["train_items"])))
    train_data, valid_data, sr = profile_pairs(args.profile, args.seed, progress=True, train_items=max(sizes))
    pool = band_set(train_data, sr, progress=True, desc=f"{max(sizes)} training pairs")
    valid = band_set(valid_data, sr, keep_audio=True)
    curve, results = learning_curve(pool, valid, sizes, seed=args.seed, true_peak_dbtp=args.true_peak_dbtp,
                                    progress=True)
    meta = {"profile": args.profile, "commit": git_commit(), "seed": args.seed, "sizes": sizes,
            "valid_pairs": len(valid["features"]), "valid_tracks": len(set(valid["groups"])),
            "pool_tracks": len(set(pool["groups"])), **curve.attrs}
    results.to_csv(out / "learning_curve_results.csv", index=False)
    curve.to_csv(out / "learning_curve.csv", index=False)
    (out / "learning_curve.json").write_text(json.dumps({**meta, "curve": curve.to_dict("records")}, indent=2) + "\n")
    plot_learning_curve(curve, out / "learning_curve.png",
                        title=f"Blind band EQ against training pairs ({meta['valid_pairs']} validation pairs, "
                              f"{args.profile} profile)")
    print(f"# learning curve: predictors fitted on the first n of {max(sizes)} training pairs "
          f"({meta['pool_tracks']} tracks), measured on {meta['valid_pairs']} validation pairs "
          f"({meta['valid_tracks']} tracks), profile {args.profile}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(curve.drop(columns=["info"]).round(4).to_string(index=False))
    if "oracle" in curve.attrs:
        print(f"# oracle band EQ: {curve.attrs['oracle']['change_pct']:+.1f} % against loudness normalisation "
              f"(MR-STFT {curve.attrs['loudnorm_mrstft']:.4f})")
    print(f"# written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--checkpoint", default=None,
                        help="a Phase 1 model measured on the same pairs (e.g. runs/mastering/<run>/best.pt)")
    parser.add_argument("--phase", default="1c", help="the checkpoint's phase (for its label)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--true-peak-dbtp", type=float, default=-1.0)
    parser.add_argument("--learning-curve", type=_sizes, nargs="?", const=[], default=None,
                        metavar="N,N,...",
                        help="instead: the predictors fitted on the first N of max(N) pairs drawn from the training "
                             "mixture, for each N (default: the profile's training pairs, three halvings and three "
                             f"doublings, as notebook 06; cpu: {','.join(map(str, LEARNING_SIZES))})")
    parser.add_argument("--out", default=None, help="folder for the JSON and the figure (default build/predictability-<profile>)")
    args = parser.parse_args(argv)
    out = Path(args.out or f"build/predictability-{args.profile}")
    out.mkdir(parents=True, exist_ok=True)
    if args.learning_curve is not None:
        if args.checkpoint:
            parser.error("--learning-curve measures the blind band EQ alone; drop --checkpoint")
        return _run_learning_curve(args, out)
    train_data, valid_data, sr = profile_pairs(args.profile, args.seed, progress=True)
    model = Phase1System(args.phase, args.checkpoint, args.true_peak_dbtp) if args.checkpoint else None
    results, fits = evaluate_predictability(band_set(train_data, sr, progress=True, desc="training pairs"),
                                            band_set(valid_data, sr, keep_audio=True), model, args.seed,
                                            args.true_peak_dbtp, progress=True)
    fits.update(profile=args.profile, commit=git_commit(), checkpoint=args.checkpoint, seed=args.seed)
    summary = summarize_predictability(results, seed=args.seed)
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
