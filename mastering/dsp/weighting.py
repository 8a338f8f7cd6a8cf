"""Perceptual frequency weightings: IEC 61672-1 A-weighting and ITU-R BS.1770-4 K-weighting.

Both are designed as cascades of second-order sections (NumPy, float64) and applied to
``[batch, channels, samples]`` tensors with :func:`sosfilt`, a differentiable recursive filter
(zero initial state, like ``scipy.signal.sosfilt``). Entry points: :func:`a_weighting` /
:func:`a_weighting_sos` (accuracy in :func:`a_weighting_zpk`) and :func:`k_weighting` /
:func:`k_weighting_sos` (designs ``"bs1770"``, ``"deman"``, ``"rbj"`` in
:func:`k_weighting_coefficients`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy import signal

__all__ = [
    "A_WEIGHTING_POLES_HZ",
    "IEC_61672_A_TABLE",
    "IECWeightingRow",
    "BS1770_K_WEIGHTING_48K",
    "a_weighting_analog_db",
    "a_weighting_zpk",
    "a_weighting_sos",
    "a_weighting_coefficients",
    "a_weighting",
    "k_weighting_coefficients",
    "k_weighting_sos",
    "k_weighting",
    "sosfilt",
]

# IEC 61672-1:2013, Annex E (E.2, E.4): pole frequencies of the A-weighting prototype in Hz.
A_WEIGHTING_POLES_HZ: tuple[float, float, float, float] = (20.598997, 107.65265, 737.86223, 12194.217)


class IECWeightingRow(NamedTuple):
    """One row of the IEC 61672-1 frequency-weighting table.

    ``class1_lower_db`` is ``-inf`` where the standard sets no lower limit.
    """

    freq_hz: float
    a_weighting_db: float
    class1_upper_db: float
    class1_lower_db: float


_INF = float("inf")

# IEC 61672-1:2013, Table 3 (Table 2 in the 2002 edition): nominal 1/3-octave frequency, nominal
# A-weighting in dB, and the class-1 acceptance limits (+, -) in dB. The 2013 edition's limits
# include the maximum permitted expanded measurement uncertainty; the same numbers appear in
# GOST 17187-2010, Table 2. The nominal weightings are A(f) of Annex E evaluated at the exact
# base-ten mid-band frequencies 1000 * 10**(n/10) Hz, n = -20..13, rounded to 0.1 dB.
IEC_61672_A_TABLE: tuple[IECWeightingRow, ...] = tuple(
    IECWeightingRow(f, a, up, -lo)
    for f, a, up, lo in (
        (10.0, -70.4, 3.5, _INF),
        (12.5, -63.4, 3.0, _INF),
        (16.0, -56.7, 2.5, 4.5),
        (20.0, -50.5, 2.5, 2.5),
        (25.0, -44.7, 2.5, 2.0),
        (31.5, -39.4, 2.0, 2.0),
        (40.0, -34.6, 1.5, 1.5),
        (50.0, -30.2, 1.5, 1.5),
        (63.0, -26.2, 1.5, 1.5),
        (80.0, -22.5, 1.5, 1.5),
        (100.0, -19.1, 1.5, 1.5),
        (125.0, -16.1, 1.5, 1.5),
        (160.0, -13.4, 1.5, 1.5),
        (200.0, -10.9, 1.5, 1.5),
        (250.0, -8.6, 1.4, 1.4),
        (315.0, -6.6, 1.4, 1.4),
        (400.0, -4.8, 1.4, 1.4),
        (500.0, -3.2, 1.4, 1.4),
        (630.0, -1.9, 1.4, 1.4),
        (800.0, -0.8, 1.4, 1.4),
        (1000.0, 0.0, 1.1, 1.1),
        (1250.0, 0.6, 1.4, 1.4),
        (1600.0, 1.0, 1.6, 1.6),
        (2000.0, 1.2, 1.6, 1.6),
        (2500.0, 1.3, 1.6, 1.6),
        (3150.0, 1.2, 1.6, 1.6),
        (4000.0, 1.0, 1.6, 1.6),
        (5000.0, 0.5, 2.1, 2.1),
        (6300.0, -0.1, 2.1, 2.6),
        (8000.0, -1.1, 2.1, 3.1),
        (10000.0, -2.5, 2.6, 3.6),
        (12500.0, -4.3, 3.0, 6.0),
        (16000.0, -6.6, 3.5, 17.0),
        (20000.0, -9.3, 4.0, _INF),
    )
)

# ITU-R BS.1770-4, Annex 1, Table 1 (stage 1, pre-filter) and Table 2 (stage 2, RLB high-pass)
# at 48 kHz, as printed: (b0, b1, b2), (a0, a1, a2).
BS1770_K_WEIGHTING_48K: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = (
    ((1.53512485958697, -2.69169618940638, 1.19839281085285), (1.0, -1.69065929318241, 0.73248077421585)),
    ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621)),
)

# Analogue parameters reproducing the printed 48 kHz K-weighting (libebur128 / B. De Man).
_SHELF_FREQ_HZ = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_VB_EXPONENT = 0.4996667741545416
_HIGHPASS_FREQ_HZ = 38.13547087602444
_HIGHPASS_Q = 0.5003270373238773


def _check_sample_rate(sample_rate: float) -> float:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise ValueError(f"sample_rate must be a number in Hz, got {type(sample_rate).__name__}")
    sample_rate = float(sample_rate)
    if not math.isfinite(sample_rate) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    return sample_rate


def _check_audio(x: torch.Tensor, what: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor shaped [batch, channels, samples], got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"{what} must be shaped [batch, channels, samples], got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{what} must be a floating-point tensor, got {x.dtype}")


# --------------------------------------------------------------------------------------------
# A-weighting
# --------------------------------------------------------------------------------------------


def a_weighting_analog_db(freq_hz: np.ndarray | float) -> np.ndarray:
    """A-weighting of the analogue prototype in dB, 0 dB at 1 kHz.

    IEC 61672-1:2013, Annex E, eq. (E.6): ``A(f) = 20 lg[f4^2 f^4 / ((f^2 + f1^2)
    (f^2 + f2^2)^(1/2) (f^2 + f3^2)^(1/2) (f^2 + f4^2))] - A1000``, with ``A1000`` the value of the
    bracket at 1 kHz (-2.000 dB to three decimals), so that ``A(1000 Hz) = 0`` exactly.

    Args:
        freq_hz: frequency or array of frequencies in Hz (> 0).

    Returns:
        The weighting in dB, same shape as ``freq_hz``.
    """
    f = np.asarray(freq_hz, dtype=np.float64)

    def bracket(f: np.ndarray) -> np.ndarray:
        f1, f2, f3, f4 = A_WEIGHTING_POLES_HZ
        f_sq = f * f
        return 20.0 * np.log10(
            f4**2 * f_sq**2 / ((f_sq + f1**2) * np.sqrt(f_sq + f2**2) * np.sqrt(f_sq + f3**2) * (f_sq + f4**2))
        )

    return bracket(f) - bracket(np.float64(1000.0))


def a_weighting_zpk(sample_rate: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Digital A-weighting as zeros, poles and gain (bilinear transform, 0 dB at 1 kHz).

    The analogue prototype of IEC 61672-1:2013, Annex E (four zeros at 0 Hz, poles
    :data:`A_WEIGHTING_POLES_HZ`, f1 and f4 double) mapped with the bilinear transform. That squeezes
    the analogue axis into [0, fs/2], so the digital filter falls below the analogue curve towards
    Nyquist: at the exact mid-band frequencies of the 8, 12.5 and 16 kHz bands it reads 0.65, 3.46
    and 8.21 dB low at 44.1 kHz and 0.53, 2.74 and 6.21 dB low at 48 kHz (under 0.1 dB below
    4 kHz). That is inside the class-1 limits of IEC 61672-1:2013 (:data:`IEC_61672_A_TABLE`) from
    10 Hz to 16 kHz at 44.1 and 48 kHz; at 22.05 kHz only up to 6.3 kHz.

    Args:
        sample_rate: sample rate in Hz; must exceed 2 kHz so that 1 kHz lies below Nyquist.

    Returns:
        ``(z, p, k)`` of the digital filter.
    """
    sample_rate = _check_sample_rate(sample_rate)
    if sample_rate <= 2000.0:
        raise ValueError(f"A-weighting is normalized at 1 kHz and needs sample_rate > 2000 Hz, got {sample_rate}")
    f1, f2, f3, f4 = A_WEIGHTING_POLES_HZ
    zeros = np.zeros(4)
    poles = -2.0 * np.pi * np.array([f1, f1, f2, f3, f4, f4])
    z, p, k = signal.bilinear_zpk(zeros, poles, 1.0, sample_rate)
    _, h = signal.freqz_zpk(z, p, k, worN=[1000.0], fs=sample_rate)
    return z, p, float(k / np.abs(h[0]))


