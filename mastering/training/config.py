"""Training configuration: one dataclass for every phase, saved into every checkpoint.

:func:`train_config` resolves a configuration from a phase, the profile's ``train`` section of
:mod:`mastering.profiles` and overrides; :meth:`TrainConfig.run_name` names its run folder by a
hash of the resolved configuration plus the code version (so a changed setting or a new commit
never reuses an old run, and the same configuration resumes the same run).

``smoke`` is sized for a 2-core CPU (a small-width model, a few dozen cached pairs, minutes);
``full`` is the paper's recipe (the design's widths, fresh pairs every epoch, GPU). Fields a
profile leaves out take :class:`TrainConfig`'s defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


from ..profiles import get_profile
from ..runs import code_fingerprint

__all__ = ["TrainConfig", "merge_overrides", "train_config"]


def _default_loss() -> dict[str, float]:
    return {"w_stft": 1.0, "w_aweighted": 0.1, "w_loudness": 0.01, "w_params": 0.01}


def _default_data() -> dict[str, Any]:
    return {"ratios": {"pink": 0.3, "real": 0.5, "rendered": 0.2}, "train_items": 256, "valid_items": 64,
            "cache": False, "num_workers": 0}


@dataclass
class TrainConfig:
    """Everything that determines a training run.

    Attributes:
        phase: ``"1a"``, ``"1b"`` or ``"1c"``.
        profile: the profile the sizes came from (recorded; figures say which).
        seed: seeds torch, NumPy, Python and the data order.
        sample_rate: model and data rate in Hz.
        segment_seconds: training segment length.
        batch_size: items per step (per process under DDP).
        epochs: epochs to train (a resumed run continues to this count).
        steps_per_epoch: cap on steps per epoch (``None``: one pass over the training set).
        lr, weight_decay: AdamW.
        lr_patience, lr_factor, min_lr: ReduceLROnPlateau on the validation loss.
        grad_clip: maximum gradient norm (``0`` disables clipping).
        precise_bn_batches: after each epoch, re-estimate the encoder's BatchNorm statistics as
            exact averages over this many training batches ("precise BN", Wu & Johnson 2021,
            "Rethinking 'Batch' in BatchNorm"); the exponential running averages lag far behind
            the weights in short runs. ``0`` keeps the running averages.
        amp: mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling);
            ignored on the CPU.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        model: keyword arguments of :func:`mastering.models.mastering.build_model`.
        loss: weights of :class:`mastering.losses.MasteringLoss`.
        w_sparsity, w_decisiveness: weights of the 1C gate regularizers.
        data: ``ratios`` of the sources (pink / real / rendered), ``train_items``,
            ``valid_items``, ``cache`` (``True``: make the pairs once, in memory; ``"disk"``: once, into
            memory-mapped files shared by every run of the profile), ``num_workers`` (processes making
            pairs; cached pairs are read in the training process).
        tensorboard, wandb: optional loggers (off by default).
        progress: tqdm progress bars.
    """

    phase: str = "1a"
    profile: str = "smoke"
    seed: int = 0
    sample_rate: int = 44100
    segment_seconds: float = 3.0
    batch_size: int = 8
    epochs: int = 10
    steps_per_epoch: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_patience: int = 2
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    grad_clip: float = 1.0
    precise_bn_batches: int = 32
    amp: bool = True
    device: str = "auto"
    model: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, float] = field(default_factory=_default_loss)
    w_sparsity: float = 0.01
    w_decisiveness: float = 0.01
    data: dict[str, Any] = field(default_factory=_default_data)
    tensorboard: bool = False
    wandb: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.phase = str(self.phase).lower()
        if self.phase not in ("1a", "1b", "1c"):
            raise ValueError(f"phase must be '1a', '1b' or '1c', got {self.phase!r}")
        for name in ("batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and int(self.steps_per_epoch) < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if not self.lr > 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("lr must be > 0, weight_decay and grad_clip >= 0")
        if not self.segment_seconds >= 0.5:
            raise ValueError(f"segment_seconds must be >= 0.5 (loudness gating, STFT), got {self.segment_seconds}")
        data = _default_data()
        data.update(self.data or {})
        self.data = data
        loss = _default_loss()
        loss.update(self.loss or {})
        self.loss = loss

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: for unknown keys.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown training option(s) {sorted(unknown)}")
        return cls(**copy.deepcopy(values))

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments of :func:`mastering.models.mastering.build_model` (phase and rate included)."""
        kwargs = copy.deepcopy(self.model)
        kwargs.setdefault("sample_rate", self.sample_rate)
        return {"phase": self.phase, **kwargs}

    def digest(self, code_version: str | None = None) -> str:
        """SHA-1 of the run's key (:mod:`mastering.runs`): the resolved configuration plus the code
        (default :func:`mastering.runs.code_fingerprint` of the trainer and all it imports).

        ``progress``, ``tensorboard`` and ``wandb`` change no result and are left out.
        """
        values = {k: v for k, v in self.to_dict().items() if k not in ("progress", "tensorboard", "wandb")}
        code = code_fingerprint("mastering.training.trainer") if code_version is None else code_version
        return hashlib.sha1(json.dumps({"settings": values, "data": {}, "code": code}, sort_keys=True).encode()).hexdigest()

    def run_name(self, code_version: str | None = None) -> str:
        """``phase<phase>-<profile>-<hash10>``, the run folder's name."""
        return f"phase{self.phase}-{self.profile}-{self.digest(code_version)[:10]}"


def merge_overrides(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``update`` applied: nested dicts merge key by key, except
    ``ratios`` (a mixture's ratios are replaced whole); any other value replaces the old one."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "ratios":
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def train_config(phase: str = "1a", profile: str = "smoke", **overrides: Any) -> TrainConfig:
    """The configuration of ``phase`` in ``profile`` with ``overrides`` (nested dicts merge).

    Example:
        ``train_config("1b", "smoke", epochs=3, data={"train_items": 16})``

    Raises:
        ValueError: unknown profile or option.
    """
    base = get_profile(profile)
    values = merge_overrides({"phase": phase, "profile": profile, "seed": base["seed"],
                              "sample_rate": base["sample_rate"]}, base["train"])
    values = merge_overrides(values, overrides)
    return TrainConfig.from_dict(values)
