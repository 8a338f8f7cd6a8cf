"""Per-participant schedules: every stimulus once, seeded order, attention checks placed right."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from mastering.evaluation.listening_design import CONDITIONS, RATING_MAX, RATING_MIN, build_schedule
from mastering.evaluation.listening_manifest import ManifestRow


def study_rows(n_items=10, targets=("warm", "bright", "clear")):
    return [ManifestRow(f"item{i:02d}", c, t, f"{c}/{t}/item{i:02d}.wav")
            for i in range(1, n_items + 1) for c in CONDITIONS for t in targets]


def test_full_study_design():
    rows = study_rows()
    assert len(rows) == 120
    schedule = build_schedule(rows, seed=12345)
    assert len(schedule) == 1 + 120 + 4 + 4
    assert schedule[0].phase == "training" and schedule[0].row.condition == "original"
    assert all(t.phase == "main" for t in schedule[1:])
    plain = [t.row for t in schedule if t.phase == "main" and not t.attention_check]
    assert Counter(plain) == Counter(rows)  # each stimulus exactly once


@pytest.mark.parametrize("seed", [0, 1, 7, 2**31 - 1])
def test_attention_checks(seed):
    schedule = build_schedule(study_rows(), seed, n_fixed_checks=5, n_anchor_repeats=6)
    fixed = [i for i, t in enumerate(schedule) if t.attention_check == "fixed"]
    repeats = [i for i, t in enumerate(schedule) if t.attention_check == "repeat"]
    assert len(fixed) == 5 and len(repeats) == 6
    for i in fixed:
        assert RATING_MIN <= schedule[i].expected_rating <= RATING_MAX
        assert i >= 2  # never the training trial, never the first real trial
    repeated_rows = [schedule[i].row for i in repeats]
    assert len(set(repeated_rows)) == 6 and all(r.condition == "original" for r in repeated_rows)
    for i in repeats:
        first = schedule[i].repeat_of
        assert schedule[first].row == schedule[i].row and not schedule[first].attention_check
        assert schedule[first].phase == "main" and i - first >= 2  # at least one trial between


def test_seed_reproduces_order_and_seeds_differ():
    rows = study_rows()
    a, b, c = build_schedule(rows, 42), build_schedule(rows, 42), build_schedule(rows, 43)
    assert a == b
    assert [t.row for t in a] != [t.row for t in c]


def test_order_is_uniform_over_seeds():
    """Each of 12 stimuli lands in first position equally often (chi-square over 3000 seeds)."""
    rows = study_rows(n_items=3, targets=("warm",))
    firsts = Counter(build_schedule(rows, s, 0, 0, training=False)[0].row for s in range(3000))
    counts = np.array([firsts[r] for r in rows])
    assert counts.sum() == 3000 and stats.chisquare(counts).pvalue > 1e-3


def test_without_checks_or_training_is_a_permutation():
    rows = study_rows(n_items=2, targets=("warm",))
    schedule = build_schedule(rows, 3, n_fixed_checks=0, n_anchor_repeats=0, training=False)
    assert sorted(t.row.path for t in schedule) == sorted(r.path for r in rows)
    assert all(not t.attention_check and t.phase == "main" for t in schedule)


def test_bad_designs_are_refused():
    rows = study_rows(n_items=2, targets=("warm",))
    with pytest.raises(ValueError, match="empty"):
        build_schedule([], 0)
    with pytest.raises(ValueError, match="non-negative"):
        build_schedule(rows, -1)
    with pytest.raises(ValueError, match="non-negative"):
        build_schedule(rows, 0, n_fixed_checks=-1)
    with pytest.raises(ValueError, match="only 2 'original'"):
        build_schedule(rows, 0, n_anchor_repeats=3)


def test_repeats_are_separated_for_every_seed():
    """Small designs hit the edge cases (the anchor last, or first) often: check many seeds."""
    rows = study_rows(n_items=2, targets=("warm",))
    for seed in range(400):
        schedule = build_schedule(rows, seed, n_fixed_checks=1, n_anchor_repeats=2)
        repeats = [i for i, t in enumerate(schedule) if t.attention_check == "repeat"]
        assert len(repeats) == 2
        for i in repeats:
            first = schedule[i].repeat_of
            assert schedule[first].row == schedule[i].row and i - first >= 2, (seed, i, first)
        plain = [t.row for t in schedule if t.phase == "main" and not t.attention_check]
        assert Counter(plain) == Counter(rows)


def test_single_stimulus_cannot_be_repeated_apart():
    rows = study_rows(n_items=1, targets=("warm",))[:1]
    with pytest.raises(ValueError, match="too few stimuli"):
        build_schedule(rows, 0, n_fixed_checks=0, n_anchor_repeats=1)
