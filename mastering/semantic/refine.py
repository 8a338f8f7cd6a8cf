"""Inference-time refinement of a semantic EQ: Adam on the EQ parameters, re-encoding the output.

Entry points: :func:`refine_trajectory` / :func:`refine_settings` refine the two-stage adaptive
settings (:func:`mastering.semantic.adaptive.semantic_eq_settings`) of one input for ``N`` steps;
:func:`refinement_quality` and :func:`summarize_refinement` give notebook 10's quality vs time
table over :data:`REFINE_STEPS`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..dsp.eq import parametric_eq
from ..dsp.loudness import loudness
from ..io import resample
from .adaptive import EQSettings, SemanticEQ, _as_batch, semantic_eq_settings
from .e2e import CAP_DB, LOSS_WEIGHTS, _curve_rms_db, frozen_copy, k_weighted_spectrum, loudness_change_lu
from .evaluate import bootstrap_ci, curve_metrics, spectral_tilt
from .vae import single_thread

__all__ = ["REFINE_STEPS", "COSINE_SLACK", "refine_trajectory", "refine_settings", "refinement_quality", "summarize_refinement"]

#: The refinement budgets of the quality vs time table.
REFINE_STEPS = (0, 10, 50, 200)
#: Stopping rule: an item stops being refined at the last step whose curve's cosine with the
#: descriptor's mean SAFE curve lies within this of its two-stage start (the human curve is kept).
COSINE_SLACK = 0.05
_GAIN_MAX_DB = 24.0
_Q_RANGE = (0.1, 10.0)


def _encode_excerpts(judge: torch.nn.Module, y: torch.Tensor, sample_rate: int, excerpt_s: float, max_excerpts: int) -> torch.Tensor:
    """Differentiable counterpart of :meth:`SemanticEQ.encode` (evenly spaced excerpts, mean code)."""
    y = resample(y.float(), int(sample_rate), judge.sample_rate)
    n_ex = int(round(excerpt_s * judge.sample_rate))
    if y.shape[-1] <= n_ex:
        return judge(y)
    count = max(1, min(max_excerpts, y.shape[-1] // n_ex))
    starts = np.linspace(0, y.shape[-1] - n_ex, count).round().astype(int)
    return torch.stack([judge(y[..., s: s + n_ex]) for s in starts]).mean(0)


def refine_trajectory(
    bundle: SemanticEQ,
    audio: Any,
    sample_rate: int,
    descriptor: str,
    intensity: float = 1.0,
    steps: int = 50,
    lr: float = 0.05,
    seed: int = 0,
    snapshots: Sequence[int] = (),
    weights: dict[str, float] | None = None,
    cap_db: float | None = None,
    cosine_slack: float | None = COSINE_SLACK,
) -> tuple[dict[int, EQSettings], pd.DataFrame]:
    """Refine the two-stage settings for ``steps`` Adam steps, keeping the settings at ``snapshots``.

    Adam updates the bands' gains, log-frequencies and log-Qs to bring the code of the processed
    audio (exact IIR cascade, :func:`mastering.dsp.eq.parametric_eq`), as the bundle's own encoder
    reads it, to the traversal's goal ``z_new``, under the plausibility terms of
    :func:`mastering.semantic.e2e.e2e_loss`: the loudness change (LU^2) and the cap on the curve's
    RMS dB. The encoder descended is the one that places the goal, so the distance is optimistic
    (it can fall by fooling the encoder; :func:`refinement_quality` reports encoder-free checks).
    Adam with a constant learning rate is deterministic: the settings after ``N`` steps of a longer
    run are those of an ``N``-step run, so one trajectory gives every ``N``.

    Args:
        bundle: the semantic EQ (its encoder measures the result and is not trained).
        audio: ``[batch, channels, samples]`` (or ``[channels, samples]``) at ``sample_rate``.
        descriptor, intensity: as :func:`~mastering.semantic.adaptive.semantic_eq_settings`
            (one-sided adaptive step). At intensity 0 nothing is refined (the identity stays).
        steps: Adam steps (0: the two-stage settings).
        lr: Adam's learning rate on gains in units of 10 dB and on natural-log frequencies and Qs.
        seed: seeds torch's generator during the run (the optimisation itself draws nothing
            random; the seed makes that explicit for any stochastic op a back-end may use).
        snapshots: step counts (``<= steps``) whose settings to return, besides ``steps``.
        weights: ``loudness`` and ``cap`` weights (default
            :data:`mastering.semantic.e2e.LOSS_WEIGHTS`).
        cap_db: RMS dB of the curve above which the cap acts (default
            :data:`mastering.semantic.e2e.CAP_DB`).
        cosine_slack: the stopping rule (default :data:`COSINE_SLACK`): an item whose curve's
            cosine with the descriptor's mean SAFE curve (means removed) would fall more than this
            below its start keeps the settings of the step before, for the rest of the run;
            ``None`` refines without it.

    Returns:
        ``(settings_by_step, history)``: :class:`EQSettings` (method ``"refined"``) at each
        snapshot and at ``steps``; ``history`` one row per step ``0..steps`` with ``step``,
        ``seconds`` (cumulative wall time of the updates so far), ``distance`` (Euclidean latent
        distance of the re-encoded output to the goal, mean over items), ``loss``,
        ``loudness_lu`` (mean absolute loudness change), ``rms_db`` (mean curve RMS), ``cosine``
        (mean cosine with the mean SAFE curve) and ``stopped`` (items the stopping rule has halted).
    """

    steps = _check_refine_args(steps, lr, snapshots)
    w = {**LOSS_WEIGHTS, **(weights or {})}
    cap_db = CAP_DB if cap_db is None else float(cap_db)
    x = _as_batch(audio).double()
    init = semantic_eq_settings(bundle, x, sample_rate, descriptor, intensity, "adaptive")
    wanted = sorted({int(s) for s in snapshots} | {steps})
    if init.intensity == 0.0:
        same = _refined(init, init.freq_hz, init.gain_db, init.q)
        hist = pd.DataFrame({"step": range(steps + 1), "seconds": 0.0, "distance": np.nan, "loss": np.nan,
                             "loudness_lu": 0.0, "rms_db": 0.0, "cosine": np.nan, "stopped": 0})
        return {s: same for s in wanted}, hist
    return _descend(bundle, x, sample_rate, init, steps, lr, seed, wanted, w, cap_db, cosine_slack)


def _check_refine_args(steps: int, lr: float, snapshots: Sequence[int]) -> int:
    """``steps`` as an int, after checking it, ``lr`` and ``snapshots`` (:func:`refine_trajectory`)."""
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not (lr > 0 and np.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    bad = [s for s in snapshots if not 0 <= int(s) <= steps]
    if bad:
        raise ValueError(f"snapshots must lie in 0..steps={steps}, got {bad}")
    return steps


def _refined(init: EQSettings, f: np.ndarray, g: np.ndarray, q: np.ndarray) -> EQSettings:
    """``init`` with the bands ``(f, g, q)``, method ``"refined"``."""
    return EQSettings("refined", init.descriptor, init.intensity, f, g, q, init.kinds, init.z_audio, init.z_target, init.z_new)


def _start_params(init: EQSettings, nyq: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The optimised leaves from the two-stage settings: gains / 10 dB, log-frequencies, log-Qs."""
    g10 = torch.tensor(init.gain_db / 10.0, dtype=torch.float64, requires_grad=True)
    logf = torch.tensor(np.log(np.clip(init.freq_hz, 20.0, nyq)), dtype=torch.float64, requires_grad=True)
    logq = torch.tensor(np.log(np.clip(init.q, *_Q_RANGE)), dtype=torch.float64, requires_grad=True)
    return g10, logf, logq


