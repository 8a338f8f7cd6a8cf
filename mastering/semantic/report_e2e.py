"""Paper figures and tables of the end-to-end semantic EQ and of inference-time refinement
(notebook ``10_semantic_e2e``).

One function per artefact; each reads results already computed (training histories, the
evaluation of :func:`mastering.semantic.evaluate.evaluate_semantic_eq`, the comparisons of
:mod:`mastering.semantic.e2e`, the refinement table of :mod:`mastering.semantic.refine`) and never
trains. Everything is saved through :mod:`mastering.figures` with provenance sidecars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..figures import interval_verdict, profile_note, save_figure, save_numbers, save_table
from .e2e import with_goal

__all__ = [
    "SYSTEM_LABELS",
    "table_e2e_comparison",
    "table_e2e_differences",
    "fig_e2e_training",
    "fig_e2e_intensity",
    "table_refinement",
    "fig_refinement",
    "numbers_e2e",
]

#: Labels and colours of the systems compared.
SYSTEM_LABELS = {"adaptive": "two-stage", "e2e-iir": "E2E (exact IIR)", "e2e-dasp": "E2E (dasp FIR)"}
SYSTEM_COLOURS = {"adaptive": "#1b9e77", "e2e-iir": "#d95f02", "e2e-dasp": "#7570b3"}
MEASURE_LABELS = {"attainment_error": "attainment error", "position_after": "position after",
                  "tilt_change": "tilt change (dB/oct)", "cosine": "direction cosine", "rms_db": "EQ size (dB RMS)"}


def _plt():
    import matplotlib

    matplotlib.use("agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _ci(value: float, lo: float, hi: float, digits: int = 2) -> str:
    if not np.isfinite(value):
        return "--"
    text = f"{value:.{digits}f}"
    if np.isfinite(lo) and np.isfinite(hi):
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text.replace("-", "$-$")


def _wrap(table: str, caption: str, name: str, profile: str, star: bool = True) -> str:
    env = "table*" if star else "table"
    note = profile_note(profile)
    return (f"\\begin{{{env}}}[t]\n\\centering\n\\small\n\\caption{{{caption}. {note}.}}\n"
            f"\\label{{tab:{name}}}\n{table}\\end{{{env}}}\n")


def table_e2e_comparison(comparison: pd.DataFrame, profile: str, intensity: float = 1.0,
                         name: str = "semantic_e2e_comparison", **meta: Any) -> Path:
    """Two-stage vs end-to-end (both back-ends) on held-out music, per descriptor.

    Args:
        comparison: from :func:`mastering.semantic.e2e.compare_systems`.
        intensity: the intensity it was taken at (for the caption).
    """
    if comparison.empty:
        raise ValueError("no comparison to tabulate")
    c = comparison
    ci = lambda col: [_ci(v, a, b) for v, a, b in zip(c[f"{col}_mean"], c[f"{col}_lo"], c[f"{col}_hi"])]  # noqa: E731
    out = pd.DataFrame({
        "Descriptor": c["descriptor"], "System": c["method"].map(lambda m: SYSTEM_LABELS.get(m, m)),
        "Attainment error": ci("attainment_error"), "Position after": ci("position_after"),
        "Tilt change": ci("tilt_change"),
        "Direction acc.": [_ci(v, a, b) for v, a, b in zip(c["direction_accuracy"], c["direction_accuracy_lo"], c["direction_accuracy_hi"])],
        "EQ size (dB)": ci("rms_db"), "Monotone": [f"{v:.2f}" for v in c["monotone_position"]],
    })  # fmt: skip
    clips, tracks = int(c["clips"].max()), int(c["tracks"].max())
    caption = (
        f"Two-stage vs end-to-end semantic EQ on {clips} excerpts of {tracks} held-out real-music tracks, "
        f"intensity {intensity:g}. The E2E models fine-tune the audio encoder and a latent head through a "
        "differentiable EQ (our exact IIR cascade, or dasp-pytorch's frequency-sampled FIR approximation); every "
        "system's EQ is applied here with the exact IIR cascade. Attainment error: distance along the "
        "descriptor's axis between where the processed excerpt lies and the traversal's goal, read by the "
        "frozen audio encoder of the two-stage system (the judge, never the one trained); tilt change: spectral "
        "tilt after minus before (dB/octave, encoder-free); direction acc.: share of excerpts whose EQ curve "
        "correlates positively with the descriptor's mean SAFE-DB curve; EQ size: RMS of the applied curve; "
        "monotone: share of excerpts whose position never falls as the intensity rises. Brackets: 95\\% "
        "bootstrap intervals over tracks"
    )
    table = out.to_latex(index=False, escape=False, column_format="llllllll")
    return save_table(_wrap(table, caption, name, profile), name, profile, intensity=intensity, **meta)


def table_e2e_differences(differences: pd.DataFrame, profile: str, intensity: float = 1.0,
                          name: str = "semantic_e2e_differences", **meta: Any) -> Path:
    """E2E minus two-stage on the same excerpts (pooled over descriptors), with intervals.

    Args:
        differences: from :func:`mastering.semantic.e2e.paired_differences`.
    """
    d = differences[differences["descriptor"] == "all"]
    if d.empty:
        raise ValueError("no pooled differences to tabulate")
    wide = d.pivot(index="method", columns="measure", values="difference")
    out = pd.DataFrame({"System": [SYSTEM_LABELS.get(m, m) for m in wide.index]})
    for measure, label in MEASURE_LABELS.items():
        part = d[d["measure"] == measure].set_index("method")
        out[label] = [_ci(part.at[m, "difference"], part.at[m, "lo"], part.at[m, "hi"]) for m in wide.index]
    caption = (f"End-to-end minus two-stage on the same excerpts ({int(d['clips'].max())} excerpt-descriptor pairs), "
               f"intensity {intensity:g}: negative attainment error is better; the tilt change and the direction "
               "are encoder-free checks that a lower error is not the judge being fooled. Brackets: 95\\% "
               "bootstrap intervals over tracks")
    table = out.to_latex(index=False, escape=False, column_format="l" + "r" * len(MEASURE_LABELS))
    return save_table(_wrap(table, caption, name, profile), name, profile, intensity=intensity, **meta)


def fig_e2e_training(histories: dict[str, dict[str, Any]], profile: str, name: str = "semantic_e2e_training",
                     **meta: Any) -> Path:
    """Training curves of the E2E models: total objective and the judge's latent distance per step."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    # the back-ends share seed, data and initialisation, so their curves can coincide: dasp-pytorch's is
    # drawn dashed and thinner over the exact IIR's, so that both stay visible
    styles = {"iir": ("-", 2.4), "dasp": ("--", 1.3)}
    for backend, h in sorted(histories.items(), key=lambda kv: kv[0] != "iir"):
        key = f"e2e-{backend}"
        ls, lw = styles.get(backend, (":", 1.3))
        for ax, col in zip(axes, ("total", "distance")):
            v = np.asarray(h[col], dtype=float)
            ax.plot(np.arange(1, len(v) + 1), v, color=SYSTEM_COLOURS.get(key), alpha=0.35, lw=0.8, ls=ls)
            k = max(1, len(v) // 10)
            smooth = np.convolve(v, np.ones(k) / k, mode="valid")
            ax.plot(np.arange(k, len(v) + 1), smooth, color=SYSTEM_COLOURS.get(key), lw=lw, ls=ls,
                    label=SYSTEM_LABELS.get(key, key))
    axes[0].set_ylabel("objective (z-loss + plausibility)")
    axes[1].set_ylabel("judge's latent distance to goal")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.2)
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return save_figure(fig, name, profile, backends=sorted(histories), **meta)


