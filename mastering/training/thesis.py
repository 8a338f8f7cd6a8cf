"""Training of the thesis baseline (:mod:`mastering.models.thesis`) on Phase 1B's data and budget.

:func:`thesis_config` resolves Phase 1B's :class:`~mastering.training.config.TrainConfig` plus the
profile's ``thesis`` section; :func:`fit_or_load_thesis` trains :class:`MelUNetLSTM` with
:class:`ThesisLoss` (L1 of log magnitudes plus spectral convergence on the STFT grid), or reuses
the cached identical run (:mod:`mastering.runs`), training through the shared fit loop.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
from tqdm.auto import tqdm

from ..models.thesis import THESIS_CHECKPOINT_FORMAT, MelUNetLSTM, ThesisLoss, thesis_from_state
from ..profiles import get_profile
from ..provenance import atomic_write_text, safe_torch_load
from ..runs import run_folder, run_key
from .config import merge_overrides, train_config
from .data import build_datasets, collate
from .loop import fit, seed_everything
from .trainer import select_device

__all__ = ["thesis_config", "fit_or_load_thesis"]


def thesis_config(profile: str = "smoke", seed: int = 0, progress: bool = True,
                  overrides: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """``(train_config, settings)``: Phase 1B's :class:`mastering.training.config.TrainConfig` for
    ``profile`` (with the profile's ``train`` overrides and ``seed``), and the resolved ``thesis``
    section of the profile (``overrides`` merged: ``{"model": {...}, "loss": {...}, "train": {...}}``).

    Raises:
        ValueError: unknown profile or override key.
    """
    settings = get_profile(profile)["thesis"]
    unknown = set(overrides or {}) - set(settings)
    if unknown:
        raise ValueError(f"unknown thesis setting(s) {sorted(unknown)}; use 'model', 'loss' or 'train'")
    settings = merge_overrides(settings, overrides or {})
    train = merge_overrides(settings["train"], {"seed": int(seed), "progress": bool(progress)})
    config = train_config("1b", profile, **train)
    return config, settings


def _data_fingerprint(data: tuple[Any, Any]) -> str:
    """SHA-1 of every pair's audio (for datasets passed in rather than built from the configuration)."""
    h = hashlib.sha1()
    for split in data:
        h.update(f"|{len(split)}|".encode())
        for i in range(len(split)):
            item = split[i]
            for key in ("degraded", "mastered"):
                h.update(np.ascontiguousarray(item[key].detach().cpu().numpy()).tobytes())
    return h.hexdigest()


def _loader(data, config, train: bool, epoch: int):
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    sampler = (RandomSampler(data, generator=torch.Generator().manual_seed(config.seed * 100003 + epoch))
               if train else SequentialSampler(data))  # the Phase 1B trainer's order
    return DataLoader(data, batch_size=config.batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=0 if config.data.get("cache") else int(config.data.get("num_workers", 0)),
                      drop_last=train and len(data) > config.batch_size)


def _magnitudes(model: MelUNetLSTM, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = batch["degraded"].to(device, non_blocking=True)
    y = batch["mastered"].to(device, non_blocking=True)
    return model.stft(x).abs(), model.stft(y).abs()


@torch.no_grad()
def _evaluate(model: MelUNetLSTM, loss_fn: ThesisLoss, data, config, device) -> tuple[float, float]:
    """Item-weighted mean validation loss of the model and of the identity (output = input)."""
    model.eval()
    total = ident = 0.0
    count = 0
    for batch in _loader(data, config, train=False, epoch=0):
        mag_x, mag_y = _magnitudes(model, batch, device)
        n = mag_x.shape[0]
        total += float(loss_fn(model.process_magnitude(mag_x), mag_y)) * n
        ident += float(loss_fn(mag_x, mag_y)) * n
        count += n
    return total / max(count, 1), ident / max(count, 1)


def fit_or_load_thesis(profile: str = "smoke", seed: int = 0, progress: bool = True, *,
                       data: tuple[Any, Any] | None = None, overrides: dict[str, Any] | None = None,
                       ) -> tuple[MelUNetLSTM, dict[str, Any]]:
    """Train the thesis baseline on Phase 1B's data and budget, or reuse the cached identical run.

    The configuration is Phase 1B's (:func:`mastering.training.config.train_config`): the same
    sample rate, segment length, paired training/validation data
    (:func:`mastering.training.data.build_datasets`), seed, batch size, epochs, steps per epoch,
    AdamW learning rate and weight decay, ReduceLROnPlateau schedule, gradient clipping and device
    (:func:`mastering.training.trainer.select_device`). The loss is :class:`ThesisLoss` between the
    predicted and the mastered STFT magnitudes.

    It trains through :func:`mastering.training.loop.fit`. Files, under the run folder
    ``runs/thesis/<profile>-<hash10>`` (:func:`mastering.runs.run_folder` of the resolved
    configuration, the data's fingerprint when ``data`` is given, and the code): ``config.json``,
    ``metrics.csv`` (per epoch: ``train_loss``, ``valid_loss``, ``identity_valid_loss``, ``lr``,
    ``seconds``), ``best.pt`` (model state, model constructor arguments and configuration: it alone
    rebuilds the model, :func:`mastering.models.thesis.thesis_from_checkpoint`) and ``last.pt``
    (plus optimizer, scheduler and random states: an interrupted run resumes from it).

    Args:
        profile: the profile of the ``thesis`` settings and of Phase 1B.
        seed: seeds the model, the data order and the pairs.
        progress: tqdm progress bars.
        data: ``(train, valid)`` datasets of ``degraded``/``mastered`` pairs to use instead of
            building the configured ones (tests; a caller that has built them already).
        overrides: merged into the profile's settings (``{"model": ..., "loss": ..., "train": ...}``).

    Returns:
        ``(model, info)``: the best model (eval mode, on the CPU) and ``run_dir``, ``epochs``,
        ``seconds`` (training time of all epochs), ``valid_loss`` (best), ``identity_valid_loss``,
        ``trained`` (whether this call trained any epoch), ``history``, ``config``.
    """
    config, settings = thesis_config(profile, seed, progress, overrides)
    resolved = {"train": {k: v for k, v in config.to_dict().items() if k not in ("progress", "tensorboard", "wandb")},
                "model": settings["model"], "loss": settings["loss"]}
    key = run_key(resolved, [__name__], pairs=_data_fingerprint(data) if data is not None else "build_datasets")
    run_dir = run_folder("thesis", profile, key)
    last = run_dir / "last.pt"
    saved = safe_torch_load(last) if last.is_file() else None
    trained = saved is None or int(saved.get("epoch", 0)) < config.epochs
    if trained:
        _train(config, settings, data, run_dir, key, progress)
        saved = safe_torch_load(last)
    best_state = safe_torch_load(run_dir / "best.pt")
    history = list(saved["history"])
    info = {"run_dir": str(run_dir), "epochs": int(saved["epoch"]),
            "seconds": round(sum(float(r["seconds"]) for r in history), 3),
            "valid_loss": float(saved["best_value"]), "identity_valid_loss": float(saved["caller"]["identity"]),
            "trained": trained, "history": history, "config": resolved}
    return thesis_from_state(best_state), info


def _train(config, settings: dict[str, Any], data, run_dir, key: dict[str, Any], progress: bool) -> None:
    """Train (or resume) the run in ``run_dir`` to ``config.epochs`` epochs."""
    device = select_device(config.device)
    seed_everything(config.seed)
    model = MelUNetLSTM(sample_rate=config.sample_rate, channels=2, **settings["model"]).to(device)
    loss_fn = ThesisLoss(**settings["loss"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.lr_factor,
                                                           patience=config.lr_patience, min_lr=config.min_lr)
    train_data, valid_data = data if data is not None else build_datasets(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps({**key, "run": run_dir.name}, indent=2, sort_keys=True) + "\n")
    ident = {"identity": None}
    if not (run_dir / "last.pt").is_file():
        ident["identity"] = _evaluate(model, loss_fn, valid_data, config, device)[1]

    def train_epoch(epoch: int) -> dict[str, float]:
        loader = _loader(train_data, config, train=True, epoch=epoch)
        limit = min(config.steps_per_epoch or len(loader), len(loader))
        sums, count = 0.0, 0
        bar = tqdm(total=limit, desc=f"thesis epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for i, batch in enumerate(loader):
            if i >= limit:
                break
            mag_x, mag_y = _magnitudes(model, batch, device)
            loss = loss_fn(model.process_magnitude(mag_x), mag_y)
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                continue
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            sums += float(loss.detach())
            count += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            bar.update(1)
        bar.close()
        return {"train_loss": sums / max(count, 1)}

    def validate() -> dict[str, float]:
        return {"valid_loss": _evaluate(model, loss_fn, valid_data, config, device)[0],
                "identity_valid_loss": ident["identity"]}

    fit(model, optimizer, train_epoch, config.epochs, validate=validate, monitor="valid_loss", scheduler=scheduler,
        folder=run_dir, state=lambda: dict(ident), load_state=ident.update, desc="thesis baseline", progress=progress,
        best_extra=lambda: {"format": THESIS_CHECKPOINT_FORMAT, "model_config": dict(model.config), "config": key})
