"""The final true-peak stages of a master, fast: NumPy ``[channels, samples]`` audio, float64.

:func:`limit_true_peak` is :func:`mastering.dsp.dynamics.limiter` (same algorithm, same defaults, its
8x-oversampled peak envelope) and :func:`true_peak_max` is
:func:`mastering.dsp.loudness.true_peak_stream` (the 4x interpolator of ITU-R BS.1770-4, Annex 2),
with their polyphase interpolation computed in one compiled pass that keeps only the largest
magnitude between two samples, instead of an oversampled copy of the signal: the same results to
float64 rounding (``tests/dsp/test_truepeak.py``), several times faster. Peaks that cannot matter
are not computed: the limiter skips stretches whose samples cannot reach its ceiling (after its first
pass, those whose peaks before its gain and the gain cannot: :func:`gain_bounds`), the meter those
that cannot reach a peak it has already found (same results, bit for bit). They finish files
(:mod:`mastering.master`, :func:`mastering.pipeline.finish_audio`); training never calls them.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit
from scipy.signal import firwin

from .dynamics import _limiter_gain
from .loudness import _interpolation_filter

__all__ = ["LimiterForecast", "gain_bounds", "interval_peaks", "limit_true_peak", "meter_peaks", "true_peak_max"]

_LIMITER_OVERSAMPLE = 8
_SKIP_UNDER = 0.999  # limit_true_peak computes peaks exactly from 0.009 dB under its ceiling up
_BLOCK = 32  # the skipping test's granularity (samples); computed runs join up to 8 blocks


@njit(cache=True, nogil=True)
def _exact_run(xc, w, oc, i0, m, acc, best):  # pragma: no cover - compiled
    """``oc[i0 + k] = max_p |sum_t w[t, p] * xc[i0 + k + t]|`` for ``k < m`` (``m`` <= ``len(acc)``):
    the accumulators stay in cache and the loop over ``k`` vectorises; four taps per sweep of them
    (each sum still formed tap by tap, in order)."""
    taps, phases = w.shape
    best[:m] = 0.0
    for p in range(phases):
        acc[:m] = 0.0
        t = 0
        while t + 4 <= taps:
            w0, w1, w2, w3 = w[t, p], w[t + 1, p], w[t + 2, p], w[t + 3, p]
            s0 = xc[i0 + t: i0 + t + m]
            s1 = xc[i0 + t + 1: i0 + t + 1 + m]
            s2 = xc[i0 + t + 2: i0 + t + 2 + m]
            s3 = xc[i0 + t + 3: i0 + t + 3 + m]
            for k in range(m):
                acc[k] = (((acc[k] + w0 * s0[k]) + w1 * s1[k]) + w2 * s2[k]) + w3 * s3[k]
            t += 4
        while t < taps:
            wt = w[t, p]
            seg = xc[i0 + t: i0 + t + m]
            for k in range(m):
                acc[k] += wt * seg[k]
            t += 1
        for k in range(m):
            a = abs(acc[k])
            best[k] = a if a > best[k] else best[k]
    for k in range(m):
        oc[i0 + k] = best[k]


@njit(cache=True, nogil=True)
def _block_bound(peak, b, spill):  # pragma: no cover - compiled
    """The largest ``|x|`` that block ``b``'s outputs read: its own input block and ``spill`` more."""
    mx = 0.0
    for j in range(b, min(b + spill + 1, peak.shape[0])):
        mx = peak[j] if peak[j] > mx else mx
    return mx


