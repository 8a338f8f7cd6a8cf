"""TCN audio encoder (architecture document, Phase 1).

Strided stem (two ``Conv1d``, kernel 15, stride 4) followed by dilated residual blocks
(dilations 1, 2, 4, 8; channels widening 128 -> 512) and global average pooling to a 512-d
latent ``z``. Temporal convolutional networks after Bai, Kolter & Koltun (2018) and, for audio
effects, Steinmetz & Reiss (2022, "Efficient neural networks for real-time modeling of analog
dynamic range compression").

Input is ``[batch, channels, samples]``; output ``[batch, latent_dim]``. The TCN sees 12.5 ms
at 44.1 kHz (less than one period of 80 Hz); :class:`SpectralSummary` (``spectral_bands > 0``)
adds the input's long-term spectrum, band by band down to 20 Hz, beside the pooled TCN features.
"""

from __future__ import annotations

import math
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


def log_bands(n_freqs: int, sample_rate: int, bands: int, f_min_hz: float, f_max_hz: float) -> torch.Tensor:
    """``[n_freqs, bands]`` triangular filters with centres spaced evenly in log frequency (a band
    narrower than the bin spacing takes its nearest bin); each column sums to one, so a band's
    value is the mean power in the band."""
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_freqs, dtype=torch.float64)
    edges = torch.logspace(math.log10(f_min_hz), math.log10(f_max_hz), bands + 2, dtype=torch.float64)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    tri = torch.clamp(torch.minimum(up, down), min=0.0)  # [bands, n_freqs]
    empty = tri.sum(dim=1) == 0
    nearest = (freqs[None] - mid).abs().argmin(dim=1)
    tri[empty, nearest[empty]] = 1.0
    return (tri / tri.sum(dim=1, keepdim=True)).T.contiguous().float()


class SpectralSummary(nn.Module):
    """Long-term spectrum of the input as a feature vector: the band level in dB (log-spaced bands) of the
    channels' mean, its mean and standard deviation over STFT frames, the mean's average over the
    bands removed (the level is the loudness stage's job), through a small MLP.

    Args:
        sample_rate: input rate in Hz.
        bands: bands between ``f_min_hz`` and ``f_max_hz`` (:func:`log_bands`).
        n_fft, hop_length: STFT (4096 at 44.1 kHz: 10.8 Hz bins, enough for the lowest bands).
        f_min_hz, f_max_hz: band range (``f_max_hz`` capped at Nyquist).
        hidden: output size (and the MLP's width).
    """

    def __init__(self, sample_rate: int = 44100, bands: int = 40, n_fft: int = 4096, hop_length: int = 1024,
                 f_min_hz: float = 20.0, f_max_hz: float = 20000.0, hidden: int = 64):
        super().__init__()
        self.n_fft, self.hop_length, self.bands, self.hidden = int(n_fft), int(hop_length), int(bands), int(hidden)
        fbank = log_bands(self.n_fft // 2 + 1, int(sample_rate), self.bands, float(f_min_hz),
                          min(float(f_max_hz), 0.95 * sample_rate / 2.0))
        self.register_buffer("fbank", fbank, persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.net = nn.Sequential(nn.Linear(2 * self.bands, hidden), nn.PReLU(hidden), nn.Linear(hidden, hidden),
                                 nn.PReLU(hidden))

    def band_levels_db(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, bands, frames]`` band levels in dB of ``x`` ``[batch, channels, samples]``."""
        mono = x.float().mean(dim=1)
        if mono.shape[-1] < self.n_fft:
            mono = nn.functional.pad(mono, (0, self.n_fft - mono.shape[-1]))
        spec = torch.stft(mono, self.n_fft, self.hop_length, window=self.window, center=False,
                          return_complex=True).abs().square()
        return 10.0 * torch.log10(torch.einsum("bft,fm->bmt", spec, self.fbank) + 1e-10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = self.band_levels_db(x)
        mean = levels.mean(dim=-1)
        features = torch.cat([mean - mean.mean(dim=-1, keepdim=True), levels.std(dim=-1, unbiased=False)], dim=-1)
        return self.net(features / 20.0)


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
            block's channels, or when the spectral summary is on).
        spectral_bands: bands of the :class:`SpectralSummary` joined to the pooled features (0: off).
        spectral_hidden: its output size.
        sample_rate: input rate in Hz (for the spectral summary's bands).
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
        spectral_bands: int = 0,
        spectral_hidden: int = 64,
        sample_rate: int = 44100,
    ):
        super().__init__()
        if len(block_channels) != len(dilations):
            raise ValueError("block_channels and dilations must have the same length")
        self.config = dict(in_channels=in_channels, stem_channels=stem_channels, block_channels=list(block_channels),
                           dilations=list(dilations), kernel_size=kernel_size, stem_kernel=stem_kernel,
                           stem_stride=stem_stride, latent_dim=latent_dim)
        if spectral_bands:
            self.config.update(spectral_bands=int(spectral_bands), spectral_hidden=int(spectral_hidden),
                               sample_rate=int(sample_rate))
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
        self.spectral = (SpectralSummary(sample_rate, int(spectral_bands), hidden=int(spectral_hidden))
                         if spectral_bands else None)
        if self.spectral is not None:
            self.project = nn.Linear(c + self.spectral.hidden, latent_dim)
        else:
            self.project = nn.Identity() if c == latent_dim else nn.Linear(c, latent_dim)
        self.latent_dim = latent_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frame-level features ``[batch, channels, frames]`` before pooling."""
        if x.dim() != 3:
            raise ValueError(f"expected [batch, channels, samples], got shape {tuple(x.shape)}")
        return self.blocks(self.stem(x))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, features]`` before the projection: the frame features' mean (and the spectral
        summary); a long input's excerpts are averaged here, then projected."""
        pooled = self.features(x).mean(dim=-1)
        if self.spectral is not None:
            pooled = torch.cat([pooled, self.spectral(x)], dim=-1)
        return pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.pooled(x))


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
