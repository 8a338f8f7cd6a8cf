"""Paper figures and tables of the listening test (notebook ``12_listening_test_anova``).

One function per artefact, drawing and tabulating the results of
:mod:`mastering.evaluation.listening_analysis` through :mod:`mastering.figures` (profile footer,
provenance sidecar). Real-listener outputs (``fig_listening_means``, ``table_listening_*``) refuse
rows marked ``simulated`` unless the output's name contains "simulated" and note placeholder
stimuli; the power analysis (``*_simulated``) and the OBJECTIVE outputs (``table_objective_anova``,
``fig_objective_proxies``) say what they are in their names, titles and captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..figures import latex_escape, latex_table, save_figure, save_table
from .listening_analysis import check_real_output, condition_means, objective_deltas

__all__ = [
    "fig_listening_means",
    "table_listening_anova",
    "table_listening_mixed_model",
    "table_listening_pairwise",
    "fig_power_curve_simulated",
    "table_power_simulated",
    "table_objective_anova",
    "fig_objective_proxies",
]

#: Short labels of the conditions in figures and tables.
CONDITION_LABELS = {
    "original": "original",
    "adaptive_semantic_eq": "adaptive",
    "floweq_style": "flowEQ-style",
    "static_eq": "static EQ",
}
_PROXY_LABELS = {"centroid_hz": "spectral centroid (Hz)", "low_share_db": "20-250 Hz share (dB)",
                 "high_share_db": "4-16 kHz share (dB)"}
_PLACEHOLDER_NOTE = "stimuli made by PLACEHOLDER systems (simple EQ stand-ins, not the models under test)"


def _plt():
    import matplotlib

    matplotlib.use("agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _label(condition: str) -> str:
    return CONDITION_LABELS.get(condition, condition)


def _is(df: pd.DataFrame, column: str) -> bool:
    return bool(column in df.columns and df[column].astype(bool).any())


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "--"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _term(label: str) -> str:
    """``condition[adaptive_semantic_eq] x target[bright]`` -> ``adaptive × bright``."""
    import re

    return re.sub(r"(condition|target)\[([^\]]+)\]", lambda m: _label(m.group(2)), label).replace(" x ", " × ")


def _measures_text(measures: str) -> str:
    """``"warm: low_share_db, ..."`` in words (captions are LaTeX: no underscores)."""
    words = {"low_share_db": "20-250 Hz energy share", "high_share_db": "4-16 kHz energy share",
             "centroid_hz": "spectral centroid"}
    parts = [part.split(": ") for part in measures.split(", ")]
    return ", ".join(f"{target}: {words.get(m, m.replace('_', ' '))}" for target, m in parts)


def _notes(df: pd.DataFrame) -> str:
    notes = []
    if _is(df, "simulated"):
        notes.append("SIMULATED responses, not listeners")
    if _is(df, "placeholder"):
        notes.append(_PLACEHOLDER_NOTE)
    return "; ".join(notes)


# ---------------------------------------------------------------------------------------------
# Real listeners
# ---------------------------------------------------------------------------------------------
def fig_listening_means(df: pd.DataFrame, profile: str, label: str = "", name: str = "listening_means") -> Path:
    """Mean rating per condition in each target with 95 % within-participant confidence intervals.

    Args:
        df: kept trials (:func:`.listening_analysis.apply_exclusions`).
        profile: run profile (footer and sidecar).
        label: extra words for the title (e.g. "pilot").
        name: output name; must contain "simulated" for simulated rows.
    """
    check_real_output(df, name)
    plt = _plt()
    means = condition_means(df, ci="within")
    targets = list(dict.fromkeys(means["target"]))
    n = int(means["n_participants"].iloc[0])
    fig, axes = plt.subplots(1, len(targets), figsize=(2.3 * len(targets) + 0.6, 3.0), sharey=True, squeeze=False)
    for ax, target in zip(axes[0], targets):
        m = means[means["target"] == target]
        x = np.arange(len(m))
        ax.errorbar(x, m["mean"], yerr=[m["mean"] - m["ci_low"], m["ci_high"] - m["mean"]], fmt="o",
                    color="C0", ecolor="0.3", capsize=3, ms=5)
        ax.set_xticks(x, [_label(c) for c in m["condition"]], rotation=35, ha="right", fontsize=8)
        ax.set_title(f"how {target}?", fontsize=9)
        ax.set_ylim(1, 7)
        ax.grid(axis="y", color="0.9")
    axes[0][0].set_ylabel("rating (1-7)")
    title = f"Listener ratings, mean and 95% within-participant CI (N = {n})"
    notes = ", ".join(x for x in (label, _notes(df)) if x)
    fig.suptitle(title + (f"\n{notes}" if notes else ""), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, name, profile, n_participants=n, placeholder=_is(df, "placeholder"),
                       simulated=_is(df, "simulated"))


def table_listening_anova(anova: pd.DataFrame, profile: str, exclusions: pd.DataFrame | None = None,
                          name: str = "listening_anova") -> Path:
    """The condition x target repeated-measures ANOVA (:func:`.listening_analysis.rm_anova`).

    Args:
        anova: the ANOVA table.
        profile: run profile.
        exclusions: the per-participant table of :func:`.listening_analysis.apply_exclusions`
            (its counts go into the caption).
        name: output name; must contain "simulated" for simulated rows.
    """
    check_real_output(anova, name)
    table = pd.DataFrame({
        "Effect": anova["effect"].str.replace(":", " × ", regex=False),
        "F": anova["F"].to_numpy(),
        "df": [f"{a:g}, {b:g}" for a, b in zip(anova["num_df"], anova["den_df"])],
        "p": [_fmt_p(p) for p in anova["p"]],
        "GG epsilon": anova["eps_gg"].to_numpy(),
        "p (GG)": [_fmt_p(p) for p in anova["p_gg"]],
        "Partial eta sq.": anova["partial_eta_sq"].to_numpy(),
    })
    n = int(anova["n_participants"].iloc[0])
    caption = (f"Repeated-measures ANOVA of the ratings, condition × target, on each participant's mean "
               f"rating per cell (N = {n} participants")
    if exclusions is not None and len(exclusions):
        caption += f" of {len(exclusions)}, {int(exclusions['excluded'].sum())} excluded by the attention checks"
    caption += "); Greenhouse-Geisser epsilon and corrected p; partial eta squared from F"
    notes = _notes(anova)
    if notes:
        caption += f"; {notes}"
    body = latex_table(table, caption, f"tab:{name}", profile, float_format="%.2f", column_format="lrlrrrr")
    return save_table(body, name, profile, n_participants=n, placeholder=_is(anova, "placeholder"))


def table_listening_mixed_model(mm: pd.DataFrame, profile: str, name: str = "listening_mixed_model") -> Path:
    """Fixed effects and variances of the linear mixed model (:func:`.listening_analysis.mixed_model`).

    Convergence warnings recorded by the fit are printed in the caption.
    """
    check_real_output(mm, name)
    fixed = mm[mm["kind"] == "fixed"]
    var = mm[mm["kind"] == "variance"]
    def num(values, fmt="{:.3f}"):
        return ["--" if not np.isfinite(v) else fmt.format(v) for v in values]

    table = pd.DataFrame({
        "Term": list(fixed["label"]) + list(var["label"]),
        "Estimate": num(list(fixed["estimate"]) + list(var["estimate"])),
        "SE": num(fixed["se"]) + ["--"] * len(var),
        "z": num(fixed["z"], "{:.2f}") + ["--"] * len(var),
        "p": [_fmt_p(p) for p in fixed["p"]] + ["--"] * len(var),
    })
    table["Term"] = [_term(t) for t in table["Term"]]
    structure = mm["structure"].iloc[0]
    effects = ("crossed random intercepts for participants and clips" if structure == "crossed"
               else "random intercepts for participants and a participant × clip variance component")
    caption = (f"Linear mixed model of the single ratings (REML, {int(mm['n_obs'].iloc[0])} ratings): "
               f"condition × target fixed effects in treatment coding (reference: {mm['reference'].iloc[0]}), "
               f"{effects}; converged: {'yes' if bool(mm['converged'].iloc[0]) else 'NO'}")
    warn = str(mm["warnings"].iloc[0])
    if warn:
        caption += f"; fit warnings: {latex_escape(warn)}"
    notes = _notes(mm)
    if notes:
        caption += f"; {notes}"
    body = latex_table(table, caption, f"tab:{name}", profile, column_format="lrrrr")
    return save_table(body, name, profile, converged=bool(mm["converged"].iloc[0]),
                      placeholder=_is(mm, "placeholder"))


def table_listening_pairwise(pw: pd.DataFrame, profile: str, name: str = "listening_pairwise") -> Path:
    """Holm-corrected paired comparisons of the conditions within each target, with Cohen's d_z."""
    check_real_output(pw, name)
    table = pd.DataFrame({
        "Target": pw["target"].to_numpy(),
        "Comparison": [f"{_label(a)} vs {_label(b)}" for a, b in zip(pw["condition_a"], pw["condition_b"])],
        "Diff.": pw["mean_diff"].to_numpy(),
        "t": pw["t"].to_numpy(),
        "p (Holm)": [_fmt_p(p) for p in pw["p_holm"]],
        "Cohen's d_z": pw["d_z"].to_numpy(),
    })
    n = int(pw["n"].iloc[0])
    caption = (f"Paired t-tests between conditions within each target on the participants' mean ratings "
               f"(N = {n}), Holm-corrected over the {len(pw)} comparisons; Diff.: first minus second condition; "
               f"effect size Cohen's $d_z$ (mean difference / SD of the differences)")
    notes = _notes(pw)
    if notes:
        caption += f"; {notes}"
    body = latex_table(table, caption, f"tab:{name}", profile, float_format="%.2f", column_format="llrrrr")
    return save_table(body, name, profile, n_participants=n, placeholder=_is(pw, "placeholder"))


