"""Paper figures and tables of the semantic latent, the audio encoder and the adaptive semantic EQ
(notebooks ``07_semantic_vae``, ``08_audio_encoder``, ``09_adaptive_semantic_eq``).

One function per artefact; each reads results already computed (SAFE-DB frame, latent codes,
metrics) and never trains. Figures go to ``paper/figures/<name>.pdf|png`` and tables to
``paper/tables/<name>.tex`` through :mod:`mastering.figures`, with provenance sidecars.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..figures import latex_table, profile_note, save_figure, save_numbers, save_table
from .descriptors import MIN_DESCRIPTOR_SETTINGS, offered_descriptors, training_counts, training_index
from .safedb import descriptor_counts

__all__ = [
    "fig_latent_map",
    "table_descriptor_counts",
    "table_vae_reconstruction",
    "table_encoder_comparison",
    "fig_encoder_predictions",
    "table_semantic_eq_comparison",
    "fig_semantic_eq_adaptivity",
    "fig_semantic_eq_intensity",
    "fig_semantic_eq_examples",
    "numbers_semantic_vae",
    "numbers_encoder",
    "numbers_semantic_eq",
    "table_semantic_eq_direction",
    "numbers_semantic_direction",
]

#: Colours of the semantic EQ methods.
METHOD_COLOURS = {"axis": "#d95f02", "adaptive": "#1b9e77", "floweq": "#7570b3", "static": "#e7298a"}
METHOD_LABELS = {"axis": "axis-adaptive (ours)", "adaptive": "latent-adaptive (ours)", "floweq": "flowEQ-style",
                 "static": "static (SAFE medoid)"}

#: Colours of the highlighted descriptors (colour-blind safe pair: orange / blue).
HIGHLIGHT_COLOURS = {"warm": "#d95f02", "bright": "#1f78b4"}


def table_descriptor_counts(df: pd.DataFrame, profile: str, top: int = 15, name: str = "safedb_descriptor_counts",
                            train_index: Sequence[int] | np.ndarray | None = None, seed: int | None = None) -> Path:
    """The SAFE-DB descriptors the semantic EQ offers, with the cleaning counts and the rule in the caption.

    A descriptor is listed when it is offered (:mod:`mastering.semantic.descriptors`): a word with
    at least :data:`~mastering.semantic.descriptors.MIN_DESCRIPTOR_SETTINGS` settings from the VAE's
    training contributors. Columns: those training settings, all settings (held-out contributors
    included), their share of all settings, and the number of contributors.

    Args:
        df: cleaned frame from :func:`mastering.semantic.safedb.load_safedb` (its
            ``attrs["cleaning"]`` is reported).
        profile: run profile named in the caption and sidecar; with ``seed`` it gives the VAE's
            contributor split (:func:`mastering.semantic.descriptors.training_index`) unless
            ``train_index`` is given.
        top: at most this many descriptors listed.
        train_index: row positions of the training contributors (a VAE run's ``train_index``).
        seed: the VAE run's seed (default the profile's).
    """
    train_index = training_index(df, profile, seed) if train_index is None else np.asarray(train_index, dtype=int)
    counts = descriptor_counts(df)
    train = training_counts(df, train_index)
    offered = offered_descriptors(df, train_index).iloc[:top]
    if offered.empty:
        raise ValueError(f"no descriptor has {MIN_DESCRIPTOR_SETTINGS} or more training settings")
    contributors = df.groupby("descriptor")["contributor"].nunique()
    table = pd.DataFrame(
        {
            "Descriptor": offered.index,
            "Training settings": offered.to_numpy(),
            "All settings": counts.loc[offered.index].to_numpy(),
            "Share (%)": 100.0 * counts.loc[offered.index].to_numpy() / len(df),
            "Contributors": contributors.loc[offered.index].to_numpy(),
        }
    )
    rest = train[train < MIN_DESCRIPTOR_SETTINGS]
    n_train_contrib = int(df.iloc[train_index]["contributor"].nunique())
    info = df.attrs.get("cleaning", {})
    caption = (
        f"SAFE-DB equaliser descriptors after cleaning: {info.get('rows', len(df))} of "
        f"{info.get('raw_rows', len(df))} settings kept ({info.get('dropped_invalid_descriptor', 0)} test entries, "
        f"{info.get('dropped_nonfinite', 0)} non-finite and {info.get('dropped_out_of_range', 0)} out-of-range rows dropped), "
        f"{counts.size} distinct descriptors after normalization (lower case, first word, inflections folded). "
        f"Listed, and offered by the semantic EQ: the {len(offered)} words with at least {MIN_DESCRIPTOR_SETTINGS} "
        f"settings from the VAE's {n_train_contrib} training contributors ({len(train_index)} settings; held-out "
        f"contributors count under All only); the other {counts.size - len(offered)} descriptors have at most "
        f"{int(rest.max()) if rest.size else 0} training settings each, or are not words"
    )
    body = latex_table(table, caption, f"tab:{name}", profile, float_format="%.1f", column_format="lrrrr")
    return save_table(body, name, profile, rows=int(len(df)), descriptors=int(counts.size),
                      min_settings=MIN_DESCRIPTOR_SETTINGS, train_rows=int(len(train_index)),
                      offered={d: int(n) for d, n in offered.items()})


def table_vae_reconstruction(metrics: Sequence[dict[str, Any]] | pd.DataFrame, profile: str, name: str = "semantic_vae_reconstruction") -> Path:
    """Reconstruction error of the β-VAE in dB of magnitude response, per latent size.

    Args:
        metrics: rows from :func:`mastering.semantic.vae.vae_metrics`.
        profile: run profile named in the caption and sidecar.
    """
    m = pd.DataFrame(list(metrics) if not isinstance(metrics, pd.DataFrame) else metrics)
    if m.empty:
        raise ValueError("no VAE metrics to tabulate")
    m = m.sort_values("latent_dim")
    table = pd.DataFrame(
        {
            "Latent": m["latent_dim"].astype(int).to_numpy(),
            "$\\beta$": m["beta"].map(lambda b: f"{b:g}").to_numpy(),
            "Train": m["train_db_mean"].to_numpy(),
            "Held-out": m["val_db_mean"].to_numpy(),
            "Held-out median": m["val_db_median"].to_numpy(),
            "Held-out p90": m["val_db_p90"].to_numpy(),
            "Mean setting": m["baseline_val_db_mean"].to_numpy(),
            "Warm/bright sep.": m["sep_warm_bright_all"].to_numpy(),
        }
    )
    first = m.iloc[0]
    caption = (
        "$\\beta$-VAE over SAFE-DB settings: mean absolute difference (dB) between the magnitude "
        "responses (20 Hz--20 kHz, 256 log-spaced points) of the original and the reconstructed "
        f"(posterior-mean) settings, on training rows ({int(first['n_train'])}) and on held-out "
        f"contributors' rows ({int(first['n_val'])} settings from {int(first['n_val_contributors'])} "
        "contributors unseen in training). Mean setting: every held-out setting replaced by the mean "
        "training setting. Warm/bright sep.: distance between the two descriptor centroids over "
        "their mean RMS spread"
    )
    body = latex_table(table, caption, f"tab:{name}", profile, float_format="%.2f", column_format="rlrrrrrr")
    body = body.replace("\\$\\textbackslash beta\\$", "$\\beta$")
    return save_table(body, name, profile, latent_dims=[int(v) for v in m["latent_dim"]])


def _plane(codes: pd.DataFrame) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D coordinates of the codes: the latent itself (2-D), a PCA of it (> 2-D), or the code
    against a per-descriptor offset (1-D)."""
    zc = sorted((c for c in codes.columns if c.startswith("z_")), key=lambda c: int(c[2:]))
    z = codes[zc].to_numpy(float)
    if z.shape[1] == 2:
        return z, ("$z_0$", "$z_1$")
    if z.shape[1] == 1:
        rng = np.random.default_rng(0)
        return np.column_stack([z[:, 0], rng.uniform(-0.4, 0.4, len(z))]), ("$z_0$", "(jitter)")
    zc0 = z - z.mean(0)
    _, _, vt = np.linalg.svd(zc0, full_matrices=False)
    return zc0 @ vt[:2].T, ("latent PC 1", "latent PC 2")


