"""Analysis of the listening test's ratings, from the app's CSV export to the paper's statistics.

Reading and validating the export, participant exclusions, the repeated-measures ANOVA, the mixed
model, post-hoc tests, simulated studies and power, and objective spectral proxies of the stimuli:
pure functions on pandas DataFrames (figures and tables: :mod:`mastering.evaluation.listening`;
the method is described in ``paper/``).
"""

from __future__ import annotations

import math
import os
import warnings
from itertools import combinations
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..io import load_audio
from ..paths import data_dir
from .listening_design import CONDITIONS, EXPORT_COLUMNS, RATING_MAX, RATING_MIN, TARGETS, build_schedule
from .listening_manifest import Manifest, ManifestRow, load_manifest

__all__ = [
    "REQUIRED_COLUMNS",
    "DEFAULT_EFFECT_PATTERN",
    "DEFAULT_PROXY_FOR_TARGET",
    "default_responses_path",
    "default_stimuli_dir",
    "validate_responses",
    "check_manifest",
    "load_responses",
    "apply_exclusions",
    "cell_means",
    "condition_means",
    "rm_anova",
    "mixed_model",
    "pairwise",
    "holm",
    "simulate_responses",
    "power_analysis",
    "spectral_measures",
    "objective_proxies",
    "objective_anova",
    "objective_deltas",
    "check_real_output",
]

#: Export columns the analysis reads (the others are kept as they are).
REQUIRED_COLUMNS = (
    "participant", "participant_complete", "trial_index", "phase", "item", "condition", "target",
    "rating", "attention_check", "expected_rating", "repeat_of_trial_index", "placeholder",
)

#: Condition means of the simulation, in units of ``effect_d`` within-participant SDs: the
#: adaptive system is ``d`` above the static EQ, the flowEQ-style curve halfway, the original
#: level with the static EQ.
DEFAULT_EFFECT_PATTERN = {"original": 0.0, "static_eq": 0.0, "floweq_style": 0.5, "adaptive_semantic_eq": 1.0}

#: Which spectral proxy stands for which target in :func:`objective_anova`.
DEFAULT_PROXY_FOR_TARGET = {"warm": "low_share_db", "bright": "high_share_db", "clear": "centroid_hz"}

_PROXY_UNITS = {"centroid_hz": "Hz", "low_share_db": "dB", "high_share_db": "dB"}


def default_responses_path() -> Path:
    """Where ``python -m listening_test export`` is told to write: ``<data>/listening_test/responses.csv``."""
    return data_dir() / "listening_test" / "responses.csv"


def default_stimuli_dir() -> Path:
    """The stimuli folder ``make listening-test`` serves: ``<data>/listening_test/stimuli``."""
    return data_dir() / "listening_test" / "stimuli"


# ---------------------------------------------------------------------------------------------
# Reading and validating the export
# ---------------------------------------------------------------------------------------------
_TRUE = {"1", "true", "yes", "t", "y"}
_FALSE = {"0", "false", "no", "f", "n", ""}


