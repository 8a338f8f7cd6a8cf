"""Verdicts from intervals (mastering.figures): the words a text may print about a difference."""

import math

import numpy as np
import pytest
from scipy import stats

from mastering.figures import can_reach_significance, interval_verdict, smallest_signed_rank_p


@pytest.mark.parametrize("n", [2, 3, 5, 6, 8, 10])
def test_smallest_signed_rank_p_is_scipys_exact_p_of_one_signed_differences(n):
    diffs = np.arange(1, n + 1, dtype=float)  # all positive, distinct: the most extreme data there is
    exact = stats.wilcoxon(diffs, method="exact").pvalue
    assert smallest_signed_rank_p(n) == pytest.approx(exact, rel=1e-12)
    rng = np.random.default_rng(n)
    for _ in range(20):  # no data gives less
        d = rng.normal(size=n)
        assert stats.wilcoxon(d, method="exact").pvalue >= smallest_signed_rank_p(n) - 1e-12


def test_reachability_and_the_holm_bar():
    assert smallest_signed_rank_p(0) == smallest_signed_rank_p(1) == 1.0
    assert not can_reach_significance(2)  # 2 tracks: p >= 0.5
    assert not can_reach_significance(5)  # 0.0625
    assert can_reach_significance(6)  # 0.03125
    assert not can_reach_significance(6, tests=7)  # Holm's first bar 0.05/7 = 0.0071
    assert can_reach_significance(9, tests=7)  # 2/512 = 0.0039
    assert not can_reach_significance(8, tests=7)  # 2/256 = 0.0078


@pytest.mark.parametrize("lo, hi, n, expected", [
    (-0.3, -0.1, None, "lower"),
    (0.1, 0.3, None, "higher"),
    (-0.1, 0.3, None, "not measurably different"),
    (0.0, 0.3, None, "not measurably different"),  # touching zero does not exclude it
    (-0.3, -0.1, 10, "lower"),
    (-0.3, -0.1, 2, "not measurably different"),  # two tracks of one sign happen by chance half the time
    (-0.3, -0.1, 5, "not measurably different"),
    (math.nan, 0.2, None, None),
    (-0.2, math.inf, 10, None),
])
def test_interval_verdict(lo, hi, n, expected):
    assert interval_verdict(lo, hi, n=n) == expected


def test_interval_verdict_custom_words():
    words = ("lower than", "higher than", "not measurably different from")
    assert interval_verdict(-2, -1, words=words) == "lower than"
    assert interval_verdict(1, 2, words=words) == "higher than"
    assert interval_verdict(-1, 2, words=words) == "not measurably different from"
