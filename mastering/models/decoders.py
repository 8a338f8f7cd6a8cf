"""Decoders of the Phase 1 mastering models: from the latent ``z`` ``[batch, latent_dim]`` to processor parameters.

The controller half of the encoder -> controller -> processor split (DeepAFx-ST, Steinmetz et al.
2022); the processors of :mod:`mastering.dsp` apply what they predict. One decoder per phase:
:class:`ParametricDecoder` (1A, RBJ EQ bands), :class:`ResidualDecoder` (1B, FiLM-conditioned
Wave-U-Net added to the EQ path) and :class:`AdaptiveParametricDecoder` (1C, bands switched by
hard-concrete gates). All start
close to "do nothing": 0 dB gains, band frequencies spread log-uniformly, Q = 1/sqrt(2), a zero
residual.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..dsp.eq import ParametricEQ, parametric_eq
from .unet import WaveUNet

__all__ = ["ParametricDecoder", "AdaptiveParametricDecoder", "ResidualDecoder", "binary_entropy", "hard_concrete_gate",
           "active_bands", "HARD_CONCRETE", "ACTIVE_GAIN_DB"]

_PARAM_NAMES = ("freq_hz", "gain_db", "q")


def _logit(u: float) -> float:
    u = min(max(u, 1e-4), 1 - 1e-4)
    return math.log(u / (1 - u))


def binary_entropy(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Elementwise binary entropy ``-(p ln p + (1 - p) ln(1 - p))`` in nats (0 at 0 and 1, ln 2 at 0.5)."""
    p = p.clamp(eps, 1 - eps)
    return -(p * torch.log(p) + (1 - p) * torch.log1p(-p))


class _BandHeads(nn.Module):
    """Shared MLP trunk and one linear head per EQ parameter (``[batch, bands]`` logits each)."""

    def __init__(self, latent_dim: int, hidden: int, eq: ParametricEQ, extra_heads: Sequence[str] = ()):
        super().__init__()
        if latent_dim < 1 or hidden < 1:
            raise ValueError(f"latent_dim and hidden must be positive, got {latent_dim}, {hidden}")
        bands = eq.num_bands
        self.trunk = nn.Sequential(nn.Linear(latent_dim, hidden), nn.PReLU(hidden))
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, bands) for name in (*_PARAM_NAMES, *extra_heads)})
        # Start near "do nothing": 0 dB gains, log-spread band frequencies, Q = 1/sqrt(2).
        freq_lo, freq_hi, _ = eq.param_ranges["freq_hz"]
        q_lo, q_hi, _ = eq.param_ranges["q"]
        centres = torch.logspace(math.log10(60.0), math.log10(12000.0), bands) if bands > 1 else torch.tensor([1000.0])
        with torch.no_grad():
            nn.init.zeros_(self.heads["gain_db"].weight)
            nn.init.zeros_(self.heads["gain_db"].bias)
            for name in ("freq_hz", "q"):
                self.heads[name].weight.mul_(0.1)
            self.heads["freq_hz"].bias.copy_(torch.tensor(
                [_logit(math.log(float(f) / freq_lo) / math.log(freq_hi / freq_lo)) for f in centres]))
            self.heads["q"].bias.fill_(_logit(math.log(math.sqrt(0.5) / q_lo) / math.log(q_hi / q_lo)))

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        if z.dim() != 2:
            raise ValueError(f"expected z of shape [batch, latent_dim], got {tuple(z.shape)}")
        h = self.trunk(z)
        return {name: head(h) for name, head in self.heads.items()}


