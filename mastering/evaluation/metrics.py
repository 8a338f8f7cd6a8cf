"""Objective metrics of a master against the original master (notebook 06).

Every function takes ``[channels, samples]`` (or ``[batch, channels, samples]``) audio as a
tensor or array, the ``sample_rate`` where it matters, and returns a float (one number for the
whole signal; a batch is measured as one signal per item and averaged). The reference may also
be a :class:`Reference`, which keeps what is measured on it (loudness, filtered copy, spectra,
band levels) for the next estimate: the same numbers, computed once. :func:`evaluate_pair`
computes every metric of :data:`METRICS`: :func:`mrstft_distance`, :func:`band_energy_error_db`,
:func:`loudness_error_lu`, :func:`true_peak_dbtp`, :func:`a_weighted_l1` and :func:`si_sdr_db`.
"""

from __future__ import annotations

import math
from typing import Any

import auraloss
import numpy as np
import torch
from auraloss.utils import apply_reduction
from scipy import signal

from ..dsp.loudness import loudness, true_peak
from ..losses.perceptual import AWeightedL1Loss
from ..losses.stft import MultiResolutionSTFTLoss
from ..pipeline import subsonic_highpass_sos

__all__ = [
    "METRICS",
    "LEVEL_SENSITIVE",
    "Reference",
    "EvaluationMRSTFT",
    "match_loudness",
    "mrstft_distance",
    "third_octave_centres_hz",
    "third_octave_levels_db",
    "band_energy_error_db",
    "loudness_error_lu",
    "true_peak_dbtp",
    "a_weighted_l1",
    "si_sdr_db",
    "evaluate_pair",
]

METRICS: dict[str, dict[str, Any]] = {
    "mrstft": {"label": "MR-STFT distance", "unit": "", "better": "lower"},
    "band_error_db": {"label": "1/3-octave band error", "unit": "dB", "better": "lower"},
    "loudness_error_lu": {"label": "loudness error", "unit": "LU", "better": "lower"},
    "true_peak_dbtp": {"label": "true peak", "unit": "dBTP", "better": None},
    "a_weighted_l1": {"label": "A-weighted L1", "unit": "", "better": "lower"},
    "si_sdr_db": {"label": "SI-SDR", "unit": "dB", "better": "higher"},
}
"""The metrics of :func:`evaluate_pair`: label, unit and which direction is better (``None``: a
property, not a distance -- the true peak is judged against the ceiling, not ranked)."""

LEVEL_SENSITIVE = ("mrstft", "band_error_db", "a_weighted_l1")
"""Metrics measured at matched loudness."""



class _MagnitudeSTFTLoss(auraloss.freq.STFTLoss):
    """auraloss's single-resolution loss without the phase spectrum it computes and then discards
    when ``w_phs`` is 0 (``torch.angle``, about a third of the loss's time); same values."""

    def stft(self, x: torch.Tensor):
        if self.w_phs:
            return super().stft(x)
        x_stft = torch.stft(x, self.fft_size, self.hop_size, self.win_length, self.window, return_complex=True)
        return torch.sqrt(torch.clamp((x_stft.real**2) + (x_stft.imag**2), min=self.eps)), None


class EvaluationMRSTFT(MultiResolutionSTFTLoss):
    """:class:`mastering.losses.MultiResolutionSTFTLoss` as a metric: the same values, faster when
    one reference is compared with many estimates. Its resolutions skip the unused phase spectrum,
    and :meth:`target_spectra` / :meth:`with_spectra` transform the reference once. (Training keeps
    the plain loss: a training step's loss gains about 1.1x from it, ``benchmarks/bench_losses.py``,
    and a change to the training code makes every cached training run stale.)"""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for loss in self.stft_losses:  # built by auraloss; only their stft() changes
            loss.__class__ = _MagnitudeSTFTLoss

    def target_spectra(self, target: torch.Tensor) -> list[torch.Tensor]:
        """The magnitude spectra of ``target`` (``[batch, channels, samples]``) at each resolution."""
        if target.dim() != 3 or target.shape[-1] < max(self.fft_sizes):
            raise ValueError(f"target must be [batch, channels, samples] of at least {max(self.fft_sizes)} samples, "
                             f"got {tuple(target.shape)}")
        return [loss.stft(target.reshape(-1, target.shape[-1]))[0] for loss in self.stft_losses]

    def with_spectra(self, input: torch.Tensor, spectra: list[torch.Tensor]) -> torch.Tensor:  # noqa: A002
        """``self(input, target)`` for the target whose :meth:`target_spectra` are ``spectra``
        (auraloss's own terms on the kept spectra)."""
        if input.dim() != 3 or len(spectra) != len(self.stft_losses):
            raise ValueError(f"input must be [batch, channels, samples] and spectra one per resolution "
                             f"({len(self.stft_losses)}), got {tuple(input.shape)} and {len(spectra)}")
        total = 0.0
        for loss, y_mag in zip(self.stft_losses, spectra):
            x_mag, _ = loss.stft(input.reshape(-1, input.shape[-1]))
            if x_mag.shape != y_mag.shape:
                raise ValueError(f"input spectra {tuple(x_mag.shape)} do not match the target's {tuple(y_mag.shape)}")
            term = (loss.w_sc * loss.spectralconv(x_mag, y_mag) if loss.w_sc else 0.0) + \
                (loss.w_log_mag * loss.logstft(x_mag, y_mag) if loss.w_log_mag else 0.0)
            total = total + apply_reduction(term, reduction=loss.reduction)
        return total / len(self.stft_losses)


