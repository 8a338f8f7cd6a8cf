"""Figures and tables of notebook 06 (evaluation on held-out music); one function per artefact.

Each reads saved results (the frames of :mod:`mastering.evaluation.benchmark`) and writes through
:func:`mastering.figures.save_figure` / :func:`save_table` / :func:`save_numbers`, which stamp the
profile: ``table_evaluation_{metrics,tests,speed,baselines}``, ``fig_{metric_distributions,example_spectra,
quality_speed}``, :func:`numbers_evaluation` and :func:`numbers_baselines` (registered in
:data:`mastering.paper.ARTEFACTS`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from ..dsp.loudness import loudness
from ..figures import (can_reach_significance, interval_verdict, latex_escape, profile_note, save_figure,
                       save_numbers, save_table, smallest_signed_rank_p)
from .benchmark import best_system, cluster_bootstrap_ci
from .metrics import METRICS
from .predictability import plot_band_r2, plot_learning_curve
from .systems import UNET_LSTM_DESCRIPTION

__all__ = [
    "table_evaluation_metrics",
    "table_evaluation_tests",
    "tests_testable",
    "table_evaluation_speed",
    "table_evaluation_baselines",
    "fig_metric_distributions",
    "fig_example_spectra",
    "fig_quality_speed",
    "numbers_evaluation",
    "numbers_oracle",
    "chain_sentence",
    "headline_differences",
    "numbers_baselines",
    "numbers_learning_curve",
    "fig_learning_curve",
]

_GROUP_COLOURS = {"proposed": "tab:blue", "spectrogram": "tab:purple", "baseline": "tab:gray", "oracle": "tab:orange"}


def _plt():
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    return plt


def _esc(text: Any) -> str:
    return latex_escape(str(text))


def _num(value: float, digits: int = 2) -> str:
    if value is None or not math.isfinite(float(value)):
        return "--"
    text = f"{abs(float(value)):.{digits}f}"
    return ("$-$" if float(value) < 0 and float(text) != 0 else "") + text


def _p(value: float) -> str:
    if value is None or not math.isfinite(float(value)):
        return "--"
    return "$<$0.001" if value < 0.001 else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]], caption: str, label: str, profile: str, align: str,
           wide: bool = False) -> str:
    env = "table*" if wide else "table"
    note = profile_note(profile)
    lines = [f"\\begin{{{env}}}[t]", "\\centering", "\\small", f"\\begin{{tabular}}{{{align}}}", "\\toprule",
             " & ".join(header) + " \\\\", "\\midrule"]
    lines += [" & ".join(r) + " \\\\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption} ({note}).}}", f"\\label{{{label}}}",
              f"\\end{{{env}}}"]
    return "\n".join(lines) + "\n"


_SHORT = {"mrstft": "MR-STFT", "band_error_db": "band err.", "loudness_error_lu": "loud. err.", "true_peak_dbtp": "TP",
          "a_weighted_l1": "A-wt.\\ $L_1$", "si_sdr_db": "SI-SDR"}


def _header(metric: str) -> str:
    """Short column head of a metric with its unit and better direction (the caption spells it out)."""
    unit = METRICS[metric]["unit"]
    arrow = {"lower": " $\\downarrow$", "higher": " $\\uparrow$"}.get(METRICS[metric]["better"], "")
    return _SHORT.get(metric, _esc(METRICS[metric]["label"])) + (f" ({_esc(unit)})" if unit else "") + arrow


def _digits(metric: str) -> int:
    return 3 if metric in ("mrstft", "a_weighted_l1") else 2


def table_evaluation_metrics(summary: pd.DataFrame, profile: str, sources: pd.DataFrame | None = None,
                             tracks: int | None = None, seconds: float | None = None,
                             excerpts: int | None = None) -> Path:
    """Mean [95 % CI] of every metric (columns) per system (rows); the best of each metric in bold.

    Args:
        summary: :func:`mastering.evaluation.benchmark.summarize`.
        profile: the profile that made it.
        sources: :func:`mastering.evaluation.benchmark.build_systems`'s table (recorded in the sidecar).
        tracks, seconds: how many test tracks and how long each was (for the caption).
        excerpts: how many excerpts of ``seconds`` each track gave (for the caption; ``None`` or 1: one).
    """
    metrics = [m for m in METRICS if m in set(summary["metric"])]
    systems = list(dict.fromkeys(summary["system"]))
    header = ["system"] + [_header(m) for m in metrics]
    rows = []
    for system in systems:
        part = summary[summary["system"] == system].set_index("metric")
        means, intervals = [_esc(part["label"].iloc[0])], [""]
        for m in metrics:
            r = part.loc[m]
            d = _digits(m)
            text = _num(r["mean"], d)
            means.append(f"\\textbf{{{text}}}" if bool(r["best"]) else text)
            ci = f"[{_num(r['ci_low'], d)}, {_num(r['ci_high'], d)}]" if math.isfinite(r["ci_low"]) else ""
            intervals.append(f"{{\\scriptsize {ci}}}" if ci else "")
        rows.append(means)
        if any(intervals):  # the interval under its mean keeps the table narrow enough to read
            rows.append(intervals)
    winners = summary[summary["best"]]
    baseline_wins = sorted({_esc(METRICS[m]["label"]) for m, g in zip(winners["metric"], winners["group"]) if g != "proposed"})
    what = (f" on {tracks} held-out test track{'s' if tracks != 1 else ''}" if tracks else " on the held-out test tracks")
    several = excerpts is not None and excerpts > 1
    length = ((f" ({excerpts} {seconds:g}-s excerpts each)" if several else f" ({seconds:g}-s excerpts)") if seconds
              else " (whole tracks)")
    caption = (f"Objective comparison against the original master{what}{length}: mean and, below it, 95\\% "
               "bootstrap interval over tracks; bold: best of each metric. MR-STFT: multi-resolution STFT distance; "
               "band err.: 1/3-octave band-energy error; loud. err.: integrated-loudness error; TP: true peak "
               "(against a $-1$~dBTP ceiling); A-wt.: A-weighted $L_1$; MR-STFT, band error and A-weighted $L_1$ at "
               "matched loudness"
               + (f"; a system other than Phase~1 is best in: {', '.join(baseline_wins)}" if baseline_wins else ""))
    tex = _table(header, rows, caption, "tab:eval-metrics", profile, "l" + "r" * len(metrics), wide=True)
    meta = {"sources": sources.to_dict("records")} if sources is not None else {}
    return save_table(tex, "eval_metrics", profile, **meta)


def tests_testable(tests: pd.DataFrame, alpha: float = 0.05) -> pd.Series:
    """Per row of :func:`mastering.evaluation.benchmark.paired_tests`: whether its Wilcoxon test
    can reach ``alpha`` at all after the Holm correction over the comparisons of its metric
    (:func:`mastering.figures.can_reach_significance` with the row's ``n`` tracks)."""
    m = tests.groupby("metric")["other"].transform("count")
    return pd.Series([can_reach_significance(int(n), int(k), alpha) for n, k in zip(tests["n"], m)], index=tests.index)


def table_evaluation_tests(tests: pd.DataFrame, profile: str, alpha: float = 0.05) -> Path:
    """Paired tests (:func:`mastering.evaluation.benchmark.paired_tests`): mean difference, Wilcoxon
    and paired-t p-values (Holm-adjusted over the comparisons of each metric).

    A comparison whose exact Wilcoxon test cannot reach ``alpha`` after the Holm correction with
    its ``n`` tracks (:func:`tests_testable`) shows no p-values: its row says "not testable" with
    the smallest p the test could give and the bar it would have to pass.
    """
    best = str(tests["best_label"].iloc[0] if "best_label" in tests else tests["best"].iloc[0])
    metrics = [m for m in METRICS if m in set(tests["metric"])]
    header = ["against", "$n$"] + [_header(m).replace(" $\\downarrow$", "").replace(" $\\uparrow$", "") for m in metrics]
    testable = tests_testable(tests, alpha)
    m_tests = int(tests.groupby("metric")["other"].count().max())
    rows, untestable = [], 0
    for other in dict.fromkeys(tests["other"]):
        part = tests[tests["other"] == other].set_index("metric")
        n = int(part["n"].max())
        diffs = [_esc(part["other_label"].iloc[0]), str(n)]
        for m in metrics:
            r = part.loc[m] if m in part.index else None
            diffs.append(_num(r["mean_difference"], _digits(m)) if r is not None else "--")
        rows.append(diffs)
        if not bool(testable[tests["other"] == other].any()):
            untestable += 1
            rows.append(["", "", f"\\multicolumn{{{len(metrics)}}}{{l}}{{\\scriptsize not testable with $n={n}$: "
                         f"smallest attainable $p={smallest_signed_rank_p(n):.3g}$, Holm bar "
                         f"${alpha:g}/{m_tests}={alpha / m_tests:.3g}$}}"])
            continue
        ps = ["", ""]
        for m in metrics:
            r = part.loc[m] if m in part.index else None
            ps.append(f"{{\\scriptsize {_p(r['wilcoxon_p_holm'])}; {_p(r['ttest_p_holm'])}}}" if r is not None else "")
        rows.append(ps)
    caption = (f"Paired tests of {_esc(best)} against every other system over the test tracks: mean difference "
               f"({_esc(best)} minus the other; negative favours {_esc(best)} except for SI-SDR) and, below it, the "
               "Holm-adjusted $p$-values (over the comparisons of each metric) of the Wilcoxon signed-rank and the "
               "paired $t$ test, shown only where the exact Wilcoxon test can reach "
               f"$p<{alpha:g}$ after the correction at all (its smallest $p$ with $n$ pairs is $2/2^n$)"
               + (f"; {untestable} of {len(rows) // 2} comparisons are not testable with this many tracks"
                  if untestable else ""))
    tex = _table(header, rows, caption, "tab:eval-tests", profile, "lr" + "r" * len(metrics), wide=True)
    return save_table(tex, "eval_paired_tests", profile)


def table_evaluation_speed(speed: pd.DataFrame, profile: str, device_note: str = "") -> Path:
    """Speed per system (:func:`mastering.evaluation.benchmark.speed_table`): CPU real-time factor
    over the evaluation, latency per 5 s on the CPU and GPU, and the design's targets."""
    header = ["system", "CPU $\\times$RT", "CPU ms", "design", "GPU ms", "design"]
    rows = []
    for r in speed.itertuples(index=False):
        rows.append([_esc(r.label), _num(r.cpu_realtime, 1), _num(r.cpu_ms_per_5s, 0), _num(r.design_cpu_ms_per_5s, 0),
                     _num(r.cuda_ms_per_5s, 0), _num(r.design_cuda_ms_per_5s, 0)])
    caption = ("Speed: CPU $\\times$RT, seconds of audio mastered per second of wall time on the CPU over the whole "
               "evaluation; CPU/GPU ms, the time to master a 5-s excerpt (median), each beside the design's latency "
               "target (Phase 1B: 270~ms on the CPU, 23~ms on the GPU); -- where not measured" + (f"; {_esc(device_note)}" if device_note else ""))
    tex = _table(header, rows, caption, "tab:eval-speed", profile, "lrrrrr")
    return save_table(tex, "eval_speed", profile)


def fig_metric_distributions(results: pd.DataFrame, profile: str) -> Path:
    """Per-item value (each excerpt of each track) of every metric per system (dots) with the system mean (bar)."""
    plt = _plt()
    metrics = [m for m in METRICS if m in results]
    systems = list(dict.fromkeys(results["system"]))
    labels = [results.loc[results["system"] == s, "label"].iloc[0] for s in systems]
    groups = [results.loc[results["system"] == s, "group"].iloc[0] for s in systems]
    cols = 3
    rows_n = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(10, 3.0 * rows_n), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes.flat, metrics):
        for i, (system, group) in enumerate(zip(systems, groups)):
            values = results.loc[results["system"] == system, metric].to_numpy(float)
            colour = _GROUP_COLOURS.get(group, "tab:gray")
            ax.barh(i, np.mean(values), color=colour, alpha=0.3, height=0.7)
            ax.scatter(values, i + rng.uniform(-0.2, 0.2, len(values)), s=10, color=colour, zorder=3)
        ax.set_yticks(range(len(systems)), labels if ax in axes[:, 0] else [""] * len(systems), fontsize=7)
        ax.invert_yaxis()
        unit = METRICS[metric]["unit"]
        better = {"lower": " (lower is better)", "higher": " (higher is better)"}.get(METRICS[metric]["better"], "")
        ax.set_title(f"{METRICS[metric]['label']}{' [' + unit + ']' if unit else ''}{better}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        if metric == "true_peak_dbtp":
            ax.axvline(-1.0, color="tab:red", lw=0.8, ls="--")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    tracks = results["track"].nunique()
    items = results["item"].nunique() if "item" in results else tracks
    what = f"{tracks} tracks" + (f", {items} excerpts" if items > tracks else "")
    fig.suptitle(f"Metrics per test {'excerpt' if items > tracks else 'track'} ({what}; bars: mean)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, "eval_metric_distributions", profile)


def _spectrum_db(x: torch.Tensor, sample_rate: int, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    from scipy import signal


    x = torch.as_tensor(x, dtype=torch.float64)
    lufs = float(loudness(x[None], sample_rate))
    if math.isfinite(lufs) and lufs > -70:
        x = x * 10 ** ((-23.0 - lufs) / 20.0)  # every curve at -23 LUFS: spectral shape, not level
    nper = min(n_fft, x.shape[-1])
    f, p = signal.welch(x.numpy(), fs=sample_rate, nperseg=nper, noverlap=nper // 2, axis=-1)
    p = p.sum(axis=0)
    smooth = np.empty_like(p)
    for i, fc in enumerate(f):  # 1/6-octave smoothing for readability
        sel = (f >= fc / 2 ** (1 / 12)) & (f <= fc * 2 ** (1 / 12)) if fc > 0 else slice(i, i + 1)
        smooth[i] = p[sel].mean()
    return f[1:], 10 * np.log10(np.maximum(smooth[1:], 1e-20))


def fig_example_spectra(example: Mapping[str, torch.Tensor], sample_rate: int, profile: str, track: str = "",
                        labels: Mapping[str, str] | None = None) -> Path:
    """Long-term spectra (Welch, 1/6-octave smoothed, each at -23 LUFS) of one test track: the
    degraded input, the original master and every system's output (top), and each output's
    difference to the master (bottom).

    Args:
        example: ``{"degraded": audio, "mastered": audio, system: audio, ...}`` (one track of
            :func:`mastering.evaluation.benchmark.run_benchmark`'s outputs).
        labels: display names of the systems.
    """
    plt = _plt()
    labels = dict(labels or {})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    f, ref = _spectrum_db(example["mastered"], sample_rate)
    f, deg = _spectrum_db(example["degraded"], sample_rate)
    top.semilogx(f, ref, color="black", lw=1.6, label="original master")
    top.semilogx(f, deg, color="tab:red", lw=1.2, ls="--", label="degraded input")
    bottom.semilogx(f, deg - ref, color="tab:red", lw=1.2, ls="--", label="degraded input")
    cmap = plt.get_cmap("tab10")
    systems = [k for k in example if k not in ("degraded", "mastered", "identity")]
    for i, name in enumerate(systems):
        _, s = _spectrum_db(example[name], sample_rate)
        colour = cmap((i + 2) % 10)
        top.semilogx(f, s, lw=0.9, color=colour, label=labels.get(name, name))
        bottom.semilogx(f, s - ref, lw=0.9, color=colour)
    top.set_ylabel("power (dB, at -23 LUFS)")
    top.set_ylim(ref.max() - 90, ref.max() + 6)
    top.legend(fontsize=7, ncol=2)
    top.set_title(f"Long-term spectra of a test track{': ' + track if track else ''}", fontsize=9)
    bottom.axhline(0, color="black", lw=0.8)
    bottom.set_ylim(-15, 15)
    bottom.set_ylabel("difference to master (dB)")
    bottom.set_xlabel("frequency (Hz)")
    bottom.set_xlim(20, sample_rate / 2)
    fig.tight_layout()
    return save_figure(fig, "eval_example_spectra", profile, track=track)


def fig_quality_speed(summary: pd.DataFrame, speed: pd.DataFrame, profile: str, metric: str = "mrstft") -> Path:
    """Mean ``metric`` (with its 95 % interval) against seconds of audio mastered per second on the CPU."""
    plt = _plt()
    sel = summary[summary["metric"] == metric].set_index("system")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    markers = {"proposed": "o", "spectrogram": "D", "baseline": "s", "oracle": "^"}
    cmap = plt.get_cmap("tab10")
    for i, r in enumerate(speed.itertuples(index=False)):
        if r.system not in sel.index or not math.isfinite(r.cpu_realtime):
            continue
        row = sel.loc[r.system]
        err = None
        if math.isfinite(row["ci_low"]):
            err = [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]]
        # a legend rather than labels beside the points: systems of similar quality and speed overlap
        ax.errorbar([r.cpu_realtime], [row["mean"]], yerr=err, fmt=markers.get(row["group"], "o"), color=cmap(i % 10),
                    capsize=3, ms=6, label=f"{r.label} ({row['group']})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_xscale("log")
    ax.axvline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("audio seconds mastered per second (CPU; right of the dotted line: faster than real time)", fontsize=8)
    ax.set_ylabel(f"{METRICS[metric]['label']} ({METRICS[metric]['better']} is better)")
    ax.set_title("Quality against speed", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, "eval_quality_speed", profile, metric=metric)


#: The headline comparisons the text states as verdicts: ``(other system, key)``; each Phase 1
#: system's MR-STFT distance minus the other's, paired over excerpts, interval over tracks.
HEADLINE_OTHERS = (("identity", "input"), ("loudnorm", "loudnorm"), ("static_eq", "static"),
                   ("band_extra_trees", "blindeq"))

#: The verdict words of a distance comparison, read as "<system>'s distance is <word> <other>'s".
DISTANCE_VERDICTS = ("lower than", "higher than", "not measurably different from")


def headline_differences(results: pd.DataFrame, metric: str = "mrstft", n_boot: int = 1000, seed: int = 0,
                         level: float = 0.95) -> pd.DataFrame:
    """Each Phase 1 system minus each headline baseline (:data:`HEADLINE_OTHERS`) on ``metric``.

    Paired on the same excerpts (``item``, else ``track``); the interval is the cluster bootstrap of
    :func:`mastering.evaluation.benchmark.cluster_bootstrap_ci` over tracks, and the verdict is
    :func:`mastering.figures.interval_verdict` of it with the number of tracks (so a direction is
    never claimed from fewer tracks than could show one).

    Returns:
        One row per (system, other) present: ``system``, ``other``, ``key`` (the other's short name),
        ``difference``, ``lo``, ``hi``, ``tracks``, ``excerpts``, ``worse_pct`` (the share of excerpts,
        in percent, on which the system's value is higher than the other's) and ``verdict`` (one of
        :data:`DISTANCE_VERDICTS`, or ``None`` without a finite interval).
    """
    item = "item" if "item" in results else "track"
    wide = results.pivot_table(index=[item, "track"] if item != "track" else ["track"], columns="system",
                               values=metric, aggfunc="mean").reset_index()
    proposed = list(dict.fromkeys(results.loc[results["group"] == "proposed", "system"]))
    rows = []
    for system in proposed:
        for other, key in HEADLINE_OTHERS:
            if other not in wide:
                continue
            both = wide[["track", system, other]].dropna()
            if both.empty:
                continue
            diff = both[system] - both[other]
            mean, lo, hi, tracks = cluster_bootstrap_ci(diff, both["track"], n_boot=n_boot, seed=seed, level=level)
            rows.append({"system": system, "other": other, "key": key, "difference": mean, "lo": lo, "hi": hi,
                         "tracks": tracks, "excerpts": int(len(diff)),
                         "worse_pct": 100.0 * float(np.mean(diff.to_numpy(float) > 0)),
                         "verdict": interval_verdict(lo, hi, n=tracks, alpha=1 - level, words=DISTANCE_VERDICTS)})
    return pd.DataFrame(rows, columns=["system", "other", "key", "difference", "lo", "hi", "tracks", "excerpts",
                                       "worse_pct", "verdict"])


def _sig_digits(value: float) -> int:
    """Decimals that show a small positive number with three significant digits (at least three)."""
    return max(3, 2 - int(math.floor(math.log10(value)))) if value > 0 else 3


def numbers_evaluation(summary: pd.DataFrame, tests: pd.DataFrame, speed: pd.DataFrame, profile: str,
                       tracks: int | None = None, results: pd.DataFrame | None = None, n_boot: int = 1000,
                       seed: int = 0, *, proposed: str, validation: pd.DataFrame | None = None,
                       chains: Mapping[str, pd.DataFrame] | None = None) -> Path:
    """``numbers_evaluation.tex``: the values the results text quotes from notebook 06.

    For every metric with a better direction: the best system (label) and its mean
    (``best_<metric>_system``, ``best_<metric>``); for ``proposed``, the Phase 1 system chosen on
    validation (never on these test results; ``validation``: the candidates' records of
    :func:`mastering.evaluation.release.choose_phase`, printed as ``<system>_valid_loss``), as
    ``proposed_system``: its MR-STFT, the identity's and the loudness normalisation's, its
    relative change against the identity in percent (negative: lower), and how many of its paired MR-STFT comparisons
    are significant (Holm-adjusted Wilcoxon p < 0.05); how many metrics a system other than Phase 1
    wins (``baseline_wins`` of ``ranked_metrics``); Phase 1B's CPU speed and latency per 5 s.
    Whether the paired tests can be significant at all: the smallest p of the exact Wilcoxon test
    with the tracks there are (``wilcoxon_min_p``), Holm's first bar (``holm_bar``), how many
    comparisons can pass it (``tests_testable`` of ``mrstft_tests``) and the sentence the text
    prints about it (``tests_note``).

    Given the per-excerpt ``results``, also the verdicts of the headline comparisons
    (:func:`headline_differences`: ``<system>_vs_<input|loudnorm|static|blindeq>_{diff,lo,hi,verdict}``,
    and the same for the best system as ``proposed_vs_...``; the verdict reads "<system>'s
    distance is <verdict> <other>'s"; ``..._worse_pct``: the share of excerpts on which it is
    higher) and, per system, the largest loudness error and true peak of any excerpt
    (``<system>_max_loudness_error_lu``, ``<system>_max_true_peak_dbtp``).
    ``chains``: the per-excerpt results of the other degradation chains (``{"simple": results}``),
    summarised by :func:`chain_sentence` into ``chains_sentence`` (one generated sentence per chain;
    without any, a sentence saying only the training chain was evaluated).
    Reads the notebook's frames, never re-evaluates.

    Raises:
        ValueError: ``proposed`` is not a Phase 1 system of the summary.
    """

    values: dict[str, Any] = {}
    digits: dict[str, int] = {}
    means = summary.set_index(["system", "metric"])["mean"]
    labels = dict(zip(summary["system"], summary["label"]))
    ranked = [m for m in METRICS if METRICS[m]["better"] and m in set(summary["metric"])]
    wins = 0
    for m in ranked:
        row = summary[(summary["metric"] == m) & summary["best"]].iloc[0]
        key = m.replace("_db", "").replace("_lu", "")
        values[f"best_{key}_system"] = str(row["label"])
        values[f"best_{key}"] = float(row["mean"])
        digits[f"best_{key}"] = _digits(m)
        wins += int(row["group"] != "proposed")
    values["baseline_wins"], values["ranked_metrics"] = wins, len(ranked)
    phase1 = set(summary.loc[summary["group"] == "proposed", "system"])
    if proposed not in phase1:
        raise ValueError(f"proposed system {proposed!r} is not one of the Phase 1 systems {sorted(phase1)}")
    values["proposed_system"] = str(labels[proposed])
    if validation is not None:
        for row in validation.itertuples(index=False):
            values[f"phase{row.phase}_valid_loss"], digits[f"phase{row.phase}_valid_loss"] = float(row.valid_perceptual), 3
    values["proposed_mrstft"] = float(means[(proposed, "mrstft")])
    for system, key in (("identity", "identity_mrstft"), ("loudnorm", "loudnorm_mrstft")):
        if (system, "mrstft") in means.index:
            values[key] = float(means[(system, "mrstft")])
    if "identity_mrstft" in values:
        values["proposed_vs_identity_pct"] = 100.0 * (values["proposed_mrstft"] / values["identity_mrstft"] - 1.0)
        digits["proposed_vs_identity_pct"] = 0
    values["tracks"] = int(tracks if tracks is not None else summary["n"].max())
    sel = tests[tests["metric"] == "mrstft"] if len(tests) else tests
    if len(sel):
        p = sel["wilcoxon_p_holm"].to_numpy(float)
        values["mrstft_tests"] = int(len(sel))
        values["mrstft_tests_significant"] = int(np.sum(np.isfinite(p) & (p < 0.05)))
        n = int(sel["n"].max())
        values["wilcoxon_min_p"] = smallest_signed_rank_p(n)
        values["holm_bar"] = 0.05 / len(sel)
        digits["wilcoxon_min_p"] = _sig_digits(values["wilcoxon_min_p"])
        digits["holm_bar"] = _sig_digits(values["holm_bar"])
        values["tests_testable"] = int(tests_testable(sel).sum())
        values["tests_note"] = ("so no comparison can be significant, and the table gives no p-values"
                                if values["tests_testable"] == 0 else
                                "so the table gives the Holm-adjusted p-values of the comparisons that can pass it")
    if results is not None:
        values.update(_headline_values(results, proposed, n_boot, seed, digits))
    by = speed.set_index("system")
    if "phase1b" in by.index:
        r = by.loc["phase1b"]
        for key, col, d in (("phase1b_cpu_realtime", "cpu_realtime", 1), ("phase1b_cpu_ms_per_5s", "cpu_ms_per_5s", 0),
                            ("phase1b_design_cpu_ms", "design_cpu_ms_per_5s", 0)):
            if math.isfinite(float(r[col])):
                values[key], digits[key] = float(r[col]), d
    for k in ("proposed_mrstft", "identity_mrstft", "loudnorm_mrstft"):
        digits.setdefault(k, 3)
    chains = dict(chains or {})
    sentences = [chain_sentence(chain, frame, proposed, n_boot=n_boot, seed=seed) for chain, frame in chains.items()]
    values["chains_sentence"] = " ".join(sentences) if sentences else (
        "This run evaluated the demastering chain only (the profile lists no other chain).")
    return save_numbers("evaluation", values, profile, digits={k: digits.get(k, 2) for k in values})


#: What each degradation chain is, as the generated sentences name it.
CHAIN_DESCRIPTIONS = {
    "demaster": "the demastering chain that made the training pairs",
    "simple": "a simpler chain than the training one (two shelving filters, one peak filter and a level drop)",
}


def _signed(value: float, digits: int = 3) -> str:
    """A number with a true minus sign (U+2212, which the paper's preamble maps to a math minus)."""
    text = f"{abs(value):.{digits}f}"
    return ("\u2212" + text) if value < 0 and float(text) != 0 else text


def chain_sentence(chain: str, results: pd.DataFrame, proposed: str, n_boot: int = 1000, seed: int = 0) -> str:
    """One sentence on ``proposed`` against the input on the excerpts of another degradation chain.

    Its MR-STFT mean beside the input's and loudness normalisation's, the paired difference with
    its cluster-bootstrap interval over tracks and the verdict of :func:`headline_differences`, and
    the share of excerpts on which it is further from the master than the input. Every comparative
    word comes from the interval.
    """
    means = results.groupby("system")["mrstft"].mean()
    if proposed not in means.index or "identity" not in means.index:
        raise ValueError(f"the {chain} results need the systems {proposed!r} and 'identity'")
    label = str(results.loc[results["system"] == proposed, "label"].iloc[0])
    head = headline_differences(results[results["system"].isin([proposed, "identity"])], n_boot=n_boot, seed=seed)
    row = head[(head["system"] == proposed) & (head["other"] == "identity")].iloc[0]
    item = "item" if "item" in results else "track"
    excerpts, tracks = int(results[item].nunique()), int(results["track"].nunique())
    loudnorm = (f" and {means['loudnorm']:.3f} for loudness normalisation" if "loudnorm" in means.index else "")
    desc = CHAIN_DESCRIPTIONS.get(chain, f"the {chain} chain")
    if row["verdict"] is None:
        verdict = f"a difference of {_signed(row['difference'])} without an interval"
    else:
        verdict = (f"a distance {row['verdict']} the input's (difference {_signed(row['difference'])}, 95% "
                   f"interval over tracks [{_signed(row['lo'])}, {_signed(row['hi'])}])")
    return (f"On {excerpts} excerpts of {tracks} test tracks degraded instead by {desc}, {label} reaches an MR-STFT "
            f"distance of {means[proposed]:.3f}, against {means['identity']:.3f} for the input{loudnorm}: {verdict}; "
            f"it is further from the master than the input on {row['worse_pct']:.0f}% of these excerpts.")


def _headline_values(results: pd.DataFrame, proposed: str, n_boot: int, seed: int,
                     digits: dict[str, int]) -> dict[str, Any]:
    """The verdict and range values of :func:`numbers_evaluation` read from the per-excerpt results."""
    values: dict[str, Any] = {}
    for r in headline_differences(results, n_boot=n_boot, seed=seed).itertuples(index=False):
        for prefix in [r.system] + (["proposed"] if r.system == proposed else []):
            key = f"{prefix}_vs_{r.key}"
            values[f"{key}_diff"] = float(r.difference)
            digits[f"{key}_diff"] = 3
            values[f"{key}_worse_pct"] = float(r.worse_pct)
            digits[f"{key}_worse_pct"] = 0
            if r.verdict is not None:
                values.update({f"{key}_lo": float(r.lo), f"{key}_hi": float(r.hi), f"{key}_verdict": r.verdict})
                digits[f"{key}_lo"] = digits[f"{key}_hi"] = 3
    g = results.groupby("system", sort=False)
    for system, col, key in [(s, c, k) for s in g.groups for c, k in (("loudness_error_lu", "max_loudness_error_lu"),
                                                                       ("true_peak_dbtp", "max_true_peak_dbtp"))]:
        if col in results:
            v = float(g.get_group(system)[col].max())
            if math.isfinite(v):
                values[f"{system}_{key}"] = v
    return values


BASELINE_SYSTEMS = ("identity", "loudnorm", "band_extra_trees", "matchering_album", "matchering_oracle", "unet_lstm",
                    "unet_lstm_input_phase", "gl_floor")
"""The rows of :func:`table_evaluation_baselines` (after the Phase 1 system), in order."""

_BASELINE_METRICS = ("mrstft", "band_error_db", "si_sdr_db", "loudness_error_lu", "true_peak_dbtp")


def _baseline_rows(results: pd.DataFrame, summary: pd.DataFrame, proposed: str | None = None) -> list[str]:
    present = set(summary["system"])
    return [proposed or best_system(summary)] + [s for s in BASELINE_SYSTEMS if s in present]


def table_evaluation_baselines(results: pd.DataFrame, summary: pd.DataFrame, profile: str,
                               budget: Mapping[str, Any] | None = None, reference_seconds: float | None = None,
                               true_peak_dbtp: float = -1.0, proposed: str | None = None) -> Path:
    """The baselines beside a Phase 1 system (``proposed``, the one chosen on validation; ``None``:
    the best by test MR-STFT, for a look only): mean [95 % CI] of MR-STFT, band error and
    SI-SDR, the mean loudness error and the highest true peak over excerpts, and matchering's
    warnings per excerpt.

    Args:
        results: :func:`mastering.evaluation.benchmark.run_benchmark` (``warnings``, ``finished``).
        summary: :func:`mastering.evaluation.benchmark.summarize` of the same results.
        budget: :func:`mastering.evaluation.benchmark.thesis_budget` (for the caption).
        reference_seconds: matchering's reference length (for the caption).
        true_peak_dbtp: the finish's ceiling (for the caption).
    """
    metrics = [m for m in _BASELINE_METRICS if m in set(summary["metric"])]
    header = ["system"] + [_header(m) for m in metrics] + ["warn./exc."]
    rows = []
    means = summary.set_index(["system", "metric"])
    for system in _baseline_rows(results, summary, proposed):
        part = results[results["system"] == system]
        finished = bool(part["finished"].iloc[0]) if "finished" in part else True
        cells, intervals = [_esc(part["label"].iloc[0]) + ("" if finished else "$^\\dagger$")], [""]
        for m in metrics:
            d = _digits(m)
            if m == "true_peak_dbtp":
                cells.append(_num(float(part[m].max()), d))  # the highest over excerpts, against the ceiling
                intervals.append("")
                continue
            r = means.loc[(system, m)]
            cells.append(_num(r["mean"], d))
            intervals.append(f"{{\\scriptsize [{_num(r['ci_low'], d)}, {_num(r['ci_high'], d)}]}}"
                             if math.isfinite(r["ci_low"]) else "")
        warn = part["warnings"].to_numpy(float) if "warnings" in part else np.zeros(len(part))
        cells.append(f"{warn.mean():.1f} (max {int(warn.max())})" if system.startswith("matchering") else "--")
        intervals.append("")
        rows.append(cells)
        if any(intervals):
            rows.append(intervals)
    texts = sorted({t for t in results.get("warning_text", pd.Series(dtype=str)) if t})
    kinds = sorted({w.strip().split(":")[0][:60] for t in texts for w in t.split("|") if w.strip()})
    budget_text = ""
    if budget:
        b = budget["baseline"]
        budget_text = (f", trained for {b['epochs']} epochs on {b['train_items']} pairs ({b['valid_items']} for "
                       f"validation), Phase~1B's budget" + ("" if budget.get("equal") else " (NOT equal to Phase 1B's)"))
    seconds = f"{reference_seconds:g}~s" if reference_seconds else "the whole track"
    chosen = "the Phase~1 system chosen on validation" if proposed else "the best Phase~1 system on these excerpts"
    caption = (f"Baselines beside {chosen}, all at the original master's integrated loudness: every "
               f"row except $^\\dagger$ (the unprocessed input) ends in the same loudness finish as "
               f"\\texttt{{mastering master}} (gain to the target, true-peak limiter at ${true_peak_dbtp:g}$~dBTP). "
               f"Matchering (its own limiter and normalisation off) takes a same-album reference (another track of the "
               f"excerpt's album, its middle {seconds}, at the master's loudness) or an oracle one (another {seconds} "
               f"of the excerpt's own master: what a reference-based tool reaches with a perfect reference); warn./exc.: "
               f"matchering's warnings per excerpt (mean, max)"
               + (f", kinds: {_esc('; '.join(kinds))}" if kinds else ", none raised")
               + f". U-Net+LSTM: {_esc(UNET_LSTM_DESCRIPTION)}{budget_text}; Griffin-Lim floor: the input's own STFT "
               "magnitude through the same Griffin-Lim, the score phase retrieval alone costs. TP: the highest true "
               "peak over excerpts. Look at: the oracle against the same-album reference, and the U-Net+LSTM against "
               "its floor and its input-phase variant")
    tex = _table(header, rows, caption, "tab:eval-baselines", profile, "l" + "r" * (len(metrics) + 1), wide=True)
    return save_table(tex, "eval_baselines", profile, budget=dict(budget or {}))


def numbers_baselines(results: pd.DataFrame, summary: pd.DataFrame, profile: str,
                      budget: Mapping[str, Any] | None = None) -> Path:
    """``numbers_baselines.tex``: each baseline's mean MR-STFT and SI-SDR (``<system>_mrstft``,
    ``<system>_si_sdr``), matchering's warnings per excerpt (``<arm>_warnings``), the U-Net+LSTM's
    training budget (``unet_lstm_epochs``, ``unet_lstm_train_items``) and how far Griffin-Lim alone
    takes the input (``gl_floor_vs_loudnorm_mrstft``: the floor's MR-STFT minus loudness
    normalisation's). Reads the notebook's frames, never re-evaluates."""
    values: dict[str, Any] = {}
    digits: dict[str, int] = {}
    means = summary.set_index(["system", "metric"])["mean"]
    for system in _baseline_rows(results, summary)[1:]:
        for metric, key, d in (("mrstft", "mrstft", 3), ("si_sdr_db", "si_sdr", 1)):
            if (system, metric) in means.index:
                values[f"{system}_{key}"], digits[f"{system}_{key}"] = float(means[(system, metric)]), d
        if system.startswith("matchering") and "warnings" in results:
            values[f"{system}_warnings"] = float(results.loc[results["system"] == system, "warnings"].mean())
            digits[f"{system}_warnings"] = 1
    if ("gl_floor", "mrstft") in means.index and ("loudnorm", "mrstft") in means.index:
        values["gl_floor_vs_loudnorm_mrstft"] = float(means[("gl_floor", "mrstft")] - means[("loudnorm", "mrstft")])
        digits["gl_floor_vs_loudnorm_mrstft"] = 3
    if budget:
        values["unet_lstm_epochs"] = int(budget["baseline"]["epochs"])
        values["unet_lstm_train_items"] = int(budget["baseline"]["train_items"])
    return save_numbers("baselines", values, profile, digits={k: digits.get(k, 0) for k in values})


def numbers_oracle(summary: pd.DataFrame, profile: str) -> Path:
    """``numbers_oracle.tex``: the oracle ceilings of :func:`mastering.evaluation.oracle.summarize_oracle`.

    Per arm (``identity`` and each oracle): its mean MR-STFT with the interval over tracks
    (``<arm>_mrstft``, ``_lo``, ``_hi``) and, for the oracles, the change against the degraded input
    in percent (``<arm>_pct``, ``_pct_lo``, ``_pct_hi``); ``excerpts`` and ``tracks``. Reads the
    notebook's frame, never re-evaluates.
    """
    values: dict[str, Any] = {}
    digits: dict[str, int] = {}
    for r in summary.itertuples(index=False):
        for key, value, d in ((f"{r.arm}_mrstft", r.mrstft, 3), (f"{r.arm}_mrstft_lo", r.mrstft_lo, 3),
                              (f"{r.arm}_mrstft_hi", r.mrstft_hi, 3)):
            if math.isfinite(float(value)):
                values[key], digits[key] = float(value), d
        if r.arm != "identity":
            for key, value in ((f"{r.arm}_pct", r.pct), (f"{r.arm}_pct_lo", r.pct_lo), (f"{r.arm}_pct_hi", r.pct_hi)):
                if math.isfinite(float(value)):
                    values[key], digits[key] = float(value), 0
    values["excerpts"] = int(summary["excerpts"].max())
    values["tracks"] = int(summary["tracks"].max())
    return save_numbers("oracle", values, profile, digits={k: digits.get(k, 0) for k in values})


#: Short keys of the predictability study's systems in ``numbers_predictability.tex``.
PREDICTABILITY_KEYS = {"band_mean": "mean", "band_ridge": "ridge", "band_extra_trees": "trees",
                       "oracle_band": "oracle"}


def numbers_predictability(summary: pd.DataFrame, fits: Mapping[str, Any], profile: str,
                           versus_model: pd.DataFrame | None = None) -> Path:
    """``numbers_predictability.tex``: how much of the tonal correction the input reveals
    (:mod:`mastering.evaluation.predictability`, validation pairs only).

    From :func:`~mastering.evaluation.predictability.summarize_predictability` against loudness
    normalisation: ``loudnorm_mrstft`` and per system (``mean``, ``ridge``, ``trees``, ``oracle``
    and ``model``, the Phase 1 system measured beside them, named by ``model_system``) its change in
    percent with the interval over tracks (``<key>_pct``, ``_pct_lo``, ``_pct_hi``) and the share of
    pairs it leaves further from the master (``<key>_worse_pct``); per regressor the largest and the
    median band-wise R² (``<key>_best_r2``, ``<key>_median_r2``); the pairs' and tracks' counts; how
    much the corrections and the masters' own balances vary (``correction_sd_db``, ``master_balance_sd_db``).
    ``versus_model`` (the same summary against the model) adds ``trees_vs_model_verdict``: the
    extra trees' distance read as "<verdict> the model's", from its interval over tracks.
    """
    values: dict[str, Any] = {}
    digits: dict[str, int] = {}
    rows = summary.set_index("system")
    if "loudnorm" in rows.index:
        values["loudnorm_mrstft"], digits["loudnorm_mrstft"] = float(rows.loc["loudnorm", "mrstft"]), 3
    for system, r in rows.iterrows():
        if system == "loudnorm":
            continue
        key = PREDICTABILITY_KEYS.get(system, "model")
        if key == "model":
            values["model_system"] = str(r["label"])
        for suffix, col in (("pct", "change_pct"), ("pct_lo", "ci_low_pct"), ("pct_hi", "ci_high_pct"),
                            ("worse_pct", "worse_share")):
            value = float(r[col]) * (100.0 if col == "worse_share" else 1.0)
            if math.isfinite(value):
                values[f"{key}_{suffix}"], digits[f"{key}_{suffix}"] = value, 1 if col != "worse_share" else 0
    for kind, info in fits.get("predictors", {}).items():
        key = PREDICTABILITY_KEYS.get(f"band_{kind}")
        r2 = np.asarray(info["band_r2"], float)
        if key and r2.size:
            values[f"{key}_best_r2"], values[f"{key}_median_r2"] = float(np.max(r2)), float(np.median(r2))
            digits[f"{key}_best_r2"] = digits[f"{key}_median_r2"] = 2
    for key in ("valid_pairs", "valid_tracks", "train_pairs", "train_tracks"):
        if key in fits:
            values[key] = int(fits[key])
    for key in ("correction_sd_db", "master_balance_sd_db"):
        if key in fits and math.isfinite(float(fits[key])):
            values[key], digits[key] = float(fits[key]), 1
    if versus_model is not None:
        r = versus_model.set_index("system")
        if "band_extra_trees" in r.index:
            t = r.loc["band_extra_trees"]
            verdict = interval_verdict(t["ci_low_pct"], t["ci_high_pct"], n=int(t["tracks"]), words=DISTANCE_VERDICTS)
            if verdict is not None:
                values["trees_vs_model_verdict"] = verdict
    return save_numbers("predictability", values, profile, digits={k: digits.get(k, 0) for k in values})


def fig_predictability(fits: Mapping[str, Any], profile: str) -> Path:
    """Band-wise R² of each blind regressor on the validation pairs
    (:func:`~mastering.evaluation.predictability.plot_band_r2`)."""
    _plt()
    return save_figure(plot_band_r2(dict(fits, profile=profile)), "eval_predictability", profile)


def numbers_learning_curve(curve: pd.DataFrame, profile: str, own_pairs: int,
                           versus_own: pd.DataFrame | None = None, kind: str = "extra_trees") -> Path:
    """``numbers_learning_curve.tex``: whether more training pairs let the blind band EQ know more
    (:func:`~mastering.evaluation.predictability.learning_curve`, validation pairs only).

    For the rendered predictor ``kind`` at the smallest, the profile's own (``own_pairs``, the
    Phase 1 models' training pairs) and the largest count (``min``, ``own``, ``max``): the pairs,
    the change against loudness normalisation in percent with its interval over tracks
    (``<at>_pct``, ``_pct_lo``, ``_pct_hi``), the share of pairs left further from the master
    (``<at>_worse_pct``) and the median band R² (``<at>_median_r2``); the best band's R² at the
    largest count (``max_best_r2``); the least-squares change per doubling of the pairs
    (``pct_per_doubling``, percentage points); ridge's median band R² at the smallest and largest
    counts where it was fitted (``ridge_min_median_r2``, ``ridge_max_median_r2``); the oracle band
    EQ (``oracle_pct``). ``versus_own`` (the learning curve's rows summarised against the own
    count's system, :func:`~mastering.evaluation.predictability.summarize_predictability`) adds
    the largest count against the own: ``max_vs_own_pct``, ``_lo``, ``_hi`` and
    ``max_vs_own_verdict`` ("<verdict> the own count's"), from its interval over tracks.

    Raises:
        ValueError: ``kind`` not rendered, or ``own_pairs`` not among its counts.
    """
    rows = curve[(curve["kind"] == kind) & curve.get("change_pct", pd.Series(math.nan, curve.index)).notna()]
    rows = rows.sort_values("train_pairs").set_index("train_pairs")
    if rows.empty:
        raise ValueError(f"{kind!r} was not rendered in this learning curve")
    if int(own_pairs) not in rows.index:
        raise ValueError(f"own_pairs {own_pairs} is not among the curve's counts {list(rows.index)}")
    values: dict[str, Any] = {}
    digits: dict[str, int] = {}
    for at, n in (("min", int(rows.index[0])), ("own", int(own_pairs)), ("max", int(rows.index[-1]))):
        r = rows.loc[n]
        values[f"{at}_pairs"] = n
        for suffix, col, scale, d in (("pct", "change_pct", 1.0, 1), ("pct_lo", "ci_low_pct", 1.0, 1),
                                      ("pct_hi", "ci_high_pct", 1.0, 1), ("worse_pct", "worse_share", 100.0, 0),
                                      ("median_r2", "r2_median", 1.0, 2)):
            values[f"{at}_{suffix}"], digits[f"{at}_{suffix}"] = float(r[col]) * scale, d
    values["max_best_r2"], digits["max_best_r2"] = float(rows["r2_max"].iloc[-1]), 2
    if len(rows) > 1:
        slope = np.polyfit(np.log2(rows.index.to_numpy(float)), rows["change_pct"].to_numpy(float), 1)[0]
        values["pct_per_doubling"], digits["pct_per_doubling"] = float(slope), 1
    ridge = curve[curve["kind"] == "ridge"].sort_values("train_pairs")
    if len(ridge):
        values["ridge_min_median_r2"] = float(ridge["r2_median"].iloc[0])
        values["ridge_max_median_r2"] = float(ridge["r2_median"].iloc[-1])
        digits["ridge_min_median_r2"] = digits["ridge_max_median_r2"] = 2
    oracle = curve.attrs.get("oracle")
    if oracle:
        values["oracle_pct"], digits["oracle_pct"] = float(oracle["change_pct"]), 0
    if versus_own is not None:
        r = versus_own.set_index("system")
        name = f"band_{kind}_{int(rows.index[-1])}"
        if name in r.index:
            t = r.loc[name]
            for suffix, col in (("pct", "change_pct"), ("pct_lo", "ci_low_pct"), ("pct_hi", "ci_high_pct")):
                values[f"max_vs_own_{suffix}"], digits[f"max_vs_own_{suffix}"] = float(t[col]), 1
            verdict = interval_verdict(t["ci_low_pct"], t["ci_high_pct"], n=int(t["tracks"]), words=DISTANCE_VERDICTS)
            if verdict is not None:
                values["max_vs_own_verdict"] = verdict
    values = {k: v for k, v in values.items() if isinstance(v, str) or math.isfinite(float(v))}
    return save_numbers("learning_curve", values, profile, digits={k: digits.get(k, 0) for k in values})


def fig_learning_curve(curve: pd.DataFrame, profile: str) -> Path:
    """The blind band EQ against its training pairs: band R² and MR-STFT change with intervals
    (:func:`~mastering.evaluation.predictability.plot_learning_curve`)."""
    _plt()
    return save_figure(plot_learning_curve(curve), "eval_learning_curve", profile)