class _EQDecoder(nn.Module):
    """Common part of the EQ decoders: the band heads, the EQ processor and its response."""

    def __init__(self, latent_dim: int, num_bands: int, hidden: int, kinds: Sequence[str] | None,
                 eq_mode: str, extra_heads: Sequence[str] = ()):
        super().__init__()
        self.eq = ParametricEQ(num_bands, kinds, mode=eq_mode)
        self.num_bands = self.eq.num_bands
        self.config = dict(latent_dim=latent_dim, num_bands=num_bands, hidden=hidden,
                           kinds=list(self.eq.kinds), eq_mode=eq_mode)
        self.net = _BandHeads(latent_dim, hidden, self.eq, extra_heads=extra_heads)

    def _physical(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        flat = torch.cat([logits[name] for name in _PARAM_NAMES], dim=-1)  # parameter-major layout
        return self.eq.from_logits(flat)

    def equalize(self, x: torch.Tensor, sample_rate: int, params: dict[str, torch.Tensor],
                 mode: str | None = None) -> torch.Tensor:
        """Equalize ``x`` ``[batch, channels, samples]`` with ``params`` from :meth:`forward`.

        Args:
            mode: ``"fast"`` or ``"exact"``; ``None`` uses the decoder's ``eq_mode``.
        """
        return parametric_eq(x, sample_rate, params["freq_hz"], params["gain_db"], params["q"],
                             kinds=self.eq.kinds, mode=mode or self.eq.mode, tail_s=self.eq.tail_s)

    def response_db(self, params: dict[str, torch.Tensor], sample_rate: int, freqs_hz=None, n_points: int = 256):
        """Magnitude response in dB ``[batch, freqs]`` of the predicted EQ."""
        return self.eq.freq_response_db(sample_rate, params["freq_hz"], params["gain_db"], params["q"],
                                        freqs_hz=freqs_hz, n_points=n_points)

    def regularization(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Decoder-specific loss terms (none here; the parameter penalty is in :mod:`mastering.losses`)."""
        return {}


class ParametricDecoder(_EQDecoder):
    """Phase 1A: ``z`` -> ``num_bands`` parametric EQ bands.

    A shared MLP trunk and one head per band parameter, mapped by
    :meth:`mastering.dsp.eq.ParametricEQ.from_logits`: frequency log-mapped over 20 Hz - 20 kHz,
    gain linear over +-12 dB, Q log-mapped over 0.5 - 5.

    Args:
        latent_dim: size of ``z``.
        num_bands: number of EQ bands (the design uses 5).
        hidden: width of the MLP trunk.
        kinds: band kinds (default: low shelf, peaking bands, high shelf).
        eq_mode: ``"fast"`` (frequency sampling, for training) or ``"exact"`` (IIR) filtering; see
            :func:`mastering.dsp.eq.parametric_eq`.
    """

    def __init__(
        self,
        latent_dim: int = 512,
        num_bands: int = 5,
        hidden: int = 256,
        kinds: Sequence[str] | None = None,
        eq_mode: str = "fast",
    ):
        super().__init__(latent_dim, num_bands, hidden, kinds, eq_mode)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """EQ parameters ``{"freq_hz", "gain_db", "q"}``, each ``[batch, bands]``."""
        return self._physical(self.net(z))


#: Hard-concrete gate constants (Louizos, Welling and Kingma, ICLR 2018): temperature and the
#: stretch interval ``(gamma, zeta)`` that lets a gate reach exactly 0 and 1.
HARD_CONCRETE = {"beta": 2.0 / 3.0, "gamma": -0.1, "zeta": 1.1}
#: A band counts as used when its effective (gated) gain exceeds this, in dB.
ACTIVE_GAIN_DB = 0.5


def hard_concrete_gate(log_alpha: torch.Tensor, training: bool, beta: float = HARD_CONCRETE["beta"],
                       gamma: float = HARD_CONCRETE["gamma"], zeta: float = HARD_CONCRETE["zeta"]) -> tuple[torch.Tensor, torch.Tensor]:
    """A hard-concrete gate of location ``log_alpha`` and the probability that it is open (non-zero).

    Training draws the gate (a stretched, clipped binary concrete: exactly 0 or 1 with positive
    probability, so a half-open gate is noisy and costs loss); evaluation uses the deterministic
    ``clip(sigmoid(log_alpha) (zeta - gamma) + gamma, 0, 1)``, exactly 0 or 1 once ``|log_alpha|``
    exceeds about 2.4.

    Returns:
        ``(gate, p_open)``, each shaped like ``log_alpha``; ``p_open`` is differentiable (the L0 term).
    """
    if training:
        u = torch.rand_like(log_alpha).clamp(1e-6, 1.0 - 1e-6)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / beta)
    else:
        s = torch.sigmoid(log_alpha)
    gate = (s * (zeta - gamma) + gamma).clamp(0.0, 1.0)
    p_open = torch.sigmoid(log_alpha - beta * math.log(-gamma / zeta))
    return gate, p_open


class AdaptiveParametricDecoder(_EQDecoder):
    """Phase 1C: ``num_bands`` bands, each switched on or off by a hard-concrete gate.

    The gate ``s_k`` multiplies each band's gain. It is a hard-concrete variable
    (:func:`hard_concrete_gate`): while training it is drawn, so a half-open gate makes the output
    noisy and cannot trade off smoothly against a larger free gain; at evaluation it is exactly 0
    or 1 away from the boundary. :meth:`regularization` gives the expected share of open gates (the
    L0 penalty, which favours few bands) and the binary entropy of the open probabilities.

    ``forward`` returns the *gated* gains in ``gain_db`` (what the EQ applies), plus ``gate``
    ``[batch, bands]`` in [0, 1], ``gate_open`` (the probability of a non-zero gate) and
    ``raw_gain_db`` (the ungated head output). Bands are counted as used by their effective gain
    (:data:`ACTIVE_GAIN_DB`), not by their gate.

    Args:
        latent_dim, hidden, kinds, eq_mode: as in :class:`ParametricDecoder`.
        num_bands: number of candidate bands (the design uses 10).
        gate_bias: initial gate location ``log_alpha``. The default, 3, starts every band open (an
            evaluation gate of exactly 1 at 0 dB gain: the do-nothing start of the other phases),
            so the L0 term closes the bands the correction does not need; 0 gives half-open gates.
    """

    def __init__(
        self,
        latent_dim: int = 512,
        num_bands: int = 10,
        hidden: int = 256,
        kinds: Sequence[str] | None = None,
        eq_mode: str = "fast",
        gate_bias: float = 3.0,
    ):
        super().__init__(latent_dim, num_bands, hidden, kinds, eq_mode, extra_heads=("select",))
        self.config["gate_bias"] = gate_bias
        with torch.no_grad():
            self.net.heads["select"].weight.mul_(0.1)
            self.net.heads["select"].bias.fill_(float(gate_bias))

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """EQ parameters with gated ``gain_db``, plus ``gate``, ``gate_open`` and ``raw_gain_db``, each ``[batch, bands]``."""
        logits = self.net(z)
        params = self._physical(logits)
        gate, p_open = hard_concrete_gate(logits["select"], self.training)
        params["raw_gain_db"] = params["gain_db"]
        params["gain_db"] = params["gain_db"] * gate
        params["gate"] = gate
        params["gate_open"] = p_open
        return params

    def regularization(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"sparsity": expected share of open gates (L0), "decisiveness": mean binary entropy of
        the open probabilities / ln 2}``, both in [0, 1]."""
        p_open = params["gate_open"]
        return {"sparsity": p_open.mean(), "decisiveness": binary_entropy(p_open).mean() / math.log(2.0)}


def active_bands(gain_db: torch.Tensor, threshold_db: float = ACTIVE_GAIN_DB) -> torch.Tensor:
    """Bands in use per item ``[batch]``: effective (gated) gains above ``threshold_db`` in magnitude."""
    return (gain_db.abs() > threshold_db).sum(dim=-1)


class ResidualDecoder(nn.Module):
    """Phase 1B: a FiLM-conditioned Wave-U-Net whose output is added to the EQ path.

    Every block is FiLM-modulated by ``z``; the output is added to the EQ path, so it models what a
    parametric EQ cannot. Its output convolution starts at zero: at initialization the model is
    exactly its EQ path.

    Args:
        channels: audio channels.
        latent_dim: size of ``z`` (the FiLM conditioning vector).
        level_channels: feature channels of the three down levels (the design's 3 down /
            bottleneck / 3 up).
        down_kernel, up_kernel: convolution kernels of the down and up paths.
        skip: skip connections (concatenation) between matching levels.
        dc_block_hz: corner of the second-order Butterworth high-pass (RBJ biquad, Q 1/sqrt(2)) that
            the residual goes through: a network's output can carry a DC offset that no spectral loss
            sees, and a master must not. ``0`` disables it.
    """

    def __init__(
        self,
        channels: int = 2,
        latent_dim: int = 512,
        level_channels: Sequence[int] = (24, 48, 72),
        down_kernel: int = 15,
        up_kernel: int = 5,
        skip: bool = True,
        dc_block_hz: float = 10.0,
    ):
        super().__init__()
        if dc_block_hz < 0:
            raise ValueError(f"dc_block_hz must be >= 0, got {dc_block_hz}")
        self.config = dict(channels=channels, latent_dim=latent_dim, level_channels=list(level_channels),
                           down_kernel=down_kernel, up_kernel=up_kernel, skip=skip, dc_block_hz=dc_block_hz)
        self.dc_block_hz = float(dc_block_hz)
        self.unet = WaveUNet(channels, level_channels, down_kernel, up_kernel, cond_dim=latent_dim, skip=skip)
        # Start as "no residual" (the model begins as its EQ path); no bias, which would be pure DC.
        self.unet.out = nn.Conv1d(self.unet.out.in_channels, channels, 1, bias=False)
        nn.init.zeros_(self.unet.out.weight)

    def forward(self, x: torch.Tensor, z: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """The residual ``[batch, channels, samples]`` for input ``x`` conditioned on ``z``.

        Args:
            sample_rate: rate of ``x`` in Hz, needed for the DC blocker (when it is on).
        """
        if z.dim() != 2 or z.shape[0] != x.shape[0]:
            raise ValueError(f"z must be [batch, latent_dim] with the batch of x; got {tuple(z.shape)} for x "
                             f"{tuple(x.shape)}")
        r = self.unet(x, z)
        if self.dc_block_hz:
            if sample_rate is None:
                raise ValueError("pass sample_rate (the residual's DC blocker needs it)")
            one = torch.ones(1, 1, dtype=torch.float64)
            mode = "exact" if r.device.type == "cpu" else "fast"
            r = parametric_eq(r, sample_rate, one * self.dc_block_hz, one * 0.0, one * math.sqrt(0.5),
                              kinds=("highpass",), mode=mode)
        return r