def _physical(g10: torch.Tensor, logf: torch.Tensor, logq: torch.Tensor, nyq: float):
    """``(freq_hz, gain_db, q)`` of the optimised leaves, clamped to the EQ's ranges."""
    return (logf.exp().clamp(20.0, nyq), (10.0 * g10).clamp(-_GAIN_MAX_DB, _GAIN_MAX_DB), logq.exp().clamp(*_Q_RANGE))


def _cosine(init: EQSettings, bundle: SemanticEQ, f, g, q, sample_rate: int) -> np.ndarray:
    """Cosine ``[batch]`` of the bands' curve with the descriptor's mean SAFE curve (means removed)."""
    s = _refined(init, *(v.detach().numpy() for v in (f, g, q)))
    return curve_metrics(s.response_db(bundle.reference_freqs_hz, sample_rate), bundle.reference_curves[init.descriptor])["cosine"]


def _descend(bundle: SemanticEQ, x: torch.Tensor, sample_rate: int, init: EQSettings, steps: int, lr: float,
             seed: int, wanted: list[int], w: dict[str, float], cap_db: float,
             cosine_slack: float | None) -> tuple[dict[int, EQSettings], pd.DataFrame]:
    """The Adam loop of :func:`refine_trajectory` (intensity > 0), with its stopping rule."""
    judge = frozen_copy(bundle.encoder)
    goal = torch.as_tensor(init.z_new, dtype=torch.float32)
    music = torch.as_tensor(bundle.music_reference_z if bundle.music_reference_z is not None else bundle.neutral_z, dtype=torch.float32)
    neutral = torch.as_tensor(bundle.neutral_z, dtype=torch.float32)
    nyq = 0.49 * sample_rate
    g10, logf, logq = _start_params(init, nyq)
    opt = torch.optim.Adam([g10, logf, logq], lr=lr)
    spectrum = k_weighted_spectrum(x, sample_rate)

    def objective(f, g, q):
        y = parametric_eq(x, sample_rate, f, g, q, init.kinds, mode="exact")
        z = _encode_excerpts(judge, y, sample_rate, bundle.excerpt_s, bundle.max_excerpts) - music + neutral
        dist = (z - goal).square().sum(-1)
        d_lu = loudness_change_lu(spectrum, f, g, q, init.kinds, sample_rate)
        rms = _curve_rms_db(f, g, q, init.kinds, sample_rate)
        loss = dist.mean() + w["loudness"] * d_lu.square().mean() + w["cap"] * torch.relu(rms - cap_db).square().mean()
        return dist, d_lu, rms, loss

    leaves = (g10, logf, logq)
    floor = None if cosine_slack is None else _cosine(init, bundle, *_physical(g10, logf, logq, nyq), sample_rate) - cosine_slack
    frozen = torch.zeros(g10.shape[0], dtype=torch.bool)
    prev = held = tuple(v.detach().clone() for v in leaves)
    rows, kept = [], {}
    elapsed = 0.0
    with torch.random.fork_rng(devices=[]), single_thread():
        torch.manual_seed(int(seed))
        for k in range(steps + 1):
            t0 = time.perf_counter()
            f, g, q = _physical(g10, logf, logq, nyq)
            cos = _cosine(init, bundle, f, g, q, sample_rate)
            if floor is not None:
                newly = torch.from_numpy(cos < floor) & ~frozen
                if bool(newly.any()):  # back to the step before, and held there
                    with torch.no_grad():
                        for leaf, before, keep in zip(leaves, prev, held):
                            leaf[newly] = before[newly]
                            keep[newly] = before[newly]
                    frozen |= newly
                    f, g, q = _physical(g10, logf, logq, nyq)
                    cos = _cosine(init, bundle, f, g, q, sample_rate)
            if k in wanted:
                kept[k] = _refined(init, *(v.detach().numpy().copy() for v in (f, g, q)))
            dist, d_lu, rms, loss = objective(f, g, q)
            if k < steps:
                prev = tuple(v.detach().clone() for v in leaves)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if bool(frozen.any()):
                    with torch.no_grad():
                        for leaf, keep in zip(leaves, held):
                            leaf[frozen] = keep[frozen]
            rows.append({"step": k, "seconds": elapsed, "distance": float(dist.detach().sqrt().mean()),
                         "loss": float(loss.detach()), "loudness_lu": float(d_lu.detach().abs().mean()),
                         "rms_db": float(rms.detach().mean()), "cosine": float(np.mean(cos)),
                         "stopped": int(frozen.sum())})
            elapsed += time.perf_counter() - t0
    return kept, pd.DataFrame(rows)


