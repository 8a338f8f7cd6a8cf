"""The fit loop shared by the thesis baseline, the semantic VAE, the audio encoder and the E2E stage.

:func:`fit` runs epochs (or blocks of steps) of a caller's ``train_epoch``, validates, steps the
learning-rate schedule, keeps the best weights, stops early, shows progress and, given a run folder,
checkpoints ``last.pt`` so that an interrupted run resumes exactly where it stopped.
Seeding helpers (:func:`seed_everything`, :func:`rng_state`) live here too.
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..provenance import atomic_torch_save, safe_torch_load

__all__ = ["FitResult", "fit", "seed_everything", "rng_state", "set_rng_state", "write_csv"]

LOOP_FORMAT = "mastering-fit-v1"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The torch, NumPy and Python global random states as tensors and plain data (for checkpoints)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(cached)),
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (older checkpoints' NumPy state is an array: also accepted)."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(tuple(state["numpy"]))
    random.setstate(state["python"])


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts; columns in order of first appearance) to ``path`` atomically; nothing when empty."""
    if not rows:
        return
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


@dataclass
class FitResult:
    """What :func:`fit` did: one ``history`` row per epoch, the best epoch (0-based; -1 without a
    monitor) and its value, whether this call trained or resumed, and the run's total epochs."""
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_value: float = math.inf
    trained: bool = False
    resumed: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _resume(last: Path, model, optimizer, scheduler, load_state) -> tuple[list, int, float, dict | None]:
    """Restore every state from ``last.pt``; return the history, best epoch, best value and best weights."""
    saved = safe_torch_load(last)
    if not isinstance(saved, dict) or saved.get("format") != LOOP_FORMAT:
        raise ValueError(f"{last} is not a checkpoint of the fit loop; remove the folder {last.parent} to start afresh")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved.get("scheduler") is not None:
        scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    if load_state is not None:
        load_state(saved["caller"])
    return list(saved["history"]), int(saved["best_epoch"]), float(saved["best_value"]), saved["best_state"]


def _epoch(model, optimizer, train_epoch, validate, scheduler, monitor: str | None, epoch: int) -> dict[str, Any]:
    """Train one epoch, validate, step the schedule; the epoch's history row."""
    start = time.perf_counter()
    model.train()
    row: dict[str, Any] = {"epoch": epoch + 1, **train_epoch(epoch)}
    if validate is not None:
        model.eval()
        row.update(validate())
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(float(row[monitor]))
    elif scheduler is not None:
        scheduler.step()
    row.update(lr=optimizer.param_groups[0]["lr"], seconds=round(time.perf_counter() - start, 3))
    return row


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_epoch: Callable[[int], dict[str, float]],
    epochs: int,
    *,
    validate: Callable[[], dict[str, float]] | None = None,
    monitor: str | None = None,
    min_delta: float = 0.0,
    patience: int | None = None,
    scheduler: Any = None,
    folder: str | os.PathLike | None = None,
    state: Callable[[], dict[str, Any]] | None = None,
    load_state: Callable[[dict[str, Any]], None] | None = None,
    save_every_s: float = 0.0,
    restore_best: bool = True,
    desc: str = "fit",
    progress: bool = True,
    postfix: Callable[[dict[str, Any]], dict[str, str]] | None = None,
    best_extra: Callable[[], dict[str, Any]] | None = None,
) -> FitResult:
    """Train ``model`` for up to ``epochs`` calls of ``train_epoch(epoch)``.

    After each call, ``validate()`` (if given) adds its values to the epoch's row, a
    ``ReduceLROnPlateau`` ``scheduler`` steps on ``monitor`` (another scheduler steps once), the
    weights are kept when ``row[monitor]`` fell by more than ``min_delta``, and training stops when
    it has not for ``patience`` epochs. Rows also hold ``epoch`` (1-based), ``lr`` and ``seconds``.

    With a ``folder``, ``last.pt`` (model, optimizer, scheduler, global random states, the
    caller's ``state()`` such as its own generators, history, best weights) is written atomically
    after an epoch (at most every ``save_every_s`` seconds, and after the last one), ``best.pt``
    (``model_state``, ``epoch``, ``value`` and the caller's ``best_extra()``, e.g. the model's
    configuration, so that the file alone rebuilds the model) whenever they improve, and ``metrics.csv``. A later call with the same
    folder resumes from ``last.pt`` (``load_state`` gets the caller's state back), so the
    interrupted run and the uninterrupted one end with the same weights. At the end the best
    weights are loaded into ``model`` (``restore_best``, when a monitor is given).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    folder = Path(folder) if folder is not None else None
    result = FitResult()
    best_state = _cpu_state(model) if monitor else None
    last = folder / "last.pt" if folder is not None else None
    if last is not None and last.is_file():
        result.history, result.best_epoch, result.best_value, best_state = _resume(
            last, model, optimizer, scheduler, load_state)
        result.resumed = True

    def checkpoint() -> None:
        atomic_torch_save({"format": LOOP_FORMAT, "epoch": result.epochs_run, "date": _now(),
                           "model": _cpu_state(model), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict() if scheduler is not None else None,
                           "rng": rng_state(), "caller": state() if state is not None else {},
                           "history": result.history, "best_epoch": result.best_epoch,
                           "best_value": result.best_value, "best_state": best_state}, last)
        write_csv(folder / "metrics.csv", result.history)

    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=epochs, initial=result.epochs_run, desc=desc, disable=not progress, leave=False)
    saved_at = time.perf_counter()
    for epoch in range(result.epochs_run, epochs):
        if patience is not None and result.best_epoch >= 0 and epoch - 1 - result.best_epoch >= patience:
            break  # a resumed run that had already stopped early
        row = _epoch(model, optimizer, train_epoch, validate, scheduler, monitor, epoch)
        value = float(row[monitor]) if monitor else None
        result.history.append(row)
        result.trained = True
        improved = monitor is not None and value < result.best_value - min_delta
        if improved:
            result.best_value, result.best_epoch, best_state = value, epoch, _cpu_state(model)
        stop = patience is not None and epoch - result.best_epoch >= patience
        if folder is not None:
            if improved:
                atomic_torch_save({"format": LOOP_FORMAT, "model_state": best_state, "epoch": epoch + 1,
                                   "value": value, "date": _now(), **(best_extra() if best_extra else {})},
                                  folder / "best.pt")
            if stop or epoch + 1 == epochs or time.perf_counter() - saved_at >= save_every_s:
                checkpoint()
                saved_at = time.perf_counter()
        bar.update(1)
        bar.set_postfix(postfix(row) if postfix else {k: f"{v:.4f}" for k, v in row.items()
                                                        if isinstance(v, float) and k not in ("lr", "seconds")})
        if stop:
            break
    bar.close()
    if monitor and restore_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result