_MRSTFT = EvaluationMRSTFT()


def _batch(x, name: str = "audio") -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dim() == 1:
        t = t[None, None]
    elif t.dim() == 2:
        t = t[None]
    if t.dim() != 3 or t.shape[-1] == 0:
        raise ValueError(f"{name} must be [channels, samples] or [batch, channels, samples], got {tuple(t.shape)}")
    if not torch.is_floating_point(t):
        raise ValueError(f"{name} must be floating point, got {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds NaN or Inf samples")
    return t.to(torch.float64)


class Reference:
    """A reference master measured once for many estimates (every metric accepts it in place of
    the audio and gives the same value as for the audio itself).

    Args:
        audio: ``[channels, samples]`` or ``[batch, channels, samples]``, finite.
        sample_rate: its rate in Hz.
    """

    def __init__(self, audio, sample_rate: int):
        self.audio = _batch(audio, "reference")
        self.sample_rate = _check_rate(sample_rate)
        self._cache: dict[Any, Any] = {}

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def lufs(self, floor: bool = True) -> torch.Tensor:
        """Integrated loudness per item (``floor=False``: no floor for silence, as :func:`match_loudness`)."""
        return self._cached(("lufs", floor), lambda: loudness(self.audio, self.sample_rate) if floor
                            else loudness(self.audio, self.sample_rate, floor_lufs=None))

    def highpassed(self, ignore_below_hz: float) -> torch.Tensor:
        """The audio through the chain's subsonic high-pass, forwards and backwards."""
        return self._cached(("hp", ignore_below_hz), lambda: _zero_phase_highpass(self.audio, self.sample_rate,
                                                                                  ignore_below_hz))

    def spectra(self, ignore_below_hz: float | None) -> list[list[torch.Tensor]]:
        """Per item, the MR-STFT target spectra (:meth:`EvaluationMRSTFT.target_spectra`)."""
        def make():
            ref = self.highpassed(ignore_below_hz) if ignore_below_hz else self.audio
            return [_MRSTFT.target_spectra(ref[i:i + 1].float()) for i in range(ref.shape[0])]
        return self._cached(("spectra", ignore_below_hz), make)

    def band_levels_db(self) -> np.ndarray:
        """1/3-octave band levels (:func:`third_octave_levels_db`)."""
        return self._cached("bands", lambda: third_octave_levels_db(self.audio, self.sample_rate)[1])


def _pair(estimate, reference) -> tuple[torch.Tensor, torch.Tensor]:
    est = _batch(estimate, "estimate")
    ref = reference.audio if isinstance(reference, Reference) else _batch(reference, "reference")
    if est.shape != ref.shape:
        raise ValueError(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} must have one shape "
                         "(same channels and length, sample-aligned)")
    return est, ref


def _as_reference(reference, sample_rate: int) -> Reference:
    if isinstance(reference, Reference):
        if reference.sample_rate != _check_rate(sample_rate):
            raise ValueError(f"the reference was measured at {reference.sample_rate} Hz, not {sample_rate} Hz")
        return reference
    return Reference(reference, sample_rate)


