"""Loudness metering: ITU-R BS.1770-4 loudness and true peak, EBU Tech 3342 loudness range.

Everything takes ``[batch, channels, samples]`` audio and returns one value per signal.
:func:`loudness`, :func:`block_loudness` (:func:`momentary_loudness`, :func:`short_term_loudness`),
:func:`true_peak` and :func:`normalize_loudness` are differentiable (torch); :func:`loudness_range`
is a NumPy measurement; :class:`LoudnessMeter` and :func:`true_peak_stream` measure files of any
length block by block (NumPy), giving the same readings. Agreement with pyloudnorm and the
handling of silence are documented in :func:`loudness`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal

from mastering.dsp.weighting import _check_audio, _check_sample_rate, k_weighting, k_weighting_sos

__all__ = [
    "ABSOLUTE_GATE_LUFS",
    "RELATIVE_GATE_LU",
    "TRUE_PEAK_FIR_4X",
    "channel_weights",
    "block_loudness",
    "loudness",
    "momentary_loudness",
    "short_term_loudness",
    "normalize_loudness",
    "true_peak",
    "loudness_range",
    "LoudnessMeter",
    "TRUE_PEAK_STREAM_MARGIN",
    "true_peak_stream",
]

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
_LRA_RELATIVE_GATE_LU = -20.0
_OFFSET_DB = -0.691

# ITU-R BS.1770-4, Annex 2: the 48-tap, 4-phase interpolation filter for 4x oversampling,
# one row per phase, as printed (phase 3 is phase 0 reversed, phase 2 is phase 1 reversed).
TRUE_PEAK_FIR_4X: tuple[tuple[float, ...], ...] = (
    (0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875, 0.1373291015625,
     0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500),
    (-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500, 0.4650878906250,
     0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375),
    (-0.0189208984375, 0.0330810546875, -0.0582275390625, 0.1015625000000, -0.2003173828125, 0.7797851562500,
     0.4650878906250, -0.1665039062500, 0.0891113281250, -0.0517578125000, 0.0292968750000, -0.0291748046875),
    (-0.0083007812500, 0.0148925781250, -0.0266113281250, 0.0476074218750, -0.1022949218750, 0.9721679687500,
     0.1373291015625, -0.0594482421875, 0.0332031250000, -0.0196533203125, 0.0109863281250, 0.0017089843750),
)
TRUE_PEAK_STREAM_MARGIN = len(TRUE_PEAK_FIR_4X[0]) - 1  # samples on each side of a streamed block


def channel_weights(channels: int) -> tuple[float, ...]:
    """BS.1770-4 channel weights G_i for a channel count.

    1 to 3 channels (mono; L, R; L, R, C) weigh 1.0 each; 5 channels are L, R, C, Ls, Rs with
    weights 1.0, 1.0, 1.0, 1.41, 1.41. Other layouts (e.g. 5.1 with an LFE channel, which
    BS.1770 leaves out) must pass ``channel_weights`` explicitly.
    """
    if channels in (1, 2, 3):
        return (1.0,) * channels
    if channels == 5:
        return (1.0, 1.0, 1.0, 1.41, 1.41)
    raise ValueError(
        f"no default BS.1770 channel weights for {channels} channels; pass channel_weights "
        "(e.g. (1, 1, 1, 0, 1.41, 1.41) for 5.1 in L, R, C, LFE, Ls, Rs order)"
    )


def _weights_tensor(channels: int, weights: Sequence[float] | None, device: torch.device) -> torch.Tensor:
    if weights is None:
        weights = channel_weights(channels)
    weights = tuple(float(w) for w in weights)
    if len(weights) != channels:
        raise ValueError(f"channel_weights has {len(weights)} entries for {channels} channels")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"channel_weights must be finite and non-negative, got {weights}")
    return torch.tensor(weights, dtype=torch.float64, device=device)


def _block_starts(num_samples: int, sample_rate: float, block_s: float, hop_s: float) -> tuple[np.ndarray, int]:
    block_len = int(round(block_s * sample_rate))
    hop = hop_s * sample_rate
    if hop < 1:
        raise ValueError(f"hop_s={hop_s} is shorter than one sample")
    num_blocks = int(math.floor((num_samples - block_len) / hop + 1e-9)) + 1
    starts = np.floor(np.arange(num_blocks) * hop + 1e-9).astype(np.int64)
    return starts, block_len


def _block_energies(y: torch.Tensor, sample_rate: float, block_s: float, hop_s: float) -> torch.Tensor:
    """Mean squares of ``y`` over sliding blocks: ``[batch, channels, blocks]`` in float64.

    Block j covers samples ``[floor(j hop), floor(j hop) + block)``. When the hop is a whole number
    of samples and the block a whole number of hops (every rate divisible by 10 for the BS.1770
    blocks), squares are summed per hop in the input dtype and the hop sums added up in float64;
    otherwise block sums are differences of a float64 cumulative sum.
    """
    num_samples = y.shape[-1]
    starts, block_len = _block_starts(num_samples, sample_rate, block_s, hop_s)
    hop = hop_s * sample_rate
    hop_len = int(round(hop))
    if abs(hop - hop_len) < 1e-9 and block_len % hop_len == 0:
        per_block = block_len // hop_len
        num_hops = len(starts) - 1 + per_block
        hop_sums = y[..., : num_hops * hop_len].square().unflatten(-1, (num_hops, hop_len)).sum(dim=-1)
        cumulative = F.pad(torch.cumsum(hop_sums.to(torch.float64), dim=-1), (1, 0))
        return (cumulative[..., per_block:] - cumulative[..., :-per_block]) / block_len
    squares = y.to(torch.float64).square()
    cumulative = F.pad(torch.cumsum(squares, dim=-1), (1, 0))
    lo = torch.as_tensor(starts, device=y.device)
    return (cumulative[..., lo + block_len] - cumulative[..., lo]) / block_len


def _check_length(x: torch.Tensor, sample_rate: float, block_s: float, what: str) -> None:
    need = int(round(block_s * sample_rate))
    if x.shape[-1] < need:
        raise ValueError(
            f"{what} needs at least one {block_s * 1000:.0f} ms block ({need} samples at {sample_rate:g} Hz); "
            f"got {x.shape[-1]} samples ({x.shape[-1] / sample_rate * 1000:.1f} ms)"
        )


def _to_lufs(power: torch.Tensor, floor_lufs: float | None) -> torch.Tensor:
    """``-0.691 + 10 lg(power)`` with a finite gradient at zero power."""
    tiny = torch.finfo(power.dtype).tiny
    lufs = _OFFSET_DB + 10.0 * torch.log10(power.clamp_min(tiny))
    if floor_lufs is None:
        return torch.where(power > 0, lufs, torch.full_like(lufs, -math.inf))
    return lufs.clamp_min(float(floor_lufs))


def block_loudness(
    x: torch.Tensor,
    sample_rate: float,
    block_s: float = 0.4,
    hop_s: float = 0.1,
    channel_weights: Sequence[float] | None = None,
    floor_lufs: float | None = -70.0,
    design: str = "bs1770",
) -> torch.Tensor:
    """Ungated loudness of sliding blocks (BS.1770-4 eq. 4), differentiable.

    Args:
        x: audio ``[batch, channels, samples]``.
        sample_rate: sample rate in Hz.
        block_s: block length in seconds (0.4 momentary, 3.0 short-term).
        hop_s: hop between block starts in seconds.
        channel_weights: G_i per channel (default: :func:`channel_weights`).
        floor_lufs: lower bound of the result (``None``: -inf for silent blocks).
        design: K-weighting design, see :func:`mastering.dsp.weighting.k_weighting_coefficients`.

    Returns:
        ``[batch, blocks]`` in LUFS, block j covering samples ``[floor(j hop), floor(j hop) + block)``.
    """
    _check_audio(x)
    sample_rate = _check_sample_rate(sample_rate)
    _check_length(x, sample_rate, block_s, "block loudness")
    weights = _weights_tensor(x.shape[1], channel_weights, x.device)
    z = _block_energies(k_weighting(x, sample_rate, design), sample_rate, block_s, hop_s)
    power = torch.einsum("bcj,c->bj", z, weights)
    return _to_lufs(power, floor_lufs).to(x.dtype)


def momentary_loudness(x: torch.Tensor, sample_rate: float, hop_s: float = 0.1, **kwargs) -> torch.Tensor:
    """Momentary loudness M (400 ms blocks, EBU Tech 3341), ``[batch, blocks]`` in LUFS.

    Keyword arguments go to :func:`block_loudness`.
    """
    return block_loudness(x, sample_rate, block_s=0.4, hop_s=hop_s, **kwargs)


def short_term_loudness(x: torch.Tensor, sample_rate: float, hop_s: float = 0.1, **kwargs) -> torch.Tensor:
    """Short-term loudness S (3 s blocks, EBU Tech 3341), ``[batch, blocks]`` in LUFS.

    Keyword arguments go to :func:`block_loudness`.
    """
    return block_loudness(x, sample_rate, block_s=3.0, hop_s=hop_s, **kwargs)


def loudness(
    x: torch.Tensor,
    sample_rate: float,
    gated: bool = True,
    floor_lufs: float | None = -70.0,
    channel_weights: Sequence[float] | None = None,
    design: str = "bs1770",
) -> torch.Tensor:
    """Integrated loudness of ITU-R BS.1770-4 in LUFS, batched and differentiable.

    Args:
        x: audio ``[batch, channels, samples]``, at least 400 ms long.
        sample_rate: sample rate in Hz.
        gated: apply the absolute (-70 LUFS) and relative (-10 LU) gates of BS.1770-4. Without
            gating the result is the loudness of the K-weighted mean square of the whole signal
            (BS.1770-4 eq. 2), which has no minimum length.
        floor_lufs: value for signals without a block above the gates (and lower bound of the
            ungated result), with zero, finite gradient, so a training batch holding a silent
            example stays usable; ``None`` returns -inf there, like pyloudnorm (the gradient is
            still finite, zero).
        channel_weights: G_i per channel (default: :func:`channel_weights`).
        design: K-weighting design, see :func:`mastering.dsp.weighting.k_weighting_coefficients`.

    Returns:
        ``[batch]`` loudness in LUFS, dtype of ``x``.

    The gates are masks computed without gradient; the gradient flows through the energies of the
    kept blocks. Only complete 400 ms blocks count, as in BS.1770-4 and libebur128; pyloudnorm
    counts ``round((T - 0.4) / 0.1) + 1`` blocks and may add a final block that runs past the end,
    a difference of a few thousandths of an LU for signals that are not whole 100 ms steps. On
    complete blocks ``design="deman"`` equals pyloudnorm's ``"DeMan"`` meter and ``design="rbj"``
    its default meter to 1e-6 LU; the default ``"bs1770"`` reads 0.04-0.05 LU above the latter.

    Raises:
        ValueError: for a non-3-D or non-float tensor, gated measurement of audio shorter than one
            400 ms block, or channel counts without default weights.
    """
    _check_audio(x)
    sample_rate = _check_sample_rate(sample_rate)
    if x.shape[-1] == 0:
        raise ValueError("cannot measure the loudness of empty audio (0 samples)")
    weights = _weights_tensor(x.shape[1], channel_weights, x.device)
    if gated:
        _check_length(x, sample_rate, 0.4, "gated loudness")
    y = k_weighting(x, sample_rate, design)
    if not gated:
        power = torch.einsum("bc,c->b", y.to(torch.float64).square().mean(dim=-1), weights)
        return _to_lufs(power, floor_lufs).to(x.dtype)

    z = _block_energies(y, sample_rate, 0.4, 0.1)
    power_j = torch.einsum("bcj,c->bj", z, weights)
    with torch.no_grad():
        block_lufs = _OFFSET_DB + 10.0 * torch.log10(power_j)  # -inf for silent blocks
        above_absolute = block_lufs > ABSOLUTE_GATE_LUFS
        count = above_absolute.sum(dim=-1).clamp_min(1)
        mean_absolute = (power_j * above_absolute).sum(dim=-1) / count
        relative_gate = _OFFSET_DB + 10.0 * torch.log10(mean_absolute) + RELATIVE_GATE_LU
        keep = above_absolute & (block_lufs > relative_gate[:, None])
    power = (power_j * keep).sum(dim=-1) / keep.sum(dim=-1).clamp_min(1)
    return _to_lufs(power, floor_lufs).to(x.dtype)


def normalize_loudness(
    x: torch.Tensor,
    sample_rate: float,
    target_lufs: float | torch.Tensor,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each signal to an integrated loudness of ``target_lufs`` (differentiable gain).

    The gain is ``target_lufs - loudness(x)``; gating is level-independent above the absolute
    gate, so the result measures ``target_lufs``. A silent signal reads ``floor_lufs`` and gets
    the corresponding finite gain (it stays silent).

    Args:
        x: audio ``[batch, channels, samples]``.
        sample_rate: sample rate in Hz.
        target_lufs: a number or a ``[batch]`` tensor.
        **kwargs: passed to :func:`loudness` (``gated``, ``floor_lufs``, ``channel_weights``).

    Returns:
        ``(y, gain_db)``: the scaled audio and the ``[batch]`` gains in dB.
    """
    if kwargs.get("floor_lufs", -70.0) is None:
        raise ValueError("normalize_loudness needs a finite floor_lufs (silence would need infinite gain)")
    measured = loudness(x, sample_rate, **kwargs)
    target = torch.as_tensor(target_lufs, dtype=x.dtype, device=x.device)
    if target.ndim > 1 or (target.ndim == 1 and target.shape[0] != x.shape[0]):
        raise ValueError(f"target_lufs must be a number or a [batch] tensor, got shape {tuple(target.shape)}")
    gain_db = target - measured
    y = x * torch.pow(10.0, gain_db / 20.0)[:, None, None]
    return y, gain_db


