"""The mastering chain at tensor level: one code path for files and for audio in memory.

A track is cleaned (DC offset removed, subsonics high-passed), analysed once as a whole (one latent
``z`` from evenly spread excerpts, one set of predicted settings), processed by the model (EQ,
residual, compressor), brought to a loudness target and true-peak limited. :mod:`mastering.master`
streams these steps over files of any length; :func:`master_audio` runs them on audio in memory
(the evaluation, on any device).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import signal

from .defaults import HIGHPASS_HZ, HIGHPASS_ORDER, SUBSONIC_HZ, TRUE_PEAK_DBTP
from .dsp.loudness import TRUE_PEAK_STREAM_MARGIN, LoudnessMeter
from .dsp.truepeak import LimiterForecast, limit_true_peak, true_peak_max
from .io import resample
from .models.mastering import MasteringModel, model_from_checkpoint
from .provenance import safe_torch_load

__all__ = [
    "ANALYSIS_LUFS",
    "HIGHPASS_PREROLL_S",
    "LIMITER_MARGIN_DB",
    "LIMITER_TOLERANCE_DB",
    "subsonic_highpass_sos",
    "clean",
    "excerpt_starts",
    "scale_params",
    "load_model",
    "UNET_CHUNK_S",
    "unet_reach",
    "ChunkedUNet",
    "FoldedUNet",
    "chunk_residual",
    "encode_excerpts",
    "process_block",
    "finish_limit",
    "limit_to_target",
    "finish_audio",
    "master_audio",
]

ANALYSIS_LUFS = -24.0  # level the model sees a track at (the middle of its training inputs' loudness)
HIGHPASS_PREROLL_S = 1.0  # the high-pass state settles well within this (slowest pole decays ~48/s at 20 Hz)
LIMITER_MARGIN_DB = 0.05  # the limiter aims this far under the ceiling (block-wise limiting, 24-bit output)
LIMITER_TOLERANCE_DB = 0.02  # a limiting may end this far over its aim (still 0.03 dB under the ceiling)
_SHORTFALL_LU = 0.3  # limiting may cost this much loudness before the gain is raised and the pass repeated


def subsonic_highpass_sos(sample_rate: int, freq_hz: float = SUBSONIC_HZ,
                          order: int = HIGHPASS_ORDER) -> np.ndarray | None:
    """Second-order sections of the chain's subsonic high-pass (Butterworth, minimum phase); None for 0 Hz."""
    if not freq_hz:
        return None
    return signal.butter(order, float(freq_hz), btype="highpass", fs=int(sample_rate), output="sos")


def clean(x: np.ndarray, sos: np.ndarray | None, dc: np.ndarray, valid: int | None = None) -> np.ndarray:
    """``x`` ``[channels, samples]`` less its DC offset ``dc`` (on the first ``valid`` samples: the
    rest lies outside the file and stays zero), then high-passed by ``sos`` from zero state."""
    x = np.array(x, dtype=np.float64)
    x[:, : x.shape[-1] if valid is None else max(valid, 0)] -= np.asarray(dc, np.float64)[:, None]
    return x if sos is None else signal.sosfilt(sos, x, axis=-1)


