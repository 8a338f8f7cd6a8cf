"""What an ideal corrector of a given kind could reach on the test pairs: oracle ceilings.

Each test pair's demastering record is replayed on its master with some stages left out
(:data:`ORACLE_ARMS`). Leaving out the two equaliser stages gives exactly what a perfect inverse
of them would give (they are linear and commute with the reverb, the echo and the level gain that
follow; the dynamics stage comes before them), so its distance to the master is the floor of a
model that only equalises; leaving out the dynamics stage as well bounds an equaliser plus a
perfect dynamics inverse. What remains (reverb, echo) no parametric equaliser or compressor
undoes. Distances are those of notebook 06 (:func:`mastering.evaluation.metrics.evaluate_pair`, at
the master's loudness), so they compare directly with its systems.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from ..data import demaster as dm
from .benchmark import cluster_bootstrap_ci
from .metrics import Reference, band_energy_error_db, match_loudness, mrstft_distance

__all__ = ["ORACLE_ARMS", "ORACLE_LABELS", "without_stages", "oracle_distances", "summarize_oracle"]

#: Oracle arm -> the demastering stages it undoes perfectly (left out of the replayed chain).
ORACLE_ARMS: dict[str, tuple[str, ...]] = {
    "oracle_eq": ("tilt_eq", "gaussian_eq"),
    "oracle_eq_dynamics": ("dynamics", "tilt_eq", "gaussian_eq"),
}

ORACLE_LABELS: dict[str, str] = {
    "identity": "degraded input",
    "oracle_eq": "perfect inverse of the EQ stages",
    "oracle_eq_dynamics": "perfect inverse of the EQ and dynamics stages",
}

_METRICS = ("mrstft", "band_error_db")  # evaluate_pair's, at the master's loudness


def without_stages(record: Mapping[str, Any], stages: Sequence[str]) -> dict[str, Any]:
    """A demastering record (:func:`mastering.data.demaster.apply`'s log) with ``stages`` left out.

    Raises:
        ValueError: a stage that the chain does not have.
    """
    unknown = set(stages) - set(dm.STAGE_ORDER)
    if unknown:
        raise ValueError(f"unknown demastering stage(s) {sorted(unknown)}; known: {dm.STAGE_ORDER}")
    params = {k: copy.deepcopy(record[k]) for k in ("version", "seed", "duration_s") if k in record}
    params["stages"] = {s: (None if s in stages else copy.deepcopy(p)) for s, p in record["stages"].items()}
    return params


def oracle_distances(pairs: Sequence[Mapping[str, Any]], arms: Mapping[str, Sequence[str]] | None = None,
                     progress: bool = False) -> pd.DataFrame:
    """The degraded input and every oracle arm against the master, per test pair.

    Args:
        pairs: :func:`mastering.evaluation.benchmark.load_test_pairs` of the ``demaster`` chain
            (each with its ``record``).
        arms: ``{name: stages left out}`` (default :data:`ORACLE_ARMS`).

    Returns:
        One row per pair and arm (``identity`` first): ``arm``, ``track``, ``item``, ``stages``
        (those left out), ``mrstft``, ``band_error_db``.

    Raises:
        ValueError: a pair of another degradation chain.
    """
    arms = dict(ORACLE_ARMS if arms is None else arms)
    rows = []
    for pair in tqdm(pairs, desc="oracle ceilings", disable=not progress):
        if pair.get("chain", "demaster") != "demaster":
            raise ValueError(f"oracle ceilings replay the demastering chain; {pair.get('item')} is of "
                             f"the {pair.get('chain')!r} chain")
        sr = pair["sample_rate"]
        reference = Reference(pair["mastered"], sr)
        item = pair.get("item", pair["track"])
        outputs = {"identity": ((), pair["degraded"])}
        for name, stages in arms.items():
            outputs[name] = (tuple(stages), dm.apply(pair["mastered"], sr, without_stages(pair["record"], stages)))
        for name, (stages, y) in outputs.items():
            matched = match_loudness(y, reference, sr)  # as evaluate_pair, without the metrics not reported here
            rows.append({"arm": name, "track": pair["track"], "item": item, "stages": ", ".join(stages),
                         "mrstft": mrstft_distance(matched, reference, sr),
                         "band_error_db": band_energy_error_db(matched, reference, sr)})
    return pd.DataFrame(rows, columns=["arm", "track", "item", "stages", *_METRICS])


def summarize_oracle(distances: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean MR-STFT of each arm, and its change against the degraded input in percent, each with a
    95 % cluster-bootstrap interval over tracks (paired on the same excerpts).

    Returns:
        One row per arm: ``arm``, ``label``, ``mrstft``, ``mrstft_lo``, ``mrstft_hi``, ``pct``,
        ``pct_lo``, ``pct_hi``, ``tracks``, ``excerpts``.
    """
    wide = distances.pivot_table(index=["item", "track"], columns="arm", values="mrstft").reset_index()
    base = float(wide["identity"].mean())
    rows = []
    for arm in dict.fromkeys(distances["arm"]):
        mean, lo, hi, tracks = cluster_bootstrap_ci(wide[arm], wide["track"], n_boot=n_boot, seed=seed)
        diff, dlo, dhi, _ = cluster_bootstrap_ci(wide[arm] - wide["identity"], wide["track"], n_boot=n_boot,
                                                 seed=seed)
        rows.append({"arm": arm, "label": ORACLE_LABELS.get(arm, arm), "mrstft": mean, "mrstft_lo": lo,
                     "mrstft_hi": hi, "pct": 100.0 * diff / base, "pct_lo": 100.0 * dlo / base,
                     "pct_hi": 100.0 * dhi / base, "tracks": tracks, "excerpts": int(len(wide))})
    return pd.DataFrame(rows)
