"""Grouped percentile bootstrap: the one resampling used by the semantic evaluation and the encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["bootstrap_ci"]


def bootstrap_ci(
    frame: pd.DataFrame, statistic, groups: str = "track", n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(frame)`` resampling whole ``groups`` (seeded).

    Returns ``(nan, nan)`` with fewer than two groups or when the statistic is undefined in most
    resamples.
    """
    keys = frame[groups].unique()
    if len(keys) < 2:
        return float("nan"), float("nan")
    parts = {k: frame[frame[groups] == k] for k in keys}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.choice(keys, size=len(keys), replace=True)
        v = statistic(pd.concat([parts[k] for k in pick], ignore_index=True))
        if np.isfinite(v):
            values.append(v)
    if len(values) < n_boot / 2:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a))
