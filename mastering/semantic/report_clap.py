"""Paper table and figure of the CLAP ablation (notebook ``11_clap_ablation``).

One function per artefact, each drawing on results :func:`mastering.semantic.ablation.
run_clap_ablation` already computed (it never trains), written through :mod:`mastering.figures`
with provenance sidecars; :func:`ablation_summary` is the notebook's closing note in words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..figures import latex_escape, latex_table, save_figure, save_numbers, save_table

__all__ = ["table_clap_ablation", "fig_clap_ablation", "ablation_summary", "numbers_clap"]

ARM_LABELS = {
    "custom-pink": "CNN, pink noise",
    "custom-music": "CNN, real music",
    "custom-mixture": "CNN, multi-source mixture",
    "clap-random": "CLAP, random init (frozen)",
    "clap-pretrained": "CLAP, pretrained (frozen)",
}
ARM_COLOURS = {"custom-pink": "#1b9e77", "custom-music": "#66a61e", "custom-mixture": "#e6ab02",
               "clap-random": "#7570b3", "clap-pretrained": "#d95f02"}  # fmt: skip


def _short(reason: str) -> str:
    """A skip reason for a caption: its first clause."""
    return str(reason).split(";")[0]


def _checkpoints(table: pd.DataFrame) -> str:
    ck = sorted({c for c in table.get("checkpoint", pd.Series(dtype=str)).fillna("") if c})
    return ", ".join(Path(c).name for c in ck) if ck else "none"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _arms_sentence(arms: pd.DataFrame) -> str:
    ran = [ARM_LABELS.get(a, a) for a in arms.loc[arms["status"] == "ran", "arm"]]
    skipped = [f"{ARM_LABELS.get(r.arm, r.arm)}: {_short(r.reason)}" for r in arms[arms["status"] != "ran"].itertuples()]
    text = f"arms run: {'; '.join(ran) if ran else 'none'}"
    return text + (f". Not run: {'; '.join(skipped)}" if skipped else "")


def table_clap_ablation(table: pd.DataFrame, arms: pd.DataFrame, profile: str, name: str = "clap_ablation") -> Path:
    """Every arm's $R^2$ and warm/bright accuracy on held-out settings rendered on pink noise and on music.

    Args:
        table, arms: from :func:`mastering.semantic.ablation.run_clap_ablation`.
        profile: run profile.
    """
    if table.empty:
        raise ValueError("no ablation results to tabulate")
    table = table.assign(pair_accuracy=table["pair_accuracy"] if "pair_accuracy" in table else np.nan)
    wide = table.pivot_table(index="arm", columns="evaluated_on", values=["r2", "pair_accuracy"], aggfunc="first",
                             dropna=False)  # fmt: skip
    order = [a for a in ARM_LABELS if a in wide.index]
    out = pd.DataFrame({"Encoder": [ARM_LABELS[a] for a in order]})
    first = table.drop_duplicates("arm").set_index("arm")
    out["Trained on"] = [first.loc[a, "trained_on"] for a in order]
    out["Trainable params"] = [f"{int(first.loc[a, 'trainable_parameters']):,}" for a in order]
    for where in [w for w in ("pink", "music") if ("r2", w) in wide.columns]:
        out[f"$R^2$ ({where})"] = [wide.loc[a, ("r2", where)] for a in order]
        out[f"Acc. ({where})"] = [wide.loc[a, ("pair_accuracy", where)] if ("pair_accuracy", where) in wide.columns
                                  else np.nan for a in order]  # fmt: skip
    n = int(table["n"].iloc[0])
    caption = (
        f"CLAP ablation: audio encoders into the semantic latent on the same {n} held-out SAFE-DB settings "
        "(contributors unseen in training) rendered on pink noise and on excerpts of held-out real-music tracks. "
        "CLAP arms: LAION-CLAP's HTS-AT audio branch, frozen, input resampled to 48 kHz and repeat-padded to 10 s, "
        "with a trainable two-layer projection fitted on pink noise; the randomly initialized branch separates "
        f"architecture from pretraining. {latex_escape(_upper_first(_arms_sentence(arms)))}. "
        f"Checkpoint: {latex_escape(_checkpoints(table))}. "
        "Acc.: share of held-out warm and bright settings whose predicted code lies nearer their own "
        "descriptor's centroid"
    )
    body = latex_table(out, caption, f"tab:{name}", profile, float_format="%.2f",
                       column_format="ll" + "r" * (out.shape[1] - 2))  # fmt: skip
    body = body.replace("\\$R\\textasciicircum 2\\$", "$R^2$")
    return save_table(body, name, profile, arms=arms.to_dict("records"), checkpoint=_checkpoints(table),
                      runs=sorted({r for r in table["run"] if r}))  # fmt: skip


def fig_clap_ablation(table: pd.DataFrame, arms: pd.DataFrame, profile: str, name: str = "clap_ablation_bars") -> Path:
    """Grouped bars: $R^2$ and warm/bright accuracy per arm, on pink noise and on music."""
    import matplotlib

    matplotlib.use("agg", force=False)
    import matplotlib.pyplot as plt

    if table.empty:
        raise ValueError("no ablation results to plot")
    table = table.assign(pair_accuracy=table["pair_accuracy"] if "pair_accuracy" in table else np.nan)
    order = [a for a in ARM_LABELS if a in set(table["arm"])]
    wheres = [w for w in ("pink", "music") if w in set(table["evaluated_on"])]
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.0), sharey=False)
    width = 0.8 / len(order)
    for ax, metric, label in ((axes[0], "r2", "$R^2$ (held-out settings)"),
                              (axes[1], "pair_accuracy", "warm/bright accuracy")):  # fmt: skip
        for k, arm in enumerate(order):
            sub = table[table["arm"] == arm].set_index("evaluated_on")
            values = [float(sub.loc[w, metric]) if (w in sub.index and metric in sub) else np.nan for w in wheres]
            x = np.arange(len(wheres)) + (k - (len(order) - 1) / 2) * width
            ax.bar(x, values, width, color=ARM_COLOURS[arm], label=ARM_LABELS[arm])
        ax.set_xticks(np.arange(len(wheres)), [f"evaluated on {w}" for w in wheres])
        ax.set_ylabel(label)
        ax.axhline(0.0, color="0.3", lw=0.6)
        if metric == "pair_accuracy":
            ax.axhline(0.5, color="0.5", lw=0.8, ls="--")
            ax.set_ylim(0, 1)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(order), 3), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    skipped = arms[arms["status"] != "ran"]
    note = "; ".join(f"{ARM_LABELS.get(a, a)} not run" for a in skipped["arm"])
    fig.suptitle(f"checkpoint: {_checkpoints(table)}" + (f" ({note})" if note else ""), fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.1 if len(order) > 3 else 0.06, 1, 1))
    return save_figure(fig, name, profile, arms=arms.to_dict("records"), checkpoint=_checkpoints(table))


def ablation_summary(table: pd.DataFrame, arms: pd.DataFrame) -> str:
    """The closing note: which arms ran (and with which checkpoint), and each arm's numbers."""
    lines = [_upper_first(_arms_sentence(arms)) + f". Checkpoint: {_checkpoints(table)}."]
    if not table.empty:
        n = int(table["n"].iloc[0])
        lines.append(f"On {n} held-out settings (R2 / warm-bright accuracy):")
        for arm in [a for a in ARM_LABELS if a in set(table["arm"])]:
            parts = []
            for r in table[table["arm"] == arm].itertuples():
                acc = getattr(r, "pair_accuracy", np.nan)
                parts.append(f"{r.evaluated_on} {r.r2:.2f} / {acc:.2f}")
            lines.append(f"  {ARM_LABELS[arm]}: " + "; ".join(parts))
    return "\n".join(lines)


def numbers_clap(table: pd.DataFrame, arms: pd.DataFrame, profile: str) -> Path:
    """``numbers_clap.tex`` (notebook 11): how many arms ran, whether the pretrained CLAP arm ran,
    the held-out settings' count, and each arm's $R^2$ on pink noise and on music (keys
    ``<arm>_<where>_r2`` with the arm's ``-`` dropped: ``custompink_music_r2``)."""
    ran = arms.loc[arms["status"] == "ran", "arm"].tolist()
    values: dict[str, Any] = {"arms_ran": len(ran), "arms_total": int(len(arms)),
                              "pretrained_ran": "clap-pretrained" in ran,
                              "settings": int(table["n"].iloc[0]) if len(table) else 0}
    for r in table.itertuples(index=False):
        key = f"{str(r.arm).replace('-', '')}_{r.evaluated_on}_r2"
        if np.isfinite(float(r.r2)):
            values[key] = float(r.r2)
    return save_numbers("clap", values, profile)
