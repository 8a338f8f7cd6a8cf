"""Oracle ceilings: the logged demastering chain replayed with the stages a perfect corrector undoes left out."""

import pytest
import torch

from mastering.data import demaster as dm
from mastering.evaluation import oracle
from mastering.evaluation.metrics import evaluate_pair
from mastering.figures import read_numbers
from tests.losses.test_stft import _music_like

SR = 44100


def _pair(record_stages, item="t0#0", track="t0", seed=11):
    """A 2 s pair whose chain has exactly ``record_stages`` (a drawn record with the others removed)."""
    x = _music_like(n=2 * SR, seed=seed)[0]
    params = dm.sample_params(seed, duration_s=2.0)
    stages = {}
    for stage in dm.STAGE_ORDER:
        drawn = dm.sample_params(next(s for s in range(1000) if dm.sample_params(s, 2.0)["stages"][stage]), 2.0)
        stages[stage] = drawn["stages"][stage] if stage in record_stages else None
    params["stages"] = stages
    y, record = dm.apply(x, SR, params, return_log=True)
    return {"track": track, "item": item, "chain": "demaster", "mastered": x, "degraded": y, "sample_rate": SR,
            "record": record}


def test_replaying_the_whole_record_gives_the_degraded_audio_back():
    pair = _pair(dm.STAGE_ORDER)
    replay = dm.apply(pair["mastered"], SR, oracle.without_stages(pair["record"], ()))
    assert torch.allclose(replay, pair["degraded"], atol=1e-6)


def test_the_eq_oracle_removes_exactly_the_eq_stages():
    eq_only = _pair(("tilt_eq", "gaussian_eq", "level"))
    rows = oracle.oracle_distances([eq_only]).set_index("arm")
    assert rows.loc["identity", "mrstft"] > 0.05  # the EQ moved the input away from the master
    assert rows.loc["oracle_eq", "mrstft"] < 1e-3  # a perfect inverse of the EQ leaves only a level change
    assert rows.loc["oracle_eq", "stages"] == "tilt_eq, gaussian_eq"
    # with reverb in the chain, a perfect EQ inverse leaves the reverb's distance
    wet = _pair(("tilt_eq", "gaussian_eq", "reverb", "level"))
    rows = oracle.oracle_distances([wet]).set_index("arm")
    reverb_only = dm.apply(wet["mastered"], SR, oracle.without_stages(wet["record"], ("tilt_eq", "gaussian_eq")))
    assert rows.loc["oracle_eq", "mrstft"] == pytest.approx(evaluate_pair(reverb_only, wet["mastered"], SR)["mrstft"])
    assert rows.loc["oracle_eq", "mrstft"] > 1e-3


def test_summary_is_paired_and_relative_to_the_input(paper_dir):
    pairs = [_pair(("tilt_eq", "gaussian_eq", "level"), item=f"t{k}#0", track=f"t{k}", seed=11 + k)
             for k in range(3)]
    summary = oracle.summarize_oracle(oracle.oracle_distances(pairs), n_boot=200).set_index("arm")
    assert summary.loc["identity", "pct"] == pytest.approx(0.0)
    assert summary.loc["oracle_eq", "pct"] == pytest.approx(-100.0, abs=1.0)
    assert summary.loc["oracle_eq", "tracks"] == 3 and summary.loc["oracle_eq", "excerpts"] == 3
    from mastering.evaluation import report
    v = read_numbers(report.numbers_oracle(summary.reset_index(), "smoke"))
    assert v["oracle_eq_pct"] in (r"\ensuremath{-}100", r"\ensuremath{-}99") and v["tracks"] == "3"


def test_bad_input_is_refused():
    pair = _pair(("tilt_eq", "level"))
    with pytest.raises(ValueError, match="unknown demastering stage"):
        oracle.without_stages(pair["record"], ("limiter",))
    with pytest.raises(ValueError, match="replay the demastering chain"):
        oracle.oracle_distances([{**pair, "chain": "simple"}])
