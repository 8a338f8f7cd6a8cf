"""SAFE-DB equaliser data: loading, cleaning, descriptor normalization and parameter conversion.

The SAFE file (``SAFEEqualiserUserData.csv``, no header; its 25 columns are documented in
``SOURCE.md`` beside it) holds settings of a five-band EQ, each saved with a free-text descriptor.
One setting is 13 numbers in :data:`PARAM_NAMES` order. Entry points: :func:`load_safedb`,
:func:`normalize_descriptor`, :func:`descriptor_counts`; conversions :func:`safe_to_bands` (bands
of :mod:`mastering.dsp.eq`), :func:`safe_to_dasp` (dasp-pytorch's ``parametric_eq``),
:func:`normalize_params` / :func:`denormalize_params` (``[0, 1]``) and :func:`safe_response_db`.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import paths
from ..dsp.eq import freq_response_db

__all__ = [
    "SAFEDB_FILENAME",
    "PARAM_NAMES",
    "PARAM_RANGES",
    "BAND_KINDS",
    "SHELF_Q",
    "DESCRIPTOR_SYNONYMS",
    "INVALID_DESCRIPTORS",
    "safedb_path",
    "load_safedb",
    "normalize_descriptor",
    "descriptor_counts",
    "params_array",
    "normalize_params",
    "denormalize_params",
    "safe_to_bands",
    "safe_to_dasp",
    "safe_response_db",
]

SAFEDB_FILENAME = "SAFEEqualiserUserData.csv"

#: The 13 SAFE EQ parameters in file order (columns 5..17).
PARAM_NAMES: tuple[str, ...] = (
    "low_shelf_gain_db", "low_shelf_freq_hz",
    "peak1_gain_db", "peak1_freq_hz", "peak1_q",
    "peak2_gain_db", "peak2_freq_hz", "peak2_q",
    "peak3_gain_db", "peak3_freq_hz", "peak3_q",
    "high_shelf_gain_db", "high_shelf_freq_hz",
)  # fmt: skip

#: Documented ranges of the SAFE plugin controls (SOURCE.md; identical to flowEQ ``train/utils.py``
#: ``param_min``/``param_max`` and to the minima/maxima measured in the file).
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "low_shelf_gain_db": (-12.0, 12.0), "low_shelf_freq_hz": (22.0, 1000.0),
    "peak1_gain_db": (-12.0, 12.0), "peak1_freq_hz": (82.0, 3900.0), "peak1_q": (0.1, 10.0),
    "peak2_gain_db": (-12.0, 12.0), "peak2_freq_hz": (180.0, 4700.0), "peak2_q": (0.1, 10.0),
    "peak3_gain_db": (-12.0, 12.0), "peak3_freq_hz": (220.0, 10000.0), "peak3_q": (0.1, 10.0),
    "high_shelf_gain_db": (-12.0, 12.0), "high_shelf_freq_hz": (580.0, 20000.0),
}  # fmt: skip

#: Filter type of each of the five SAFE bands, in the names :mod:`mastering.dsp.eq` uses.
BAND_KINDS: tuple[str, ...] = ("low_shelf", "peaking", "peaking", "peaking", "high_shelf")

#: Q of the SAFE shelves, which have no Q control: the plugin's RBJ cookbook shelf has a fixed
#: Q of 1/sqrt(2) (shelf slope S = 1, the steepest without overshoot; flowEQ uses 0.71).
SHELF_Q = 1.0 / math.sqrt(2.0)

#: Word forms folded onto one descriptor after lower-casing and taking the first word. flowEQ's
#: ``stem`` maps brighter->bright and airy->air; the other entries are the same kind of obvious
#: inflection (comparative, noun, verb form) found in the file. Misspellings are left alone.
DESCRIPTOR_SYNONYMS: dict[str, str] = {
    "brighter": "bright", "brightness": "bright", "brightens": "bright",
    "warmer": "warm", "warmth": "warm",
    "airy": "air",
    "thinner": "thin", "fuller": "full", "clearer": "clear",
}  # fmt: skip

#: Normalized descriptors that are not descriptions (plugin tests).
INVALID_DESCRIPTORS: frozenset[str] = frozenset({"test", "test1"})

# Column names of the 25-column file (SOURCE.md). Columns 20-23 are blanked personal metadata
# and are not loaded.
_COLUMNS = [
    "entry_id", "descriptor_raw", "contributor", "flag_a", "flag_b",
    *PARAM_NAMES,
    "genre", "instrument", "location", "experience", "age", "language", "hash",
]  # fmt: skip
_KEEP = ["entry_id", "descriptor_raw", "descriptor", "contributor", "flag_a", "flag_b",
         *PARAM_NAMES, "genre", "instrument", "hash"]  # fmt: skip

_GAIN_IDX = [0, 2, 5, 8, 11]
_FREQ_IDX = [1, 3, 6, 9, 12]
_Q_IDX = [4, 7, 10]
_LOG_IDX = sorted(_FREQ_IDX + _Q_IDX)
_LO = np.array([PARAM_RANGES[n][0] for n in PARAM_NAMES])
_HI = np.array([PARAM_RANGES[n][1] for n in PARAM_NAMES])
# Relative slack on the documented ranges: the file stores float32 values (e.g. 0.70999998 for
# 0.71, 999.99988 for 1000), so the bounds are checked with a tolerance well above float32 eps.
_RANGE_RTOL = 1e-5


def safedb_path(path: str | os.PathLike | None = None) -> Path:
    """The SAFE-DB CSV: ``path`` itself (file or folder) or :func:`mastering.paths.safedb_dir`.

    Raises:
        FileNotFoundError: with a message naming ``$MASTERING_SAFEDB_DIR`` and ``make data``.
    """
    p = Path(path) if path is not None else paths.safedb_dir()
    if p.is_dir() or p.suffix.lower() != ".csv":
        p = p / SAFEDB_FILENAME
    if not p.is_file():
        raise FileNotFoundError(
            f"SAFE-DB file not found: {p}. Point $MASTERING_SAFEDB_DIR at the folder holding "
            f"{SAFEDB_FILENAME} (default ../shared/data/safedb beside the repository, else "
            "data/safedb), or run `make data` to fetch it."
        )
    return p


def normalize_descriptor(text: Any) -> str:
    """Normalize a free-text SAFE descriptor to one lower-case word.

    Lower-cases, strips whitespace, keeps the first word (words are split at anything that is not
    a letter or digit, so ``"thin, twangy"`` gives ``thin`` and ``"Magic_Warm"`` gives ``magic``)
    and folds the inflections in :data:`DESCRIPTOR_SYNONYMS`. This follows flowEQ's ``stem``
    (lower-case, first word, brighter->bright, airy->air). Returns ``""`` for an empty descriptor.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    words = [w for w in re.split(r"[^0-9a-z]+", str(text).lower().strip()) if w]
    if not words:
        return ""
    return DESCRIPTOR_SYNONYMS.get(words[0], words[0])