@njit(cache=True, nogil=True)
def _polyphase_peaks(x, w, out, floor):  # pragma: no cover - compiled
    """``out[c, i] = max_p |sum_t w[t, p] * x[c, i + t]|`` for ``i < out.shape[1]``, except where that
    is certainly under ``floor``: a block of outputs whose inputs all have ``|x| * max_p sum_t |w[t, p]|``
    under ``floor`` gets that bound instead (a value at or above the exact one, under ``floor``) and
    no arithmetic. Runs of blocks that need it are computed exactly in tiles of up to 256 outputs;
    each output's sum is formed in the same order whatever the tiling, so exact values are the
    same to the bit. ``floor = 0`` computes everything."""
    channels, n = out.shape
    taps, phases = w.shape
    block = _BLOCK
    tile = 8 * block
    acc = np.empty(tile)
    best = np.empty(tile)
    gain = 0.0
    for p in range(phases):
        s = 0.0
        for t in range(taps):
            s += abs(w[t, p])
        gain = s if s > gain else gain
    gain *= 1.0 + 1e-12  # the bound stays above every computed sum despite the sums' rounding (< 1e-14)
    n_blocks = (n + block - 1) // block
    spill = (taps - 1 + block - 1) // block  # blocks of input beyond a block's own that it reads
    n_in = x.shape[1]
    in_blocks = (n_in + block - 1) // block
    peak = np.empty(in_blocks)
    for c in range(channels):
        xc = x[c]
        oc = out[c]
        if floor > 0.0:
            for j in range(in_blocks):
                mx = 0.0
                for i in range(j * block, min((j + 1) * block, n_in)):
                    a = abs(xc[i])
                    mx = a if a > mx else mx
                peak[j] = mx
        b = 0
        while b < n_blocks:
            if floor > 0.0:
                bound = _block_bound(peak, b, spill) * gain
                if bound < floor:  # a NaN goes on to the exact sum
                    for i in range(b * block, min((b + 1) * block, n)):
                        oc[i] = bound
                    b += 1
                    continue
            i0 = b * block
            m = min(block, n - i0)
            b += 1
            while b < n_blocks and m + block <= tile:  # join the blocks that follow and need it too
                if floor > 0.0 and _block_bound(peak, b, spill) * gain < floor:
                    break
                m += min(block, n - b * block)
                b += 1
            _exact_run(xc, w, oc, i0, m, acc, best)


@functools.lru_cache(maxsize=None)
def _resample_poly_taps(factor: int) -> tuple[np.ndarray, int]:
    """``scipy.signal.resample_poly(x, factor, 1)`` as ``[taps, factor]`` polyphase weights and the
    zeros to pad ``x`` with on each side: its default Kaiser (beta 5) low-pass of ``20 factor + 1``
    taps, output ``factor * i + p`` at row ``p``."""
    half = 10 * factor
    h = firwin(2 * half + 1, 1.0 / factor, window=("kaiser", 5.0)) * factor
    reach = half // factor
    w = np.zeros((2 * reach + 1, factor))
    for t in range(2 * reach + 1):
        for p in range(factor):
            k = factor * (reach - t) + p + half
            if 0 <= k <= 2 * half:
                w[t, p] = h[k]
    return w, reach


def interval_peaks(x: np.ndarray, factor: int = _LIMITER_OVERSAMPLE, floor: float = 0.0) -> np.ndarray:
    """``[channels, samples]``: the largest ``|.|`` of ``resample_poly(x, factor, 1)`` over each input
    interval ``[n, n + 1)`` (what :func:`mastering.dsp.dynamics.limiter` reads its envelope from).

    With ``floor`` > 0, where that peak is certainly under ``floor`` (the nearby samples are too
    small to reach it) the output is an upper bound under ``floor`` instead, and costs nothing:
    a caller that only acts on peaks at or above ``floor`` gets the same result faster."""
    w, reach = _resample_poly_taps(int(factor))
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(x.shape)
    _polyphase_peaks(np.pad(x, ((0, 0), (reach, reach))), w, out, float(floor))
    return out