def _zero_phase_highpass(x: torch.Tensor, sample_rate: int, cutoff_hz: float) -> torch.Tensor:
    sos = subsonic_highpass_sos(sample_rate, cutoff_hz)
    return torch.from_numpy(signal.sosfiltfilt(sos, x.numpy(), axis=-1).copy())


def _check_rate(sample_rate) -> int:
    if not isinstance(sample_rate, (int, np.integer)) or int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


def match_loudness(estimate, reference, sample_rate: int) -> torch.Tensor:
    """``estimate`` scaled to the integrated loudness of ``reference`` (ITU-R BS.1770-4).

    Returns ``[batch, channels, samples]`` float64; a silent estimate (no block above the
    absolute gate) is returned unscaled.
    """

    est, _ = _pair(estimate, reference)
    sample_rate = _check_rate(sample_rate)
    le = loudness(est, sample_rate, floor_lufs=None)
    lr = _as_reference(reference, sample_rate).lufs(floor=False)
    gain_db = torch.where(torch.isfinite(le) & torch.isfinite(lr), lr - le, torch.zeros_like(le))
    return est * torch.pow(10.0, gain_db / 20.0)[:, None, None]


def mrstft_distance(estimate, reference, sample_rate: int | None = None, ignore_below_hz: float = 20.0) -> float:
    """Multi-resolution STFT distance (:class:`mastering.losses.MultiResolutionSTFTLoss`, auraloss).

    Spectral convergence plus log-magnitude L1, averaged over FFT sizes 2048/1024/512/256 (hop a
    quarter, Hann window). 0 for identical signals. With ``sample_rate``, content below
    ``ignore_below_hz`` is ignored: both signals pass the chain's subsonic high-pass
    (:func:`mastering.pipeline.subsonic_highpass_sos`) forwards and backwards (zero phase), so an
    offset or an inaudible drift that one of them keeps does not count; ``0`` compares them as they are.
    """

    est, _ = _pair(estimate, reference)
    if sample_rate is None:
        if isinstance(reference, Reference):
            raise ValueError("a Reference is measured at its sample_rate: pass it (or the audio with sample_rate=None)")
        reference, ignore_below_hz = Reference(reference, 1), None  # the rate only matters for the high-pass
    else:
        reference = _as_reference(reference, sample_rate)
    ignore_below_hz = ignore_below_hz or None
    if ignore_below_hz:
        est = _zero_phase_highpass(est, reference.sample_rate, ignore_below_hz)
    spectra = reference.spectra(ignore_below_hz)
    values = [float(_MRSTFT.with_spectra(est[i:i + 1].float(), spectra[i])) for i in range(est.shape[0])]
    return float(np.mean(values))


def third_octave_centres_hz(sample_rate: int, low_hz: float = 25.0, high_hz: float = 20000.0) -> np.ndarray:
    """Base-10 1/3-octave centre frequencies (IEC 61260-1: ``1000 * 10^(k/10)`` Hz, band edges
    ``f_c * 10^(+-1/20)``) from ``low_hz`` to ``high_hz`` whose upper band edge lies below the
    Nyquist frequency."""
    sample_rate = _check_rate(sample_rate)
    k = np.arange(math.floor(10 * math.log10(low_hz / 1000.0)), math.ceil(10 * math.log10(high_hz / 1000.0)) + 1)
    centres = 1000.0 * 10.0 ** (k / 10.0)
    centres = centres[(centres >= low_hz * 0.99) & (centres <= high_hz * 1.01)]
    return centres[centres * 10 ** (1 / 20) < sample_rate / 2]