def _interpolation_filter(oversample: int) -> np.ndarray:
    """Polyphase interpolation filter ``[oversample, taps]`` (row p = phase p)."""
    if oversample == 4:
        return np.asarray(TRUE_PEAK_FIR_4X, dtype=np.float64)
    taps_per_phase = 24
    numtaps = taps_per_phase * oversample
    # Windowed sinc (Kaiser, beta 8) with its cutoff at the input's Nyquist frequency.
    h = signal.firwin(numtaps, 1.0 / oversample, window=("kaiser", 8.0)) * oversample
    return h.reshape(taps_per_phase, oversample).T.copy()


def true_peak(
    x: torch.Tensor,
    sample_rate: float,
    oversample: int = 4,
) -> torch.Tensor:
    """Maximum true-peak level of ITU-R BS.1770-4, Annex 2, in dBTP (differentiable).

    The signal is upsampled by ``oversample`` with a polyphase FIR interpolator (zero initial and
    final state) and the largest absolute value over all channels is taken:
    ``20 lg max|y|``. No 12.04 dB pre-attenuation is needed in floating point.

    * ``oversample=4`` (default) uses the 48-tap interpolation filter printed in Annex 2
      (:data:`TRUE_PEAK_FIR_4X`), as the Recommendation specifies for 48 kHz; BS.1770-4 notes
      that it under-reads by at most 0.688 dB for signals near Nyquist.
    * other factors >= 2 use a Kaiser-windowed sinc (beta 8, 24 taps per phase, cutoff at the
      input Nyquist frequency);
    * ``oversample=1`` gives the sample peak.

    Args:
        x: audio ``[batch, channels, samples]``.
        sample_rate: sample rate in Hz (the filter is relative to it; kept for the common
            signature and validated).
        oversample: upsampling factor.

    Returns:
        ``[batch]`` true peak in dBTP; -inf for digital silence (with a finite, zero gradient).
    """
    _check_audio(x)
    _check_sample_rate(sample_rate)
    if isinstance(oversample, bool) or not isinstance(oversample, (int, np.integer)) or oversample < 1:
        raise ValueError(f"oversample must be a positive integer, got {oversample!r}")
    if x.shape[-1] == 0:
        raise ValueError("cannot measure the true peak of empty audio (0 samples)")
    batch = x.shape[0]
    if oversample == 1:
        peak = x.abs().reshape(batch, -1).amax(dim=-1)
    else:
        phases = _interpolation_filter(int(oversample))
        taps = phases.shape[1]
        # conv1d correlates, so reverse each phase to convolve; pad for the full output.
        weight = torch.as_tensor(phases[:, ::-1].copy(), dtype=x.dtype, device=x.device)[:, None, :]
        flat = F.pad(x.reshape(-1, 1, x.shape[-1]), (taps - 1, taps - 1))
        upsampled = F.conv1d(flat, weight)  # [batch * channels, phases, samples + taps - 1]
        peak = upsampled.abs().reshape(batch, -1).amax(dim=-1)
    tiny = torch.finfo(x.dtype).tiny
    dbtp = 20.0 * torch.log10(peak.clamp_min(tiny))
    return torch.where(peak > 0, dbtp, torch.full_like(dbtp, -math.inf))