def meter_peaks(x: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """``[channels, samples]``: at sample ``n`` the largest ``|.|`` that the BS.1770-4 4x meter
    (:func:`true_peak_max`) reads between about ``n - 7/8`` and ``n + 7/8`` (its interpolator delays
    by 5.875 samples: outputs ``n + 5`` and ``n + 6`` of the streamed filter); the first and last
    samples also hold what it reads before and after the signal. The maximum over all samples is
    :func:`true_peak_max` of ``x`` with zero margins. ``floor`` as in :func:`interval_peaks`."""
    w = _bs1770_taps()
    reach = w.shape[0] - 1
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[-1]
    rows = np.empty((x.shape[0], n + reach))
    _polyphase_peaks(np.pad(x, ((0, 0), (reach, reach))), w, rows, float(floor))
    out = np.maximum(rows[:, 5: 5 + n], rows[:, 6: 6 + n])
    if n:
        out[:, 0] = np.maximum(out[:, 0], rows[:, :6].max(axis=-1))
        out[:, -1] = np.maximum(out[:, -1], rows[:, n + 5:].max(axis=-1))
    return out


@njit(cache=True, nogil=True)
def _envelope(peaks, y, env):  # pragma: no cover - compiled
    """``env[n]``: the largest of ``peaks[:, n - 1]``, ``peaks[:, n]`` and ``|y[:, n]|`` over the channels
    (the interval peaks on both sides of a sample cover ``[n - 1, n + 1)``)."""
    channels, n = y.shape
    for i in range(n):
        m = 0.0
        for c in range(channels):
            v = peaks[c, i]
            if i > 0 and peaks[c, i - 1] > v:
                v = peaks[c, i - 1]
            a = abs(y[c, i])
            v = a if a > v else v
            m = v if v > m else m
        env[i] = m


_BOUND_REACH = 11  # the peaks of sample n (8x interval, 4x meter) read samples n - 11 ... n + 11 at most


@njit(cache=True, nogil=True)
def _gain_bounds_kernel(x, peaks, g, filter_gain, reach, out):  # pragma: no cover - compiled
    channels, n = x.shape
    block = _BLOCK
    for j in range(out.shape[1]):
        a, b = max(j * block - reach, 0), min((j + 1) * block + reach, n)
        g_hi, g_lo = 0.0, np.inf
        for i in range(a, b):
            g_hi = g[i] if g[i] > g_hi else g_hi
            g_lo = g[i] if g[i] < g_lo else g_lo
        for c in range(channels):
            x_hi = 0.0
            for i in range(a, b):
                v = abs(x[c, i])
                x_hi = v if v > x_hi else x_hi
            p_hi = 0.0
            for i in range(j * block, min((j + 1) * block, n)):
                p_hi = peaks[c, i] if peaks[c, i] > p_hi else p_hi
            out[c, j] = (g_hi * p_hi + filter_gain * x_hi * (g_hi - g_lo + 1e-12)) * (1.0 + 1e-9)


def gain_bounds(x: np.ndarray, peaks: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Upper bounds ``[channels, ceil(samples / 32)]`` of the :func:`interval_peaks` and
    :func:`meter_peaks` of ``x * gain`` in each block of 32 samples, from ``peaks`` ``[channels,
    samples]`` of ``x`` (either kind or their maximum; exact or upper bounds) and a gain
    ``[samples]`` shared by the channels.

    Each peak is a weighted sum ``sum_t w_t x_t g_t`` over at most 11 samples on either side, so it
    is at most ``max g`` times the same sum of ``x`` plus ``sum_t |w_t| max |x| (max g - min g)``
    there: where the gain barely moves, the peaks after it follow from those before it. A limiter's
    next pass then computes only the peaks that may still reach its ceiling."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    peaks = np.ascontiguousarray(peaks, dtype=np.float64)
    gain = np.ascontiguousarray(gain, dtype=np.float64)
    if x.ndim != 2 or peaks.shape != x.shape or gain.shape != x.shape[-1:]:
        raise ValueError(f"x and peaks must be [channels, samples] and gain [samples], got {x.shape}, "
                         f"{peaks.shape}, {gain.shape}")
    filter_gain = max(float(np.abs(w).sum(axis=0).max())
                      for w in (_resample_poly_taps(_LIMITER_OVERSAMPLE)[0], _bs1770_taps()))
    out = np.empty((x.shape[0], -(-x.shape[-1] // _BLOCK)))
    _gain_bounds_kernel(x, peaks, gain, filter_gain, _BOUND_REACH, out)
    return out


def _peaks_near(peaks, y: np.ndarray, bounds: np.ndarray, floor: float) -> np.ndarray:
    """``peaks(y)`` (a function of ``[channels, samples]`` with a ``floor``) given ``bounds`` of it per
    block of 32 samples (:func:`gain_bounds`): computed only on the stretches whose bound reaches
    ``floor``, each with the samples its peaks read, elsewhere the bound. Every value at or above
    ``floor`` is the exact one, as from ``peaks(y, floor=floor)``."""
    channels, n = y.shape
    out = np.empty((channels, bounds.shape[1] * _BLOCK))
    out.reshape(channels, -1, _BLOCK)[...] = bounds[..., None]
    out = out[:, :n]
    need = np.flatnonzero((bounds >= floor).any(axis=0))
    if need.size:
        breaks = np.flatnonzero(np.diff(need) > 1)
        margin = 2 * _BOUND_REACH  # the peaks of a sample read 11 samples on either side; its block starts earlier
        for j0, j1 in zip(need[np.r_[0, breaks + 1]], need[np.r_[breaks, need.size - 1]]):
            a, b = j0 * _BLOCK, min((j1 + 1) * _BLOCK, n)
            lo, hi = max(a - margin, 0), min(b + margin, n)
            out[:, a:b] = peaks(y[:, lo:hi], floor=floor)[:, a - lo: b - lo]
    return out


def limit_true_peak(x: np.ndarray, sample_rate: int, ceiling_dbtp: float = -1.0, release_ms: float = 50.0,
                    lookahead_ms: float = 5.0, max_passes: int = 4, hold_meter: bool = False,
                    tolerance_db: float = 0.0, return_gain: bool = False):
    """:func:`mastering.dsp.dynamics.limiter` of one item ``x`` ``[channels, samples]`` (float64 out;
    audio already under the ceiling comes back unchanged, bit for bit). See there for the algorithm.

    With ``hold_meter`` the envelope also holds what the BS.1770-4 4x meter reads
    (:func:`meter_peaks`): its interpolator reads up to about 0.1 dB above the 8x envelope on
    broadband music, so without it a limited master can meter over the ceiling it was limited to.
    ``tolerance_db`` lets a pass end up that far over the ceiling before another is made: the passes
    after the first chase overshoots of thousandths of a dB on a few samples at the cost of a whole
    pass each, which a caller limiting under a margin need not pay. A pass after the first computes
    only the peaks that the last pass's peaks and gain (:func:`gain_bounds`) leave near the ceiling.
    With ``return_gain`` the gain ``[samples]`` the output got (all passes') is returned too.
    """
    lookahead = max(1, int(round(lookahead_ms * sample_rate / 1000.0)))
    ceiling_lin = 10.0 ** (ceiling_dbtp / 20.0)
    y = np.array(x, dtype=np.float64)
    total = np.ones(y.shape[-1])
    if y.shape[-1] == 0:
        return (y, total) if return_gain else y

    floor = ceiling_lin * _SKIP_UNDER  # peaks under the ceiling change nothing: left uncomputed

    def exact(y: np.ndarray, floor: float = floor) -> np.ndarray:
        interval = interval_peaks(y, floor=floor)
        return np.maximum(interval, meter_peaks(y, floor=floor)) if hold_meter else interval

    def peaks(y: np.ndarray, bounds: np.ndarray | None) -> np.ndarray:
        return exact(y) if bounds is None else _peaks_near(exact, y, bounds, floor)

    accept_lin = ceiling_lin * 10.0 ** (max(float(tolerance_db), 0.0) / 20.0)
    bounds = None
    for _ in range(max_passes):
        interval = peaks(y, bounds)
        if interval.max(initial=0.0) <= accept_lin:
            break
        env = np.empty(y.shape[-1])
        _envelope(interval, y, env)
        need_db = np.zeros(env.shape)
        over = env > ceiling_lin * (1.0 - 1e-9)  # elsewhere 20 log10(env) - ceiling_dbtp < 0
        need_db[over] = np.maximum(20.0 * np.log10(env[over]) - ceiling_dbtp, 0.0)
        gain = _limiter_gain(need_db, sample_rate, release_ms, lookahead)
        bounds = gain_bounds(y, interval, gain) if floor > 0.0 else None
        y = y * gain[None, :]
        total = total * gain
    else:
        trim = min(1.0, ceiling_lin / float(peaks(y, bounds).max(initial=0.0)))
        y = y * trim
        total = total * trim
    return (y, total) if return_gain else y


@functools.lru_cache(maxsize=None)
def _bs1770_taps() -> np.ndarray:
    return np.ascontiguousarray(_interpolation_filter(4)[:, ::-1].T)  # convolution: taps reversed


def true_peak_max(x_ext: np.ndarray) -> float:
    """:func:`mastering.dsp.loudness.true_peak_stream`: the largest 4x-interpolated magnitude of a block
    given with :data:`mastering.dsp.loudness.TRUE_PEAK_STREAM_MARGIN` samples on each side (linear)."""
    w = _bs1770_taps()
    x = np.ascontiguousarray(x_ext, dtype=np.float64)
    n = x.shape[-1] - w.shape[0] + 1
    if n <= 0:
        return 0.0
    # A lower bound first (the outputs around the loudest sample), then only the blocks whose
    # samples could reach it are computed: the maximum is the exact one.
    c, i = np.unravel_index(int(np.argmax(np.abs(x))), x.shape)
    lo, hi = max(0, i - w.shape[0] + 1), min(x.shape[-1], i + w.shape[0])
    near = np.empty((1, hi - lo - w.shape[0] + 1))
    _polyphase_peaks(np.ascontiguousarray(x[c: c + 1, lo: hi]), w, near, 0.0)
    out = np.empty((x.shape[0], n))
    _polyphase_peaks(x, w, out, float(near.max(initial=0.0)))
    return float(out.max(initial=0.0))


class LimiterForecast:
    """The loudness :func:`limit_true_peak` will take from audio at a given gain, forecast from 10 ms
    frames (their sample peaks and energies) collected while the audio is made, so that a loudness
    finish can choose its gain before it limits instead of limiting twice.

    The limiter's gain is computed on the frames (same look-ahead and release, each frame reduced
    by what its peak needs), and the cost is the energy-weighted mean of that gain squared. On 3
    minutes of loud held-out music limited by 5 dB it forecast 0.41 and 0.53 LU where limiting took
    0.41 and 0.52 LU; on a synthetic drum-and-bass loop it forecasts 3-20 % too much (its energies
    are not K-weighted, and the limited frames there are the bass-heavy ones).

    Args:
        sample_rate: Hz.
        release_ms, lookahead_ms: those of the limiter.
    """

    def __init__(self, sample_rate: int, release_ms: float = 50.0, lookahead_ms: float = 5.0):
        self.sample_rate = int(sample_rate)
        self.frame = max(1, int(round(0.01 * self.sample_rate)))
        self.release_ms, self.lookahead_ms = float(release_ms), float(lookahead_ms)
        self._peaks: list[np.ndarray] = []
        self._energies: list[np.ndarray] = []

    def update(self, x: np.ndarray) -> None:
        """Feed the next ``[channels, samples]`` of the audio (any block size; a block's last frame
        may be short)."""
        x = np.asarray(x)
        n = x.shape[-1]
        if n == 0:
            return
        edges = np.arange(0, n, self.frame)
        a = np.abs(x)
        self._peaks.append(np.maximum.reduceat(a, edges, axis=-1).max(axis=0))
        self._energies.append(np.add.reduceat(np.square(x, dtype=np.float64), edges, axis=-1).sum(axis=0))

    def cost_db(self, gain_db: float, ceiling_dbtp: float) -> float:
        """Loudness change (dB, <= 0) that limiting the audio times ``gain_db`` to ``ceiling_dbtp``
        brings; 0 for silence or audio that stays under the ceiling."""
        if not self._peaks:
            return 0.0
        if len(self._peaks) > 1:  # join the blocks once; later calls (gain_for iterates) reuse them
            self._peaks, self._energies = [np.concatenate(self._peaks)], [np.concatenate(self._energies)]
        peaks, energies = self._peaks[0], self._energies[0]
        total = float(energies.sum())
        if total <= 0.0:
            return 0.0
        with np.errstate(divide="ignore"):
            need_db = np.maximum(20.0 * np.log10(peaks) + float(gain_db) - float(ceiling_dbtp), 0.0)
        if not need_db.any():
            return 0.0
        rate = self.sample_rate / self.frame
        g = _limiter_gain(need_db, rate, self.release_ms, max(1, int(round(self.lookahead_ms * rate / 1000.0))))
        return 10.0 * math.log10(max(float((energies * g * g).sum()) / total, 1e-12))

    def gain_for(self, lufs: float, target_lufs: float, ceiling_dbtp: float, iterations: int = 4) -> float:
        """Gain (dB) that brings audio at ``lufs`` to ``target_lufs`` after limiting to
        ``ceiling_dbtp``, by fixed-point iteration on :meth:`cost_db` (at most 12 dB above the plain
        gain, where limiting this hard is the user's choice and the finish's retries take over)."""
        plain = float(target_lufs) - float(lufs)
        gain = plain
        for _ in range(int(iterations)):
            gain = plain + min(-self.cost_db(gain, ceiling_dbtp), 12.0)
        return gain
