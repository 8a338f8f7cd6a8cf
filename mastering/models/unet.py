"""Wave-U-Net with FiLM conditioning (Stoller, Ewert & Dixon 2018; Perez et al. 2018).

``depth`` downsampling levels (convolution then decimation by 2), a bottleneck, and ``depth``
upsampling levels (linear interpolation, concatenation with the matching down level's features
— the skip connection — then convolution). Every block can be modulated by FiLM: per-channel
``gamma * h + beta`` with ``gamma, beta`` predicted from a conditioning vector ``z``.
Input and output are ``[batch, channels, samples]``; any length works (padded internally to a
multiple of ``2**depth`` and cropped back).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FiLM(nn.Module):
    """Feature-wise linear modulation from a conditioning vector (identity at initialization)."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(z).unsqueeze(-1).chunk(2, dim=1)
        return (1 + gamma) * h + beta


class _Block(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, cond_dim: int | None):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.film = FiLM(cond_dim, out_channels) if cond_dim else None

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        h = self.conv(x)
        if self.film is not None:
            if z is None:
                raise ValueError("this Wave-U-Net is FiLM-conditioned: pass z")
            h = self.film(h, z)
        return F.leaky_relu(h, 0.2)


class WaveUNet(nn.Module):
    """Wave-U-Net (optionally without skip connections, for the ablation).

    Args:
        channels: audio channels in and out.
        level_channels: feature channels at each down level; the bottleneck uses the last value + its step.
        down_kernel: kernel of the down-path convolutions (Wave-U-Net uses 15).
        up_kernel: kernel of the up-path convolutions (Wave-U-Net uses 5).
        cond_dim: size of the FiLM conditioning vector, or ``None`` for no FiLM.
        skip: use the skip connections (concatenation); ``False`` gives a plain encoder-decoder.
    """

    def __init__(
        self,
        channels: int = 2,
        level_channels: Sequence[int] = (24, 48, 72),
        down_kernel: int = 15,
        up_kernel: int = 5,
        cond_dim: int | None = None,
        skip: bool = True,
    ):
        super().__init__()
        self.config = dict(channels=channels, level_channels=list(level_channels), down_kernel=down_kernel,
                           up_kernel=up_kernel, cond_dim=cond_dim, skip=skip)
        self.depth = len(level_channels)
        self.skip = skip
        self.down = nn.ModuleList()
        c = channels
        for out in level_channels:
            self.down.append(_Block(c, out, down_kernel, cond_dim))
            c = out
        step = level_channels[-1] - (level_channels[-2] if len(level_channels) > 1 else 0)
        bottleneck = level_channels[-1] + max(step, 1)
        self.bottleneck = _Block(c, bottleneck, down_kernel, cond_dim)
        self.up = nn.ModuleList()
        c = bottleneck
        for out in reversed(level_channels):
            self.up.append(_Block(c + (out if skip else 0), out, up_kernel, cond_dim))
            c = out
        self.out = nn.Conv1d(c + (channels if skip else 0), channels, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected [batch, channels, samples], got shape {tuple(x.shape)}")
        n = x.shape[-1]
        multiple = 2 ** (self.depth + 1)
        pad = (-n) % multiple
        h = F.pad(x, (0, pad))
        inp = h
        skips = []
        for block in self.down:
            h = block(h, z)
            skips.append(h)
            h = h[..., ::2]  # decimation, as in Wave-U-Net
        h = self.bottleneck(h, z)
        for block, s in zip(self.up, reversed(skips)):
            h = F.interpolate(h, size=s.shape[-1], mode="linear", align_corners=False)
            h = block(torch.cat([h, s], dim=1) if self.skip else h, z)
        h = torch.cat([h, inp], dim=1) if self.skip else h
        return self.out(h)[..., :n]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