def load_safedb(path: str | os.PathLike | None = None, drop_invalid: bool = True) -> pd.DataFrame:
    """Load and clean the SAFE equaliser user data.

    Args:
        path: the CSV file or the folder holding it; default :func:`mastering.paths.safedb_dir`.
        drop_invalid: drop invalid rows (default). With ``False`` every row is returned with a
            boolean ``valid`` column and an ``invalid_reason`` column instead.

    Returns:
        One row per SAFE setting with columns ``entry_id``, ``descriptor_raw`` (as typed),
        ``descriptor`` (:func:`normalize_descriptor`), ``contributor`` (pseudonymous id),
        ``flag_a``/``flag_b`` (undocumented 1/2 flags), the 13 :data:`PARAM_NAMES` (float64),
        ``genre``, ``instrument`` and ``hash``. ``df.attrs["cleaning"]`` records the counts:
        ``raw_rows``, ``dropped_nonfinite``, ``dropped_out_of_range``, ``dropped_invalid_descriptor``
        (empty or a test descriptor, :data:`INVALID_DESCRIPTORS`) and ``rows``. A row is counted
        under the first reason that applies, in that order.

    Raises:
        FileNotFoundError: the file is missing (the message says how to provide it).
        ValueError: the file does not have the 25-column SAFE layout.
    """
    csv = safedb_path(path)
    try:
        raw = pd.read_csv(csv, header=None, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{csv}: not the 25-column SAFE equaliser CSV (see SOURCE.md): {exc}") from None
    if raw.shape[1] != len(_COLUMNS):
        raise ValueError(
            f"{csv}: expected the 25-column SAFE equaliser layout (see SOURCE.md), got {raw.shape[1]} columns"
        )
    raw.columns = _COLUMNS
    df = raw.copy()
    df["descriptor"] = df["descriptor_raw"].map(normalize_descriptor)
    values = df[list(PARAM_NAMES)].apply(pd.to_numeric, errors="coerce").astype("float64")
    df[list(PARAM_NAMES)] = values
    for col in ("entry_id", "flag_a", "flag_b"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")

    arr = values.to_numpy()
    finite = np.isfinite(arr).all(axis=1)
    with np.errstate(invalid="ignore"):
        in_range = ((arr >= _LO - np.abs(_LO) * _RANGE_RTOL) & (arr <= _HI + np.abs(_HI) * _RANGE_RTOL)).all(axis=1)
    good_word = ~df["descriptor"].isin(INVALID_DESCRIPTORS) & (df["descriptor"] != "")
    reason = np.where(~finite, "nonfinite", np.where(~in_range, "out_of_range", np.where(~good_word, "invalid_descriptor", "")))
    cleaning = {
        "source": str(csv),
        "raw_rows": int(len(df)),
        "dropped_nonfinite": int((reason == "nonfinite").sum()),
        "dropped_out_of_range": int((reason == "out_of_range").sum()),
        "dropped_invalid_descriptor": int((reason == "invalid_descriptor").sum()),
        "rows": int((reason == "").sum()),
    }
    # Valid values a hair outside the documented range (float32 storage) are clipped onto it.
    valid = reason == ""
    df.loc[valid, list(PARAM_NAMES)] = np.clip(arr[valid], _LO, _HI)
    df = df[_KEEP]
    if drop_invalid:
        df = df[valid].reset_index(drop=True)
    else:
        df = df.assign(valid=valid, invalid_reason=reason)
    df.attrs["cleaning"] = cleaning
    return df


def descriptor_counts(df: pd.DataFrame, column: str = "descriptor", min_count: int = 1) -> pd.Series:
    """Number of settings per descriptor, most frequent first (ties alphabetical).

    Args:
        df: a frame from :func:`load_safedb`.
        column: ``descriptor`` (normalized) or ``descriptor_raw`` (as typed).
        min_count: keep descriptors with at least this many settings.
    """
    if column not in df.columns:
        raise ValueError(f"no column {column!r}; expected one of 'descriptor', 'descriptor_raw'")
    counts = df[column].value_counts()
    counts = counts[counts >= min_count]
    order = sorted(counts.index, key=lambda k: (-counts[k], str(k)))
    out = counts.loc[order]
    out.name = "count"
    out.index.name = column
    return out


def params_array(df: pd.DataFrame) -> np.ndarray:
    """The ``[n, 13]`` float64 array of SAFE parameters (:data:`PARAM_NAMES` order) of a frame."""
    missing = [c for c in PARAM_NAMES if c not in df.columns]
    if missing:
        raise ValueError(f"frame lacks SAFE parameter columns {missing}; load it with load_safedb()")
    return df[list(PARAM_NAMES)].to_numpy(dtype=np.float64)


def _as_params(params: Any, what: str = "params"):
    """Tensor/array with a last axis of 13; pandas rows and frames become NumPy."""
    if isinstance(params, pd.Series):
        params = params[list(PARAM_NAMES)].to_numpy(dtype=np.float64) if set(PARAM_NAMES) <= set(params.index) else params.to_numpy(dtype=np.float64)
    elif isinstance(params, pd.DataFrame):
        params = params_array(params)
    if not isinstance(params, torch.Tensor):
        params = np.asarray(params, dtype=np.float64)
    if params.ndim == 0 or params.shape[-1] != len(PARAM_NAMES):
        raise ValueError(
            f"{what} must have a last axis of {len(PARAM_NAMES)} SAFE parameters {PARAM_NAMES}, "
            f"got shape {tuple(params.shape)}"
        )
    return params


def _bounds(like):
    if isinstance(like, torch.Tensor):
        return (torch.as_tensor(_LO, dtype=like.dtype, device=like.device),
                torch.as_tensor(_HI, dtype=like.dtype, device=like.device))  # fmt: skip
    return _LO, _HI


def _log_mask(like):
    """The array library of ``like`` and the mask of log-scaled parameters (frequencies, Qs)."""
    lib = torch if isinstance(like, torch.Tensor) else np
    mask = np.zeros(len(PARAM_NAMES), dtype=bool)
    mask[_LOG_IDX] = True
    if lib is torch:
        mask = torch.as_tensor(mask, device=like.device)
    return lib, mask


def _warp(v, mask, lib):
    """Log of the masked (frequency, Q) entries, identity elsewhere; never takes the log of a gain."""
    return lib.where(mask, lib.log(lib.where(mask, v, lib.ones_like(v))), v)


def normalize_params(params: Any, clip: bool = False):
    """Map physical SAFE parameters ``[..., 13]`` to ``[0, 1]``.

    Gains map linearly over ``[-12, 12]`` dB; frequencies and Qs logarithmically over their
    :data:`PARAM_RANGES` (a log scale matches how the plugin's knobs and hearing space them; flowEQ
    used a linear map for all 13). Works on NumPy arrays and (differentiably) on torch tensors and
    returns the same type.

    Args:
        params: ``[..., 13]`` physical values (array, tensor, pandas row or frame).
        clip: clamp values outside the documented ranges instead of raising.

    Raises:
        ValueError: wrong parameter count, non-finite values, or values outside the ranges
            (unless ``clip``).
    """
    x = _as_params(params)
    lo, hi = _bounds(x)
    lib, mask = _log_mask(x)
    if not bool(lib.isfinite(x).all()):
        raise ValueError("SAFE parameters hold NaN/Inf")
    tol_lo = lo - abs(lo) * _RANGE_RTOL
    tol_hi = hi + abs(hi) * _RANGE_RTOL
    if not clip and bool(((x < tol_lo) | (x > tol_hi)).any()):
        bad = np.nonzero(np.asarray(((x < tol_lo) | (x > tol_hi)).reshape(-1, len(PARAM_NAMES)).any(0)))[0]
        raise ValueError(
            f"SAFE parameters out of range for {[PARAM_NAMES[i] for i in bad]} "
            f"(ranges {[PARAM_RANGES[PARAM_NAMES[i]] for i in bad]}); pass clip=True to clamp"
        )
    x = lib.clip(x, lo, hi)
    xw, low, hiw = (_warp(v, mask, lib) for v in (x, lo, hi))
    return (xw - low) / (hiw - low)


def denormalize_params(params_norm: Any, clip: bool = False):
    """Inverse of :func:`normalize_params`: ``[..., 13]`` values in ``[0, 1]`` to physical units.

    Raises:
        ValueError: wrong parameter count, non-finite values or values outside ``[0, 1]``
            (unless ``clip``).
    """
    y = _as_params(params_norm, "params_norm")
    lo, hi = _bounds(y)
    lib, mask = _log_mask(y)
    if not bool(lib.isfinite(y).all()):
        raise ValueError("normalized SAFE parameters hold NaN/Inf")
    if not clip and bool(((y < -1e-6) | (y > 1 + 1e-6)).any()):
        raise ValueError("normalized SAFE parameters must lie in [0, 1]; pass clip=True to clamp")
    y = lib.clip(y, 0.0, 1.0)
    low, hiw = _warp(lo, mask, lib), _warp(hi, mask, lib)
    v = low + y * (hiw - low)
    return lib.where(mask, lib.exp(v), v)


def safe_to_bands(params: Any) -> tuple[Any, Any, Any, tuple[str, ...]]:
    """Split SAFE settings ``[..., 13]`` into the five biquad bands of :mod:`mastering.dsp.eq`.

    Returns:
        ``(freq_hz, gain_db, q, kinds)``: three ``[..., 5]`` arrays (or tensors, matching the
        input) in band order low shelf, peak 1-3, high shelf, and the five filter kinds
        :data:`BAND_KINDS`. The shelves get :data:`SHELF_Q` (SAFE has no shelf Q control).

    Raises:
        ValueError: the last axis is not 13 long.
    """
    x = _as_params(params)
    lib = torch if isinstance(x, torch.Tensor) else np
    freq_hz = x[..., _FREQ_IDX]
    gain_db = x[..., _GAIN_IDX]
    shelf_q = lib.full_like(x[..., :1], SHELF_Q)
    if lib is torch:
        q = torch.cat([shelf_q, x[..., _Q_IDX], shelf_q], dim=-1)
    else:
        q = np.concatenate([shelf_q, x[..., _Q_IDX], shelf_q], axis=-1)
    return freq_hz, gain_db, q, BAND_KINDS


def safe_to_dasp(params: Any, dtype: torch.dtype = torch.float32, fourth_band_freq_hz: float = 1000.0) -> dict[str, torch.Tensor]:
    """SAFE settings ``[batch, 13]`` (or ``[13]``) as keyword arguments of dasp-pytorch 0.0.1's
    ``dasp_pytorch.functional.parametric_eq``.

    dasp-pytorch has a low shelf, four peaking bands (``band0``..``band3``) and a high shelf, each
    with ``*_gain_db``, ``*_cutoff_freq`` (Hz) and ``*_q_factor``. Its biquads are the RBJ cookbook
    filters (``dasp_pytorch.signal.biquad``) with the shelf Q entering as
    ``alpha = sin(w0) / (2 Q)``, the same convention as SAFE's plugin, so the shelves get
    :data:`SHELF_Q`. SAFE's three peaks map to ``band0``..``band2``; ``band3`` is set to 0 dB
    (an exact identity biquad, whatever its frequency and Q).

    Returns:
        A dict of 18 ``[batch]`` tensors, to be passed as ``parametric_eq(x, sample_rate, **d)``.
    """
    x = _as_params(params)
    x = torch.as_tensor(x, dtype=dtype)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"safe_to_dasp expects [batch, 13] or [13] parameters, got shape {tuple(x.shape)}")
    shelf_q = torch.full_like(x[:, 0], SHELF_Q)
    out = {
        "low_shelf_gain_db": x[:, 0], "low_shelf_cutoff_freq": x[:, 1], "low_shelf_q_factor": shelf_q,
        "band0_gain_db": x[:, 2], "band0_cutoff_freq": x[:, 3], "band0_q_factor": x[:, 4],
        "band1_gain_db": x[:, 5], "band1_cutoff_freq": x[:, 6], "band1_q_factor": x[:, 7],
        "band2_gain_db": x[:, 8], "band2_cutoff_freq": x[:, 9], "band2_q_factor": x[:, 10],
        "band3_gain_db": torch.zeros_like(x[:, 0]),
        "band3_cutoff_freq": torch.full_like(x[:, 0], fourth_band_freq_hz),
        "band3_q_factor": torch.full_like(x[:, 0], SHELF_Q),
        "high_shelf_gain_db": x[:, 11], "high_shelf_cutoff_freq": x[:, 12], "high_shelf_q_factor": shelf_q.clone(),
    }  # fmt: skip
    return out


def safe_response_db(params: Any, freqs_hz: Any, sample_rate: int = 44100) -> Any:
    """Magnitude response in dB of SAFE settings ``[..., 13]`` at the frequencies ``freqs_hz``.

    Evaluates the cascade of the five RBJ biquads (:func:`safe_to_bands`) with
    :func:`mastering.dsp.eq.freq_response_db` (which clamps band frequencies to 0.49 x
    ``sample_rate``, so a 20 kHz high shelf is evaluated at 21.6 kHz at 44.1 kHz).

    Args:
        params: ``[..., 13]`` physical SAFE settings (array, tensor, pandas row or frame).
        freqs_hz: ``[freqs]`` evaluation frequencies in Hz, within ``[0, sample_rate / 2]``.
        sample_rate: sample rate in Hz.

    Returns:
        ``[..., freqs]`` response in dB: a tensor (differentiable) for tensor input, else NumPy.
    """

    freq_hz, gain_db, q, kinds = safe_to_bands(params)
    return freq_response_db(freq_hz, gain_db, q, kinds, sample_rate, freqs_hz=freqs_hz)