def refine_settings(
    bundle: SemanticEQ,
    audio: Any,
    sample_rate: int,
    descriptor: str,
    intensity: float = 1.0,
    steps: int = 50,
    lr: float = 0.05,
    seed: int = 0,
    **kwargs: Any,
) -> tuple[EQSettings, pd.DataFrame]:
    """The refined settings after ``steps`` Adam steps and the per-step history
    (:func:`refine_trajectory`, whose arguments this takes)."""
    kept, history = refine_trajectory(bundle, audio, sample_rate, descriptor, intensity, steps, lr, seed, **kwargs)
    return kept[int(steps)], history


def refinement_quality(
    bundle: SemanticEQ,
    meta: pd.DataFrame,
    audio: torch.Tensor,
    sample_rate: int,
    descriptor: str = "warm",
    intensity: float = 1.0,
    steps: Sequence[int] = REFINE_STEPS,
    lr: float = 0.05,
    seed: int = 0,
    progress: bool = True,
    cosine_slack: float | None = COSINE_SLACK,
) -> pd.DataFrame:
    """Quality vs time of refinement on music clips, one refinement per clip (with the stopping
    rule of :func:`refine_trajectory` unless ``cosine_slack`` is ``None``).

    Each clip is refined for ``max(steps)`` steps; at every ``N`` in ``steps`` its settings are
    applied (exact IIR) and measured as the evaluation of notebook 09 measures:

    Returns:
        One row per clip x ``N``: ``clip``, ``track``, ``steps``, ``seconds`` (cumulative CPU wall
        time to reach ``N``, one thread), ``distance`` (latent distance of the re-encoded output to
        the goal, :meth:`SemanticEQ.encode`), ``position_before``/``position_after`` (along the
        descriptor's axis), ``cosine`` and ``amount_db`` of the applied curve against the
        descriptor's mean SAFE curve, ``rms_db``, ``tilt_before``/``tilt_after`` (dB/octave,
        encoder-free), ``loudness_lu`` (absolute change) and ``stopped`` (the stopping rule halted
        the clip by step ``N``).
    """
    from tqdm.auto import tqdm


    d = bundle.descriptor(descriptor)
    steps = sorted(int(s) for s in steps)
    rows = []
    for k in tqdm(range(len(meta)), desc=f"refine '{d}'", disable=not progress, leave=False):
        x = audio[k : k + 1]
        kept, hist = refine_trajectory(bundle, x, sample_rate, d, intensity, steps[-1], lr, seed, snapshots=steps,
                                       cosine_slack=cosine_slack)
        tilt_before = float(spectral_tilt(x, sample_rate)[0])
        pos_before = float(bundle.positions(bundle.encode(x, sample_rate), [d])[0, 0])
        l_in = float(loudness(x.double(), sample_rate, gated=False)[0])
        for n in steps:
            s = kept[n]
            y = s.apply(x, sample_rate)
            z = bundle.encode(y, sample_rate)
            cm = curve_metrics(s.response_db(bundle.reference_freqs_hz, sample_rate), bundle.reference_curves[d])
            rows.append({
                "clip": meta["clip"].iloc[k], "track": meta["track"].iloc[k], "descriptor": d, "intensity": float(intensity),
                "steps": n, "seconds": float(hist["seconds"].iloc[n]),
                "distance": float(np.linalg.norm(bundle.relative(z)[0] - s.z_new[0])),
                "position_before": pos_before, "position_after": float(bundle.positions(z, [d])[0, 0]),
                "cosine": float(cm["cosine"][0]), "amount_db": float(cm["amount_db"][0]), "rms_db": float(cm["rms_db"][0]),
                "tilt_before": tilt_before, "tilt_after": float(spectral_tilt(y, sample_rate)[0]),
                "loudness_lu": abs(float(loudness(y.double(), sample_rate, gated=False)[0]) - l_in),
                "stopped": bool(hist["stopped"].iloc[n] > 0),
            })  # fmt: skip
    return pd.DataFrame(rows)


