"""Training of the Phase 1 mastering models (one trainer for 1A, 1B and 1C).

    from mastering.training import train_config, train
    trainer, history = train(train_config("1b", "smoke", epochs=3))

Command line: ``python -m mastering.training --phase 1b --profile full`` (add ``torchrun
--nproc_per_node N`` in front for several GPUs). See :mod:`mastering.training.trainer`.
"""

from .config import TrainConfig, train_config
from .data import CachedDataset, TensorPairs, build_datasets, collate
from .trainer import CHECKPOINT_FORMAT, Trainer, latest_checkpoint, seed_everything, select_device, train

__all__ = [
    "CHECKPOINT_FORMAT",
    "CachedDataset",
    "TensorPairs",
    "TrainConfig",
    "Trainer",
    "build_datasets",
    "collate",
    "latest_checkpoint",
    "seed_everything",
    "select_device",
    "train",
    "train_config",
]