def third_octave_levels_db(x, sample_rate: int, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Energy of each 1/3-octave band in dB (Welch power spectrum, Hann, 50 % overlap, summed over
    the bins inside each band's edges and over channels).

    Returns:
        ``(centres_hz, levels_db)`` with ``levels_db`` ``[batch, bands]``.
    """
    sample_rate = _check_rate(sample_rate)
    t = _batch(x).numpy()
    nper = min(int(n_fft), t.shape[-1])
    freqs, psd = signal.welch(t, fs=sample_rate, window="hann", nperseg=nper, noverlap=nper // 2,
                              detrend=False, scaling="spectrum", axis=-1)
    power = psd.sum(axis=1)  # over channels -> [batch, bins]
    centres = third_octave_centres_hz(sample_rate)
    levels = np.empty((t.shape[0], centres.size))
    tiny = np.finfo(np.float64).tiny
    for j, fc in enumerate(centres):
        lo, hi = fc * 10 ** (-1 / 20), fc * 10 ** (1 / 20)
        sel = (freqs >= lo) & (freqs < hi)
        band = power[:, sel].sum(axis=-1) if sel.any() else power[:, [int(np.argmin(np.abs(freqs - fc)))]].sum(axis=-1)
        levels[:, j] = 10.0 * np.log10(np.maximum(band, tiny))
    return centres, levels


def band_energy_error_db(estimate, reference, sample_rate: int, floor_db: float = -120.0) -> float:
    """Mean absolute difference of the 1/3-octave band levels in dB (see :func:`third_octave_levels_db`).

    Bands where both signals lie below ``floor_db`` (relative to the reference's loudest band)
    are left out: silence in both is no error. A gain of ``g`` dB on the estimate reads ``|g|``.
    """
    est, _ = _pair(estimate, reference)
    _, le = third_octave_levels_db(est, sample_rate)
    lr = _as_reference(reference, sample_rate).band_levels_db()
    floor = lr.max(axis=-1, keepdims=True) + floor_db
    keep = (le > floor) | (lr > floor)
    diff = np.abs(np.maximum(le, floor) - np.maximum(lr, floor))
    per_item = [float(d[k].mean()) if k.any() else 0.0 for d, k in zip(diff, keep)]
    return float(np.mean(per_item))


def loudness_error_lu(estimate, reference, sample_rate: int) -> float:
    """``|L(estimate) - L(reference)|`` in LU, integrated loudness of ITU-R BS.1770-4 (gated;
    :func:`mastering.dsp.loudness.loudness`, which matches pyloudnorm)."""
    est, _ = _pair(estimate, reference)
    sample_rate = _check_rate(sample_rate)
    diff = (loudness(est, sample_rate) - _as_reference(reference, sample_rate).lufs()).abs()
    return float(diff.mean())


def true_peak_dbtp(x, sample_rate: int) -> float:
    """True peak in dBTP (ITU-R BS.1770-4 Annex 2, 4x oversampling; the largest over a batch)."""
    t = _batch(x)
    return float(true_peak(t, _check_rate(sample_rate), oversample=4).max())


def a_weighted_l1(estimate, reference, sample_rate: int) -> float:
    """Mean absolute A-weighted (IEC 61672-1) waveform difference (:class:`mastering.losses.AWeightedL1Loss`)."""
    est, ref = _pair(estimate, reference)
    return float(AWeightedL1Loss(_check_rate(sample_rate))(est, ref))


def si_sdr_db(estimate, reference, eps: float = 1e-12) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019).

    The reference ``s`` (all channels as one vector, means removed) is scaled by
    ``a = <y, s> / <s, s>`` to best fit the estimate ``y``; SI-SDR is ``10 lg(|a s|^2 / |a s - y|^2)``.
    Identical signals give a large value (limited by ``eps``); an estimate orthogonal to the
    reference gives a very negative one.
    """
    est, ref = _pair(estimate, reference)
    values = []
    for y, s in zip(est.reshape(est.shape[0], -1).numpy(), ref.reshape(ref.shape[0], -1).numpy()):
        y = y - y.mean()
        s = s - s.mean()
        a = float(np.dot(y, s) / (np.dot(s, s) + eps))
        target = a * s
        noise = target - y
        values.append(10.0 * math.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))
    return float(np.mean(values))


def evaluate_pair(estimate, reference, sample_rate: int) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one estimate against its reference.

    The level-sensitive metrics (:data:`LEVEL_SENSITIVE`) are measured on the estimate brought to
    the reference's integrated loudness (:func:`match_loudness`), so they compare spectra and
    dynamics rather than playback level; loudness error and true peak on the estimate as it is
    (they *are* about level); SI-SDR is scale-invariant.
    """
    est, _ = _pair(estimate, reference)
    ref = _as_reference(reference, sample_rate)  # measured once for all the metrics
    sample_rate = ref.sample_rate
    matched = match_loudness(est, ref, sample_rate)
    return {
        "mrstft": mrstft_distance(matched, ref, sample_rate),
        "band_error_db": band_energy_error_db(matched, ref, sample_rate),
        "loudness_error_lu": loudness_error_lu(est, ref, sample_rate),
        "true_peak_dbtp": true_peak_dbtp(est, sample_rate),
        "a_weighted_l1": a_weighted_l1(matched, ref, sample_rate),
        "si_sdr_db": si_sdr_db(est, ref),
    }