def summarize_refinement(rows: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per ``N``: means over clips of :func:`refinement_quality`'s measures, with 95 %
    bootstrap intervals over tracks for the distance and its reduction from ``N = 0``.

    Columns: ``steps``, ``clips``, ``tracks``, ``seconds``, ``distance`` (+ ``_lo``/``_hi``),
    ``reduction`` (1 - distance / distance at N = 0, pooled; + ``_lo``/``_hi``), ``position_after``,
    ``tilt_change``, ``cosine``, ``rms_db``, ``loudness_lu``, ``stopped`` (share of clips the
    stopping rule has halted by ``N``).
    """

    if rows.empty:
        raise ValueError("no refinement results to summarize")
    base = rows[rows["steps"] == rows["steps"].min()].set_index("clip")["distance"]
    rows = rows.assign(distance_0=rows["clip"].map(base))
    out = []
    for n, g in rows.groupby("steps"):
        dist = lambda f: float(f["distance"].mean())  # noqa: E731
        red = lambda f: float(1.0 - f["distance"].sum() / max(f["distance_0"].sum(), 1e-12))  # noqa: E731
        lo, hi = bootstrap_ci(g, dist, n_boot=n_boot, seed=seed)
        rlo, rhi = bootstrap_ci(g, red, n_boot=n_boot, seed=seed)
        out.append({"steps": int(n), "clips": int(g["clip"].nunique()), "tracks": int(g["track"].nunique()),
                    "seconds": float(g["seconds"].mean()), "distance": dist(g), "distance_lo": lo, "distance_hi": hi,
                    "reduction": red(g), "reduction_lo": rlo, "reduction_hi": rhi,
                    "position_after": float(g["position_after"].mean()),
                    "tilt_change": float((g["tilt_after"] - g["tilt_before"]).mean()),
                    "cosine": float(g["cosine"].mean()), "rms_db": float(g["rms_db"].mean()),
                    "loudness_lu": float(g["loudness_lu"].mean()),
                    "stopped": float(g["stopped"].mean()) if "stopped" in g else float("nan")})
    return pd.DataFrame(out)
