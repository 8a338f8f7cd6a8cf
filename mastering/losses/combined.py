"""The mastering objective: MR-STFT + A-weighted L1 + loudness (+ parameter regularization)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .perceptual import AWeightedL1Loss, LoudnessLoss
from .regularization import ParameterRegularization
from .stft import DEFAULT_FFT_SIZES, MultiResolutionSTFTLoss


class MasteringLoss(nn.Module):
    """Weighted sum of the perceptual losses, with the design's weights as defaults.

    ``w_stft * MRSTFT + w_aweighted * A-weighted L1 + w_loudness * |dLUFS| + w_params * reg``.
    Defaults 1.0 / 0.1 / 0.01 follow the architecture document; the parameter term is added only
    when EQ parameters are passed.

    Args:
        sample_rate: sample rate in Hz.
        w_stft: weight of the multi-resolution STFT loss.
        w_aweighted: weight of the A-weighted L1 loss.
        w_loudness: weight of the loudness (LU) loss.
        w_params: weight of :class:`ParameterRegularization`.
        fft_sizes: MR-STFT resolutions.
    """

    def __init__(
        self,
        sample_rate: int,
        w_stft: float = 1.0,
        w_aweighted: float = 0.1,
        w_loudness: float = 0.01,
        w_params: float = 0.01,
        fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
    ):
        super().__init__()
        self.weights = {"stft": w_stft, "aweighted": w_aweighted, "loudness": w_loudness, "params": w_params}
        self.stft = MultiResolutionSTFTLoss(fft_sizes)
        self.aweighted = AWeightedL1Loss(sample_rate)
        self.loudness = LoudnessLoss(sample_rate)
        self.params = ParameterRegularization()

    def components(
        self,
        input: torch.Tensor,  # noqa: A002
        target: torch.Tensor,
        gain_db: torch.Tensor | None = None,
        q: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The unweighted loss terms (those with a non-zero weight), keyed by name."""
        terms: dict[str, torch.Tensor] = {}
        if self.weights["stft"]:
            terms["stft"] = self.stft(input, target)
        if self.weights["aweighted"]:
            terms["aweighted"] = self.aweighted(input, target)
        if self.weights["loudness"]:
            terms["loudness"] = self.loudness(input, target)
        if gain_db is not None and self.weights["params"]:
            terms["params"] = self.params(gain_db, q)
        return terms

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of ``terms`` as returned by :meth:`components`."""
        return sum(self.weights[name] * value for name, value in terms.items())

    def forward(
        self,
        input: torch.Tensor,  # noqa: A002
        target: torch.Tensor,
        gain_db: torch.Tensor | None = None,
        q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.total(self.components(input, target, gain_db, q))