def fig_e2e_intensity(results: pd.DataFrame, profile: str, name: str = "semantic_e2e_intensity", **meta: Any) -> Path:
    """Attainment error (judge) and tilt change (encoder-free) against the intensity, per system."""
    plt = _plt()
    r = with_goal(results)
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.9))
    for ax, col, label in zip(axes, ("attainment_error", "tilt_change"),
                              ("attainment error (judge)", "tilt change, dB/octave (no encoder)")):
        for m, g in r.groupby("method", sort=False):
            stats = g.groupby("intensity")[col].agg(["mean", "std", "count"])
            half = 1.96 * stats["std"].fillna(0) / np.sqrt(stats["count"])
            ax.plot(stats.index, stats["mean"], marker="o", ms=3, color=SYSTEM_COLOURS.get(m), label=SYSTEM_LABELS.get(m, m))
            ax.fill_between(stats.index, stats["mean"] - half, stats["mean"] + half, color=SYSTEM_COLOURS.get(m), alpha=0.15, lw=0)
        ax.set_xlabel("intensity")
        ax.set_ylabel(label)
        ax.grid(alpha=0.2)
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return save_figure(fig, name, profile, clips=int(results["clip"].nunique()),
                       descriptors=sorted(set(results["descriptor"])), **meta)


def table_refinement(summary: pd.DataFrame, profile: str, name: str = "semantic_refinement", **meta: Any) -> Path:
    """Quality vs CPU time of inference-time refinement for N Adam steps.

    Args:
        summary: from :func:`mastering.semantic.refine.summarize_refinement`.
    """
    if summary.empty:
        raise ValueError("no refinement results to tabulate")
    s = summary
    out = pd.DataFrame({
        "$N$": s["steps"].astype(int), "CPU time (s)": [f"{v:.1f}" for v in s["seconds"]],
        "Distance to goal": [_ci(v, a, b, 3) for v, a, b in zip(s["distance"], s["distance_lo"], s["distance_hi"])],
        "Reduction": [_ci(v, a, b) for v, a, b in zip(s["reduction"], s["reduction_lo"], s["reduction_hi"])],
        "Tilt change": [f"{v:+.2f}".replace("-", "$-$") for v in s["tilt_change"]],
        "Direction cos.": [f"{v:.2f}".replace("-", "$-$") for v in s["cosine"]],
        "EQ size (dB)": [f"{v:.2f}" for v in s["rms_db"]],
        "Loudness change (LU)": [f"{v:.2f}" for v in s["loudness_lu"]],
        "Stopped": [f"{v:.2f}" for v in s.get("stopped", pd.Series(np.nan, index=s.index))],
    })  # fmt: skip
    caption = (
        f"Inference-time refinement: Adam on the ten EQ bands for $N$ steps, re-encoding the output, on "
        f"{int(s['clips'].max())} excerpts of {int(s['tracks'].max())} held-out tracks. CPU time: cumulative wall "
        "time per excerpt on one thread (the $N$-step settings are the prefix of one 200-step run; Adam with a "
        "constant rate is deterministic). Distance: latent distance of the re-encoded output to the traversal's "
        "goal, measured by the encoder that is descended (optimistic); tilt change and direction cosine "
        "(against the descriptor's mean SAFE-DB curve) are the encoder-free checks. Stopped: share of excerpts "
        "whose refinement the stopping rule has halted by step $N$ (an excerpt keeps the settings of the step "
        "before its direction cosine would fall more than 0.05 below its start). Look at: the distance and the "
        "share stopped. Brackets: 95\\% bootstrap intervals over tracks"
    )
    table = out.to_latex(index=False, escape=False, column_format="rrllrrrrr")
    return save_table(_wrap(table, caption, name, profile), name, profile, **meta)


