"""Training of the Phase 1 mastering models (one trainer for 1A, 1B and 1C) and of the thesis baseline.

    from mastering.training import train_config, train
    trainer, history = train(train_config("1b", "smoke", epochs=3))

Command line: ``python -m mastering.training --phase 1b --profile full`` (add ``torchrun
--nproc_per_node N`` in front for several GPUs). See :mod:`mastering.training.trainer`; the thesis
baseline's training: :mod:`mastering.training.thesis`; the fit loop that it, the semantic VAE, the
audio encoder and the E2E stage share: :mod:`mastering.training.loop`.
"""

from .config import TrainConfig, train_config
from .data import CachedDataset, TensorPairs, build_datasets, collate
from .loop import FitResult, fit, seed_everything
from .thesis import fit_or_load_thesis, thesis_config
from .trainer import CHECKPOINT_FORMAT, Trainer, latest_checkpoint, select_device, train

__all__ = [
    "CHECKPOINT_FORMAT",
    "CachedDataset",
    "FitResult",
    "TensorPairs",
    "TrainConfig",
    "Trainer",
    "build_datasets",
    "collate",
    "fit",
    "fit_or_load_thesis",
    "latest_checkpoint",
    "seed_everything",
    "select_device",
    "thesis_config",
    "train",
    "train_config",
]