def fig_latent_map(
    codes: pd.DataFrame,
    embeddings: pd.DataFrame,
    profile: str,
    curves: pd.DataFrame | None = None,
    highlight: Sequence[str] = ("warm", "bright"),
    n_labels: int = 10,
    name: str = "semantic_latent_map",
    **meta: Any,
) -> Path:
    """Latent map of SAFE-DB settings with descriptor centroids (flowEQ-style), optionally with the
    EQ curves decoded from the highlighted descriptors' centroids.

    Args:
        codes: posterior means per setting (:func:`mastering.semantic.vae.latent_codes`).
        embeddings: descriptor centroids (:func:`mastering.semantic.vae.descriptor_embeddings`);
            the ``n_labels`` most frequent are marked and named.
        profile: run profile (written into the figure and its sidecar).
        curves: long-format decoded curves (:func:`mastering.semantic.vae.centroid_curves`).
        highlight: descriptors drawn in colour.
    """
    import matplotlib

    matplotlib.use("agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib import patheffects

    xy, (xlabel, ylabel) = _plane(codes)
    desc = codes["descriptor"].to_numpy()
    ncols = 2 if curves is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols + 0.6, 4.0), squeeze=False)
    ax = axes[0, 0]
    other = ~np.isin(desc, list(highlight))
    ax.scatter(xy[other, 0], xy[other, 1], s=6, c="0.75", lw=0, label="other descriptors", rasterized=True)
    for d in highlight:
        sel = desc == d
        ax.scatter(xy[sel, 0], xy[sel, 1], s=7, lw=0, alpha=0.55, c=HIGHLIGHT_COLOURS.get(d), label=f"{d} ({int(sel.sum())})", rasterized=True)
    # Centroids in the same plane: the mean of each descriptor's plotted points.
    frame = pd.DataFrame({"descriptor": desc, "x": xy[:, 0], "y": xy[:, 1]})
    cent = frame.groupby("descriptor")[["x", "y"]].mean()
    labelled = [d for d in embeddings.index[:n_labels] if d in cent.index]
    for d in labelled:
        cx, cy = cent.loc[d]
        colour = HIGHLIGHT_COLOURS.get(d, "black")
        ax.scatter([cx], [cy], marker="X", s=70 if d in highlight else 30, c=colour, edgecolors="white", linewidths=0.8, zorder=5)
        ax.annotate(
            d, (cx, cy), xytext=(4, 3), textcoords="offset points", fontsize=8 if d in highlight else 7,
            fontweight="bold" if d in highlight else "normal", color=colour, zorder=6,
            path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("SAFE-DB settings in the latent (posterior means)", fontsize=9)
    ax.legend(fontsize=7, loc="best", markerscale=2, frameon=False)
    if curves is not None:
        bx = axes[0, 1]
        for d, part in curves.groupby("descriptor", sort=False):
            bx.semilogx(part["freq_hz"], part["gain_db"], color=HIGHLIGHT_COLOURS.get(d, "0.3"), lw=1.6, label=d)
        bx.axhline(0, color="0.6", lw=0.6)
        bx.set_xlim(20, 20000)
        bx.set_xlabel("frequency (Hz)")
        bx.set_ylabel("gain (dB)")
        bx.set_title("EQ decoded from descriptor centroids", fontsize=9)
        bx.legend(fontsize=7, frameon=False)
        bx.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    return save_figure(fig, name, profile, n_settings=int(len(codes)), latent_dim=int(sum(c.startswith("z_") for c in codes.columns)), **meta)


def _plt():
    import matplotlib

    matplotlib.use("agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def table_encoder_comparison(table: pd.DataFrame, profile: str, name: str = "semantic_encoder_comparison") -> Path:
    """Audio encoder variants on held-out SAFE settings rendered on pink noise and on real music.

    Args:
        table: from :func:`mastering.semantic.encoder.compare_encoders`.
        profile: run profile.
    """
    if table.empty:
        raise ValueError("no encoder results to tabulate")
    t = table.copy()

    def interval(word: str) -> pd.Series:
        if f"r2_{word}" not in t:
            return pd.Series(["--"] * len(t), index=t.index)
        return pd.Series([f"{r:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(r) else "--"
                          for r, lo, hi in zip(t[f"r2_{word}"], t[f"r2_{word}_lo"], t[f"r2_{word}_hi"])], index=t.index)

    arch = t["arch"].str.upper().str.replace("TRANSFORMER", "Transformer").str.replace("LTAS", "LTAS-MLP")
    out = pd.DataFrame({
        "Encoder": arch + " / " + t["loss"].str.upper().str.replace("INFONCE", "InfoNCE"),
        "Trained on": t["trained_on"], "Evaluated on": t["evaluated_on"],
        "$R^2$": t["r2"], "$R^2$ warm axis": interval("warm"), "$R^2$ bright axis": interval("bright"),
        "Warm/bright acc.": t.get("pair_accuracy", np.nan),
    })  # fmt: skip
    n = int(t["n"].iloc[0])
    caption = (
        f"Audio encoders into the semantic latent, on {n} held-out SAFE-DB settings (contributors unseen in "
        "training) rendered on fresh pink noise or on excerpts of held-out real-music tracks (other albums "
        "than the training music). $R^2$: share of the codes' variance explained; warm (bright) axis: $R^2$ of "
        "the position along the line from the training codes' mean to the word's centroid, with a 95\\,\\% "
        "bootstrap interval over contributors; warm/bright acc.: share of held-out warm and bright settings "
        "whose predicted code lies nearer their own descriptor's centroid. LTAS-MLP reads the excerpt's "
        "long-term average spectrum. Look at the music rows: a blind reading of the EQ from one excerpt "
        "competes with the music's own spectrum"
    )
    body = latex_table(out, caption, f"tab:{name}", profile, float_format="%.2f", column_format="lllrllr")
    body = body.replace("\\$R\\textasciicircum 2\\$", "$R^2$")
    return save_table(body, name, profile, runs=sorted(set(t["run"])))


def fig_encoder_predictions(rows: pd.DataFrame, profile: str, descriptors: Sequence[str] = ("warm", "bright"),
                            name: str = "semantic_encoder_predictions", **meta: Any) -> Path:
    """Predicted against true latent codes of held-out settings (one panel per latent dimension,
    at most two), the highlighted descriptors in colour.

    Args:
        rows: per-setting predictions (:func:`mastering.semantic.encoder.evaluate_encoder`, also
            saved as ``evaluation.csv`` in the encoder's run folder).
    """
    plt = _plt()
    dims = sorted(int(c[2:]) for c in rows.columns if c.startswith("z_"))[:2]
    fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims) + 0.4, 3.5), squeeze=False)
    for ax, i in zip(axes[0], dims):
        other = ~rows["descriptor"].isin(descriptors)
        ax.scatter(rows.loc[other, f"z_{i}"], rows.loc[other, f"pred_{i}"], s=6, c="0.7", lw=0, label="other")
        for d in descriptors:
            sel = rows["descriptor"] == d
            ax.scatter(rows.loc[sel, f"z_{i}"], rows.loc[sel, f"pred_{i}"], s=8, lw=0, alpha=0.7,
                       c=HIGHLIGHT_COLOURS.get(d), label=d)
        lims = [min(rows[f"z_{i}"].min(), rows[f"pred_{i}"].min()), max(rows[f"z_{i}"].max(), rows[f"pred_{i}"].max())]
        ax.plot(lims, lims, color="0.4", lw=0.8, ls="--")
        ax.set_xlabel(f"true $z_{i}$ (VAE posterior mean)")
        ax.set_ylabel(f"predicted $z_{i}$ (from audio)")
        ax.grid(alpha=0.2)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle("Audio encoder on held-out SAFE settings (pink noise)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, name, profile, n_settings=int(len(rows)), **meta)


def _fmt_ci(value: float, lo: float, hi: float, digits: int = 2) -> str:
    if not np.isfinite(value):
        return "--"
    text = f"{value:.{digits}f}"
    if np.isfinite(lo) and np.isfinite(hi):
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text.replace("-", "$-$")


def _wide_table(table: str, caption: str, name: str, profile: str) -> str:
    """A two-column ``table*`` float around a tabular, its caption ending with the profile note."""
    return ("\\begin{table*}[t]\n\\centering\n\\small\n"
            f"\\caption{{{caption}. {profile_note(profile)}.}}\n\\label{{tab:{name}}}\n{table}\\end{{table*}}\n")


def table_semantic_eq_comparison(summary: pd.DataFrame, profile: str, intensity: float = 1.0,
                                 name: str = "semantic_eq_comparison", **meta: Any) -> Path:
    """Adaptive vs flowEQ-style vs static semantic EQ on held-out real music.

    Args:
        summary: from :func:`mastering.semantic.evaluate.summarize_semantic_eq`.
        intensity: the intensity the summary was taken at (for the caption).
    """
    if summary.empty:
        raise ValueError("no semantic EQ results to tabulate")
    s = summary
    out = pd.DataFrame({
        "Descriptor": s["descriptor"], "Method": s["method"].map(METHOD_LABELS),
        "Direction acc.": [_fmt_ci(v, a, b) for v, a, b in zip(s["direction_accuracy"], s["direction_accuracy_lo"], s["direction_accuracy_hi"])],
        "Amount (dB)": [f"{v:.2f} $\\pm$ {sd:.2f}".replace("-", "$-$") for v, sd in zip(s["amount_db"], s["amount_sd_db"])],
        "Adaptivity $\\rho$": [_fmt_ci(v, a, b) for v, a, b in zip(s["adaptivity_rho"], s["adaptivity_rho_lo"], s["adaptivity_rho_hi"])],
        "Position before/after": [f"{a:.2f} / {b:.2f}".replace("-", "$-$") for a, b in zip(s["position_before"], s["position_after"])],
        "SD after": [f"{v:.2f}" for v in s["position_after_sd"]],
        "Tilt change": [f"{v:+.2f}".replace("-", "$-$") for v in s["tilt_change"]],
        "Monotone": [f"{v:.2f}" for v in s["monotone_position"]],
    })  # fmt: skip
    clips, tracks = int(s["clips"].max()), int(s["tracks"].max())
    caption = (
        f"Semantic EQ on {clips} excerpts of {tracks} held-out real-music tracks, intensity {intensity:g}. "
        "Direction acc.: share of excerpts whose applied EQ curve correlates positively with the descriptor's "
        "mean SAFE-DB curve (means removed); amount: the curve projected on that mean curve (dB, mean $\\pm$ "
        "SD over excerpts); adaptivity $\\rho$: Spearman correlation between how much of the quality an "
        "excerpt already has (latent position, 0 = a typical master, 1 = the descriptor's centroid) and the "
        "amount it gets (undefined for methods that give every excerpt the same EQ); position before/after "
        "processing and its SD over excerpts after; tilt change: spectral tilt after minus before "
        "(dB/octave, encoder-free); monotone: share of excerpts whose position never falls as the intensity "
        "rises (0--1.5). Brackets: 95\\% bootstrap intervals over tracks"
    )
    table = out.to_latex(index=False, escape=False, column_format="llllllrrr")
    return save_table(_wide_table(table, caption, name, profile), name, profile, intensity=intensity, **meta)


def table_semantic_eq_direction(direction: pd.DataFrame, profile: str, intensity: float = 1.0,
                                name: str = "semantic_eq_direction", **meta: Any) -> Path:
    """Direction and adaptivity of each semantic EQ measured on the output audio, encoder-free.

    Args:
        direction: from :func:`mastering.semantic.evaluate.summarize_direction`.
    """
    if direction.empty:
        raise ValueError("no semantic EQ results to tabulate")
    s = direction
    out = pd.DataFrame({
        "Descriptor": s["descriptor"], "Method": s["method"].map(lambda m: METHOD_LABELS.get(m, m)),
        "Added (dB)": [f"{v:+.2f} $\\pm$ {sd:.2f}".replace("-", "$-$") for v, sd in zip(s["added"], s["added_sd"])],
        "Reversed": [_fmt_ci(v, a, b) for v, a, b in zip(s["reversed"], s["reversed_lo"], s["reversed_hi"])],
        "Rev. any $k$": [f"{v:.2f}" for v in s["reversed_any"]],
        "Monotone": [f"{v:.2f}" for v in s["monotone"]],
        "Adaptivity $\\rho$": [_fmt_ci(v, a, b) for v, a, b in zip(s["adaptivity_rho"], s["adaptivity_rho_lo"], s["adaptivity_rho_hi"])],
        "Centroid (Hz)": [f"{v:+.0f}".replace("-", "$-$") for v in s["centroid_change_hz"]],
        "Low share": [f"{v:+.3f}".replace("-", "$-$") for v in s["low_share_change"]],
        "Tilt": [f"{v:+.2f}".replace("-", "$-$") for v in s["tilt_change"]],
    })  # fmt: skip
    clips, tracks = int(s["clips"].max()), int(s["tracks"].max())
    caption = (
        f"Semantic EQ measured on the audio, without the encoder: {clips} excerpts of {tracks} held-out "
        f"real-music tracks, intensity {intensity:g}. How much of a descriptor audio has is read on the "
        "descriptor's own axis (the mean of its SAFE-DB curve over log-spaced bands weighted by compressed "
        "band power, dB). Added: output minus input (mean $\\pm$ SD); reversed: share of excerpts left with "
        "less of the quality than they came with (rev.\\ any $k$: at any intensity in 0.25--1.5); monotone: share "
        "whose measure never falls as the intensity rises; adaptivity $\\rho$: Spearman correlation between "
        "the input's measure and what is added (negative: a track that already has the quality gets less); "
        "centroid, low share (power below 250 Hz) and tilt (dB/octave): mean changes. Look for 0 reversed and "
        "1 monotone, then a negative $\\rho$. Brackets: 95\\% bootstrap intervals over tracks"
    )
    table = out.to_latex(index=False, escape=False, column_format="llllrrlrrr")
    return save_table(_wide_table(table, caption, name, profile), name, profile, intensity=intensity, **meta)


def numbers_semantic_direction(direction: pd.DataFrame, profile: str, intensity: float = 1.0) -> Path:
    """``numbers_semantic_direction.tex`` (notebook 09): per descriptor and method, the share of
    excerpts reversed and monotone and the audio-measured adaptivity $\\rho$ with its interval."""
    values: dict[str, Any] = {"intensity": float(intensity), "clips": int(direction["clips"].max()),
                              "tracks": int(direction["tracks"].max())}
    for _, r in direction.iterrows():
        key = f"{r['descriptor']}_{r['method']}"
        values.update({f"{key}_reversed": float(r["reversed"]), f"{key}_reversed_any": float(r["reversed_any"]),
                       f"{key}_monotone": float(r["monotone"]), f"{key}_rho": float(r["adaptivity_rho"]),
                       f"{key}_rho_lo": float(r["adaptivity_rho_lo"]), f"{key}_rho_hi": float(r["adaptivity_rho_hi"]),
                       f"{key}_added": float(r["added"])})
    return save_numbers("semantic_direction", _finite(values), profile, digits={"intensity": 1})


def fig_semantic_eq_adaptivity(results: pd.DataFrame, profile: str, intensity: float = 1.0,
                               name: str = "semantic_eq_adaptivity", **meta: Any) -> Path:
    """How much of a quality an excerpt already has against how much EQ each method gives it."""
    plt = _plt()
    at = results[np.isclose(results["intensity"], intensity)]
    words = list(dict.fromkeys(at["descriptor"]))
    fig, axes = plt.subplots(1, len(words), figsize=(3.3 * len(words) + 0.4, 3.3), squeeze=False, sharey=False)
    for ax, d in zip(axes[0], words):
        part = at[at["descriptor"] == d]
        for m, g in part.groupby("method", sort=False):
            ax.scatter(g["position_before"], g["amount_db"], s=14 if m == "adaptive" else 8, lw=0, alpha=0.8,
                       c=METHOD_COLOURS.get(m), label=METHOD_LABELS.get(m, m), zorder=3 if m == "adaptive" else 2)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.8", lw=0.6, ls=":")
        ax.set_xlabel(f"how {d} before (latent position)")
        ax.set_ylabel(f"'{d}' EQ received (dB along SAFE mean curve)")
        ax.set_title(f"'{d}', intensity {intensity:g}", fontsize=9)
        ax.grid(alpha=0.2)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return save_figure(fig, name, profile, clips=int(at["clip"].nunique()), **meta)


def fig_semantic_eq_intensity(results: pd.DataFrame, profile: str, name: str = "semantic_eq_intensity", **meta: Any) -> Path:
    """Position after processing (mean and 95 % interval over excerpts) against the intensity, per method."""
    plt = _plt()
    words = list(dict.fromkeys(results["descriptor"]))
    fig, axes = plt.subplots(1, len(words), figsize=(3.3 * len(words) + 0.4, 3.2), squeeze=False)
    for ax, d in zip(axes[0], words):
        part = results[results["descriptor"] == d]
        for m, g in part.groupby("method", sort=False):
            stats = g.groupby("intensity")["position_after"].agg(["mean", "std", "count"])
            half = 1.96 * stats["std"].fillna(0) / np.sqrt(stats["count"])
            ax.plot(stats.index, stats["mean"], marker="o", ms=3, color=METHOD_COLOURS.get(m), label=METHOD_LABELS.get(m, m))
            ax.fill_between(stats.index, stats["mean"] - half, stats["mean"] + half, color=METHOD_COLOURS.get(m), alpha=0.15, lw=0)
        ax.axhline(1.0, color="0.5", lw=0.7, ls="--")
        ax.set_xlabel("intensity")
        ax.set_ylabel(f"how {d} after (latent position)")
        ax.set_title(f"'{d}'", fontsize=9)
        ax.grid(alpha=0.2)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return save_figure(fig, name, profile, clips=int(results["clip"].nunique()), **meta)


def fig_semantic_eq_examples(results: pd.DataFrame, curves: pd.DataFrame, reference_curves: dict[str, np.ndarray],
                             reference_freqs_hz: np.ndarray, profile: str, descriptor: str = "warm",
                             name: str = "semantic_eq_examples", **meta: Any) -> Path:
    """The old sketch's example, measured: the '<descriptor>' EQ that each method gives the excerpt
    that already has the most of the quality and the one that has the least, with SAFE's mean curve."""
    plt = _plt()
    at = results[(results["descriptor"] == descriptor) & np.isclose(results["intensity"], 1.0) & (results["method"] == "adaptive")]
    if at.empty:
        raise ValueError(f"no results for {descriptor!r} at intensity 1")
    most = at.loc[at["position_before"].idxmax()]
    least = at.loc[at["position_before"].idxmin()]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.3), sharey=True)
    ref = np.asarray(reference_curves[descriptor])
    for ax, row, title in ((axes[0], least, "least"), (axes[1], most, "most")):
        for m in METHOD_COLOURS:
            c = curves[(curves["clip"] == row["clip"]) & (curves["descriptor"] == descriptor) & (curves["method"] == m)]
            if len(c):
                ax.semilogx(c["freq_hz"], c["gain_db"], color=METHOD_COLOURS[m], lw=1.6, label=METHOD_LABELS[m])
        ax.semilogx(reference_freqs_hz, ref - ref.mean(), color="0.3", lw=1.0, ls="--", label="SAFE mean curve (mean removed)")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xlim(20, 20000)
        ax.set_xlabel("frequency (Hz)")
        ax.set_title(f"{title} {descriptor} excerpt (position {row['position_before']:.2f})\n{row['clip']}", fontsize=8)
        ax.grid(True, which="both", alpha=0.2)
    axes[0].set_ylabel("EQ gain (dB)")
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return save_figure(fig, name, profile, descriptor=descriptor, clips=[str(least["clip"]), str(most["clip"])], **meta)


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """Drop NaN/inf floats (a number file never prints ``nan``: the text then names the missing key)."""
    return {k: v for k, v in values.items() if not (isinstance(v, float) and not np.isfinite(v))}


