"""Multi-resolution STFT loss (Yamamoto et al. 2020; Steinmetz & Reiss 2020, auraloss).

A thin configuration of :class:`auraloss.freq.MultiResolutionSTFTLoss`: spectral convergence plus
log-magnitude L1 summed over the design's four resolutions (FFT 2048/1024/512/256, hop = FFT/4,
Hann window of FFT length). It compares magnitudes, so it is far less sensitive to phase than a
waveform L1 (:func:`mastering.literature.phase_shift_losses`), but not blind to it: with 256-point
frames a low-frequency phase shift moves it (a 20 Hz minimum-phase high-pass alone moves an
untouched master by 0.2-0.5).
"""

from __future__ import annotations

from typing import Sequence

import auraloss
import torch

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256)


class MultiResolutionSTFTLoss(auraloss.freq.MultiResolutionSTFTLoss):
    """MR-STFT loss over ``[batch, channels, samples]`` input and target.

    Args:
        fft_sizes: FFT sizes of the resolutions.
        hop_fraction: hop size as a fraction of each FFT size.
        w_sc: weight of spectral convergence.
        w_log_mag: weight of the log-magnitude L1 distance.
        reduction: ``"mean"`` or ``"sum"`` (auraloss reduction over the per-resolution terms).
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
        hop_fraction: float = 0.25,
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        reduction: str = "mean",
    ):
        fft_sizes = [int(n) for n in fft_sizes]
        if not fft_sizes or min(fft_sizes) < 16:
            raise ValueError(f"fft_sizes must be a non-empty list of sizes >= 16, got {fft_sizes}")
        if not 0 < hop_fraction <= 1:
            raise ValueError(f"hop_fraction must be in (0, 1], got {hop_fraction}")
        super().__init__(
            fft_sizes=fft_sizes,
            hop_sizes=[max(1, int(n * hop_fraction)) for n in fft_sizes],
            win_lengths=fft_sizes,
            w_sc=w_sc,
            w_log_mag=w_log_mag,
            w_lin_mag=0.0,
            w_phs=0.0,
            reduction=reduction,
        )
        self.fft_sizes = tuple(fft_sizes)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002
        if input.shape != target.shape or input.dim() != 3:
            raise ValueError(
                f"input and target must both be [batch, channels, samples]; got {tuple(input.shape)} "
                f"and {tuple(target.shape)}"
            )
        if input.shape[-1] < max(self.fft_sizes):
            raise ValueError(f"signals of {input.shape[-1]} samples are shorter than the largest FFT ({max(self.fft_sizes)})")
        return super().forward(input, target)
