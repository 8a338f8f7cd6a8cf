"""The listening test's design: conditions, targets, rating scale, trial schedules, export columns.

Listeners rate "how <target> this audio sounds" (:data:`TARGETS`) on a :data:`RATING_MIN` to
:data:`RATING_MAX` scale for every clip processed by every condition (:data:`CONDITIONS`,
``original`` being the unprocessed anchor). :func:`build_schedule` gives each participant's trial
list (:class:`TrialSpec`); the web app (``listening_test``) serves it and exports the columns
:data:`EXPORT_COLUMNS`, which :mod:`mastering.evaluation.listening_analysis` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .listening_manifest import ManifestRow

__all__ = ["CONDITIONS", "TARGETS", "RATING_MIN", "RATING_MAX", "EXPORT_COLUMNS", "TrialSpec", "build_schedule"]

#: The study's conditions in display order, ``original`` being the unprocessed anchor.
CONDITIONS = ("original", "adaptive_semantic_eq", "floweq_style", "static_eq")
#: Semantic targets of the study (the most frequent EQ descriptors in SAFE-DB).
TARGETS = ("warm", "bright", "clear")
RATING_MIN = 1
RATING_MAX = 7

#: Columns of the app's export (long format: one row per participant x trial). ``simulated`` is
#: explicit in every row (0 in the app's export of real participants, true in
#: :func:`~mastering.evaluation.listening_analysis.simulate_responses`): the analysis refuses a
#: table that does not say, and never pools simulated with real rows.
EXPORT_COLUMNS = [
    "participant",
    "participant_seed",
    "participant_complete",
    "trial_index",
    "phase",
    "item",
    "condition",
    "target",
    "rating",
    "attention_check",
    "expected_rating",
    "repeat_of_trial_index",
    "placeholder",
    "stimulus",
    "plays",
    "shown_at",
    "answered_at",
    "manifest_sha256",
    "simulated",
]


@dataclass(frozen=True)
class TrialSpec:
    """One trial of a participant's schedule.

    Attributes:
        phase: ``"training"`` (stored and exported, not analysed) or ``"main"``.
        row: the stimulus and the question (its ``target``).
        attention_check: ``""``; ``"fixed"``, an ordinary-looking trial whose instruction fixes the
            answer ("please select 2"); or ``"repeat"``, the anchor condition of one item/target
            presented a second time, at least one trial after the first (a consistent listener's
            two ratings agree closely).
        expected_rating: the rating a ``fixed`` check asks for, else ``None``.
        repeat_of: for a ``repeat`` check, the schedule index of the first presentation.
    """

    phase: str
    row: ManifestRow
    attention_check: str = ""
    expected_rating: int | None = None
    repeat_of: int | None = None


def build_schedule(
    rows: Sequence[ManifestRow],
    seed: int,
    n_fixed_checks: int = 4,
    n_anchor_repeats: int = 4,
    training: bool = True,
    anchor_condition: str = "original",
) -> list[TrialSpec]:
    """The trial list of one participant; index ``i`` of the list is trial index ``i``.

    Every manifest row becomes one main trial, in an order drawn from
    ``numpy.random.default_rng(seed)``, so the seed stored with the participant rebuilds it.

    Args:
        rows: the manifest rows; each appears exactly once as a main trial.
        seed: the participant's seed (recorded), a non-negative integer.
        n_fixed_checks: number of fixed-answer attention checks (stimulus: a random row).
        n_anchor_repeats: number of repeated anchor trials (distinct rows of ``anchor_condition``).
        training: put one training trial (an ``anchor_condition`` row, else any row) first.
        anchor_condition: the condition repeated as a consistency check.

    Returns:
        The schedule: the optional training trial, then the main trials with the checks mixed in.

    Raises:
        ValueError: for no rows, a negative seed or count, or more anchor repeats than there are
            rows of ``anchor_condition``.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("cannot build a schedule from an empty manifest")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if n_fixed_checks < 0 or n_anchor_repeats < 0:
        raise ValueError("the numbers of attention checks must be non-negative")
    anchors = [r for r in rows if r.condition == anchor_condition]
    if n_anchor_repeats > len(anchors):
        raise ValueError(
            f"{n_anchor_repeats} anchor repeats requested but the manifest holds only {len(anchors)} "
            f"{anchor_condition!r} stimuli; lower the number of repeats (0 disables them)"
        )
    rng = np.random.default_rng(int(seed))

    main: list[TrialSpec] = [TrialSpec("main", rows[i]) for i in rng.permutation(len(rows))]

    # Repeats: a second copy of each chosen anchor goes anywhere not next to the first (so at
    # least one other trial separates them); whichever copy comes later is the repeat.
    for k in rng.choice(len(anchors), size=n_anchor_repeats, replace=False) if n_anchor_repeats else []:
        row = anchors[int(k)]
        first = next(i for i, t in enumerate(main) if t.row == row and not t.attention_check)
        candidates = [p for p in range(len(main) + 1) if p not in (first, first + 1)]
        if not candidates:
            raise ValueError("too few stimuli to separate a repeated anchor from its first presentation")
        main.insert(candidates[int(rng.integers(len(candidates)))], TrialSpec("main", row))
        later = [i for i, t in enumerate(main) if t.row == row and not t.attention_check][1]
        main[later] = TrialSpec("main", row, attention_check="repeat")

    # Fixed-answer checks never come first, so that every participant starts with a real trial.
    for _ in range(n_fixed_checks):
        row = rows[int(rng.integers(len(rows)))]
        expected = int(rng.integers(RATING_MIN, RATING_MAX + 1))
        pos = int(rng.integers(1, len(main) + 1))
        main.insert(pos, TrialSpec("main", row, attention_check="fixed", expected_rating=expected))

    schedule: list[TrialSpec] = []
    if training:
        pool = anchors or rows
        schedule.append(TrialSpec("training", pool[int(rng.integers(len(pool)))]))
    offset = len(schedule)
    for t in main:
        if t.attention_check == "repeat":
            first = next(
                i for i, u in enumerate(main) if u.row == t.row and not u.attention_check
            )
            t = TrialSpec("main", t.row, "repeat", None, first + offset)
        schedule.append(t)
    return schedule
