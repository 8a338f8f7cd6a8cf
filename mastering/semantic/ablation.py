"""The CLAP ablation: audio encoders into the semantic latent compared under one protocol.

Notebook ``11_clap_ablation``. Entry point :func:`run_clap_ablation` trains (or reuses) every arm
of :data:`ARMS` and evaluates each on the same held-out settings; :func:`mixture_pool` builds the
multi-source training pool and :func:`eval_subset` the shared evaluation subset. Tables and
figures: :mod:`mastering.semantic.report_clap`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.datasets import MultiSourceDataset
from ..dsp.signals import pink_noise
from ..profiles import get_profile
from . import clap
from .encoder import ENCODER_VARIANTS, evaluate_encoder, fit_or_load_encoder, variant_settings
from .vae import SemanticVAE, single_thread

__all__ = ["ARMS", "mixture_pool", "eval_subset", "run_clap_ablation"]

#: The arms in table order: ``(name, encoder, trained on)``. ``custom-*``: the main log-mel CNN
#: (MSE; ``cnn-mse`` / ``cnn-mse-music`` of :data:`mastering.semantic.encoder.ENCODER_VARIANTS`)
#: trained on pink noise, on real-music training excerpts, or on the multi-source mixture
#: (:func:`mixture_pool`); ``clap-random``: a frozen, seeded random-init LAION-CLAP audio branch
#: with a trainable projection (:mod:`mastering.semantic.clap`), the control for architecture vs
#: pretraining; ``clap-pretrained``: the same branch with a released checkpoint's weights.
ARMS = (
    ("custom-pink", "CNN (ours)", "pink"),
    ("custom-music", "CNN (ours)", "music"),
    ("custom-mixture", "CNN (ours)", "mixture"),
    ("clap-random", "CLAP HTS-AT, random init, frozen", "pink"),
    ("clap-pretrained", "CLAP HTS-AT, pretrained, frozen", "pink"),
)


def mixture_pool(
    profile: str,
    music_train: tuple[pd.DataFrame, torch.Tensor],
    rendered_train: tuple[pd.DataFrame, torch.Tensor] | None,
    seed: int = 0,
    ratios: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, torch.Tensor]:
    """The multi-source mixture as a pool of excerpts for :func:`~mastering.semantic.encoder.render_batch`.

    A :class:`~mastering.data.datasets.MultiSourceDataset` over pink noise (seeded, -20 dBFS RMS,
    two channels), the real-music training excerpts ``music_train`` and the rendered ones
    ``rendered_train`` (``(meta, audio)`` of :func:`mastering.semantic.evaluate.music_clips`), drawn
    with the profile's ``source_ratios`` (sources without excerpts dropped, the rest renormalized);
    as many draws as make the real excerpts appear about once each.

    Returns:
        ``(meta, audio)``: ``meta`` with ``source`` and ``clip`` (``pink#k`` for noise) per pool
        entry, ``audio`` ``[n, 2, samples]``.
    """

    ratios = dict(ratios or get_profile(profile)["source_ratios"])
    meta_r, audio_r = music_train
    samples = audio_r.shape[-1]
    sources: dict[str, list[dict[str, Any]]] = {
        "real": [{"audio": a, "clip": c} for a, c in zip(audio_r, meta_r["clip"])],
    }
    if rendered_train is not None and len(rendered_train[0]):
        meta_x, audio_x = rendered_train
        if audio_x.shape[-1] != samples:
            raise ValueError(f"rendered excerpts have {audio_x.shape[-1]} samples, real ones {samples}")
        sources["rendered"] = [{"audio": a, "clip": c} for a, c in zip(audio_x, meta_x["clip"])]
    share_real = ratios.get("real", 0.0) / sum(v for k, v in ratios.items() if k == "pink" or k in sources)
    if share_real <= 0:
        raise ValueError(f"the mixture needs a positive 'real' ratio, got {ratios}")
    length = int(round(len(sources["real"]) / share_real))
    noise = pink_noise(samples, channels=2, batch=length, seed=seed)
    sources["pink"] = [{"audio": noise[k], "clip": f"pink#{k}"} for k in range(length)]
    mix = MultiSourceDataset(sources, ratios, length=length, seed=seed)
    items = [mix[i] for i in range(length)]
    meta = pd.DataFrame({"source": [it["mixture_source"] for it in items], "clip": [it["clip"] for it in items]})
    return meta, torch.stack([it["audio"] for it in items])


def eval_subset(val_index: Sequence[int], max_n: int | None, seed: int = 0) -> np.ndarray:
    """The held-out rows every arm is evaluated on: all of them, or a seeded subset of ``max_n`` (sorted)."""
    val_index = np.asarray(val_index)
    if max_n is None or max_n >= len(val_index):
        return val_index
    return np.sort(np.random.default_rng(seed).choice(val_index, size=int(max_n), replace=False))


def run_clap_ablation(
    vae_model: SemanticVAE,
    vae_folder: str | os.PathLike,
    df: pd.DataFrame,
    history: dict[str, Any],
    profile: str,
    music_train: tuple[pd.DataFrame, torch.Tensor] | None,
    music_test: tuple[pd.DataFrame, torch.Tensor] | None,
    mixture: tuple[pd.DataFrame, torch.Tensor] | None,
    clap_checkpoint: str | os.PathLike | None = None,
    clap_amodel: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (or reuse) every arm and evaluate each on the same held-out settings.

    The CNN arms reuse notebook 08's cached runs (same settings) and see ``steps x batch_size``
    fresh examples; the CLAP head is fitted on ``n_train_examples`` examples embedded once. Every
    arm is scored by :func:`~mastering.semantic.encoder.evaluate_encoder` on the same held-out
    settings (a seeded subset of at most ``max_eval``) on the same pink noise and test excerpts.

    Args:
        vae_model, vae_folder, history: the VAE, its run folder and training history
            (``train_index`` / ``val_index``).
        df: SAFE-DB frame.
        profile: selects the profile's ``ablation`` and ``encoder`` sizes.
        music_train, music_test: ``(meta, audio)`` excerpts of training / test tracks
            (:func:`mastering.semantic.evaluate.music_clips`); ``None`` skips the music arm / evaluation.
        mixture: :func:`mixture_pool`'s pool (``None`` skips the mixture arm).
        clap_checkpoint: a LAION-CLAP checkpoint; the pretrained arm runs only with one.
        clap_amodel: ``"HTSAT-tiny"`` / ``"HTSAT-base"``; ``None``: the checkpoint's size
            (:func:`mastering.semantic.clap.infer_clap_amodel`), ``HTSAT-tiny`` without one. Both
            CLAP arms use the same size.
        seed: seeds every training and the evaluation subset.
        device: where the CLAP arms run (``"auto"``: CUDA when available); the CNNs are
            notebook 08's runs.

    Returns:
        ``(table, arms)``: ``table`` one row per arm that ran and evaluation audio (``arm``,
        ``encoder``, ``init``, ``checkpoint``, ``trained_on``, ``evaluated_on``, ``n``,
        ``latent_mse``, ``r2``, ``pair_accuracy``, ``pair_separation``, ``trainable_parameters``,
        ``train_examples``, ``run``); ``arms`` one row per arm with ``status`` (``ran`` /
        ``skipped``) and ``reason``.
    """

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    params = get_profile(profile)
    size, seg = params["ablation"], params["encoder"]["train"]["segment_seconds"]
    tr, va = np.asarray(history["train_index"]), np.asarray(history["val_index"])
    ev = eval_subset(va, size["max_eval"], seed)
    evals = [("pink", None)] + ([("music", music_test[1])] if music_test is not None else [])
    rows: list[dict[str, Any]] = []
    status: list[dict[str, Any]] = []

    def evaluate(arm: str, enc: torch.nn.Module, **fields: Any) -> None:
        for where, pool in evals:
            _, summary = evaluate_encoder(enc, vae_model, df, ev, tr, segment_seconds=seg, dry_pool=pool)
            rows.append({"arm": arm, "evaluated_on": where, **fields, **summary})

    _run_custom_arms(evaluate, status, vae_model, vae_folder, df, tr, va, profile, music_train, mixture, seed,
                     progress)  # fmt: skip
    _run_clap_arms(evaluate, status, vae_model, df, tr, size, seg, clap_checkpoint, clap_amodel, seed, device,
                   progress)  # fmt: skip
    return _ordered_results(rows, status)


def _run_custom_arms(evaluate, status: list[dict[str, Any]], vae_model: SemanticVAE, vae_folder: str | os.PathLike,
                     df: pd.DataFrame, tr: np.ndarray, va: np.ndarray, profile: str,
                     music_train: tuple[pd.DataFrame, torch.Tensor] | None,
                     mixture: tuple[pd.DataFrame, torch.Tensor] | None, seed: int, progress: bool) -> None:
    """The custom CNN arms: cached runs of notebook 08, plus the mixture (:func:`run_clap_ablation`)."""
    pools: dict[str, tuple[torch.Tensor | None, str | None] | None] = {
        "custom-pink": (None, None),
        "custom-music": None if music_train is None else (music_train[1], ",".join(music_train[0]["clip"])),
        "custom-mixture": None if mixture is None else (mixture[1], "mixture:" + ",".join(mixture[0]["clip"])),
    }
    for arm, label, trained_on in ARMS[:3]:
        if pools[arm] is None:
            status.append({"arm": arm, "status": "skipped", "reason": f"no {trained_on} training audio"})
            continue
        pool, pool_id = pools[arm]
        # compare_encoders' settings for the variant, so notebook 08's run is reused
        variant = "cnn-mse-music" if trained_on != "pink" else "cnn-mse"
        settings = variant_settings(profile, ENCODER_VARIANTS[variant], seed)
        enc, record, folder = fit_or_load_encoder(vae_model, vae_folder, df, tr, va, settings, profile, dry_pool=pool,
                                                  dry_pool_id=pool_id, progress=progress)  # fmt: skip
        n_params = sum(p.numel() for p in enc.parameters())
        evaluate(arm, enc, encoder=label, init="trained", checkpoint="", trained_on=trained_on,
                 trainable_parameters=int(n_params),
                 train_examples=int(settings["train"]["steps"] * settings["train"]["batch_size"]), run=folder.name)  # fmt: skip
        status.append({"arm": arm, "status": "ran", "reason": f"run {folder.name}"})


def _run_clap_arms(evaluate, status: list[dict[str, Any]], vae_model: SemanticVAE, df: pd.DataFrame, tr: np.ndarray,
                   size: dict[str, Any], seg: float, clap_checkpoint: str | os.PathLike | None,
                   clap_amodel: str | None, seed: int, device: str, progress: bool) -> None:
    """The CLAP arms: the random-init control always, the pretrained arm with a checkpoint."""
    available, why = clap.clap_available()
    amodel = clap_amodel
    if amodel is None:
        amodel = clap.infer_clap_amodel(clap_checkpoint) if (available and clap_checkpoint) else "HTSAT-tiny"
    for arm, label, trained_on in ARMS[3:]:
        checkpoint = clap_checkpoint if arm == "clap-pretrained" else None
        if not available:
            status.append({"arm": arm, "status": "skipped", "reason": f"CLAP could not be built: {why}"})
            continue
        if arm == "clap-pretrained" and not clap_checkpoint:
            status.append({"arm": arm, "status": "skipped",
                           "reason": "no checkpoint given, and pretrained CLAP weights cannot be downloaded here"})  # fmt: skip
            continue
        with single_thread(device):  # initialising 30 M weights: many times faster on one thread on a busy CPU
            embedder, info = clap.load_clap_audio_encoder(checkpoint, amodel=amodel, seed=seed, device=device)
        enc = clap.ClapLatentEncoder(embedder, vae_model.latent_dim, hidden=size["hidden"], seed=seed).to(device)
        enc, hist = clap.train_clap_projection(
            enc, vae_model, df, tr, n_examples=size["n_train_examples"], segment_seconds=seg, steps=size["steps"],
            batch_size=size["batch_size"], lr=size["lr"], embed_batch_size=size["embed_batch_size"], seed=seed,
            progress=progress,
        )  # fmt: skip
        n_params = sum(p.numel() for p in enc.trainable_parameters())
        evaluate(arm, enc, encoder=f"{label} ({amodel})", init=info["init"], checkpoint=str(checkpoint or ""),
                 trained_on=trained_on, trainable_parameters=int(n_params), train_examples=size["n_train_examples"],
                 run="")  # fmt: skip
        status.append({"arm": arm, "status": "ran", "reason": _clap_detail(amodel, info, checkpoint, seed)})


def _clap_detail(amodel: str, info: dict[str, Any], checkpoint: str | os.PathLike | None, seed: int) -> str:
    """The ``reason`` of a CLAP arm that ran: size, init and the checkpoint's load report (or the seed)."""
    detail = f"{amodel}, {info['init']}"
    if checkpoint:
        detail += (f" from {checkpoint} ({info['loaded_keys']} tensors loaded, {len(info['missing_keys'])} missing, "
                   f"{len(info['unexpected_keys'])} unexpected)")  # fmt: skip
    else:
        detail += f" (seed {seed})"
    return detail


def _ordered_results(rows: list[dict[str, Any]], status: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(table, arms)`` of :func:`run_clap_ablation`, in :data:`ARMS` order (pink before music)."""
    table = pd.DataFrame(rows)
    for column in ("pair_accuracy", "pair_separation"):  # absent when the subset lacks one of the pair
        if column not in table and not table.empty:
            table[column] = np.nan
    if not table.empty:
        order = {a[0]: i for i, a in enumerate(ARMS)}
        where = {"pink": 0, "music": 1}
        table = table.sort_values(["arm", "evaluated_on"], key=lambda c: c.map(order if c.name == "arm" else where),
                                  kind="stable").reset_index(drop=True)  # fmt: skip
    arms = pd.DataFrame(status)
    arms = arms.assign(_o=arms["arm"].map({a[0]: i for i, a in enumerate(ARMS)})).sort_values("_o").drop(columns="_o")
    return table, arms.reset_index(drop=True)