def loudness_range(x: torch.Tensor | np.ndarray, sample_rate: float) -> float:
    """Loudness range LRA of EBU Tech 3342 in LU (NumPy, not differentiable).

    Short-term loudness (K-weighted, 3 s blocks, BS.1770 channel weights) every 100 ms (10 Hz),
    complete blocks only; blocks at or above -70 LUFS pass the absolute gate, then those at or
    above the loudness of their mean power minus 20 LU pass the relative gate; LRA is the
    difference between the 95th and the 10th percentile of what is left, taken as nearest ranks
    of the sorted values (index ``round((n - 1) p / 100)``) as in the Tech 3342 example code.

    Args:
        x: one signal, ``[channels, samples]`` or ``[1, channels, samples]`` (tensor or array),
            at least 3 s long.
        sample_rate: sample rate in Hz.

    Returns:
        LRA in LU (0.0 when a single short-term block passes the gates); NaN when no
        short-term block reaches -70 LUFS (silence has no loudness range), as in pyloudnorm.

    Raises:
        ValueError: for a batch of more than one signal (call it per signal), audio shorter than
            3 s, or NaN/Inf samples.
    """
    sample_rate = _check_sample_rate(sample_rate)
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise ValueError(f"loudness_range measures one signal; got a batch of {arr.shape[0]} (call it per signal)")
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"expected [channels, samples] or [1, channels, samples], got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("audio holds NaN/Inf samples")
    if arr.shape[-1] < int(round(3.0 * sample_rate)):
        raise ValueError(
            f"loudness range needs at least one 3 s short-term block; got {arr.shape[-1] / sample_rate:.2f} s"
        )
    weights = np.asarray(_weights_tensor(arr.shape[0], None, torch.device("cpu")).numpy())
    y = signal.sosfilt(k_weighting_sos(sample_rate), arr, axis=-1)
    starts, block_len = _block_starts(arr.shape[-1], sample_rate, 3.0, 0.1)
    cumulative = np.concatenate([np.zeros((arr.shape[0], 1)), np.cumsum(y * y, axis=-1)], axis=-1)
    z = (cumulative[:, starts + block_len] - cumulative[:, starts]) / block_len
    power = weights @ z
    with np.errstate(divide="ignore"):
        stl = _OFFSET_DB + 10.0 * np.log10(power)
    return _lra_from_short_term(stl)


