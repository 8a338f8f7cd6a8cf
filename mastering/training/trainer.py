"""One trainer for the Phase 1A, 1B and 1C mastering models.

AdamW with ReduceLROnPlateau, gradient clipping, mixed precision on CUDA, seeds, checkpoint and
resume, precise BatchNorm, CSV metrics (TensorBoard / W&B optional) and DDP under ``torchrun``::

    python -m mastering.training --phase 1b --profile full
    torchrun --nproc_per_node 4 -m mastering.training --phase 1b --profile full

Checkpoints (tensors and plain data, loaded with ``weights_only=True``) hold the configuration, the
model's constructor arguments and every state. A run writes
``runs/mastering/phase1b-smoke-<hash>/{config.json, last.pt, best.pt, metrics.csv, steps.csv}``
(the hash: :meth:`mastering.training.config.TrainConfig.digest`); ``runs/mastering/latest.json``
names the checkpoint that ``mastering master`` uses by default.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from .. import __version__, paths
from ..dsp.loudness import loudness
from ..losses import MasteringLoss
from ..models.mastering import MasteringModel, build_model
from ..provenance import atomic_torch_save, atomic_write_text, git_commit, safe_torch_load
from .loop import rng_state, seed_everything, set_rng_state, write_csv
from .config import TrainConfig
from .data import build_datasets, collate

__all__ = ["Trainer", "seed_everything", "select_device", "latest_checkpoint", "rng_state", "set_rng_state",
           "write_csv", "CHECKPOINT_FORMAT", "train"]

CHECKPOINT_FORMAT = "mastering-checkpoint/1"
_PERCEPTUAL = ("stft", "aweighted", "loudness")


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``: ``cuda:<local_rank>`` when CUDA is available, else the CPU.

    Raises:
        ValueError: a CUDA device is requested but none is available.
    """
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def latest_checkpoint() -> dict[str, Any] | None:
    """The record of the last finished training run (``runs/mastering/latest.json``), or None."""
    pointer = paths.runs_dir() / "mastering" / "latest.json"
    if not pointer.is_file():
        return None
    try:
        record = json.loads(pointer.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if Path(record.get("checkpoint", "")).is_file() else None


class Trainer:
    """Trains a :class:`mastering.models.mastering.MasteringModel` on paired data.

    Args:
        config: the :class:`TrainConfig`.
        train_data, valid_data: map-style datasets of dicts with ``degraded`` and ``mastered``
            ``[channels, samples]`` tensors (e.g. :func:`mastering.training.data.build_datasets`).
        run_dir: where checkpoints and metrics go (default ``runs/mastering/<config.run_name()>``).
        model: a model to train instead of ``build_model(**config.model_kwargs())``.
        publish: on finishing, record the best checkpoint in ``runs/mastering/latest.json`` (the
            default checkpoint of ``mastering master``).
    """

    def __init__(
        self,
        config: TrainConfig,
        train_data: Dataset,
        valid_data: Dataset,
        run_dir: str | Path | None = None,
        model: MasteringModel | None = None,
        publish: bool = True,
    ):
        self.config = config
        self.train_data = train_data
        self.valid_data = valid_data
        self.publish = publish
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.distributed = self.world_size > 1
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = select_device(config.device, local_rank)
        if self.distributed and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend)
        self.rank = dist.get_rank() if self.distributed else 0
        self.is_main = self.rank == 0
        seed_everything(config.seed)

        self.module = model if model is not None else build_model(**config.model_kwargs())
        if self.module.sample_rate != config.sample_rate:
            raise ValueError(f"model rate {self.module.sample_rate} Hz differs from the configuration's "
                             f"{config.sample_rate} Hz")
        self.module.to(self.device)
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.module, device_ids=ids)
        else:
            self.model = self.module
        self.loss_fn = MasteringLoss(config.sample_rate, **config.loss).to(self.device)
        self.reg_weights = {"sparsity": config.w_sparsity, "decisiveness": config.w_decisiveness}
        self.optimizer = torch.optim.AdamW(self.module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr)
        self.use_amp = bool(config.amp) and self.device.type == "cuda"
        self.amp_dtype = (torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

        self.run_dir = Path(run_dir) if run_dir is not None else paths.runs_dir() / "mastering" / config.run_name()
        self.epoch = 0
        self.step = 0
        self.best_valid = math.inf
        self.history: list[dict[str, Any]] = []
        self.steps_log: list[dict[str, Any]] = []
        self.identity: dict[str, float] | None = None
        self.skipped_steps = 0
        self._writers: dict[str, Any] = {}

    # -- losses ------------------------------------------------------------------------------

    def _reference_lufs(self, target: torch.Tensor) -> torch.Tensor | None:
        if self.module.loudness is None:
            return None
        with torch.no_grad():
            return loudness(target.float(), self.config.sample_rate)

    def _terms(self, output: torch.Tensor, target: torch.Tensor, params: dict | None) -> dict[str, torch.Tensor]:
        eq = params["eq"] if params else None
        terms = self.loss_fn.components(output.float(), target.float(),
                                        eq["gain_db"].float() if eq else None, eq["q"].float() if eq else None)
        if params:
            for name, value in self.module.regularization(params).items():
                terms[name] = value
        return terms

    def _total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        total = self.loss_fn.total({k: v for k, v in terms.items() if k in self.loss_fn.weights})
        for name, weight in self.reg_weights.items():
            if name in terms and weight:
                total = total + weight * terms[name]
        return total

    def _perceptual(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.loss_fn.weights[k] * terms[k] for k in _PERCEPTUAL if k in terms)

    def batch_losses(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, terms)`` of the model on one batch (``terms`` adds ``total`` and ``perceptual``)."""
        x = batch["degraded"].to(self.device, non_blocking=True)
        y = batch["mastered"].to(self.device, non_blocking=True)
        target_lufs = self._reference_lufs(y)
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            out = self.model(x, target_lufs=target_lufs)
        terms = self._terms(out["output"], y, out["params"])
        total = self._total(terms)
        terms = dict(terms, total=total, perceptual=self._perceptual(terms))
        return total, terms

    # -- loops --------------------------------------------------------------------------------

    def _loader(self, data: Dataset, train: bool, epoch: int = 0) -> DataLoader:
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        if self.distributed:
            sampler = DistributedSampler(data, shuffle=train, seed=self.config.seed, drop_last=train)
            sampler.set_epoch(epoch)
        elif train:
            generator = torch.Generator().manual_seed(self.config.seed * 100003 + epoch)
            sampler = RandomSampler(data, generator=generator)
        else:
            sampler = SequentialSampler(data)
        # pairs already made (in memory or on disk) are read here; workers only make fresh pairs
        workers = 0 if self.config.data.get("cache") else int(self.config.data.get("num_workers", 0))
        return DataLoader(data, batch_size=self.config.batch_size, sampler=sampler, collate_fn=collate,
                          num_workers=workers, drop_last=train and len(data) > self.config.batch_size,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    def train_epoch(self) -> dict[str, float]:
        """One epoch of optimization; returns the mean of each loss term."""
        from tqdm.auto import tqdm

        self.model.train()
        loader = self._loader(self.train_data, train=True, epoch=self.epoch)
        limit = self.config.steps_per_epoch or len(loader)
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(total=min(limit, len(loader)), desc=f"phase {self.config.phase} epoch {self.epoch + 1}/"
                   f"{self.config.epochs}", disable=not (self.config.progress and self.is_main), leave=False)
        for i, batch in enumerate(loader):
            if i >= limit:
                break
            self.optimizer.zero_grad(set_to_none=True)
            total, terms = self.batch_losses(batch)
            if not torch.isfinite(total):
                self.skipped_steps += 1
                warnings.warn(f"non-finite loss at step {self.step}; batch skipped", RuntimeWarning, stacklevel=2)
                continue
            self.scaler.scale(total).backward()
            if self.config.grad_clip:
                self.scaler.unscale_(self.optimizer)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.config.grad_clip))
            else:
                grad_norm = float("nan")
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            values = {k: float(v.detach()) for k, v in terms.items()}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            row = {"step": self.step, "epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"],
                   "grad_norm": grad_norm, **values}
            self.steps_log.append(row)
            self._log_scalars("train_step", values, self.step)
            bar.set_postfix(loss=f"{values['total']:.4f}")
            bar.update(1)
        bar.close()
        return self._reduce(sums, count)

    @torch.no_grad()
    def recalibrate_batchnorm(self, batches: int | None = None) -> int:
        """Re-estimate BatchNorm statistics as exact averages over training batches ("precise BN").

        Running statistics are reset and recomputed with a cumulative average (``momentum=None``)
        from up to ``batches`` training batches in training mode, without gradients; under DDP the
        processes' estimates are averaged. Returns the number of batches used.
        """
        batches = self.config.precise_bn_batches if batches is None else int(batches)
        norms = [m for m in self.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms or batches <= 0:
            return 0
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        self.module.train()
        used = 0
        for batch in self._loader(self.train_data, train=True, epoch=self.epoch):
            if used >= batches:
                break
            with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                self.module.encode(batch["degraded"].to(self.device, non_blocking=True))
            used += 1
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            if self.distributed:
                for buf in (m.running_mean, m.running_var):
                    dist.all_reduce(buf)
                    buf /= self.world_size
        return used

    def _reduce(self, sums: dict[str, float], count: int) -> dict[str, float]:
        if self.distributed:
            keys = sorted(sums)
            t = torch.tensor([sums[k] for k in keys] + [count], dtype=torch.float64, device=self.device)
            dist.all_reduce(t)
            sums = dict(zip(keys, t[:-1].tolist()))
            count = int(t[-1])
        return {k: v / max(count, 1) for k, v in sums.items()}

    @torch.no_grad()
    def evaluate(self, data: Dataset | None = None) -> dict[str, float]:
        """Mean loss terms of the model on ``data`` (default: the validation set), item-weighted."""
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        for batch in self._loader(self.valid_data if data is None else data, train=False):
            n = batch["degraded"].shape[0]
            _, terms = self.batch_losses(batch)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
        return self._reduce(sums, count)

    @torch.no_grad()
    def identity_losses(self, data: Dataset | None = None) -> dict[str, float]:
        """Loss terms of the identity (output = input) on ``data`` (default: validation set).

        ``identity_*``: the input as it is; ``identity_matched_*``: the input brought to the
        reference's loudness by the same loudness stage the model has (the fair baseline when
        that stage is on). Keys: ``..._stft``, ``..._aweighted``, ``..._loudness``, ``..._perceptual``.
        """
        sums: dict[str, float] = {}
        count = 0
        stage = self.module.loudness
        for batch in self._loader(self.valid_data if data is None else data, train=False):
            x = batch["degraded"].to(self.device)
            y = batch["mastered"].to(self.device)
            n = x.shape[0]
            variants = {"identity": x}
            if stage is not None:
                variants["identity_matched"] = stage(x, self.config.sample_rate, self._reference_lufs(y))[0]
            for name, out in variants.items():
                terms = self._terms(out, y, None)
                terms["perceptual"] = self._perceptual(terms)
                for k, v in terms.items():
                    sums[f"{name}_{k}"] = sums.get(f"{name}_{k}", 0.0) + float(v) * n
            count += n
        return self._reduce(sums, count)

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the model and resume training."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "model_config": dict(self.module.config),
            "model_state": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_valid": self.best_valid,
            "history": self.history,
            "steps_log": self.steps_log,
            "identity": self.identity,
            "rng": rng_state(),
            "code": {"version": __version__, "commit": git_commit()},
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "world_size": self.world_size,
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` atomically (main process only)."""
        path = Path(path)
        if self.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save(self.state_dict(), path)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore every state from a checkpoint of the same configuration.

        Raises:
            ValueError: the checkpoint is not a mastering checkpoint (or holds more than tensors and
                plain data) or its configuration differs.
        """
        state = safe_torch_load(path, map_location=self.device)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a training checkpoint of this trainer")
        mine = {k: v for k, v in self.config.to_dict().items() if k not in ("epochs", "progress", "tensorboard", "wandb")}
        theirs = {k: v for k, v in state["config"].items() if k not in ("epochs", "progress", "tensorboard", "wandb")}
        if mine != theirs:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"{path} was trained with a different configuration (differs in {diff})")
        self.module.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_valid = float(state["best_valid"])
        self.history = list(state["history"])
        self.steps_log = list(state.get("steps_log", []))
        self.identity = state.get("identity")
        if "torch" in (state.get("rng") or {}):
            set_rng_state(state["rng"])

    # -- logging -------------------------------------------------------------------------------

    def _log_scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if not self.is_main or not (self.config.tensorboard or self.config.wandb):
            return
        if self.config.tensorboard:
            if "tb" not in self._writers:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    raise RuntimeError("tensorboard=True needs the tensorboard package (`pip install tensorboard`)") from None
                self._writers["tb"] = SummaryWriter(str(self.run_dir / "tensorboard"))
            for k, v in values.items():
                self._writers["tb"].add_scalar(f"{prefix}/{k}", v, step)
        if self.config.wandb:
            if "wandb" not in self._writers:
                try:
                    import wandb
                except ImportError:
                    raise RuntimeError("wandb=True needs the wandb package (`pip install wandb`)") from None
                self._writers["wandb"] = wandb.init(project="auto-mastering", name=self.run_dir.name,
                                                    config=self.config.to_dict(), dir=str(self.run_dir))
            self._writers["wandb"].log({f"{prefix}/{k}": v for k, v in values.items()}, step=step)

    def _write_logs(self) -> None:
        if not self.is_main:
            return
        write_csv(self.run_dir / "metrics.csv", self.history)
        write_csv(self.run_dir / "steps.csv", self.steps_log)

    # -- the loop ------------------------------------------------------------------------------

    def fit(self, resume: bool = True) -> list[dict[str, Any]]:
        """Train to ``config.epochs`` epochs (resuming from ``last.pt`` when present); return the history.

        Each history row holds ``epoch``, ``step``, ``lr``, ``seconds``, ``train_<term>`` and
        ``valid_<term>`` for every loss term, and the identity baseline's terms.
        """
        last = self.run_dir / "last.pt"
        if resume and last.is_file():
            self.load_checkpoint(last)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2, sort_keys=True) + "\n")
        if self.identity is None:
            self.identity = self.identity_losses()
        while self.epoch < self.config.epochs:
            start = time.perf_counter()
            train = self.train_epoch()
            self.recalibrate_batchnorm()
            valid = self.evaluate()
            self.scheduler.step(valid["total"])
            self.epoch += 1
            row = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                   "seconds": round(time.perf_counter() - start, 3),
                   **{f"train_{k}": v for k, v in train.items()}, **{f"valid_{k}": v for k, v in valid.items()},
                   **self.identity}
            self.history.append(row)
            self._log_scalars("epoch", {k: v for k, v in row.items() if isinstance(v, float)}, self.step)
            if valid["total"] < self.best_valid:
                self.best_valid = valid["total"]
                self.save_checkpoint(self.run_dir / "best.pt")
            self.save_checkpoint(last)
            self._write_logs()
        if self.is_main and self.publish and (self.run_dir / "best.pt").is_file():
            self._publish()
        for writer in self._writers.values():
            finish = getattr(writer, "close", None) or getattr(writer, "finish", None)
            if finish:
                finish()
        self._writers = {}
        return self.history

    def _publish(self) -> None:
        best = min(self.history, key=lambda r: r["valid_total"]) if self.history else {}
        record = {"checkpoint": str((self.run_dir / "best.pt").resolve()), "phase": self.config.phase,
                  "profile": self.config.profile, "run": self.run_dir.name, "epochs": self.epoch,
                  "valid_total": best.get("valid_total"),
                  "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        atomic_write_text(paths.runs_dir() / "mastering" / "latest.json", json.dumps(record, indent=2) + "\n")

    def close(self) -> None:
        """Leave the process group (DDP)."""
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def train(config: TrainConfig, run_dir: str | Path | None = None, resume: bool = True,
          publish: bool = True) -> tuple[Trainer, list[dict[str, Any]]]:
    """Build the configured datasets and model, train, and return ``(trainer, history)``."""
    train_data, valid_data = build_datasets(config)
    trainer = Trainer(config, train_data, valid_data, run_dir=run_dir, publish=publish)
    history = trainer.fit(resume=resume)
    return trainer, history
