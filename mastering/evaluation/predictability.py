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
touched, so nothing here can tune on it.

Run:  python -m mastering.evaluation.predictability --profile cpu [--checkpoint runs/.../best.pt]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..provenance import git_commit
from .benchmark import band_set, cluster_bootstrap_ci, profile_pairs
from .metrics import Reference, evaluate_pair
from .systems import PREDICTORS, BandRegressionEQSystem, LoudnessNormSystem, Phase1System, System, fit_predictor

__all__ = ["evaluate_predictability", "summarize_predictability", "plot_band_r2"]


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
            curve = curves.get(system.name)
            row["band_mse_db2"] = math.nan if curve is None else float(((curve[i] - d_valid[i]) ** 2).mean())
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
    train_data, valid_data, sr = profile_pairs(args.profile, args.seed, progress=True)
    model = Phase1System(args.phase, args.checkpoint, args.true_peak_dbtp) if args.checkpoint else None
    results, fits = evaluate_predictability(band_set(train_data, sr, progress=True, desc="training pairs"),
                                            band_set(valid_data, sr, keep_audio=True), model, args.seed,
                                            args.true_peak_dbtp, progress=True)
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
