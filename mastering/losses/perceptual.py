"""Perceptually weighted losses: A-weighted L1 and BS.1770 loudness."""

from __future__ import annotations

import torch
from torch import nn

from ..dsp.loudness import loudness
from ..dsp.weighting import a_weighting


def _reduce(value: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return value.mean()
    if reduction == "sum":
        return value.sum()
    if reduction == "none":
        return value
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class AWeightedL1Loss(nn.Module):
    """L1 distance between the A-weighted (IEC 61672-1) input and target waveforms.

    Errors at frequencies where hearing is insensitive (deep bass, the top octave) cost less, in
    proportion to the A-weighting curve (e.g. -30.2 dB at 50 Hz relative to 1 kHz).

    Args:
        sample_rate: sample rate of the signals in Hz.
        reduction: ``"mean"`` (over all samples), ``"sum"`` or ``"none"`` (per item, ``[batch]``).
    """

    def __init__(self, sample_rate: int, reduction: str = "mean"):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002
        diff = a_weighting(input - target, self.sample_rate)  # A-weighting is linear: A(x) - A(y) = A(x - y)
        per_item = diff.abs().flatten(1).mean(dim=1)
        return _reduce(per_item, self.reduction)


class LoudnessLoss(nn.Module):
    """Absolute integrated-loudness difference in LU (ITU-R BS.1770-4, gated).

    With ``target_lufs`` set, the loss is ``|L(input) - target_lufs|`` and ``target`` may be None.

    Args:
        sample_rate: sample rate in Hz.
        target_lufs: an absolute target instead of the target signal's loudness.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, sample_rate: int, target_lufs: float | None = None, reduction: str = "mean"):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.target_lufs = target_lufs
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:  # noqa: A002
        measured = loudness(input, self.sample_rate)
        if self.target_lufs is not None:
            reference = torch.full_like(measured, float(self.target_lufs))
        elif target is None:
            raise ValueError("LoudnessLoss needs a target signal or target_lufs")
        else:
            reference = loudness(target, self.sample_rate)
        return _reduce((measured - reference).abs(), self.reduction)
