"""Paper figures and tables of the semantic latent (notebook ``07_semantic_vae``).

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

from ..figures import latex_table, save_figure, save_table
from .safedb import descriptor_counts

__all__ = ["fig_latent_map", "table_descriptor_counts", "table_vae_reconstruction"]

#: Colours of the highlighted descriptors (colour-blind safe pair: orange / blue).
HIGHLIGHT_COLOURS = {"warm": "#d95f02", "bright": "#1f78b4"}


def table_descriptor_counts(df: pd.DataFrame, profile: str, top: int = 15, name: str = "safedb_descriptor_counts") -> Path:
    """The most frequent SAFE-DB descriptors after cleaning, with the cleaning counts in the caption.

    Args:
        df: cleaned frame from :func:`mastering.semantic.safedb.load_safedb` (its
            ``attrs["cleaning"]`` is reported).
        profile: run profile named in the caption and sidecar.
        top: number of descriptors listed.
    """
    counts = descriptor_counts(df)
    contributors = df.groupby("descriptor")["contributor"].nunique()
    head = counts.iloc[:top]
    table = pd.DataFrame(
        {
            "Descriptor": head.index,
            "Settings": head.to_numpy(),
            "Share (%)": 100.0 * head.to_numpy() / len(df),
            "Contributors": contributors.loc[head.index].to_numpy(),
        }
    )
    info = df.attrs.get("cleaning", {})
    caption = (
        f"SAFE-DB equaliser descriptors after cleaning: {info.get('rows', len(df))} of "
        f"{info.get('raw_rows', len(df))} settings kept ({info.get('dropped_invalid_descriptor', 0)} test entries, "
        f"{info.get('dropped_nonfinite', 0)} non-finite and {info.get('dropped_out_of_range', 0)} out-of-range rows dropped), "
        f"{counts.size} distinct descriptors after normalization (lower case, first word, inflections folded); "
        f"the {top} most frequent"
    )
    body = latex_table(table, caption, f"tab:{name}", profile, float_format="%.1f", column_format="lrrr")
    return save_table(body, name, profile, rows=int(len(df)), descriptors=int(counts.size))


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