def _as_bool(series: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype(bool)
    text = series.astype("string").fillna("").str.strip().str.lower()
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        raise ValueError(f"column {name!r} must hold 0/1 or true/false; found {sorted(set(text[bad]))[:5]}")
    return text.isin(_TRUE).astype(bool)


_NO_SIMULATED = (
    "the response table has no 'simulated' column: every row must say whether it is simulated; exports of the "
    "study app write it (0 for real participants), simulate_responses() writes True; re-export older files "
    "with `python -m listening_test export`"
)


def _simulated(df: pd.DataFrame) -> pd.Series:
    """The ``simulated`` column as booleans; no default: a missing column, an empty or unknown value is an error."""
    if "simulated" not in df.columns:
        raise ValueError(_NO_SIMULATED)
    series = df["simulated"]
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.astype(bool)
    text = series.astype("string").fillna("").str.strip().str.lower()
    empty = text == ""
    if empty.any():
        raise ValueError(
            f"column 'simulated' is empty in {int(empty.sum())} row(s): every row must say whether it is "
            "simulated (exports of the study app write 0, simulate_responses() writes True)"
        )
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        raise ValueError(f"column 'simulated' must hold 0/1 or true/false; found {sorted(set(text[bad]))[:5]}")
    return text.isin(_TRUE).astype(bool)


def _check_not_mixed(simulated: pd.Series) -> None:
    n_sim = int(simulated.sum())
    if 0 < n_sim < len(simulated):
        raise ValueError(
            f"the responses mix {n_sim} simulated and {len(simulated) - n_sim} real row(s); simulated and real "
            "ratings are never pooled: analyse them separately"
        )


def _check_provenance(df: pd.DataFrame, simulated: pd.Series) -> None:
    """Never pool simulated with real rows, nor real rows of different stimulus sets."""
    _check_not_mixed(simulated)
    if simulated.any() or "manifest_sha256" not in df.columns:
        return
    hashes = df["manifest_sha256"].astype("string").fillna("").str.strip()
    flipped = hashes == "simulated"
    if flipped.any():
        raise ValueError(
            f"{int(flipped.sum())} row(s) marked as real (simulated false) carry manifest_sha256 'simulated': "
            "they come from simulate_responses(), not from the study app"
        )
    distinct = sorted(set(hashes))
    if len(distinct) > 1:
        raise ValueError(
            f"the real responses were rated on {len(distinct)} different stimulus sets (manifest_sha256 "
            f"{', '.join(repr(h) for h in distinct[:4])}); ratings of different stimuli are never pooled: export "
            "and analyse each set against its own manifest"
        )


def _as_int(series: pd.Series, name: str, allow_missing: bool) -> pd.Series:
    text = series.astype("string").str.strip()
    text = text.mask(text == "")
    values = pd.to_numeric(text, errors="coerce")
    junk = values.isna() & text.notna()
    if junk.any():
        raise ValueError(f"column {name!r} must hold integers; found {sorted(set(text[junk]))[:5]}")
    if not allow_missing and values.isna().any():
        raise ValueError(f"column {name!r} has {int(values.isna().sum())} empty value(s)")
    fractional = values.notna() & (values != np.round(values))
    if fractional.any():
        raise ValueError(f"column {name!r} must hold integers; found {sorted(set(values[fractional]))[:5]}")
    return values.astype("Int64")


def validate_responses(df: pd.DataFrame, manifest: Manifest | str | os.PathLike | None = None) -> pd.DataFrame:
    """Check and type a response table in the export's format; returns a typed copy.

    Every row must say whether it is simulated (column ``simulated``, written by the app's export
    and by :func:`simulate_responses`); there is no default. Simulated and real rows are never
    pooled, and the real rows of one table must all come from one stimulus set (one
    ``manifest_sha256``); given ``manifest`` (a
    :class:`~mastering.evaluation.listening_manifest.Manifest` or its stimuli folder),
    :func:`check_manifest` checks that it is that manifest's hash.

    Raises:
        ValueError: missing columns (``simulated`` included), no rows, an empty or unknown
            ``simulated`` value, simulated and real rows together, real rows of several stimulus
            manifests or with the simulated marker ``manifest_sha256="simulated"``, ratings that are
            not integers in 1..7, an unknown phase or attention-check kind, a fixed check without its
            expected rating, a repeat without the trial it repeats, the same participant x trial
            twice, or (given ``manifest``) real rows of another stimulus set.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of responses, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"the responses lack column(s) {missing}; expected the export of "
            "`python -m listening_test export` (columns: " + ", ".join(EXPORT_COLUMNS) + ")"
        )
    if "simulated" not in df.columns:
        raise ValueError(_NO_SIMULATED)
    if df.empty:
        raise ValueError("the responses hold no rows")
    simulated = _simulated(df)
    if manifest is not None:
        check_manifest(df, manifest)
    _check_provenance(df, simulated)
    out = df.copy()
    for col in ("participant", "phase", "item", "condition", "target"):
        out[col] = out[col].astype("string").str.strip().astype(str)
    out["attention_check"] = out["attention_check"].astype("string").fillna("").str.strip().astype(str)

    text = out["rating"].astype("string").str.strip()
    rating = pd.to_numeric(text, errors="coerce")
    bad = rating.isna() | (rating != np.round(rating)) | (rating < RATING_MIN) | (rating > RATING_MAX)
    if bad.any():
        rows = out.loc[bad, ["participant", "trial_index"]].assign(rating=text[bad]).head(5)
        raise ValueError(
            f"{int(bad.sum())} rating(s) are not integers from {RATING_MIN} to {RATING_MAX}, e.g. "
            + "; ".join(f"participant {r.participant} trial {r.trial_index}: {r.rating!r}" for r in rows.itertuples())
        )
    out["rating"] = rating.astype(int)
    out["trial_index"] = _as_int(out["trial_index"], "trial_index", allow_missing=False).astype(int)
    out["expected_rating"] = _as_int(out["expected_rating"], "expected_rating", allow_missing=True)
    out["repeat_of_trial_index"] = _as_int(out["repeat_of_trial_index"], "repeat_of_trial_index", allow_missing=True)
    out["participant_complete"] = _as_bool(out["participant_complete"], "participant_complete")
    out["placeholder"] = _as_bool(out["placeholder"], "placeholder")
    out["simulated"] = simulated

    phases = set(out["phase"]) - {"training", "main"}
    if phases:
        raise ValueError(f"unknown phase(s) {sorted(phases)}; the export has 'training' and 'main'")
    kinds = set(out["attention_check"]) - {"", "fixed", "repeat"}
    if kinds:
        raise ValueError(f"unknown attention_check value(s) {sorted(kinds)}; expected '', 'fixed' or 'repeat'")
    fixed = out["attention_check"] == "fixed"
    if out.loc[fixed, "expected_rating"].isna().any():
        raise ValueError("a 'fixed' attention check has no expected_rating")
    repeat = out["attention_check"] == "repeat"
    if out.loc[repeat, "repeat_of_trial_index"].isna().any():
        raise ValueError("a 'repeat' attention check has no repeat_of_trial_index")
    dup = out.duplicated(["participant", "trial_index"])
    if dup.any():
        first = out.loc[dup, ["participant", "trial_index"]].iloc[0]
        raise ValueError(
            f"{int(dup.sum())} duplicated participant x trial row(s), e.g. participant {first['participant']} "
            f"trial {first['trial_index']}; the export has one row per answered trial"
        )
    return out


def check_manifest(df: pd.DataFrame, manifest: Manifest | str | os.PathLike) -> None:
    """Refuse real ratings that were not made on the stimuli of ``manifest``.

    Every row of the app's export carries the SHA-256 of the ``manifest.csv`` its participant was
    served (``manifest_sha256``; simulated rows: ``"simulated"``). Ratings of another stimulus set
    must not be analysed, or have their stimuli measured, against this one.

    Args:
        df: responses in the export's format (with the explicit ``simulated`` column).
        manifest: the stimuli manifest (:func:`~mastering.evaluation.listening_manifest.load_manifest`)
            or its stimuli folder (read without checking the WAV files).

    Raises:
        ValueError: no ``simulated`` or ``manifest_sha256`` column, simulated and real rows together,
            or real rows whose ``manifest_sha256`` is not the manifest's hash (the message gives
            how many and both hashes). Simulated rows are not checked.
    """
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, check_files=False)
    simulated = _simulated(df)
    _check_not_mixed(simulated)
    if simulated.all():
        return
    if "manifest_sha256" not in df.columns:
        raise ValueError("the responses have no 'manifest_sha256' column; exports of the study app write it")
    hashes = df["manifest_sha256"].astype("string").fillna("").str.strip()
    wrong = hashes != manifest.sha256
    if wrong.any():
        found = sorted(set(hashes[wrong]))
        raise ValueError(
            f"{int(wrong.sum())} of {len(df)} real rating(s) were made on another stimulus set: their "
            f"manifest_sha256 is {', '.join(repr(h) for h in found[:3])}, the manifest "
            f"{manifest.root / 'manifest.csv'} has {manifest.sha256!r}; ratings of another stimulus set must "
            "not be analysed against this one"
        )


def load_responses(path: str | os.PathLike, manifest: Manifest | str | os.PathLike | None = None) -> pd.DataFrame:
    """Read the app's CSV export (``python -m listening_test export``) and validate it.

    Args:
        path: the CSV file.
        manifest: the stimuli manifest the participants were served (a
            :class:`~mastering.evaluation.listening_manifest.Manifest` or its stimuli folder):
            every real row must carry its hash (:func:`check_manifest`). Required when the file
            holds real responses (``simulated`` = 0): they are never analysed unchecked; ``None``
            is accepted for simulated responses only.

    Returns:
        The typed table (see :func:`validate_responses`): ``rating`` int, booleans for
        ``participant_complete``, ``placeholder`` and ``simulated``, nullable ints for
        ``expected_rating`` and ``repeat_of_trial_index``.

    Raises:
        ValueError: a missing file, real responses without ``manifest``, or any problem
            :func:`validate_responses` or :func:`check_manifest` reports (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; export the responses with `python -m listening_test export`")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    try:
        out = validate_responses(df, manifest)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if manifest is None and not out["simulated"].all():
        raise ValueError(
            f"{path}: {int((~out['simulated']).sum())} real rating(s) and no stimuli manifest to check them "
            "against; pass the manifest of the stimuli the listeners heard (load_responses(path, manifest=...)), "
            "whose hash every real row must carry"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Exclusions
# ---------------------------------------------------------------------------------------------
def apply_exclusions(
    df: pd.DataFrame, max_fixed_failures: int = 0, max_repeat_diff: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exclude unreliable or unfinished participants and keep the analysable trials.

    A participant is excluded when (each reason is listed):

    * they did not finish the session (``participant_complete`` is 0);
    * they failed more than ``max_fixed_failures`` fixed-answer checks (rating != expected);
    * any repeated ``original`` was rated more than ``max_repeat_diff`` scale points away from its
      first presentation (the post-screening of ITU-R BS.1534-3, 4.1.2, in its simplest form).

    Args:
        df: responses in the export's format.
        max_fixed_failures: fixed checks a participant may fail.
        max_repeat_diff: largest tolerated |repeat - first| rating difference.

    Returns:
        ``(kept, table)``: ``kept`` holds the main-phase rating trials (no training trial, no
        attention check) of the participants kept; ``table`` has one row per participant with
        ``complete``, ``main_ratings``, ``fixed_checks``, ``fixed_failures``, ``repeat_checks``,
        ``repeat_max_diff``, ``excluded`` and ``reason`` ("" when kept).
    """
    if max_fixed_failures < 0 or max_repeat_diff < 0:
        raise ValueError("max_fixed_failures and max_repeat_diff must be non-negative")
    df = validate_responses(df)
    records = []
    for participant, g in df.groupby("participant", sort=False):
        main = g[g["phase"] == "main"]
        fixed = main[main["attention_check"] == "fixed"]
        failures = int((fixed["rating"] != fixed["expected_rating"].astype(int)).sum()) if len(fixed) else 0
        ratings = dict(zip(g["trial_index"], g["rating"]))
        repeats = main[main["attention_check"] == "repeat"]
        diffs, unmatched = [], 0
        for first, rating in zip(repeats["repeat_of_trial_index"], repeats["rating"]):
            if int(first) in ratings:
                diffs.append(abs(int(rating) - int(ratings[int(first)])))
            else:
                unmatched += 1
        complete = bool(g["participant_complete"].all())
        reasons = []
        if not complete:
            reasons.append(f"incomplete session ({int((main['attention_check'] == '').sum())} main ratings given)")
        if failures > max_fixed_failures:
            reasons.append(f"failed {failures} of {len(fixed)} fixed-answer check(s) (allowed {max_fixed_failures})")
        if diffs and max(diffs) > max_repeat_diff:
            reasons.append(f"repeated original rated {max(diffs)} points apart (allowed {max_repeat_diff})")
        if unmatched:
            reasons.append(f"{unmatched} repeat check(s) without their first presentation")
        records.append({
            "participant": participant,
            "complete": complete,
            "main_ratings": int((main["attention_check"] == "").sum()),
            "fixed_checks": int(len(fixed)),
            "fixed_failures": failures,
            "repeat_checks": int(len(repeats)),
            "repeat_max_diff": float(max(diffs)) if diffs else float("nan"),
            "excluded": bool(reasons),
            "reason": "; ".join(reasons),
        })
    table = pd.DataFrame(records)
    keep = set(table.loc[~table["excluded"], "participant"])
    kept = df[(df["phase"] == "main") & (df["attention_check"] == "") & df["participant"].isin(keep)]
    return kept.reset_index(drop=True), table


# ---------------------------------------------------------------------------------------------
# Cell means and the repeated-measures ANOVA
# ---------------------------------------------------------------------------------------------
def _ordered(values: Sequence[str], preferred: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(values))
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def _analysable(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing}")
    if df.empty:
        raise ValueError("no ratings to analyse (every participant excluded?)")
    if "phase" in df and (df["phase"] != "main").any():
        raise ValueError("the table holds training trials; pass the trials kept by apply_exclusions()")
    if "attention_check" in df and (df["attention_check"].fillna("") != "").any():
        raise ValueError("the table holds attention checks; pass the trials kept by apply_exclusions()")
    return df


def _flag(df: pd.DataFrame, column: str) -> bool:
    return bool(column in df.columns and df[column].astype(bool).any())


def cell_means(df: pd.DataFrame, unit: str = "participant") -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """Mean rating per ``unit`` x condition x target as an array.

    Returns:
        ``(Y, units, conditions, targets)`` with ``Y[u, c, t]``; conditions in :data:`CONDITIONS`
        order, targets in :data:`TARGETS` order (others after, sorted).

    Raises:
        ValueError: a unit without a rating in some condition x target cell (the repeated-measures
            design needs every cell of every unit).
    """
    value = "rating" if "rating" in df.columns else "value"
    _analysable(df, [unit, "condition", "target", value])
    conditions = _ordered(df["condition"], CONDITIONS)
    targets = _ordered(df["target"], TARGETS)
    means = df.groupby([unit, "condition", "target"], sort=False)[value].mean()
    units = list(dict.fromkeys(df[unit]))
    full = pd.MultiIndex.from_product([units, conditions, targets], names=[unit, "condition", "target"])
    cube = means.reindex(full)
    if cube.isna().any():
        lacking = sorted({k[0] for k in cube[cube.isna()].index})
        raise ValueError(
            f"{len(lacking)} {unit}(s) lack ratings in some condition x target cell (e.g. {lacking[:3]}); "
            "the repeated-measures analysis needs every cell; apply_exclusions() drops unfinished sessions"
        )
    Y = cube.to_numpy(dtype=float).reshape(len(units), len(conditions), len(targets))
    return Y, units, conditions, targets


def condition_means(df: pd.DataFrame, ci: str = "within", level: float = 0.95) -> pd.DataFrame:
    """Mean rating per target x condition with a confidence interval over participants.

    Args:
        df: kept trials (:func:`apply_exclusions`).
        ci: ``"within"``: within-participant intervals (Cousineau 2005 normalisation with Morey's
            2008 correction sqrt(J / (J - 1)), J conditions), which show what the repeated-measures
            tests compare; ``"between"``: the ordinary t interval of the participant means.
        level: confidence level.

    Returns:
        Columns ``target``, ``condition``, ``mean``, ``ci_low``, ``ci_high``, ``n_participants``.
    """
    from scipy import stats

    if ci not in ("within", "between"):
        raise ValueError(f"ci must be 'within' or 'between', got {ci!r}")
    Y, units, conditions, targets = cell_means(df)
    n, j = Y.shape[0], Y.shape[1]
    if n < 2:
        raise ValueError("confidence intervals need at least two participants")
    values = Y
    if ci == "within":
        values = Y - Y.mean(axis=1, keepdims=True) + Y.mean(axis=(0, 1), keepdims=True)
    sem = values.std(axis=0, ddof=1) / math.sqrt(n)
    if ci == "within" and j > 1:
        sem = sem * math.sqrt(j / (j - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sem
    mean = Y.mean(axis=0)
    rows = [
        {"target": t, "condition": c, "mean": mean[ci_, ti], "ci_low": mean[ci_, ti] - half[ci_, ti],
         "ci_high": mean[ci_, ti] + half[ci_, ti], "n_participants": n}
        for ti, t in enumerate(targets) for ci_, c in enumerate(conditions)
    ]
    return pd.DataFrame(rows)


def _contrasts(k: int) -> np.ndarray:
    """``k x (k-1)`` orthonormal contrasts (columns orthogonal to the constant)."""
    centering = np.eye(k) - 1.0 / k
    q, _ = np.linalg.qr(centering[:, : k - 1])
    return q


def _gg_epsilon(data: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """Greenhouse-Geisser epsilon (Greenhouse & Geisser 1959) of ``data[..., unit, level]``.

    epsilon = tr(S)^2 / (m tr(S^2)) for the covariance ``S`` of the ``m`` orthonormal contrast
    scores; between 1/m (maximal violation of sphericity) and 1 (sphericity).
    """
    m = contrast.shape[1]
    z = data @ contrast
    z = z - z.mean(axis=-2, keepdims=True)
    n = data.shape[-2]
    s = np.swapaxes(z, -1, -2) @ z / max(n - 1, 1)
    tr = np.trace(s, axis1=-2, axis2=-1)
    tr2 = np.sum(s * s, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        eps = np.where(tr2 > 0, tr**2 / (m * tr2), 1.0)
    return np.clip(eps, 1.0 / m, 1.0)


def _anova_table(Y: np.ndarray, value: str, unit: str, conditions: list[str], targets: list[str]) -> pd.DataFrame:
    """AnovaRM on the cell-mean cube ``Y[unit, condition, target]`` plus partial eta^2 and GG."""
    from scipy import stats
    from statsmodels.stats.anova import AnovaRM

    n = Y.shape[0]
    long = pd.DataFrame({
        unit: np.repeat(np.arange(n), Y.shape[1] * Y.shape[2]).astype(str),
        "condition": np.tile(np.repeat(conditions, Y.shape[2]), n),
        "target": np.tile(targets, n * Y.shape[1]),
        value: Y.reshape(-1),
    })
    within = ["condition"] + (["target"] if len(targets) > 1 else [])
    if len(conditions) < 2:
        raise ValueError("the ANOVA needs at least two conditions")
    if n < 2:
        raise ValueError(f"the ANOVA needs at least two {unit}s, got {n}")
    res = AnovaRM(long, depvar=value, subject=unit, within=within, aggregate_func="mean").fit().anova_table
    data = {
        "condition": Y.mean(axis=2),
        "target": Y.mean(axis=1),
        "condition:target": Y.reshape(n, -1),
    }
    contrast = {
        "condition": _contrasts(len(conditions)),
        "target": _contrasts(len(targets)) if len(targets) > 1 else None,
        "condition:target": (np.kron(_contrasts(len(conditions)), _contrasts(len(targets)))
                             if len(targets) > 1 else None),
    }
    rows = []
    for effect, rec in res.iterrows():
        f_value, df1, df2, p = (float(rec["F Value"]), float(rec["Num DF"]), float(rec["Den DF"]), float(rec["Pr > F"]))
        eps = float(_gg_epsilon(data[effect], contrast[effect]))
        rows.append({
            "effect": effect, "F": f_value, "num_df": df1, "den_df": df2, "p": p,
            "partial_eta_sq": f_value * df1 / (f_value * df1 + df2),
            "eps_gg": eps, "p_gg": float(stats.f.sf(f_value, eps * df1, eps * df2)),
            f"n_{unit}s": n,
        })
    return pd.DataFrame(rows)


def rm_anova(df: pd.DataFrame) -> pd.DataFrame:
    """Condition x target repeated-measures ANOVA on the participants' cell means.

    statsmodels ``AnovaRM`` (``aggregate_func="mean"``: each participant's ratings of the clips
    are averaged per condition x target cell, clips being the replicates). Partial eta squared is
    computed from F and its degrees of freedom, eta_p^2 = F df1 / (F df1 + df2) (Cohen 1973).
    ``AnovaRM`` assumes sphericity; the Greenhouse-Geisser epsilon of each within factor and the
    corrected p-value (both dfs multiplied by epsilon) are added. With a single target the design is
    one-way (condition).

    Args:
        df: kept trials (:func:`apply_exclusions`): ``participant``, ``item``, ``condition``,
            ``target``, ``rating``.

    Returns:
        One row per effect (``condition``, ``target``, ``condition:target``): ``F``, ``num_df``,
        ``den_df``, ``p``, ``partial_eta_sq``, ``eps_gg``, ``p_gg``, ``n_participants``, and the
        provenance flags ``simulated`` and ``placeholder`` of the input rows.

    Raises:
        ValueError: training trials or attention checks in the table, fewer than two participants
            or conditions, or a participant lacking a cell.
    """
    Y, _, conditions, targets = cell_means(df)
    table = _anova_table(Y, "rating", "participant", conditions, targets)
    table["simulated"] = _flag(df, "simulated")
    table["placeholder"] = _flag(df, "placeholder")
    return table


def _term_label(term: str) -> str:
    import re

    return re.sub(r"C\((\w+)(?:,\s*Treatment\([^)]*\))?\)\[T\.([^\]]+)\]", r"\1[\2]", term).replace(":", " x ")


def mixed_model(df: pd.DataFrame, structure: str = "crossed", reml: bool = True) -> pd.DataFrame:
    """Linear mixed model of the single ratings: rating ~ C(condition) * C(target) + random effects.

    Fixed effects: condition (treatment coding, ``original`` the reference) x target. Random
    effects (statsmodels ``MixedLM``, REML):

    * ``structure="crossed"`` (default): a random intercept per participant and one per clip
      (item), crossed, as stimuli-as-random-factor designs require (Judd, Westfall & Kenny 2012;
      Baayen, Davidson & Bates 2008). statsmodels fits crossed effects as variance components
      within a single group (``vc_formula={"participant": "0 + C(participant)", "item":
      "0 + C(item)"}``), since its groups are independent by definition.
    * ``structure="nested"``: ``groups=participant`` (random intercept per participant) with the
      variance component ``{"item": "0 + C(item)"}``, which statsmodels realises independently
      within each participant, i.e. a participant x clip effect rather than a clip effect.

    Convergence problems are not hidden: every warning raised during the fit is recorded in the
    ``warnings`` column (and ``converged`` says whether the optimiser reported convergence).

    Args:
        df: kept trials (:func:`apply_exclusions`).
        structure: ``"crossed"`` or ``"nested"``.
        reml: restricted maximum likelihood (True) or maximum likelihood.

    Returns:
        One row per fixed effect (``kind="fixed"``: ``term``, ``label``, ``estimate``, ``se``,
        ``z``, ``p``, ``ci_low``, ``ci_high``) and per variance (``kind="variance"``:
        participant, item, residual; estimate only), with ``converged``, ``warnings``,
        ``structure``, ``reference`` (the reference cell), ``n_obs`` and the flags ``simulated`` and ``placeholder``.
    """
    if structure not in ("crossed", "nested"):
        raise ValueError(f"structure must be 'crossed' or 'nested', got {structure!r}")
    data, conditions, targets = _mixed_model_data(df)
    model, result, messages = _fit_mixed_model(data, conditions, targets, structure, reml)
    out = pd.DataFrame(_fixed_effect_rows(result) + _variance_rows(model, result, structure))
    out["converged"] = bool(result.converged)
    out["warnings"] = " | ".join(messages)
    out["structure"] = structure
    out["reference"] = f"{conditions[0]}, {targets[0]}"
    out["n_obs"] = int(result.nobs)
    out["simulated"] = _flag(df, "simulated")
    out["placeholder"] = _flag(df, "placeholder")
    return out


def _mixed_model_data(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The columns the mixed model reads, typed, with the conditions and targets in design order."""
    _analysable(df, ["participant", "item", "condition", "target", "rating"])
    data = df[["participant", "item", "condition", "target", "rating"]].astype(
        {"participant": str, "item": str, "condition": str, "target": str, "rating": float}
    ).reset_index(drop=True)
    conditions = _ordered(data["condition"], CONDITIONS)
    targets = _ordered(data["target"], TARGETS)
    if len(conditions) < 2:
        raise ValueError("the mixed model needs at least two conditions")
    return data, conditions, targets


def _fit_mixed_model(data: pd.DataFrame, conditions: list[str], targets: list[str], structure: str,
                     reml: bool) -> tuple[object, object, list[str]]:
    """Fit ``MixedLM`` for :func:`mixed_model`; returns ``(model, result, warning messages)``."""
    import statsmodels.formula.api as smf

    fixed = f"C(condition, Treatment(reference={conditions[0]!r}))"
    if len(targets) > 1:
        fixed += f" * C(target, Treatment(reference={targets[0]!r}))"
    formula = f"rating ~ {fixed}"
    if structure == "crossed":
        data["all"] = 1
        model = smf.mixedlm(formula, data, groups="all", re_formula="0",
                            vc_formula={"participant": "0 + C(participant)", "item": "0 + C(item)"})
    else:
        model = smf.mixedlm(formula, data, groups="participant", re_formula="1",
                            vc_formula={"item": "0 + C(item)"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(reml=reml)
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return model, result, messages


def _fixed_effect_rows(result) -> list[dict]:
    """One ``kind="fixed"`` row per fixed effect of a fitted ``MixedLM``."""
    ci = result.conf_int()
    rows = []
    for term in result.fe_params.index:
        rows.append({
            "kind": "fixed", "term": term, "label": _term_label(term),
            "estimate": float(result.fe_params[term]), "se": float(result.bse_fe[term]),
            "z": float(result.tvalues[term]), "p": float(result.pvalues[term]),
            "ci_low": float(ci.loc[term, 0]), "ci_high": float(ci.loc[term, 1]),
        })
    return rows


def _variance_rows(model, result, structure: str) -> list[dict]:
    """One ``kind="variance"`` row per variance (random effects, then the residual)."""
    variances = dict(zip(model.exog_vc.names, np.asarray(result.vcomp, dtype=float)))
    if structure == "nested":
        variances = {"participant": float(np.asarray(result.cov_re)[0, 0]),
                     "participant x item": variances.get("item", float("nan"))}
    variances["residual"] = float(result.scale)
    return [{"kind": "variance", "term": f"{name} Var", "label": f"{name} variance", "estimate": value}
            for name, value in variances.items()]


# ---------------------------------------------------------------------------------------------
# Post-hoc tests
# ---------------------------------------------------------------------------------------------
def holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values along the last axis (NaN treated as 1).

    The same values as ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``,
    vectorised over leading axes (used by the power simulation).
    """
    p = np.where(np.isnan(p), 1.0, np.asarray(p, dtype=float))
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=-1)
    adjusted = np.minimum(1.0, np.maximum.accumulate(sorted_p * (m - np.arange(m)), axis=-1))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def pairwise(df: pd.DataFrame, family: str = "all", alpha: float = 0.05) -> pd.DataFrame:
    """Paired t-tests between conditions within each target, Holm-corrected, with Cohen's d_z.

    Each participant contributes their mean rating per condition x target (over the clips); for
    every pair of conditions within a target, ``scipy.stats.ttest_rel`` tests the paired
    difference. p-values are Holm-corrected (``multipletests(method="holm")``) over all the
    comparisons of the table (``family="all"``) or within each target (``family="target"``).
    The effect size is Cohen's d_z for paired samples, d_z = mean(diff) / sd(diff) with the
    sample SD (ddof=1) of the per-participant differences (Cohen 1988; Lakens 2013, eq. 6): the
    standardised difference the paired test has power for, not the d_av of two independent groups.

    Returns:
        Columns ``target``, ``condition_a``, ``condition_b``, ``n``, ``mean_a``, ``mean_b``,
        ``mean_diff`` (a - b), ``sd_diff``, ``t``, ``df``, ``p``, ``p_holm``, ``d_z``,
        ``significant`` (``p_holm < alpha``), ``simulated``, ``placeholder``.
    """
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    if family not in ("all", "target"):
        raise ValueError(f"family must be 'all' or 'target', got {family!r}")
    Y, _, conditions, targets = cell_means(df)
    n = Y.shape[0]
    if n < 2:
        raise ValueError("paired tests need at least two participants")
    rows = []
    for ti, target in enumerate(targets):
        for i, j in combinations(range(len(conditions)), 2):
            a, b = Y[:, i, ti], Y[:, j, ti]
            diff = a - b
            sd = float(diff.std(ddof=1))
            with np.errstate(invalid="ignore", divide="ignore"):
                res = stats.ttest_rel(a, b)
            rows.append({
                "target": target, "condition_a": conditions[i], "condition_b": conditions[j], "n": n,
                "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_diff": float(diff.mean()),
                "sd_diff": sd, "t": float(res.statistic), "df": n - 1, "p": float(res.pvalue),
                "d_z": float(diff.mean() / sd) if sd > 0 else float("nan"),
            })
    out = pd.DataFrame(rows)
    out["p_holm"] = np.nan
    groups = [out.index] if family == "all" else [g.index for _, g in out.groupby("target", sort=False)]
    for idx in groups:
        p = out.loc[idx, "p"].to_numpy()
        ok = np.isfinite(p)
        adjusted = np.full(p.shape, np.nan)
        if ok.any():
            adjusted[ok] = multipletests(p[ok], method="holm")[1]
        out.loc[idx, "p_holm"] = adjusted
    out["significant"] = out["p_holm"] < alpha
    out["simulated"] = _flag(df, "simulated")
    out["placeholder"] = _flag(df, "placeholder")
    return out


# ---------------------------------------------------------------------------------------------
# Simulation and power
# ---------------------------------------------------------------------------------------------
def _effects(conditions: Sequence[str], effect_d: float, sd_residual: float,
             effect_pattern: Mapping[str, float] | None) -> np.ndarray:
    pattern = DEFAULT_EFFECT_PATTERN if effect_pattern is None else effect_pattern
    unknown = [c for c in conditions if c not in pattern]
    if unknown:
        raise ValueError(f"effect_pattern has no weight for condition(s) {unknown}")
    return np.array([pattern[c] for c in conditions], dtype=float) * float(effect_d) * float(sd_residual)


def _check_sim_args(n_participants: int, n_items: int, sds: Mapping[str, float]) -> None:
    if int(n_participants) < 1 or int(n_items) < 1:
        raise ValueError("n_participants and n_items must be at least 1")
    for name, value in sds.items():
        if not value >= 0:
            raise ValueError(f"{name} must be a non-negative standard deviation, got {value}")


def _latent_means(rng: np.random.Generator, n_sims: int, n_participants: int, n_items: int,
                  effects: np.ndarray, n_targets: int, baseline: float, sd_participant: float,
                  sd_item: float, sd_participant_condition: float) -> np.ndarray:
    """Expected ratings ``mu[sim, participant, item, condition, target]`` of the simulation model."""
    s, n, i, c = n_sims, n_participants, n_items, len(effects)
    u = rng.normal(0.0, sd_participant, (s, n, 1, 1, 1))
    v = rng.normal(0.0, sd_item, (s, 1, i, 1, 1))
    w = rng.normal(0.0, sd_participant_condition, (s, n, 1, c, 1))
    return baseline + u + v + w + effects.reshape(1, 1, 1, c, 1) + np.zeros((1, 1, 1, 1, n_targets))


def _draw(rng: np.random.Generator, mu: np.ndarray, sd_residual: float) -> np.ndarray:
    """One rating per cell: the latent mean plus N(0, sd_residual), rounded and clipped to 1..7."""
    return np.clip(np.rint(mu + rng.normal(0.0, sd_residual, mu.shape)), RATING_MIN, RATING_MAX)


def simulate_responses(
    n_participants: int,
    n_items: int,
    effect_d: float,
    seed: int,
    *,
    conditions: Sequence[str] = CONDITIONS,
    targets: Sequence[str] = TARGETS,
    effect_pattern: Mapping[str, float] | None = None,
    baseline: float = 4.0,
    sd_residual: float = 1.0,
    sd_participant: float = 0.6,
    sd_item: float = 0.4,
    sd_participant_condition: float = 0.4,
    n_fixed_checks: int = 4,
    n_anchor_repeats: int = 4,
    training: bool = True,
    n_inattentive: int = 0,
    n_incomplete: int = 0,
) -> pd.DataFrame:
    """A synthetic response table in the export's format with a known condition effect.

    Model (per participant p, clip i, condition c, target t):
    rating = clip(round(baseline + u_p + v_i + w_pc + effect_c + e), 1, 7) with
    u_p ~ N(0, sd_participant), v_i ~ N(0, sd_item) (clips crossed with participants),
    w_pc ~ N(0, sd_participant_condition) (listeners differ in how much they like a system), and
    e ~ N(0, sd_residual), the within-participant SD of a single rating. The condition effect is
    effect_c = effect_pattern[c] * effect_d * sd_residual, so with the default pattern the
    adaptive system is rated ``effect_d`` within-participant SDs above the static EQ (Cohen's d
    on single ratings; rounding and clipping shrink it slightly).

    Each participant gets a real schedule (:func:`~mastering.evaluation.listening_design.build_schedule`, seeded
    from ``seed``) with its training trial and attention checks: fixed checks are answered as
    instructed and a repeated ``original`` is a fresh draw of the same cell. ``n_inattentive``
    participants answer every trial uniformly at random; ``n_incomplete`` participants stop at a
    random trial (``participant_complete=0``). Every row has ``simulated=True`` and
    ``manifest_sha256="simulated"``.

    Returns:
        The table with :data:`~mastering.evaluation.listening_design.EXPORT_COLUMNS` (``simulated`` true).
    """
    sds = {"sd_residual": sd_residual, "sd_participant": sd_participant, "sd_item": sd_item,
           "sd_participant_condition": sd_participant_condition}
    _check_sim_args(n_participants, n_items, sds)
    if n_inattentive + n_incomplete > n_participants or min(n_inattentive, n_incomplete) < 0:
        raise ValueError("n_inattentive + n_incomplete must be between 0 and n_participants")
    conditions, targets = list(conditions), list(targets)
    rng = np.random.default_rng(seed)
    effects = _effects(conditions, effect_d, sd_residual, effect_pattern)
    mu = _latent_means(rng, 1, n_participants, n_items, effects, len(targets), baseline,
                       sd_participant, sd_item, sd_participant_condition)[0]
    manifest, index = _simulated_manifest(n_items, conditions, targets)
    kinds = _participant_kinds(rng, n_participants, n_inattentive, n_incomplete)
    records = []
    for p in range(n_participants):
        p_seed = int(rng.integers(0, 2**31 - 1))
        schedule = build_schedule(manifest, p_seed, n_fixed_checks=n_fixed_checks,
                                  n_anchor_repeats=n_anchor_repeats, training=training)
        records += _simulated_participant(rng, p, p_seed, kinds[p], schedule, index, mu[p], sd_residual)
    return validate_responses(pd.DataFrame.from_records(records, columns=EXPORT_COLUMNS))


def _simulated_manifest(n_items: int, conditions: list[str],
                        targets: list[str]) -> tuple[list[ManifestRow], dict[ManifestRow, tuple[int, int, int]]]:
    """Manifest rows of a simulated study and each row's ``(item, condition, target)`` cell index."""
    manifest = []
    index = {}
    for ii, item in enumerate(f"item{k:02d}" for k in range(1, n_items + 1)):
        for ci, condition in enumerate(conditions):
            for ti, target in enumerate(targets):
                path = f"original/{item}.wav" if condition == "original" else f"{condition}/{target}/{item}.wav"
                row = ManifestRow(item, condition, target, path, False)
                manifest.append(row)
                index[row] = (ii, ci, ti)
    return manifest, index


def _participant_kinds(rng: np.random.Generator, n_participants: int, n_inattentive: int,
                       n_incomplete: int) -> np.ndarray:
    """``"attentive"``, ``"inattentive"`` or ``"incomplete"`` per simulated participant, at random."""
    kinds = np.array(["attentive"] * n_participants, dtype=object)
    special = rng.permutation(n_participants)
    kinds[special[:n_inattentive]] = "inattentive"
    kinds[special[n_inattentive:n_inattentive + n_incomplete]] = "incomplete"
    return kinds


def _simulated_participant(rng: np.random.Generator, p: int, p_seed: int, kind: str, schedule: list,
                           index: Mapping[ManifestRow, tuple[int, int, int]], mu: np.ndarray,
                           sd_residual: float) -> list[dict]:
    """The export rows of simulated participant ``p`` (0-based) answering ``schedule``.

    ``mu[item, condition, target]``: the participant's expected ratings; ``rng`` is drawn in the
    order the simulation depends on (stop trial, ratings, random answers).
    """
    stop = len(schedule)
    if kind == "incomplete":
        stop = int(rng.integers(1, len(schedule)))
    cells = np.array([index[t.row] for t in schedule])
    draws = _draw(rng, mu[cells[:, 0], cells[:, 1], cells[:, 2]], sd_residual)
    if kind == "inattentive":
        draws = rng.integers(RATING_MIN, RATING_MAX + 1, len(schedule))
    records = []
    for k, trial in enumerate(schedule[:stop]):
        rating = int(draws[k])
        if trial.attention_check == "fixed" and kind != "inattentive":
            rating = int(trial.expected_rating)
        records.append({
            "participant": f"S{p + 1:03d}", "participant_seed": p_seed,
            "participant_complete": int(kind != "incomplete"), "trial_index": k,
            "phase": trial.phase, "item": trial.row.item, "condition": trial.row.condition,
            "target": trial.row.target, "rating": rating, "attention_check": trial.attention_check,
            "expected_rating": "" if trial.expected_rating is None else trial.expected_rating,
            "repeat_of_trial_index": "" if trial.repeat_of is None else trial.repeat_of,
            "placeholder": 0, "stimulus": trial.row.path, "plays": 1, "shown_at": "", "answered_at": "",
            "manifest_sha256": "simulated", "simulated": True,
        })
    return records


def _condition_f(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Condition F of the two-way repeated-measures ANOVA on ``Y[..., unit, condition, target]``.

    The textbook sums of squares (e.g. Maxwell & Delaney 2004, ch. 12), vectorised over leading
    axes: F = (SS_C / df_C) / (SS_CxU / df_CxU) with the condition-by-unit interaction as the
    error term; returns ``(F, GG epsilon, df_C, df_CxU)``. Equal to ``AnovaRM``'s condition F
    (tested).
    """
    n, a, b = Y.shape[-3:]
    ysa = Y.mean(axis=-1)  # unit x condition
    ys = ysa.mean(axis=-1, keepdims=True)
    ya = ysa.mean(axis=-2, keepdims=True)
    m = ys.mean(axis=-2, keepdims=True)
    ss_a = n * b * np.sum((ya - m) ** 2, axis=(-2, -1))
    ss_as = b * np.sum((ysa - ya - ys + m) ** 2, axis=(-2, -1))
    df1, df2 = a - 1, (a - 1) * (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (ss_a / df1) / (ss_as / df2)
    return f, _gg_epsilon(ysa, _contrasts(a)), df1, df2


def power_analysis(
    n_participants_grid: Sequence[int],
    effect_d: float = 0.5,
    n_sims: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    n_items: int = 10,
    conditions: Sequence[str] = CONDITIONS,
    targets: Sequence[str] = TARGETS,
    effect_pattern: Mapping[str, float] | None = None,
    contrast: tuple[str, str] = ("adaptive_semantic_eq", "static_eq"),
    baseline: float = 4.0,
    sd_residual: float = 1.0,
    sd_participant: float = 0.6,
    sd_item: float = 0.4,
    sd_participant_condition: float = 0.4,
) -> pd.DataFrame:
    """Monte-Carlo power of the planned analysis, per number of (analysed) participants.

    For each N, ``n_sims`` studies are drawn from the model of :func:`simulate_responses` (all
    participants attentive and complete, so N is the number left after exclusions) and analysed
    as :func:`rm_anova` and :func:`pairwise` would, vectorised over the studies: the share of
    studies in which

    * ``power_anova``: the condition main effect of the condition x target RM-ANOVA has p < alpha
      (``power_anova_gg``: with the Greenhouse-Geisser correction);
    * ``power_pairwise``: the ``contrast`` pair (adaptive vs static EQ) is significant after Holm
      correction over all pairwise tests of the study, averaged over the targets
      (``power_pairwise_all_targets``: significant in every target).

    ``mc_se_*`` is the Monte-Carlo standard error sqrt(p (1 - p) / n_sims).

    Returns:
        One row per N with ``n_participants``, ``n_items``, ``n_sims``, ``effect_d``, ``alpha``,
        the powers and their standard errors, and ``simulated=True``.
    """
    sds = {"sd_residual": sd_residual, "sd_participant": sd_participant, "sd_item": sd_item,
           "sd_participant_condition": sd_participant_condition}
    grid = [int(n) for n in n_participants_grid]
    conditions, targets = list(conditions), list(targets)
    _check_power_args(grid, n_sims, alpha, n_items, sds, conditions, contrast)
    effects = _effects(conditions, effect_d, sd_residual, effect_pattern)
    pairs = list(combinations(range(len(conditions)), 2))
    ia, ib = conditions.index(contrast[0]), conditions.index(contrast[1])
    key = pairs.index((min(ia, ib), max(ia, ib)))
    rows = []
    for n, child in zip(grid, np.random.SeedSequence(int(seed)).spawn(len(grid))):
        rng = np.random.default_rng(child)
        # bounded memory: at most ~4 M ratings per chunk
        chunk = max(1, min(int(n_sims), 4_000_000 // (n * n_items * len(conditions) * len(targets))))
        hits: dict[str, list[np.ndarray]] = {"anova": [], "anova_gg": [], "pairwise": [], "pairwise_all_targets": []}
        for start in range(0, int(n_sims), chunk):
            mu = _latent_means(rng, min(chunk, int(n_sims) - start), n, n_items, effects, len(targets), baseline,
                               sd_participant, sd_item, sd_participant_condition)
            Y = _draw(rng, mu, sd_residual).mean(axis=2)  # sims x participants x conditions x targets
            for name, values in _power_hits(Y, pairs, key, alpha).items():
                hits[name].append(values)
        row = {"n_participants": n, "n_items": int(n_items), "n_sims": int(n_sims), "effect_d": float(effect_d),
               "alpha": float(alpha)}
        for name, values in hits.items():
            share = float(np.concatenate(values).mean())
            row[f"power_{name}"] = share
            row[f"mc_se_{name}"] = math.sqrt(share * (1.0 - share) / int(n_sims))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["contrast"] = f"{contrast[0]} vs {contrast[1]}"
    out["simulated"] = True
    return out


def _check_power_args(grid: list[int], n_sims: int, alpha: float, n_items: int, sds: Mapping[str, float],
                      conditions: list[str], contrast: tuple[str, str]) -> None:
    """The argument checks of :func:`power_analysis` (ValueError), in its documented order."""
    if not grid or min(grid) < 2:
        raise ValueError("n_participants_grid must list numbers of participants >= 2")
    if int(n_sims) < 1:
        raise ValueError("n_sims must be at least 1")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    _check_sim_args(max(grid), n_items, sds)
    if len(conditions) < 2:
        raise ValueError("the power analysis needs at least two conditions")
    for c in contrast:
        if c not in conditions:
            raise ValueError(f"contrast condition {c!r} is not among {conditions}")


def _power_hits(Y: np.ndarray, pairs: list[tuple[int, int]], key: int, alpha: float) -> dict[str, np.ndarray]:
    """Which simulated studies ``Y[sim, participant, condition, target]`` (cell means) detect the effect.

    ``anova`` / ``anova_gg``: the condition F (without / with Greenhouse-Geisser) has p < alpha,
    per study; ``pairwise``: the share of targets in which the pair ``pairs[key]`` is significant
    after Holm correction over all the study's paired t-tests; ``pairwise_all_targets``: in every
    target.
    """
    from scipy import stats

    s, n = Y.shape[:2]
    f, eps, df1, df2 = _condition_f(Y)
    p_f = np.where(np.isfinite(f), stats.f.sf(f, df1, df2), 1.0)
    p_gg = np.where(np.isfinite(f), stats.f.sf(f, eps * df1, eps * df2), 1.0)
    diff = np.stack([Y[:, :, i, :] - Y[:, :, j, :] for i, j in pairs], axis=2)  # s x n x pairs x t
    sd = diff.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = diff.mean(axis=1) / (sd / math.sqrt(n))
    p = np.where(np.isfinite(t), 2.0 * stats.t.sf(np.abs(t), n - 1), 1.0)  # s x pairs x t
    p_holm = holm(p.reshape(s, -1)).reshape(p.shape)
    hit = p_holm[:, key, :] < alpha  # s x targets
    return {"anova": p_f < alpha, "anova_gg": p_gg < alpha, "pairwise": hit.mean(axis=1),
            "pairwise_all_targets": hit.all(axis=1)}


# ---------------------------------------------------------------------------------------------
# Objective proxies of the stimuli
# ---------------------------------------------------------------------------------------------
def spectral_measures(
    audio: np.ndarray,
    sample_rate: int,
    low_band_hz: tuple[float, float] = (20.0, 250.0),
    high_band_hz: tuple[float, float] = (4000.0, 16000.0),
    n_fft: int = 2048,
    welch_nperseg: int = 8192,
) -> dict[str, float]:
    """Spectral centroid and low/high band energy shares of ``[channels, samples]`` audio.

    * ``centroid_hz``: spectral centroid (Grey & Gordon 1978; librosa's
      ``spectral_centroid``, magnitude-weighted mean frequency) of the long-term magnitude
      spectrum: the STFT magnitudes (Hann, ``n_fft``, hop ``n_fft / 4``) summed over frames and
      channels, i.e. the magnitude-weighted average of the frame centroids.
    * ``low_share_db`` / ``high_share_db``: 10 log10 of the energy in the band over the energy
      above 20 Hz, from Welch's power spectral density (scipy, Hann, ``welch_nperseg``, 50 %
      overlap) summed over channels. Bands are clipped to the Nyquist frequency.

    Raises:
        ValueError: not 1-D/2-D, too short for one Welch segment, non-finite or silent audio.
    """
    import librosa
    from scipy import signal

    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected [channels, samples] audio, got shape {x.shape}")
    if x.shape[-1] < welch_nperseg:
        raise ValueError(f"audio of {x.shape[-1]} samples is shorter than one Welch segment ({welch_nperseg})")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio holds NaN/Inf samples")
    freqs, psd = signal.welch(x, fs=sample_rate, window="hann", nperseg=welch_nperseg, axis=-1)
    psd = psd.sum(axis=0)
    total = psd[freqs >= 20.0].sum()
    if not total > 0:
        raise ValueError("silent audio has no spectral measures")
    nyquist = sample_rate / 2.0

    def share(lo: float, hi: float) -> float:
        band = psd[(freqs >= lo) & (freqs < min(hi, nyquist))].sum()
        return 10.0 * math.log10(max(band, 1e-30) / total)

    mag = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=n_fft // 4, window="hann", center=True))
    long_term = mag.sum(axis=(0, 2))[:, None]
    centroid = float(librosa.feature.spectral_centroid(S=long_term, sr=sample_rate, n_fft=n_fft)[0, 0])
    return {"centroid_hz": centroid, "low_share_db": share(*low_band_hz), "high_share_db": share(*high_band_hz)}


def objective_proxies(stimuli_dir: str | os.PathLike, **measure_kwargs) -> pd.DataFrame:
    """Spectral measures (:func:`spectral_measures`) of every stimulus of a stimuli manifest.

    Args:
        stimuli_dir: a folder with ``manifest.csv`` (:func:`~mastering.evaluation.listening_manifest.load_manifest`).
        **measure_kwargs: passed to :func:`spectral_measures` (band edges, FFT sizes).

    Returns:
        One row per manifest row (item x condition x target): ``item``, ``condition``, ``target``,
        ``path``, ``placeholder``, ``centroid_hz``, ``low_share_db``, ``high_share_db``. The
        ``original`` is measured once and listed under every target.
    """
    manifest = load_manifest(stimuli_dir)
    cache: dict[str, dict[str, float]] = {}
    rows = []
    for row in manifest.rows:
        if row.path not in cache:
            audio, sample_rate = load_audio(manifest.resolve(row.path), dtype=torch.float64)
            cache[row.path] = spectral_measures(audio.numpy(), sample_rate, **measure_kwargs)
        rows.append({"item": row.item, "condition": row.condition, "target": row.target, "path": row.path,
                     "placeholder": bool(row.placeholder), **cache[row.path]})
    return pd.DataFrame(rows)


def _proxy_values(proxies: pd.DataFrame, measure_for_target: Mapping[str, str] | None) -> pd.DataFrame:
    mapping = dict(DEFAULT_PROXY_FOR_TARGET if measure_for_target is None else measure_for_target)
    missing = [c for c in ("item", "condition", "target") if c not in proxies.columns]
    if missing:
        raise ValueError(f"the proxies lack column(s) {missing}; use objective_proxies()")
    if proxies.empty:
        raise ValueError("no proxies to analyse")
    targets = _ordered(proxies["target"], TARGETS)
    unmapped = [t for t in targets if t not in mapping]
    if unmapped:
        raise ValueError(f"measure_for_target names no measure for target(s) {unmapped}")
    for t in targets:
        if mapping[t] not in proxies.columns:
            raise ValueError(f"measure {mapping[t]!r} (target {t!r}) is not a column of the proxies")
    out = proxies[["item", "condition", "target"]].copy()
    out["measure"] = out["target"].map(mapping)
    out["value"] = [float(proxies.at[i, m]) for i, m in zip(proxies.index, out["measure"])]
    return out


def objective_deltas(proxies: pd.DataFrame, measure_for_target: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Each stimulus's target proxy and its change from the same clip's ``original``.

    Returns:
        ``item``, ``condition``, ``target``, ``measure``, ``value`` and ``delta`` (value minus the
        original's value, in the measure's unit: dB or Hz).
    """
    values = _proxy_values(proxies, measure_for_target)
    ref = values[values["condition"] == "original"].set_index(["item", "target"])["value"]
    if ref.empty:
        raise ValueError("the proxies have no 'original' condition to compare with")
    values["delta"] = values["value"].to_numpy() - ref.reindex(
        pd.MultiIndex.from_frame(values[["item", "target"]])).to_numpy()
    return values


def objective_anova(proxies: pd.DataFrame, measure_for_target: Mapping[str, str] | None = None) -> pd.DataFrame:
    """OBJECTIVE condition x target repeated-measures ANOVA of the stimuli's spectral proxies.

    Each target is represented by the proxy that should move when a system makes a clip more
    like it (default :data:`DEFAULT_PROXY_FOR_TARGET`: warm -> low-band share, bright -> high-band
    share, clear -> spectral centroid). The values are standardised within each target (z-scores
    over all clips x conditions of that target) so that dB and Hz become comparable; clips are
    the repeated unit (``AnovaRM(subject="item")``). Standardising removes the target main effect
    by construction, so only the condition effect and the condition x target interaction are
    reported. This measures what the systems did to the signal, not what listeners heard.

    Returns:
        Rows ``condition`` and ``condition:target`` with ``F``, ``num_df``, ``den_df``, ``p``,
        ``partial_eta_sq``, ``eps_gg``, ``p_gg``, ``n_items``, ``analysis="OBJECTIVE"``,
        ``measures`` (the target -> measure mapping) and ``placeholder``.
    """
    values = _proxy_values(proxies, measure_for_target)
    z = values.groupby("target")["value"].transform(lambda v: (v - v.mean()) / v.std(ddof=1))
    if not np.all(np.isfinite(z)):
        raise ValueError("a target's proxy does not vary over the stimuli; it cannot be standardised")
    data = values.assign(value=z)
    Y, _, conditions, targets = cell_means(data, unit="item")
    table = _anova_table(Y, "value", "item", conditions, targets)
    table = table[table["effect"] != "target"].reset_index(drop=True)
    mapping = values.drop_duplicates("target").set_index("target")["measure"]
    table["analysis"] = "OBJECTIVE"
    table["measures"] = ", ".join(f"{t}: {mapping[t]}" for t in targets)
    table["placeholder"] = _flag(proxies, "placeholder")
    return table


# ---------------------------------------------------------------------------------------------
# Guard for the report functions
# ---------------------------------------------------------------------------------------------
def check_real_output(df: pd.DataFrame, name: str) -> None:
    """Refuse to write a real-listener output named ``name`` from simulated rows.

    Raises:
        ValueError: ``df`` has a true ``simulated`` value and ``name`` does not contain "simulated".
    """
    if _flag(df, "simulated") and "simulated" not in name:
        raise ValueError(
            f"refusing to write {name!r} from SIMULATED responses: real-listener figures and tables are made "
            "only from a real export; give simulated outputs a name containing 'simulated'"
        )