def a_weighting_sos(sample_rate: float) -> np.ndarray:
    """Digital A-weighting as second-order sections, shape ``[3, 6]`` (scipy layout), float64."""
    z, p, k = a_weighting_zpk(sample_rate)
    return signal.zpk2sos(z, p, k)


def a_weighting_coefficients(sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Digital A-weighting as one transfer function ``(b, a)`` (order 6), float64, ``a[0] == 1``.

    For filtering prefer :func:`a_weighting_sos`: the direct form of an order-6 filter with poles
    at 20 Hz is numerically fragile.
    """
    z, p, k = a_weighting_zpk(sample_rate)
    b, a = signal.zpk2tf(z, p, k)
    return np.real(b).astype(np.float64), np.real(a).astype(np.float64)


def a_weighting(x: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """Apply A-weighting to ``[batch, channels, samples]`` audio (differentiable).

    Args:
        x: audio tensor ``[batch, channels, samples]``.
        sample_rate: sample rate in Hz.

    Returns:
        The A-weighted audio, same shape and dtype.
    """
    _check_audio(x)
    return sosfilt(x, a_weighting_sos(sample_rate))


# --------------------------------------------------------------------------------------------
# K-weighting
# --------------------------------------------------------------------------------------------


def _k_weighting_fitted(
    sample_rate: float, keep_48k_gain: bool
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    # Stage 1: high shelf from its analogue parameters, bilinear transform with prewarped centre.
    k = math.tan(math.pi * _SHELF_FREQ_HZ / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**_SHELF_VB_EXPONENT
    a0 = 1.0 + k / _SHELF_Q + k * k
    b_shelf = np.array([vh + vb * k / _SHELF_Q + k * k, 2.0 * (k * k - vh), vh - vb * k / _SHELF_Q + k * k]) / a0
    a_shelf = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / _SHELF_Q + k * k]) / a0
    # Stage 2: RLB high-pass. BS.1770-4 Table 2 prints the numerator (1, -2, 1), whose passband
    # gain is the normalization a0 = 1 + k/Q + k^2 of the denominator: +0.043 dB at 48 kHz, part
    # of the -0.691 dB calibration. "bs1770" keeps that 48 kHz passband gain at every rate (the
    # numerator is (1, -2, 1) exactly at 48 kHz); "deman" keeps the numerator (1, -2, 1), so its
    # gain drifts with the rate (+0.047 dB at 44.1 kHz, +0.094 dB at 22.05 kHz).
    k = math.tan(math.pi * _HIGHPASS_FREQ_HZ / sample_rate)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    b_hp = np.array([1.0, -2.0, 1.0])
    if keep_48k_gain:
        k48 = math.tan(math.pi * _HIGHPASS_FREQ_HZ / 48000.0)
        b_hp = b_hp * ((1.0 + k48 / _HIGHPASS_Q + k48 * k48) / a0)
    a_hp = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / _HIGHPASS_Q + k * k]) / a0
    return (b_shelf, a_shelf), (b_hp, a_hp)


def _k_weighting_rbj(sample_rate: float) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    # RBJ Audio-EQ-Cookbook high shelf (+4 dB, 1500 Hz, Q 1/sqrt(2)) and high-pass (38 Hz, Q 0.5).
    amp = 10.0 ** (4.0 / 40.0)
    w0 = 2.0 * math.pi * 1500.0 / sample_rate
    cw, alpha = math.cos(w0), math.sin(w0) / (2.0 * (1.0 / math.sqrt(2.0)))
    sa = 2.0 * math.sqrt(amp) * alpha
    b = np.array([
        amp * ((amp + 1) + (amp - 1) * cw + sa),
        -2.0 * amp * ((amp - 1) + (amp + 1) * cw),
        amp * ((amp + 1) + (amp - 1) * cw - sa),
    ])
    a = np.array([(amp + 1) - (amp - 1) * cw + sa, 2.0 * ((amp - 1) - (amp + 1) * cw), (amp + 1) - (amp - 1) * cw - sa])
    shelf = (b / a[0], a / a[0])
    w0 = 2.0 * math.pi * 38.0 / sample_rate
    cw, alpha = math.cos(w0), math.sin(w0) / (2.0 * 0.5)
    b = np.array([(1 + cw) / 2.0, -(1 + cw), (1 + cw) / 2.0])
    a = np.array([1.0 + alpha, -2.0 * cw, 1.0 - alpha])
    return shelf, (b / a[0], a / a[0])


def k_weighting_coefficients(
    sample_rate: float, design: str = "bs1770"
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """K-weighting of ITU-R BS.1770-4 (Annex 1) for any sample rate.

    BS.1770-4 prints the two biquads for 48 kHz only (:data:`BS1770_K_WEIGHTING_48K`). As in
    libebur128 and pyloudnorm's ``"DeMan"`` class, they are described by analogue parameters (a high
    shelf at 1681.97 Hz, +4.0 dB, Q 0.7072; a 38.135 Hz high-pass, Q 0.5003; fitted by B. De Man)
    and recomputed for any rate with the bilinear transform; at 48 kHz this reproduces the printed
    numbers to 1e-15.

    Args:
        sample_rate: sample rate in Hz (> 3364 Hz, twice the shelf frequency).
        design: ``"bs1770"`` (default): as above, with the high-pass passband gain held at its
            48 kHz value (+0.043 dB, part of the -0.691 dB calibration) so that the response does
            not depend on the rate. ``"deman"``: numerator (1, -2, 1) of stage 2 at every rate,
            exactly pyloudnorm's ``filter_class="DeMan"`` and libebur128, whose passband gain
            drifts with the rate (+0.094 dB at 22.05 kHz). ``"rbj"``: pyloudnorm's default
            ``"K-weighting"`` filters (RBJ-cookbook shelf 1500 Hz, +4 dB, Q 1/sqrt(2); high-pass
            38 Hz, Q 0.5) with unit passband gain, up to 1e-2 off the printed coefficients
            (1e-4 apart from the gain), reading about 0.04 dB below ``"bs1770"``.

    Returns:
        ``((b1, a1), (b2, a2))``: stage 1 (high-shelf pre-filter) and stage 2 (RLB high-pass),
        float64 arrays of length 3 with ``a[0] == 1``.
    """
    sample_rate = _check_sample_rate(sample_rate)
    if sample_rate <= 2.0 * _SHELF_FREQ_HZ:
        raise ValueError(f"K-weighting needs sample_rate > {2 * _SHELF_FREQ_HZ:.0f} Hz, got {sample_rate}")
    if design in ("bs1770", "deman"):
        return _k_weighting_fitted(sample_rate, keep_48k_gain=design == "bs1770")
    if design == "rbj":
        return _k_weighting_rbj(sample_rate)
    raise ValueError(f"unknown K-weighting design {design!r}; choose 'bs1770', 'deman' or 'rbj'")


def k_weighting_sos(sample_rate: float, design: str = "bs1770") -> np.ndarray:
    """K-weighting as second-order sections, shape ``[2, 6]`` (scipy layout), float64."""
    stages = k_weighting_coefficients(sample_rate, design)
    return np.stack([np.concatenate([b, a]) for b, a in stages])


def k_weighting(x: torch.Tensor, sample_rate: float, design: str = "bs1770") -> torch.Tensor:
    """Apply BS.1770-4 K-weighting to ``[batch, channels, samples]`` audio (differentiable).

    Args:
        x: audio tensor ``[batch, channels, samples]``.
        sample_rate: sample rate in Hz.
        design: see :func:`k_weighting_coefficients`.

    Returns:
        The K-weighted audio, same shape and dtype.
    """
    _check_audio(x)
    return sosfilt(x, k_weighting_sos(sample_rate, design))


# --------------------------------------------------------------------------------------------
# Differentiable cascade of biquads
# --------------------------------------------------------------------------------------------


def sosfilt(x: torch.Tensor, sos: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Filter along the last axis with a cascade of second-order sections (differentiable in ``x``).

    Same result as ``scipy.signal.sosfilt(sos, x, axis=-1)`` (zero initial state). When a gradient
    is needed (``x.requires_grad`` with autograd enabled) or ``x`` is not on the CPU, each section
    runs through ``torchaudio.functional.lfilter`` (no output clamping) in the dtype of ``x``;
    otherwise ``scipy.signal.sosfilt`` filters in float64, about ten times faster, and the result is
    cast back to the dtype of ``x``. The coefficients are constants (no gradient flows to them).

    Args:
        x: tensor ``[..., samples]`` (floating point).
        sos: ``[sections, 6]`` array in scipy's layout ``(b0, b1, b2, a0, a1, a2)``.

    Returns:
        The filtered tensor, same shape and dtype as ``x`` (float32 for half-precision ``x``).
    """
    import torchaudio.functional as AF

    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise ValueError("x must be a floating-point torch.Tensor")
    sos = np.asarray(sos.detach().cpu() if isinstance(sos, torch.Tensor) else sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6:
        raise ValueError(f"sos must be shaped [sections, 6], got {sos.shape}")
    if np.any(sos[:, 3] == 0):
        raise ValueError("sos has a section with a0 == 0")
    sos = sos / sos[:, 3:4]
    if x.dtype in (torch.float16, torch.bfloat16):  # a recursion in 16 bits is unusable (and lfilter refuses it)
        x = x.float()
    if x.device.type == "cpu" and not (torch.is_grad_enabled() and x.requires_grad):
        y = signal.sosfilt(sos, x.detach().numpy().astype(np.float64, copy=False), axis=-1)
        return torch.from_numpy(y).to(x.dtype)
    shape = x.shape
    y = x.reshape(-1, shape[-1])
    with torch.autocast(device_type=x.device.type, enabled=False):  # lfilter's FIR part is a conv1d
        for section in sos:
            b = torch.as_tensor(section[:3], dtype=x.dtype, device=x.device)
            a = torch.as_tensor(section[3:], dtype=x.dtype, device=x.device)
            y = AF.lfilter(y, a, b, clamp=False, batching=False)
    return y.reshape(shape)
