"""Regularization of predicted EQ parameters."""

from __future__ import annotations

import torch
from torch import nn


class ParameterRegularization(nn.Module):
    """Penalty that keeps predicted EQ settings modest.

    ``gain_weight * mean((gain_db / gain_scale_db)^2) + q_weight * mean(log(q)^2)``: the first term
    prefers small boosts/cuts (an unneeded band should sit at 0 dB), the second penalizes Q away from
    1 (very narrow or very broad bands), symmetric on a log scale so that Q = 0.5 and Q = 2 cost the
    same.

    Args:
        gain_weight: weight of the gain term.
        q_weight: weight of the Q term.
        gain_scale_db: gain that costs 1 before weighting (default 12 dB, the range limit).
    """

    def __init__(self, gain_weight: float = 1.0, q_weight: float = 0.1, gain_scale_db: float = 12.0):
        super().__init__()
        self.gain_weight = float(gain_weight)
        self.q_weight = float(q_weight)
        self.gain_scale_db = float(gain_scale_db)

    def forward(self, gain_db: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        loss = self.gain_weight * (gain_db / self.gain_scale_db).pow(2).mean()
        if q is not None:
            if torch.any(q <= 0):
                raise ValueError("q must be positive")
            loss = loss + self.q_weight * torch.log(q).pow(2).mean()
        return loss