def _lra_from_short_term(stl: np.ndarray) -> float:
    """LRA of a short-term loudness series (LUFS): the gates and percentiles of EBU Tech 3342."""
    absolute = stl[stl >= ABSOLUTE_GATE_LUFS]
    if absolute.size == 0:
        return float("nan")
    integrated = 10.0 * np.log10(np.mean(10.0 ** (absolute / 10.0)))
    relative = np.sort(absolute[absolute >= integrated + _LRA_RELATIVE_GATE_LU])
    n = relative.size
    # MATLAB's round (half away from zero), which the Tech 3342 example code uses.
    low = relative[int(math.floor((n - 1) * 0.10 + 0.5))]
    high = relative[int(math.floor((n - 1) * 0.95 + 0.5))]
    return float(high - low)


# ------------------------------------------------------------------------------------------------
# Streaming (NumPy): files of any length in bounded memory
# ------------------------------------------------------------------------------------------------


class LoudnessMeter:
    """Streaming ITU-R BS.1770-4 integrated loudness and EBU Tech 3342 loudness range.

    Audio is fed in blocks of any size (``[channels, samples]`` NumPy). The K-weighting filters
    (:func:`mastering.dsp.weighting.k_weighting_sos`, SciPy) carry their state across blocks, and the
    mean square of every 100 ms step is kept per channel; a 400 ms gating block is the mean of four
    consecutive steps and a 3 s short-term block of thirty, which are exactly the 75 %-overlap blocks
    of BS.1770-4 and the 10 Hz short-term series of Tech 3342. Memory grows by ``channels`` floats
    per 100 ms (about 0.6 MB for an hour of stereo).

    Args:
        sample_rate: Hz.
        channels: 1 or 2 (channel weights 1.0).
    """

    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.sos = k_weighting_sos(self.sample_rate)
        self.zi = np.zeros((self.sos.shape[0], self.channels, 2))
        self.step = int(round(0.1 * self.sample_rate))
        self._partial = np.zeros(self.channels)
        self._partial_n = 0
        self._steps: list[np.ndarray] = []
        self.samples = 0

    def update(self, x: np.ndarray) -> None:
        """Feed ``[channels, samples]`` audio."""
        if x.shape[-1] == 0:
            return
        y, self.zi = signal.sosfilt(self.sos, np.asarray(x, np.float64), axis=-1, zi=self.zi)
        sq = y * y
        self.samples += sq.shape[-1]
        pos = 0
        if self._partial_n:
            take = min(self.step - self._partial_n, sq.shape[-1])
            self._partial += sq[:, :take].sum(axis=-1)
            self._partial_n += take
            pos = take
            if self._partial_n == self.step:
                self._steps.append(self._partial / self.step)
                self._partial = np.zeros(self.channels)
                self._partial_n = 0
        full = (sq.shape[-1] - pos) // self.step
        if full:
            block = sq[:, pos:pos + full * self.step].reshape(self.channels, full, self.step).mean(axis=-1)
            self._steps.extend(block.T)
            pos += full * self.step
        if pos < sq.shape[-1]:
            self._partial += sq[:, pos:].sum(axis=-1)
            self._partial_n += sq.shape[-1] - pos

    def _power(self, span: int) -> np.ndarray:
        """Channel-summed mean square of every window of ``span`` consecutive 100 ms steps."""
        steps = np.asarray(self._steps).reshape(-1, self.channels).sum(axis=-1)
        if steps.size < span:
            return np.zeros(0)
        c = np.concatenate([[0.0], np.cumsum(steps)])
        return (c[span:] - c[:-span]) / span

    def integrated(self) -> float:
        """Integrated loudness in LUFS (``-inf`` when no block passes the -70 LUFS gate)."""
        power = self._power(4)
        with np.errstate(divide="ignore"):
            lufs = _OFFSET_DB + 10.0 * np.log10(power)
        above = power[lufs > ABSOLUTE_GATE_LUFS]
        if above.size == 0:
            return -math.inf
        gate = _OFFSET_DB + 10.0 * math.log10(above.mean()) + RELATIVE_GATE_LU
        kept = power[lufs > gate]
        return float(_OFFSET_DB + 10.0 * math.log10(kept.mean()))

    def loudness_range(self) -> float | None:
        """LRA in LU (EBU Tech 3342), or None for audio shorter than 3 s or silent."""
        power = self._power(30)
        if power.size == 0:
            return None
        with np.errstate(divide="ignore"):
            lra = _lra_from_short_term(_OFFSET_DB + 10.0 * np.log10(power))
        return None if math.isnan(lra) else lra


def true_peak_stream(x_ext: np.ndarray) -> float:
    """Largest 4x-interpolated magnitude (BS.1770-4 Annex 2) of a block given with margins.

    ``x_ext`` ``[channels, samples]`` must extend the block by :data:`TRUE_PEAK_STREAM_MARGIN` (11) samples
    on each side (real neighbours, or zeros at the ends of the file); only interpolated values
    computed from real samples count (``"valid"`` convolution), so blocks measured this way give
    exactly the whole-signal true peak of :func:`true_peak`.

    Returns:
        The linear peak (take ``20 lg`` for dBTP).
    """
    phases = _interpolation_filter(4)
    peak = 0.0
    for ch in np.asarray(x_ext, np.float64):
        for p in phases:
            if ch.size >= p.size:
                peak = max(peak, float(np.abs(np.convolve(ch, p, mode="valid")).max(initial=0.0)))
    return peak
