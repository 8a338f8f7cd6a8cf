"""TCN audio encoder (architecture document, Phase 1).

Strided stem (two ``Conv1d``, kernel 15, stride 4) followed by dilated residual blocks
(dilations 1, 2, 4, 8; channels widening 128 -> 512) and global average pooling to a 512-d
latent ``z``. Temporal convolutional networks after Bai, Kolter & Koltun (2018) and, for audio
effects, Steinmetz & Reiss (2022, "Efficient neural networks for real-time modeling of analog
dynamic range compression").

Input is ``[batch, channels, samples]``; output ``[batch, latent_dim]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class DilatedResidualBlock(nn.Module):
    """``conv(k, dilation) -> BatchNorm -> PReLU`` plus a residual path (1x1 projection when widening)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.PReLU(out_channels)
        self.residual = nn.Identity() if in_channels == out_channels else nn.Conv1d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x))) + self.residual(x)


class AudioEncoder(nn.Module):
    """TCN encoder mapping audio to a fixed-size latent.

    Args:
        in_channels: audio channels (2 for stereo).
        stem_channels: channels of the strided stem.
        block_channels: output channels of the dilated residual blocks (one per dilation).
        dilations: dilation of each residual block.
        kernel_size: kernel of the dilated convolutions.
        stem_kernel: kernel of the two stem convolutions.
        stem_stride: stride of each stem convolution.
        latent_dim: size of ``z`` (a linear projection is added when it differs from the last
            block's channels).
    """

    def __init__(
        self,
        in_channels: int = 2,
        stem_channels: int = 128,
        block_channels: Sequence[int] = (128, 256, 384, 512),
        dilations: Sequence[int] = (1, 2, 4, 8),
        kernel_size: int = 3,
        stem_kernel: int = 15,
        stem_stride: int = 4,
        latent_dim: int = 512,
    ):
        super().__init__()
        if len(block_channels) != len(dilations):
            raise ValueError("block_channels and dilations must have the same length")
        self.config = dict(in_channels=in_channels, stem_channels=stem_channels, block_channels=list(block_channels),
                           dilations=list(dilations), kernel_size=kernel_size, stem_kernel=stem_kernel,
                           stem_stride=stem_stride, latent_dim=latent_dim)
        pad = stem_kernel // 2
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, stem_channels, stem_kernel, stride=stem_stride, padding=pad),
            nn.BatchNorm1d(stem_channels),
            nn.PReLU(stem_channels),
            nn.Conv1d(stem_channels, stem_channels, stem_kernel, stride=stem_stride, padding=pad),
            nn.BatchNorm1d(stem_channels),
            nn.PReLU(stem_channels),
        )
        blocks, c = [], stem_channels
        for out, d in zip(block_channels, dilations):
            blocks.append(DilatedResidualBlock(c, out, kernel_size, d))
            c = out
        self.blocks = nn.Sequential(*blocks)
        self.project = nn.Identity() if c == latent_dim else nn.Linear(c, latent_dim)
        self.latent_dim = latent_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frame-level features ``[batch, channels, frames]`` before pooling."""
        if x.dim() != 3:
            raise ValueError(f"expected [batch, channels, samples], got shape {tuple(x.shape)}")
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x).mean(dim=-1))


def receptive_field(encoder: AudioEncoder) -> dict[str, int]:
    """Analytic receptive field of one frame of :meth:`AudioEncoder.features`, in input samples.

    For a stack of convolutions with kernels ``k_i``, dilations ``d_i`` and strides ``s_i``,
    ``RF = 1 + sum_i (k_i - 1) * d_i * prod_{j<i} s_j`` (e.g. Araujo, Norris & Sim 2019, Distill).

    Returns:
        ``{"samples": RF, "hop": total stride}``.
    """
    rf, jump = 1, 1
    for conv in [m for m in encoder.modules() if isinstance(m, nn.Conv1d)]:
        if conv.kernel_size[0] == 1:
            continue
        rf += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
        jump *= conv.stride[0]
    return {"samples": rf, "hop": jump}


def empirical_receptive_field(encoder: AudioEncoder, num_samples: int = 8192, threshold: float = 1e-12) -> int:
    """Measured receptive field: the span of input samples with non-zero gradient for the centre frame.

    The encoder is put in eval mode (BatchNorm as a fixed affine map) so that the gradient of one
    output frame reaches exactly the inputs inside its receptive field.
    """
    was_training = encoder.training
    encoder.eval()
    x = torch.randn(1, encoder.config["in_channels"], num_samples, requires_grad=True)
    feats = encoder.features(x)
    feats[..., feats.shape[-1] // 2].sum().backward()
    grad = x.grad.abs().sum(dim=(0, 1))
    idx = torch.nonzero(grad > threshold).flatten()
    encoder.train(was_training)
    return int(idx.max() - idx.min() + 1) if idx.numel() else 0