# ---------------------------------------------------------------------------------------------
# Simulated: power
# ---------------------------------------------------------------------------------------------
def _require_simulated(name: str) -> None:
    if "simulated" not in name:
        raise ValueError(f"output {name!r} shows simulated data; its name must contain 'simulated'")


def fig_power_curve_simulated(power: pd.DataFrame, profile: str, target_power: float = 0.8,
                              name: str = "listening_power_curve_simulated") -> Path:
    """Simulated power against the number of participants (:func:`.listening_analysis.power_analysis`)."""
    _require_simulated(name)
    plt = _plt()
    p = power.sort_values("n_participants")
    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    for col, label, color in (("anova", "RM-ANOVA, condition effect", "C0"),
                              ("pairwise", "adaptive vs static EQ (Holm), per target", "C3")):
        y, se = p[f"power_{col}"].to_numpy(), p[f"mc_se_{col}"].to_numpy()
        ax.plot(p["n_participants"], y, "o-", color=color, label=label, ms=4)
        ax.fill_between(p["n_participants"], np.clip(y - 1.96 * se, 0, 1), np.clip(y + 1.96 * se, 0, 1),
                        color=color, alpha=0.15, lw=0)
    ax.axhline(target_power, color="0.4", ls=":", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("participants (after exclusions)")
    ax.set_ylabel("power")
    ax.legend(fontsize=7, loc="lower right")
    row = p.iloc[0]
    ax.set_title(f"SIMULATED power of the listening test (d = {row['effect_d']:g}, {int(row['n_items'])} clips, "
                 f"{int(row['n_sims'])} simulated studies per N)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, name, profile, simulated=True, n_sims=int(row["n_sims"]), effect_d=float(row["effect_d"]))


def table_power_simulated(power: pd.DataFrame, profile: str, name: str = "listening_power_simulated") -> Path:
    """Simulated power per number of participants, with Monte-Carlo standard errors."""
    _require_simulated(name)
    p = power.sort_values("n_participants")
    table = pd.DataFrame({
        "N": p["n_participants"].astype(int).to_numpy(),
        "RM-ANOVA": p["power_anova"].to_numpy(),
        "RM-ANOVA (GG)": p["power_anova_gg"].to_numpy(),
        "Adaptive vs static": p["power_pairwise"].to_numpy(),
        "In all targets": p["power_pairwise_all_targets"].to_numpy(),
        "MC SE (max)": p[[c for c in p.columns if c.startswith("mc_se_")]].max(axis=1).to_numpy(),
    })
    row = p.iloc[0]
    caption = (f"Simulated power of the listening test (simulated responses, not listeners): share of "
               f"{int(row['n_sims'])} simulated studies per N in which the condition effect of the RM-ANOVA, "
               f"or the Holm-corrected adaptive-vs-static comparison (per target, and in all targets), is significant "
               f"at $\\alpha = {row['alpha']:g}$ (GG: Greenhouse-Geisser corrected); "
               f"effect d = {row['effect_d']:g} within-participant SDs between adaptive and static EQ, "
               f"{int(row['n_items'])} clips, 3 targets")
    body = latex_table(table, caption, f"tab:{name}", profile, float_format="%.2f", column_format="rrrrrr")
    return save_table(body, name, profile, simulated=True, n_sims=int(row["n_sims"]))


# ---------------------------------------------------------------------------------------------
# Objective: spectral proxies of the stimuli
# ---------------------------------------------------------------------------------------------
def table_objective_anova(res: pd.DataFrame, profile: str, name: str = "listening_objective_anova") -> Path:
    """The OBJECTIVE ANOVA of the stimuli's spectral proxies (:func:`.listening_analysis.objective_anova`)."""
    if "objective" not in name:
        raise ValueError(f"output {name!r} holds objective measures; its name must contain 'objective'")
    table = pd.DataFrame({
        "Effect": res["effect"].str.replace(":", " × ", regex=False),
        "F": res["F"].to_numpy(),
        "df": [f"{a:g}, {b:g}" for a, b in zip(res["num_df"], res["den_df"])],
        "p": [_fmt_p(p) for p in res["p"]],
        "p (GG)": [_fmt_p(p) for p in res["p_gg"]],
        "Partial eta sq.": res["partial_eta_sq"].to_numpy(),
    })
    n = int(res["n_items"].iloc[0])
    caption = (f"OBJECTIVE check, not a listening result: repeated-measures ANOVA (condition × target, {n} clips "
               f"as the repeated unit) of a spectral proxy of each target ({_measures_text(res['measures'].iloc[0])}), "
               f"standardised within each target, measured on the stimuli themselves")
    if _is(res, "placeholder"):
        caption += f"; {_PLACEHOLDER_NOTE}"
    body = latex_table(table, caption, f"tab:{name}", profile, float_format="%.2f", column_format="lrlrrr")
    return save_table(body, name, profile, n_items=n, placeholder=_is(res, "placeholder"))


def fig_objective_proxies(proxies: pd.DataFrame, profile: str, measure_for_target: Mapping[str, str] | None = None,
                          name: str = "listening_objective_proxies") -> Path:
    """Change of each target's spectral proxy from the original clip, per condition (OBJECTIVE)."""
    if "objective" not in name:
        raise ValueError(f"output {name!r} holds objective measures; its name must contain 'objective'")
    plt = _plt()
    deltas = objective_deltas(proxies, measure_for_target)
    deltas = deltas[deltas["condition"] != "original"]
    targets = list(dict.fromkeys(deltas["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(2.4 * len(targets) + 0.6, 3.1), squeeze=False)
    for ax, target in zip(axes[0], targets):
        d = deltas[deltas["target"] == target]
        conditions = list(dict.fromkeys(d["condition"]))
        for k, condition in enumerate(conditions):
            v = d.loc[d["condition"] == condition, "delta"].to_numpy()
            ax.bar(k, v.mean(), color=f"C{k + 1}", alpha=0.5, width=0.6)
            ax.plot(np.full(v.size, k) + np.linspace(-0.12, 0.12, v.size), v, "o", color="k", ms=3)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(range(len(conditions)), [_label(c) for c in conditions], rotation=35, ha="right", fontsize=8)
        measure = d["measure"].iloc[0]
        ax.set_title(f"{target}: Δ {_PROXY_LABELS.get(measure, measure)}", fontsize=8)
    axes[0][0].set_ylabel("change from the original clip")
    title = f"OBJECTIVE spectral proxies of the stimuli ({deltas['item'].nunique()} clips; dots: clips)"
    if _is(proxies, "placeholder"):
        title += f"\n{_PLACEHOLDER_NOTE}"
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, name, profile, n_items=int(deltas["item"].nunique()),
                       placeholder=_is(proxies, "placeholder"))
