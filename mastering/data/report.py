"""Dataset statistics, example pairs and parameter distributions for notebook 02 and the paper.

One generator per artefact, each saved through :mod:`mastering.figures` (PDF + PNG, or ``.tex``,
with a provenance sidecar: profile, commit, date):

* :func:`table_data_statistics` -> ``paper/tables/data_statistics.tex``
* :func:`fig_spectrogram_pairs` -> ``paper/figures/data_spectrogram_pairs.{pdf,png}``
* :func:`fig_param_distributions` -> ``paper/figures/data_param_distributions.{pdf,png}``
* :func:`fig_segment_loudness` -> ``paper/figures/data_segment_loudness.{pdf,png}``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..figures import latex_table, save_figure, save_table
from ..profiles import get_profile
from . import demaster as dm
from .datasets import build_paired_datasets
from .manifest import load_manifest, load_segments

__all__ = [
    "dataset_statistics",
    "table_data_statistics",
    "example_pairs",
    "fig_spectrogram_pairs",
    "param_table",
    "fig_param_distributions",
    "fig_segment_loudness",
    "listening_excerpts",
]


def dataset_statistics(profile: str) -> pd.DataFrame:
    """One row per source package of the profile, plus a total: tracks, hours, tracks per split,
    segments, track loudness (median and 10th-90th percentile, BS.1770-4) and licence."""
    tracks = load_manifest(profile)
    try:
        segments = load_segments(profile)
    except FileNotFoundError:
        segments = pd.DataFrame(columns=["source", "package", "track_id"])
    rows = []
    for (source, package), g in tracks.groupby(["source", "package"], sort=True):
        lufs = g["loudness_lufs"].astype(float)
        splits = g["split"].value_counts()
        rows.append({
            "source": source, "package": package, "kind": g["kind"].iloc[0], "tracks": len(g),
            "hours": g["duration_s"].sum() / 3600,
            "train/valid/test": f"{splits.get('train', 0)}/{splits.get('valid', 0)}/{splits.get('test', 0)}",
            "segments": int(((segments["source"] == source) & (segments["package"] == package)).sum()),
            "LUFS median": float(lufs.median()),
            "LUFS 10-90%": f"{lufs.quantile(0.1):.1f} to {lufs.quantile(0.9):.1f}",
            "license": "; ".join(sorted(set(g["license"].astype(str))))[:40],
        })
    lufs = tracks["loudness_lufs"].astype(float)
    splits = tracks["split"].value_counts()
    rows.append({
        "source": "total", "package": "", "kind": "", "tracks": len(tracks), "hours": tracks["duration_s"].sum() / 3600,
        "train/valid/test": f"{splits.get('train', 0)}/{splits.get('valid', 0)}/{splits.get('test', 0)}",
        "segments": len(segments), "LUFS median": float(lufs.median()),
        "LUFS 10-90%": f"{lufs.quantile(0.1):.1f} to {lufs.quantile(0.9):.1f}", "license": "",
    })
    return pd.DataFrame(rows)


def table_data_statistics(stats: pd.DataFrame, profile: str) -> Path:
    """Write the statistics table (:func:`dataset_statistics`) as ``data_statistics.tex``."""
    seg = get_profile(profile)["segment_seconds"]
    cols = ["source", "package", "tracks", "hours", "train/valid/test", "segments", "LUFS median", "LUFS 10-90%"]
    body = latex_table(
        stats[cols], caption=f"Music sources: tracks, duration, by-track splits, {seg:g} s segments and "
                             "integrated loudness (ITU-R BS.1770-4); pink noise is generated on the fly",
        label="tab:data_statistics", profile=profile, float_format="%.2f",
    )
    return save_table(body, "data_statistics", profile, rows=len(stats))


def example_pairs(profile: str, n: int = 3, split: str = "test", seed: int | None = None) -> list[dict]:
    """``n`` demastered pairs, one per source kind in turn (real, rendered, pink), with records.

    Fixed-offset segments of ``split`` (the test split holds tracks of every source with two or
    more tracks); successive pairs of one kind come from segments spread over the split."""

    mix = build_paired_datasets(profile, split, length=max(n, 3), offsets="fixed", seed=seed)
    out = []
    names = [k for k in ("real", "rendered", "pink") if k in mix.datasets]
    for i in range(n):
        name = names[i % len(names)]
        ds = mix.datasets[name]
        j = (len(ds) // 3 + (i // len(names)) * 7919) % len(ds)  # spread over tracks and offsets
        item, record = ds._make(j)
        out.append({"kind": name, "degraded": item["degraded"].numpy(), "mastered": item["mastered"].numpy(),
                    "record": record, "track_id": item["track_id"], "sample_rate": ds.sample_rate})
    return out


def _describe(record: dict) -> str:
    s = record["stages"]
    parts = []
    if s.get("dynamics"):
        parts.append(f"{s['dynamics']['mode']} x{s['dynamics']['ratio']:.1f}")
    if s.get("tilt_eq"):
        parts.append(f"tilt {s['tilt_eq']['tilt_db']:+.1f} dB")
    if s.get("gaussian_eq"):
        parts.append(f"{s['gaussian_eq']['bands']}-band moving EQ")
    if s.get("reverb"):
        parts.append(f"reverb {s['reverb']['rt60_s']:.1f} s")
    if s.get("echo"):
        parts.append(f"echo {s['echo']['delay_ms']:.0f} ms")
    if s.get("level"):
        parts.append(f"level {s['level'].get('gain_db', 0):+.1f} dB")
    return ", ".join(parts)


def fig_spectrogram_pairs(pairs: list[dict], profile: str) -> Path:
    """Log-frequency spectrograms, mastered (left) and degraded (right), one row per pair."""
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    fig, axes = plt.subplots(len(pairs), 2, figsize=(9, 2.3 * len(pairs)), squeeze=False, sharex=True, sharey=True)
    for row, pair in zip(axes, pairs):
        sr = pair["sample_rate"]
        for ax, key in zip(row, ("mastered", "degraded")):
            f, t, s = spectrogram(pair[key].mean(axis=0), fs=sr, nperseg=2048, noverlap=1536)
            f_log = np.geomspace(30.0, sr / 2, 160)  # log-frequency rows: light to draw, even per octave
            s_log = np.stack([np.interp(f_log, f, frame) for frame in s.T], axis=1)
            ax.pcolormesh(t, f_log, 10 * np.log10(s_log + 1e-12), shading="auto", cmap="magma", vmin=-120,
                          vmax=-30, rasterized=True)
            ax.set_yscale("log")
            ax.set_ylim(30, sr / 2)
            ax.set_title(f"{key}: {pair['kind']} {pair['track_id'][:28]}", fontsize=8)
        row[1].text(0.01, 0.02, _describe(pair["record"]), transform=row[1].transAxes, fontsize=6.5,
                    color="white", va="bottom")
        row[0].set_ylabel("frequency (Hz)")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return save_figure(fig, "data_spectrogram_pairs", profile, pairs=len(pairs))


def param_table(n: int = 2000, seed: int = 0, duration_s: float = 5.0) -> pd.DataFrame:
    """Drawn demastering parameters of ``n`` seeds (``seed`` ... ``seed + n - 1``), one row each;
    absent stages are NaN. Signal-dependent values (applied level gain) are not included."""
    rows = []
    for s in range(seed, seed + n):
        st = dm.sample_params(s, duration_s=duration_s)["stages"]
        r = {f"{k}_on": v is not None for k, v in st.items()}
        if st["dynamics"]:
            d = st["dynamics"]
            r.update(dyn_mode=d["mode"], dyn_depth_db=d["depth_db"], dyn_ratio=d["ratio"])
        if st["tilt_eq"]:
            r.update(tilt_db=st["tilt_eq"]["tilt_db"], low_shelf_gain_db=st["tilt_eq"]["low_shelf_gain_db"],
                     high_shelf_gain_db=st["tilt_eq"]["high_shelf_gain_db"])
        if st["gaussian_eq"]:
            g = np.asarray(st["gaussian_eq"]["gain_db"])
            r.update(geq_bands=st["gaussian_eq"]["bands"], geq_gain_db=float(g.ravel()[0]),
                     geq_freq_hz=float(np.asarray(st["gaussian_eq"]["freq_hz"]).ravel()[0]))
        if st["reverb"]:
            r.update(reverb_rt60_s=st["reverb"]["rt60_s"], reverb_wet_db=st["reverb"]["wet_db"])
        if st["echo"]:
            r.update(echo_delay_ms=st["echo"]["delay_ms"], echo_gain_db=st["echo"]["gain_db"])
        r.update(level_target_lufs=st["level"]["target_lufs"], level_headroom_db=st["level"]["headroom_db"])
        rows.append(r)
    return pd.DataFrame(rows)


def fig_param_distributions(params: pd.DataFrame, profile: str, applied_gain_db: list[float] | None = None) -> Path:
    """Histograms of the drawn parameters (:func:`param_table`) and the stage frequencies."""
    import matplotlib.pyplot as plt

    cols = [("dyn_depth_db", "dynamics depth (dB)"), ("dyn_ratio", "dynamics ratio"), ("tilt_db", "tilt (dB)"),
            ("geq_gain_db", "moving-EQ gain, band 1 (dB)"), ("geq_freq_hz", "moving-EQ centre, band 1 (Hz)"),
            ("reverb_rt60_s", "reverb RT60 (s)"), ("reverb_wet_db", "reverb wet (dB)"),
            ("echo_delay_ms", "echo delay (ms)"), ("level_target_lufs", "target loudness (LUFS)"),
            ("level_headroom_db", "headroom (dB)")]
    fig, axes = plt.subplots(3, 4, figsize=(10, 6.5))
    axes = axes.ravel()
    on = [c for c in params.columns if c.endswith("_on")]
    axes[0].bar([c[:-3].replace("_", " ") for c in on], params[on].mean().to_numpy(), color="0.4")
    axes[0].set_ylabel("share of pairs")
    axes[0].tick_params(axis="x", rotation=60, labelsize=7)
    for ax, (col, label) in zip(axes[1:], cols):
        v = params[col].dropna().to_numpy(float) if col in params else np.array([])
        if col == "geq_freq_hz" and len(v):
            ax.hist(v, bins=np.geomspace(v.min(), v.max(), 30), color="C0")
            ax.set_xscale("log")
        else:
            ax.hist(v, bins=30, color="C0")
        ax.set_xlabel(label, fontsize=8)
    if applied_gain_db:
        axes[-1].hist(applied_gain_db, bins=15, color="C1")
        axes[-1].set_xlabel("applied level gain (dB), example pairs", fontsize=8)
    else:
        axes[-1].axis("off")
    fig.suptitle(f"demastering parameters, {len(params)} draws", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, "data_param_distributions", profile, draws=len(params))


def fig_segment_loudness(profile: str) -> Path:
    """Distribution of segment loudness (BS.1770-4) per source kind and split."""
    import matplotlib.pyplot as plt

    seg = load_segments(profile)
    seg = seg[np.isfinite(seg["loudness_lufs"].astype(float))]
    fig, ax = plt.subplots(figsize=(6, 3))
    bins = np.arange(-60, 0, 1.5)
    for (kind, split), g in seg.groupby(["kind", "split"]):
        ax.hist(g["loudness_lufs"], bins=bins, histtype="step", label=f"{kind} / {split} ({len(g)})")
    ax.set_xlabel(f"segment loudness (LUFS, {get_profile(profile)['segment_seconds']:g} s segments)")
    ax.set_ylabel("segments")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, "data_segment_loudness", profile, segments=len(seg))


def listening_excerpts(pairs: list[dict], seconds: float = 3.0) -> list[tuple[str, np.ndarray, int]]:
    """``(label, [channels, samples], sample_rate)`` excerpts, mastered and degraded per pair,
    for ``IPython.display.Audio``."""
    out = []
    for p in pairs:
        n = int(seconds * p["sample_rate"])
        out.append((f"{p['kind']} {p['track_id']}: mastered", p["mastered"][:, :n], p["sample_rate"]))
        out.append((f"{p['kind']} {p['track_id']}: degraded ({_describe(p['record'])})", p["degraded"][:, :n],
                    p["sample_rate"]))
    return out