def numbers_semantic_vae(metrics: pd.DataFrame, latent_dim: int, separation: float, profile: str) -> Path:
    """``numbers_semantic_vae.tex`` (notebook 07): the main VAE's reconstruction errors (dB) on
    training and held-out contributors' rows, the mean-setting baseline's, the held-out counts and
    the warm/bright separation, from :func:`mastering.semantic.vae.vae_metrics` rows."""
    m = pd.DataFrame(metrics)
    row = m[m["latent_dim"] == int(latent_dim)].iloc[0]
    values = _finite({
        "latent_dim": int(latent_dim), "beta": float(row["beta"]), "train_db": float(row["train_db_mean"]),
        "heldout_db": float(row["val_db_mean"]), "mean_setting_db": float(row["baseline_val_db_mean"]),
        "heldout_rows": int(row["n_val"]), "heldout_contributors": int(row["n_val_contributors"]),
        "separation": float(separation), "latent_sizes": int(m["latent_dim"].nunique()),
    })
    return save_numbers("semantic_vae", values, profile, digits={"beta": 3})


def numbers_encoder(table: pd.DataFrame, profile: str, main: str = "cnn-mse", music: str = "cnn-mse-music",
                    music_ltas: str = "ltas-mse-music") -> Path:
    """``numbers_semantic_encoder.tex`` (notebook 08): $R^2$ (overall and along the warm and bright
    axes, with intervals) and warm/bright accuracy of the main encoder on held-out settings rendered
    on pink noise and on music, and of the music-trained variants on music, from
    :func:`mastering.semantic.encoder.compare_encoders`'s table."""
    t = table.set_index(["variant", "evaluated_on"])
    values: dict[str, Any] = {"settings": int(table["n"].iloc[0]), "variants": int(table["variant"].nunique())}
    for variant, key in ((main, "main"), (music, "music_trained"), (music_ltas, "music_ltas")):
        for where in ("pink", "music"):
            if (variant, where) in t.index:
                row = t.loc[(variant, where)]
                values[f"{key}_{where}_r2"] = float(row["r2"])
                values[f"{key}_{where}_acc"] = float(row.get("pair_accuracy", np.nan))
                for word in ("warm", "bright"):
                    for suffix in ("", "_lo", "_hi"):
                        if f"r2_{word}{suffix}" in row.index:
                            values[f"{key}_{where}_r2_{word}{suffix}"] = float(row[f"r2_{word}{suffix}"])
    return save_numbers("semantic_encoder", _finite(values), profile)


def numbers_semantic_eq(summary: pd.DataFrame, profile: str, intensity: float = 1.0) -> Path:
    """``numbers_semantic_eq.tex`` (notebook 09): per descriptor, the adaptive EQ's adaptivity
    $\\rho$, direction accuracy and tilt change, and the spread of the position after processing
    (adaptive against static), from :func:`mastering.semantic.evaluate.summarize_semantic_eq`."""
    s = summary.set_index(["descriptor", "method"])
    values: dict[str, Any] = {"intensity": float(intensity), "clips": int(summary["clips"].max()),
                              "tracks": int(summary["tracks"].max())}
    for d in dict.fromkeys(summary["descriptor"]):
        if (d, "adaptive") not in s.index:
            continue
        a = s.loc[(d, "adaptive")]
        values.update({f"{d}_rho": float(a["adaptivity_rho"]), f"{d}_accuracy": float(a["direction_accuracy"]),
                       f"{d}_tilt": float(a["tilt_change"]), f"{d}_sd_adaptive": float(a["position_after_sd"])})
        if (d, "static") in s.index:
            values[f"{d}_sd_static"] = float(s.loc[(d, "static"), "position_after_sd"])
    return save_numbers("semantic_eq", _finite(values), profile, digits={"intensity": 1})