def excerpt_starts(frames: int, excerpt: int, max_excerpts: int) -> list[int]:
    """Starts of up to ``max_excerpts`` evenly spread excerpts of ``excerpt`` samples."""
    if frames <= excerpt:
        return [0]
    count = max(1, min(max_excerpts, frames // excerpt))
    return np.linspace(0, frames - excerpt, count).round().astype(int).tolist()


def scale_params(params: dict, intensity: float) -> dict:
    """Scale the predicted processing: EQ gains, compressor ratio above 1, make-up (the residual is
    scaled in :func:`process_block`)."""
    out = {stage: dict(values) for stage, values in params.items()}
    out["eq"]["gain_db"] = params["eq"]["gain_db"] * intensity
    if "dynamics" in params:
        out["dynamics"]["ratio"] = 1.0 + (params["dynamics"]["ratio"] - 1.0) * intensity
        out["dynamics"]["makeup_gain_db"] = params["dynamics"]["makeup_gain_db"] * intensity
    return out


def load_model(checkpoint: str | os.PathLike, device: str | torch.device = "cpu",
               eq_mode: str = "exact") -> tuple[MasteringModel, float]:
    """The model of a training checkpoint (loaded safely) and its training segment length in seconds.

    Raises:
        ValueError: the file is not a readable mastering-model checkpoint (the message says why).
    """
    state = safe_torch_load(Path(checkpoint))
    try:
        model = model_from_checkpoint(state, map_location=device, eq_mode=eq_mode)
    except ValueError as exc:
        raise ValueError(f"{checkpoint}: {exc}") from None
    return model, float((state.get("config") or {}).get("segment_seconds", 3.0))


UNET_CHUNK_S = 3.0
"""Length of the pieces :class:`ChunkedUNet` runs the Wave-U-Net on: its activations then stay in the
CPU's caches (2 cores, shipped weights, a minute of stereo at 44.1 kHz: :class:`FoldedUNet` 0.41 s
in 3 s pieces, 0.42 s in 4 s, 0.46 s in 6 s, 0.49 s in 1 s or 2 s, 0.54 s in 10 s; the plain
network 0.93 s in 3 s pieces)."""


def unet_reach(unet: torch.nn.Module) -> int:
    """Samples on each side of an output that a Wave-U-Net's output depends on (the half width of its
    receptive field, at its own rate): its convolutions at every level and its linear interpolations."""
    cfg, depth = unet.config, unet.depth
    down, up = cfg["down_kernel"] // 2, cfg["up_kernel"] // 2
    reach = sum(down * 2 ** i for i in range(depth + 1))  # down path and bottleneck
    return reach + sum(2 ** (depth - j) + up * 2 ** (depth - 1 - j) for j in range(depth))  # up path


class ChunkedUNet(torch.nn.Module):
    """A :class:`mastering.models.unet.WaveUNet` run over pieces of ``chunk`` samples, each with the
    network's receptive field as context on both sides, then joined: the same output as one call
    (to float rounding), in a fraction of the memory traffic.

    Pieces start on multiples of ``2**(depth + 1)`` samples, so each sees the decimation grid (and,
    at the end, the padding) that one call over the whole input would.
    """

    def __init__(self, unet: torch.nn.Module, chunk: int):
        super().__init__()
        self.unet, self.depth, self.config = unet, unet.depth, unet.config
        grid = 2 ** (unet.depth + 1)
        self.reach = -(-unet_reach(unet) // grid) * grid  # the receptive field's half width, on the grid
        self.chunk = max(-(-int(chunk) // grid), 1) * grid

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[-1]
        if n <= self.chunk + 2 * self.reach:
            return self.unet(x, z)
        pieces = []
        for start in range(0, n, self.chunk):
            lo, hi = max(start - self.reach, 0), min(start + self.chunk + self.reach, n)
            pieces.append(self.unet(x[..., lo:hi], z)[..., start - lo: start - lo + min(self.chunk, n - start)])
        return torch.cat(pieces, dim=-1)


class FoldedUNet(torch.nn.Module):
    """Inference form of a :class:`mastering.models.unet.WaveUNet` for one conditioning vector.

    FiLM is affine per channel after each convolution, so for a fixed ``z`` it folds into that
    convolution: weights times ``1 + gamma``, bias times ``1 + gamma`` plus ``beta``. Every
    convolution then runs as a 2-D one over ``[batch, channels, 1, samples]`` in channels-last
    memory, which oneDNN serves far faster than 1-D convolutions over a few channels, and a
    convolution over a skip concatenation runs as the sum of one convolution per part (no
    concatenated copy). The output is the network's own (to float rounding). The fold is cached
    for the last ``z`` seen; while gradients are on, or for a ``z`` with more than one row, the
    network itself runs.
    """

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet, self.depth, self.config = unet, unet.depth, unet.config
        self._z: torch.Tensor | None = None
        self._layers: list[tuple[list[torch.Tensor], torch.Tensor | None, int]] | None = None

    @staticmethod
    def _fold_conv(conv: torch.nn.Module, film: torch.nn.Module | None, z: torch.Tensor | None,
                   split: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None, int]:
        weight, bias = conv.weight, conv.bias
        if film is not None:
            gamma, beta = film.proj(z.to(weight)).chunk(2, dim=1)
            scale = 1.0 + gamma[0]
            bias = (bias * scale if bias is not None else 0.0) + beta[0]
            weight = weight * scale[:, None, None]
        parts = [weight] if split is None else [weight[:, :split], weight[:, split:]]
        return ([w.unsqueeze(2).contiguous(memory_format=torch.channels_last) for w in parts],
                None if bias is None else bias.contiguous(), int(conv.padding[0]))

    def _fold(self, z: torch.Tensor | None) -> list[tuple[list[torch.Tensor], torch.Tensor | None, int]]:
        cached = self._z
        if self._layers is not None and (z is None) == (cached is None) and (
                z is None or (z.shape == cached.shape and torch.equal(z, cached))):
            return self._layers
        unet, skip = self.unet, self.unet.skip
        layers = [self._fold_conv(b.conv, b.film, z) for b in (*unet.down, unet.bottleneck)]
        below = unet.bottleneck.conv.out_channels  # channels coming up from the level below
        for block in unet.up:
            layers.append(self._fold_conv(block.conv, block.film, z, below if skip else None))
            below = block.conv.out_channels
        layers.append(self._fold_conv(unet.out, None, None, below if skip else None))
        self._z, self._layers = (None if z is None else z.detach().clone()), layers
        return layers

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        conditioned = self.unet.config.get("cond_dim") is not None
        if (torch.is_grad_enabled() or x.dim() != 3 or (conditioned and (z is None or z.shape[0] != 1))):
            return self.unet(x, z)
        layers = self._fold(z if conditioned else None)
        depth, functional = self.depth, torch.nn.functional
        n = x.shape[-1]
        pad = (-n) % (2 ** (depth + 1))
        h = functional.pad(x, (0, pad)).unsqueeze(2).contiguous(memory_format=torch.channels_last)

        def conv(layer: tuple[list[torch.Tensor], torch.Tensor | None, int], *inputs: torch.Tensor) -> torch.Tensor:
            """One input per weight part; inputs beyond the parts (a skip without skips) are unused."""
            weights, bias, padding = layer
            y = functional.conv2d(inputs[0], weights[0], bias, padding=(0, padding))
            for part, w in zip(inputs[1:], weights[1:]):
                y += functional.conv2d(part, w, None, padding=(0, padding))
            return y

        inp, skips = h, []
        for layer in layers[:depth]:
            h = functional.leaky_relu(conv(layer, h), 0.2, inplace=True)
            skips.append(h)
            h = h[..., ::2].contiguous(memory_format=torch.channels_last)  # decimation
        h = functional.leaky_relu(conv(layers[depth], h), 0.2, inplace=True)
        for layer, s in zip(layers[depth + 1: 2 * depth + 1], reversed(skips)):
            h = functional.interpolate(h, size=(1, s.shape[-1]), mode="bilinear", align_corners=False)
            h = functional.leaky_relu(conv(layer, h, s), 0.2, inplace=True)
        return conv(layers[-1], h, inp)[:, :, 0, :n].contiguous()


def chunk_residual(model: MasteringModel, chunk_s: float = UNET_CHUNK_S) -> MasteringModel:
    """Make ``model`` (in place, for inference) run its Wave-U-Net residual folded for the track's
    ``z`` (:class:`FoldedUNet`) in pieces of ``chunk_s`` seconds at the model's rate
    (:class:`ChunkedUNet`); a model without the residual is unchanged."""
    if model.residual is not None and not isinstance(model.residual.unet, ChunkedUNet):
        model.residual.unet = ChunkedUNet(FoldedUNet(model.residual.unet), int(round(chunk_s * model.sample_rate)))
    return model


def _to_model(x: np.ndarray, model: MasteringModel, device: str | torch.device = "cpu") -> torch.Tensor:
    """``[channels, samples]`` NumPy audio as a ``[1, model channels, samples]`` float32 tensor."""
    if x.shape[0] != model.channels:
        x = np.repeat(x, model.channels, axis=0) if x.shape[0] == 1 else x.mean(axis=0, keepdims=True)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(device)


@torch.no_grad()
def encode_excerpts(model: MasteringModel, excerpts: Iterable[np.ndarray], sample_rate: int,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """One ``z`` for a whole track: the encoder's pooled features averaged over all excerpts
    (its global average pooling taken across the track), then projected."""
    feats = [model.encoder.pooled(resample(_to_model(x, model, device), sample_rate, model.sample_rate))
             for x in excerpts]
    return model.encoder.project(torch.cat(feats).mean(dim=0, keepdim=True))


@torch.no_grad()
def process_block(model: MasteringModel, x: np.ndarray, sample_rate: int, params: dict, z: torch.Tensor,
                  intensity: float = 1.0, post_eq: Any = None, eq_mode: str = "exact") -> np.ndarray:
    """The model's processing (EQ at ``sample_rate``, residual, compressor) of ``x`` ``[channels, samples]``,
    then ``post_eq`` (anything with ``apply(y, sample_rate)``, e.g. a semantic EQ); same channels out.

    Raises:
        ValueError: the model produced non-finite audio.
    """
    device = z.device
    out = model.process(_to_model(x, model, device), params, z, sample_rate=sample_rate, eq_mode=eq_mode,
                        residual_scale=float(intensity))["output"]
    if post_eq is not None:
        out = post_eq.apply(out.double(), sample_rate)
    y = out[0].cpu().numpy().astype(np.float64)
    if x.shape[0] == 1 and y.shape[0] != 1:
        y = y.mean(axis=0, keepdims=True)
    if not np.all(np.isfinite(y)):
        raise ValueError("the model produced non-finite audio; the checkpoint may be damaged")
    return y


def finish_limit(x: np.ndarray, sample_rate: int, ceiling_dbtp: float, return_gain: bool = False):
    """The loudness finish's true-peak limiting of ``x`` ``[channels, samples]``:
    :func:`mastering.dsp.truepeak.limit_true_peak` holding the BS.1770-4 meter's peaks, within
    :data:`LIMITER_TOLERANCE_DB` of ``ceiling_dbtp`` (with ``return_gain``: ``(y, gain [samples])``)."""
    return limit_true_peak(x, int(sample_rate), ceiling_dbtp=ceiling_dbtp, hold_meter=True,
                           tolerance_db=LIMITER_TOLERANCE_DB, return_gain=return_gain)


def limit_to_target(run_pass: Callable[[float, float], tuple[float, float]], gain_db: float, target_lufs: float,
                    true_peak_dbtp: float, attempts: int = 3,
                    forecast: LimiterForecast | None = None) -> tuple[float, float, float]:
    """Gain, limit, meter and retry: the one loudness finish of every system.

    ``run_pass(gain_db, ceiling_dbtp)`` applies the gain and the true-peak limiter and returns the
    output's integrated loudness (LUFS) and linear true peak. With a ``forecast`` of the audio
    (:class:`mastering.dsp.truepeak.LimiterForecast`) the first pass adds the loudness that limiting
    is forecast to take to ``gain_db`` (the plain gain to the target). When the output misses the
    target by more than 0.3 LU the gain is corrected by the difference; when the true peak still
    exceeds ``true_peak_dbtp`` the limiter's ceiling is lowered by the excess; at most ``attempts``
    passes.

    Returns:
        ``(gain_db, lufs_out, true_peak_out)`` of the last pass.
    """
    ceiling_db = float(true_peak_dbtp) - LIMITER_MARGIN_DB
    if forecast is not None:
        gain_db = forecast.gain_for(float(target_lufs) - float(gain_db), target_lufs, ceiling_db)
    for attempt in range(int(attempts)):
        lufs_out, tp_out = run_pass(gain_db, ceiling_db)
        shortfall = float(target_lufs) - lufs_out
        excess = (20.0 * math.log10(tp_out) if tp_out > 0 else -math.inf) - float(true_peak_dbtp)
        if (abs(shortfall) <= _SHORTFALL_LU and excess <= 0.0) or attempt == attempts - 1:
            break
        if abs(shortfall) > _SHORTFALL_LU:
            gain_db += shortfall
        if excess > 0.0:
            ceiling_db -= excess + 0.02
    return gain_db, lufs_out, tp_out


def finish_audio(x: np.ndarray, sample_rate: int, target_lufs: float,
                 true_peak_dbtp: float = TRUE_PEAK_DBTP) -> np.ndarray:
    """``x`` ``[channels, samples]`` brought to ``target_lufs`` under a ``true_peak_dbtp`` ceiling
    (:func:`limit_to_target` on audio in memory); silence is returned unchanged."""
    x = np.asarray(x, np.float64)
    meter = LoudnessMeter(sample_rate, x.shape[0])
    meter.update(x)
    lufs = meter.integrated()
    if not math.isfinite(lufs):
        return x
    result = {}

    def run_pass(gain_db: float, ceiling_db: float) -> tuple[float, float]:
        result["y"] = y = finish_limit(x * 10.0 ** (gain_db / 20.0), sample_rate, ceiling_db)
        out = LoudnessMeter(sample_rate, y.shape[0])
        out.update(y)
        margin = np.zeros((y.shape[0], TRUE_PEAK_STREAM_MARGIN))
        return out.integrated(), true_peak_max(np.concatenate([margin, y, margin], axis=-1))

    forecast = LimiterForecast(int(sample_rate))
    forecast.update(x)
    limit_to_target(run_pass, float(target_lufs) - lufs, target_lufs, true_peak_dbtp, forecast=forecast)
    return result["y"]


@torch.no_grad()
def master_audio(model: MasteringModel, x: np.ndarray, sample_rate: int, target_lufs: float,
                 true_peak_dbtp: float = TRUE_PEAK_DBTP, segment_s: float = 3.0, intensity: float = 1.0,
                 highpass_hz: float = HIGHPASS_HZ, max_excerpts: int = 16,
                 analysis_lufs: float = ANALYSIS_LUFS) -> np.ndarray:
    """The whole chain on ``x`` ``[channels, samples]`` in memory, on the model's device: what
    :func:`mastering.master.master_file` does to a file, in one block. Silence is returned unchanged."""
    x = np.asarray(x, np.float64)
    dc = x.mean(axis=-1)
    dc = dc if np.abs(dc).max() > 1e-3 else np.zeros_like(dc)
    meter = LoudnessMeter(sample_rate, x.shape[0])
    meter.update(x - dc[:, None])
    lufs_in = meter.integrated()
    if not math.isfinite(lufs_in):
        return x
    gain = 10.0 ** (float(np.clip(analysis_lufs - lufs_in, -40.0, 40.0)) / 20.0)
    xc = clean(x, subsonic_highpass_sos(sample_rate, highpass_hz), dc) * gain
    excerpt = int(round(segment_s * sample_rate))
    frames = x.shape[-1]
    excerpts = [np.pad(xc[:, s: s + excerpt], ((0, 0), (0, max(0, s + excerpt - frames))))
                for s in excerpt_starts(frames, excerpt, max_excerpts)]
    z = encode_excerpts(model, excerpts, sample_rate, device=next(model.parameters()).device)
    params = scale_params(model.predict(z), float(intensity))
    y = process_block(model, xc, sample_rate, params, z, intensity)
    return finish_audio(y, sample_rate, target_lufs, true_peak_dbtp)
