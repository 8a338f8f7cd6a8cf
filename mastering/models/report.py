"""Figures and tables of the Phase 1 notebooks (03-05); each saves through :mod:`mastering.figures`.

One function per artefact, reading saved results (a run folder, a trainer's validation data) and
never training:

* :func:`fig_training_curves` -- training (per step) and validation (per epoch) loss with the
  identity's validation loss as reference lines.
* :func:`fig_validation_components` -- every validation loss term per epoch.
* :func:`predict_validation` -- the model's predictions on validation items (used below).
* :func:`fig_eq_curves` -- predicted EQ responses on real validation tracks, beside the inverse of
  the static EQ that the demastering applied (the part a static EQ can undo).
* :func:`fig_spectrograms` -- degraded input, model output and mastered reference.
* :func:`fig_band_usage` -- 1C: mean gate and effective gain per band, bands in use per item, by source.
* :func:`table_parameter_counts` -- parameters per component against the design's counts.
* :func:`table_validation` -- validation loss against the identity's.
* :func:`numbers_validation` -- the validation result the results text quotes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.demaster import PARAM_VECTOR_NAMES, tilt_eq_bands
from ..dsp.eq import freq_response_db, log_frequency_grid
from ..dsp.loudness import loudness
from ..figures import latex_table, save_figure, save_numbers, save_table
from ..profiles import get_profile
from .decoders import ACTIVE_GAIN_DB
from .mastering import DESIGN_PARAMETERS, PHASES, MasteringModel, parameter_counts

__all__ = [
    "notebook_overrides",
    "load_history",
    "validation_summary",
    "fig_training_curves",
    "fig_validation_components",
    "predict_validation",
    "fig_eq_curves",
    "fig_spectrograms",
    "fig_band_usage",
    "table_parameter_counts",
    "table_validation",
    "numbers_validation",
]

_TERMS = ("stft", "aweighted", "loudness", "params", "sparsity", "decisiveness")


def notebook_overrides(epochs=None, batch_size=None, ratios=None, seed=None, train_items=None, valid_items=None,
                       **extra: Any) -> dict[str, Any]:
    """:func:`mastering.training.train_config` overrides from notebook parameters (``None`` keeps the profile's)."""
    out: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if epochs is not None:
        out["epochs"] = int(epochs)
    if batch_size is not None:
        out["batch_size"] = int(batch_size)
    if seed is not None:
        out["seed"] = int(seed)
    data = {}
    if ratios is not None:
        data["ratios"] = dict(ratios)
    if train_items is not None:
        data["train_items"] = int(train_items)
    if valid_items is not None:
        data["valid_items"] = int(valid_items)
    if data:
        out["data"] = data
    return out


def load_history(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(epochs, steps)`` metrics of a run folder (``metrics.csv``, ``steps.csv``)."""
    run_dir = Path(run_dir)
    return pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(run_dir / "steps.csv")


def validation_summary(history: Sequence[dict[str, Any]] | pd.DataFrame) -> dict[str, float]:
    """Best validation perceptual loss (MR-STFT + A-weighted + loudness terms) against the identity's.

    Returns:
        ``best_epoch``, ``valid``, ``identity``, ``identity_matched``, ``reduction_vs_identity`` and
        ``reduction_vs_matched`` (fractions: 0.4 means 40 % below).
    """
    df = pd.DataFrame(history)
    best = df.loc[df["valid_total"].idxmin()]
    valid, ident = float(best["valid_perceptual"]), float(best["identity_perceptual"])
    matched = float(best.get("identity_matched_perceptual", math.nan))
    return {"best_epoch": int(best["epoch"]), "valid": valid, "identity": ident, "identity_matched": matched,
            "reduction_vs_identity": 1.0 - valid / ident, "reduction_vs_matched": 1.0 - valid / matched}


def _plt():
    import matplotlib

    matplotlib.use("agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def fig_training_curves(run_dir: str | Path, phase: str, profile: str) -> Path:
    """Training loss per step and validation loss per epoch, with the identity's losses."""
    plt = _plt()
    epochs, steps = load_history(run_dir)
    spe = steps.groupby("epoch")["step"].max()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    ax.plot(steps["step"], steps["perceptual"], color="0.7", lw=0.8, label="training (step)")
    ax.plot(epochs["epoch"].map(spe), epochs["train_perceptual"], "o-", color="C0", ms=3, label="training (epoch)")
    ax.plot(epochs["epoch"].map(spe), epochs["valid_perceptual"], "s-", color="C3", ms=3, label="validation")
    ax.axhline(epochs["identity_perceptual"].iloc[0], color="k", ls=":", lw=1, label="identity (validation)")
    if "identity_matched_perceptual" in epochs:
        ax.axhline(epochs["identity_matched_perceptual"].iloc[0], color="k", ls="--", lw=1,
                   label="identity, loudness-matched")
    ax.set_xlabel("step")
    ax.set_ylabel("perceptual loss")
    ax.set_title(f"Phase {phase.upper()}: training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, f"phase{phase}_training_curves", profile, run=Path(run_dir).name)


def fig_validation_components(run_dir: str | Path, phase: str, profile: str) -> Path:
    """Each validation loss term per epoch (identity, loudness-matched, as a dashed line where it has one)."""
    plt = _plt()
    epochs, _ = load_history(run_dir)
    terms = [t for t in _TERMS if f"valid_{t}" in epochs]
    fig, axes = plt.subplots(1, len(terms), figsize=(2.1 * len(terms), 2.6), squeeze=False)
    for ax, term in zip(axes[0], terms):
        ax.plot(epochs["epoch"], epochs[f"valid_{term}"], "s-", color="C3", ms=3)
        ref = f"identity_matched_{term}" if f"identity_matched_{term}" in epochs else f"identity_{term}"
        if ref in epochs:
            ax.axhline(epochs[ref].iloc[0], color="k", ls="--", lw=1)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("epoch")
        ax.tick_params(labelsize=7)
    fig.suptitle(f"Phase {phase.upper()}: validation loss terms (dashed: identity)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, f"phase{phase}_valid_components", profile, run=Path(run_dir).name)


@torch.no_grad()
def predict_validation(model: MasteringModel, dataset, n: int = 8, sample_rate: int | None = None) -> list[dict[str, Any]]:
    """Run the model on the first ``n`` items of ``dataset`` (eval mode, one item at a time).

    Each result holds ``source``, ``track_id``, ``degraded``/``mastered``/``output`` (``[channels,
    samples]`` NumPy, output at the reference's loudness), the EQ parameters, its ``response_db`` on
    ``freqs_hz``, ``gate`` (1C) and, when the demastering logged one, ``tilt_inverse_db``: the
    response that undoes the static tilt/shelf EQ of the degradation.
    """

    was_training = model.training
    model.eval()
    rate = sample_rate or model.sample_rate
    freqs = log_frequency_grid(rate, 256)
    out = []
    for i in range(min(n, len(dataset))):
        item = dataset[i]
        x, y = item["degraded"][None].float(), item["mastered"][None].float()
        target = loudness(y, rate) if model.loudness is not None else None
        res = model(x, target_lufs=target)
        eq = res["params"]["eq"]
        pred = {
            "source": item.get("mixture_source") or item.get("kind") or item.get("source", "?"),
            "track_id": item.get("track_id", f"item{i}"),
            "label": f"{str(item.get('track_id', f'item{i}')).split('/')[-1]}"
                     + (f" @{float(item['offset_s']):.0f} s" if item.get("offset_s") is not None else ""),
            "degraded": x[0].numpy(), "mastered": y[0].numpy(), "output": res["output"][0].numpy(),
            "eq": {k: v[0].numpy() for k, v in eq.items()},
            "freqs_hz": freqs,
            "response_db": model.decoder.response_db(eq, rate, freqs_hz=freqs)[0].numpy(),
        }
        if "gate" in eq:
            pred["gate"] = eq["gate"][0].numpy()
        params = item.get("params")
        if params is not None:
            v = dict(zip(PARAM_VECTOR_NAMES, np.asarray(params, dtype=np.float64)))
            if v["pivot_hz"] > 0:
                p = {k: v[k] for k in ("tilt_db", "pivot_hz", "low_shelf_gain_db", "low_shelf_freq_hz",
                                       "high_shelf_gain_db", "high_shelf_freq_hz")}
                p["shelf_q"] = 1.0 / math.sqrt(2.0)
                f, g, q, kinds = tilt_eq_bands(p)
                pred["tilt_inverse_db"] = -freq_response_db(np.array(f), np.array(g), np.array(q), kinds, rate,
                                                            freqs_hz=freqs)
        out.append(pred)
    model.train(was_training)
    return out


def fig_eq_curves(predictions: list[dict[str, Any]], phase: str, profile: str, max_curves: int = 6) -> Path:
    """Predicted EQ responses on validation items from real tracks, with the inverse of the logged static EQ."""
    plt = _plt()
    real = [p for p in predictions if p["source"] == "real"] or predictions
    real = real[:max_curves]
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for k, p in enumerate(real):
        color = f"C{k % 10}"
        ax.semilogx(p["freqs_hz"], p["response_db"], color=color, lw=1.4, label=p["label"])
        if "tilt_inverse_db" in p:
            ax.semilogx(p["freqs_hz"], p["tilt_inverse_db"], color=color, lw=0.9, ls="--")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("gain (dB)")
    ax.set_title(f"Phase {phase.upper()}: predicted EQ on validation tracks (dashed: inverse of the applied tilt EQ)",
                 fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save_figure(fig, f"phase{phase}_eq_curves", profile)


def _spec_db(x: np.ndarray, sample_rate: int, n_fft: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy import signal

    f, t, z = signal.stft(x.mean(axis=0), fs=sample_rate, nperseg=n_fft, noverlap=n_fft * 3 // 4)
    return f, t, 20 * np.log10(np.abs(z) + 1e-7)


def fig_spectrograms(predictions: list[dict[str, Any]], phase: str, profile: str, sample_rate: int = 44100,
                     index: int | None = None) -> Path:
    """Spectrograms of one validation item (the first real one): degraded, model output, mastered."""
    plt = _plt()
    if index is None:
        index = next((i for i, p in enumerate(predictions) if p["source"] == "real"), 0)
    p = predictions[index]
    panels = [("degraded input", p["degraded"]), (f"Phase {phase.upper()} output", p["output"]),
              ("mastered reference", p["mastered"])]
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.8), sharey=True)
    vmax = max(_spec_db(a, sample_rate)[2].max() for _, a in panels)
    for ax, (title, audio) in zip(axes, panels):
        f, t, s = _spec_db(audio, sample_rate)
        mesh = ax.pcolormesh(t, f, s, vmin=vmax - 80, vmax=vmax, shading="auto", cmap="magma", rasterized=True)
        ax.set_yscale("symlog", linthresh=200)
        ax.set_ylim(20, sample_rate / 2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    fig.colorbar(mesh, ax=axes, shrink=0.8, label="dB")
    fig.suptitle(p["track_id"], fontsize=8)
    return save_figure(fig, f"phase{phase}_spectrograms", profile, track=p["track_id"])


def fig_band_usage(predictions: list[dict[str, Any]], profile: str, phase: str = "1c",
                   threshold_db: float = ACTIVE_GAIN_DB) -> Path:
    """1C: mean gate and mean |effective gain| per band, and the bands in use per item (effective,
    gated gain above ``threshold_db``), by source."""
    plt = _plt()
    gates = np.stack([p["gate"] for p in predictions])
    gains = np.abs(np.stack([p["eq"]["gain_db"] for p in predictions]))
    sources = np.array([p["source"] for p in predictions])
    bands = np.arange(gates.shape[1]) + 1
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.0))
    width = 0.8 / max(len(set(sources)), 1)
    for k, src in enumerate(sorted(set(sources))):
        sel = sources == src
        shift = (k - (len(set(sources)) - 1) / 2) * width
        axes[0].bar(bands + shift, gates[sel].mean(axis=0), width=width, label=f"{src} ({sel.sum()})")
        axes[1].bar(bands + shift, gains[sel].mean(axis=0), width=width, label=src)
        active = (gains[sel] > threshold_db).sum(axis=1)
        axes[2].hist(active, bins=np.arange(gates.shape[1] + 2) - 0.5, alpha=0.6, label=src)
    axes[0].set_xlabel("band")
    axes[0].set_ylabel("mean gate (evaluation)")
    axes[0].set_ylim(0, 1)
    axes[0].set_xticks(bands)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("band")
    axes[1].set_ylabel("mean |effective gain| (dB)")
    axes[1].set_xticks(bands)
    axes[1].axhline(threshold_db, color="0.5", lw=0.8, ls="--")
    axes[2].set_xlabel(f"bands in use per item (|gain| > {threshold_db:g} dB)")
    axes[2].set_ylabel("items")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"Phase {phase.upper()}: band usage on the validation set", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, f"phase{phase}_band_usage", profile,
                       active_bands_mean=float((gains > threshold_db).sum(axis=1).mean()))


def table_parameter_counts(profile: str, smoke_model: dict[str, Any] | None = None) -> Path:
    """Parameters per component of each phase at the design's widths (and the smoke widths) vs the design."""
    smoke_model = smoke_model or get_profile("smoke")["train"]["model"]
    rows = []
    for phase in PHASES:
        c = parameter_counts(phase)
        s = parameter_counts(phase, **smoke_model)
        design = DESIGN_PARAMETERS[phase]
        rows.append({"phase": phase.upper(), "encoder": c["encoder"] / 1e6, "decoder": c["decoder"] / 1e6,
                     "residual": c["residual"] / 1e6, "dynamics": c["dynamics"] / 1e6, "total": c["total"] / 1e6,
                     "design": design / 1e6, "diff. (%)": 100 * (c["total"] - design) / design,
                     "smoke total": s["total"] / 1e6})
    df = pd.DataFrame(rows)
    tex = latex_table(
        df, caption="Trainable parameters (millions) of the Phase 1 models at the design's widths, against the "
                    "architecture document; the encoder (128-512 channels, kernel 3) alone has 1.62 M, and the "
                    "grey-box dynamics head is beyond the design. Smoke runs use narrower widths",
        label="tab:phase1-params", profile=profile, float_format="%.3f")
    return save_table(tex, "phase1_parameter_counts", profile)


def table_validation(summary: dict[str, float], history: Sequence[dict[str, Any]] | pd.DataFrame, phase: str,
                     profile: str) -> Path:
    """Validation loss terms of the best epoch against the identity and the loudness-matched identity."""
    df = pd.DataFrame(history)
    best = df.loc[df["valid_total"].idxmin()]
    rows = []
    for label, prefix in (("model", "valid_"), ("identity", "identity_"), ("identity, loudness-matched",
                                                                            "identity_matched_")):
        if f"{prefix}perceptual" not in best:
            continue
        rows.append({"output": label, **{t: float(best.get(f"{prefix}{t}", math.nan))
                                          for t in ("stft", "aweighted", "loudness")},
                     "perceptual": float(best[f"{prefix}perceptual"])})
    tex = latex_table(
        pd.DataFrame(rows),
        caption=(f"Phase {phase.upper()} validation loss (best epoch {summary['best_epoch']}) against the identity: "
                 f"{100 * summary['reduction_vs_identity']:.0f}\\% below the input as it is and "
                 f"{100 * summary['reduction_vs_matched']:.0f}\\% below the input at the reference's loudness"),
        label=f"tab:phase{phase}-validation", profile=profile, float_format="%.4f")
    return save_table(tex, f"phase{phase}_validation", profile)


def numbers_validation(summary: dict[str, float], phase: str, profile: str, epochs: int | None = None,
                       train_items: int | None = None) -> Path:
    """``numbers_phase<phase>_results.tex``: the validation result the results text quotes (best epoch,
    the model's perceptual loss, the identity's and the loudness-matched identity's, and the
    model's relative change against each in percent: ``vs_identity_pct`` = -40 means 40 % below),
    from :func:`validation_summary`; ``epochs`` and ``train_items`` (training
    pairs per epoch) when given."""
    values: dict[str, Any] = {
        "best_epoch": int(summary["best_epoch"]), "valid_loss": float(summary["valid"]),
        "identity_loss": float(summary["identity"]),
        "vs_identity_pct": -100.0 * float(summary["reduction_vs_identity"]),
    }
    if math.isfinite(float(summary.get("identity_matched", math.nan))):
        values["matched_loss"] = float(summary["identity_matched"])
        values["vs_matched_pct"] = -100.0 * float(summary["reduction_vs_matched"])
    if epochs is not None:
        values["epochs"] = int(epochs)
    if train_items is not None:
        values["train_items"] = int(train_items)
    digits = {"valid_loss": 3, "identity_loss": 3, "matched_loss": 3, "vs_identity_pct": 0, "vs_matched_pct": 0}
    return save_numbers(f"phase{phase}_results", values, profile, digits={k: digits.get(k, 2) for k in values})