def fig_refinement(rows: pd.DataFrame, profile: str, name: str = "semantic_refinement_tradeoff", **meta: Any) -> Path:
    """Distance to the goal (judge) and direction cosine (encoder-free) against CPU time, per excerpt."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    for clip, g in rows.groupby("clip", sort=False):
        g = g.sort_values("steps")
        axes[0].plot(g["seconds"], g["distance"], marker="o", ms=3, lw=0.8, alpha=0.7)
        axes[1].plot(g["seconds"], g["cosine"], marker="o", ms=3, lw=0.8, alpha=0.7)
    mean = rows.groupby("steps")[["seconds", "distance", "cosine"]].mean()
    for ax, col in zip(axes, ("distance", "cosine")):
        ax.plot(mean["seconds"], mean[col], color="k", lw=1.8, marker="s", ms=4, label="mean")
        for n, r in mean.iterrows():
            ax.annotate(f"N={int(n)}", (r["seconds"], r[col]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("CPU time per excerpt (s)")
        ax.grid(alpha=0.2)
    axes[0].set_ylabel("latent distance to goal")
    axes[1].set_ylabel("direction cosine vs SAFE mean curve")
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return save_figure(fig, name, profile, clips=int(rows["clip"].nunique()), steps=sorted(int(v) for v in rows["steps"].unique()), **meta)


def numbers_e2e(differences: pd.DataFrame, refinement: pd.DataFrame, profile: str) -> Path:
    """``numbers_semantic_e2e.tex`` (notebook 10): for each end-to-end back-end, the paired
    difference to the two-stage system pooled over descriptors (attainment error, tilt change,
    direction cosine; with 95 % intervals) and a verdict on the attainment error (``lower``,
    ``higher`` or ``not measurably different``: whether the interval excludes zero,
    :func:`mastering.figures.interval_verdict`); for refinement, the
    judge's distance at the fewest and the most steps and the CPU seconds per excerpt at the most.

    Args:
        differences: :func:`mastering.semantic.e2e.paired_differences`.
        refinement: :func:`mastering.semantic.refine.summarize_refinement`.
    """
    values: dict[str, Any] = {}
    pooled = differences[differences["descriptor"] == "all"].set_index(["method", "measure"])
    for method, key in (("e2e-iir", "iir"), ("e2e-dasp", "dasp")):
        for measure, short in (("attainment_error", "attain"), ("tilt_change", "tilt"), ("cosine", "cosine")):
            if (method, measure) not in pooled.index:
                continue
            r = pooled.loc[(method, measure)]
            values.update({f"{key}_{short}": float(r["difference"]), f"{key}_{short}_lo": float(r["lo"]),
                           f"{key}_{short}_hi": float(r["hi"])})
            verdict = interval_verdict(r["lo"], r["hi"]) if measure == "attainment_error" else None
            if verdict is not None:
                values[f"{key}_verdict"] = verdict
    if len(refinement):
        ref = refinement.sort_values("steps")
        first, last = ref.iloc[0], ref.iloc[-1]
        values.update({"refine_steps_max": int(last["steps"]), "refine_distance_0": float(first["distance"]),
                       "refine_distance_max": float(last["distance"]), "refine_seconds_max": float(last["seconds"]),
                       "refine_reduction_pct": 100.0 * float(last["reduction"]),
                       "refine_cosine_0": float(first["cosine"]), "refine_cosine_max": float(last["cosine"])})
        if "stopped" in ref:
            values["refine_stopped_pct"] = 100.0 * float(last["stopped"])
    values = {k: v for k, v in values.items() if not (isinstance(v, float) and not np.isfinite(v))}
    digits = {k: 3 for k in values if k.endswith(("_attain", "_attain_lo", "_attain_hi"))}
    digits.update({"refine_seconds_max": 1, "refine_reduction_pct": 0, "refine_stopped_pct": 0})
    return save_numbers("semantic_e2e", values, profile, digits={k: digits.get(k, 2) for k in values})
