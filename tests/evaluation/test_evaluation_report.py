"""The number file of notebook 06 (the values the results text quotes)."""

import numpy as np
import pandas as pd

from mastering.evaluation import benchmark, report
from mastering.figures import read_numbers


def _results():
    rng = np.random.default_rng(0)
    rows = []
    systems = [("phase1a", "Phase 1A", "proposed", 0.8), ("phase1b", "Phase 1B", "proposed", 0.6),
               ("identity", "identity", "baseline", 1.2), ("loudnorm", "loudness norm.", "baseline", 1.0),
               ("static_eq", "static mean EQ", "baseline", 0.9)]
    for track in range(4):
        for name, label, group, base in systems:
            rows.append({"track": f"t{track}", "system": name, "label": label, "group": group,
                         "mrstft": base + 0.01 * track, "band_error_db": 3.0 if name != "static_eq" else 1.0,
                         "loudness_error_lu": base / 2 + rng.uniform(0, 0.01), "true_peak_dbtp": -1.0,
                         "a_weighted_l1": base / 10, "si_sdr_db": 10 - base + 0.1 * track,
                         "duration_s": 5.0, "seconds": 0.5})
    return pd.DataFrame(rows)


def test_evaluation_numbers_name_the_winners_and_the_baseline_wins(paper_dir):
    results = _results()
    summary = benchmark.summarize(results, n_boot=200, seed=0)
    tests = benchmark.paired_tests(results, benchmark.best_system(summary))
    speed = benchmark.speed_table(results, pd.DataFrame(
        [{"system": "phase1b", "label": "Phase 1B", "device": "cpu", "ms_per_excerpt": 100.0, "excerpt_s": 5.0,
          "realtime": 50.0}]))
    v = read_numbers(report.numbers_evaluation(summary, tests, speed, "smoke", proposed="phase1b"))
    assert v["proposed_system"] == "Phase 1B" and v["proposed_mrstft"] == "0.615"
    assert v["identity_mrstft"] == "1.215" and v["loudnorm_mrstft"] == "1.015"
    assert v["proposed_vs_identity_pct"] == r"\ensuremath{-}49"
    assert v["best_mrstft_system"] == "Phase 1B" and v["best_band_error_system"] == "static mean EQ"
    assert v["best_si_sdr_system"] == "Phase 1B"
    assert v["baseline_wins"] == "1" and v["ranked_metrics"] == "5"  # true peak has no better direction
    assert v["tracks"] == "4" and v["mrstft_tests"] == "4"
    assert v["phase1b_cpu_ms_per_5s"] == "100" and v["phase1b_design_cpu_ms"] == "270"


def _frames(results):
    summary = benchmark.summarize(results, n_boot=200, seed=0)
    tests = benchmark.paired_tests(results, benchmark.best_system(summary))
    speed = benchmark.speed_table(results, pd.DataFrame(columns=["system", "label", "device", "ms_per_excerpt",
                                                                 "excerpt_s", "realtime"]))
    return summary, tests, speed


def _many_tracks(n_tracks, phase1b_minus_identity):
    """Phase 1B and the identity on ``n_tracks`` tracks, 1B's MR-STFT ``phase1b_minus_identity(track)`` away."""
    rng = np.random.default_rng(1)
    rows = []
    for track in range(n_tracks):
        base = 1.0 + 0.1 * rng.normal()
        for name, label, group, value in (("phase1b", "Phase 1B", "proposed", base + phase1b_minus_identity(track)),
                                          ("identity", "identity", "baseline", base),
                                          ("loudnorm", "loudness norm.", "baseline", base + 0.001 * (-1) ** track)):
            rows.append({"track": f"t{track}", "system": name, "label": label, "group": group, "mrstft": value,
                         "band_error_db": value, "loudness_error_lu": 0.1, "true_peak_dbtp": -1.2,
                         "a_weighted_l1": value / 10, "si_sdr_db": 10 - value, "duration_s": 5.0, "seconds": 0.5})
    return pd.DataFrame(rows)


def test_headline_verdicts_come_from_the_intervals(paper_dir):
    # 12 tracks where Phase 1B is clearly nearer the master than the input: "lower than"
    results = _many_tracks(12, lambda t: -0.2 - 0.01 * t)
    v = read_numbers(report.numbers_evaluation(*_frames(results), "smoke", results=results, n_boot=500,
                                                  proposed="phase1b"))
    assert v["phase1b_vs_input_verdict"] == v["proposed_vs_input_verdict"] == "lower than"
    assert v["proposed_vs_loudnorm_verdict"] == "lower than"
    assert "phase1b_vs_static_verdict" not in v  # no static EQ in these results
    # a difference that changes sign from track to track: no direction
    results = _many_tracks(12, lambda t: 0.05 * (-1) ** t)
    v = read_numbers(report.numbers_evaluation(*_frames(results), "smoke", results=results, n_boot=500,
                                                  proposed="phase1b"))
    assert v["proposed_vs_input_verdict"] == "not measurably different from"
    # the same clear difference on two tracks cannot be told from chance
    results = _many_tracks(2, lambda t: -0.2)
    v = read_numbers(report.numbers_evaluation(*_frames(results), "smoke", results=results, n_boot=500,
                                                  proposed="phase1b"))
    assert v["proposed_vs_input_verdict"] == "not measurably different from"
    assert v["phase1b_max_loudness_error_lu"] == "0.10" and v["phase1b_max_true_peak_dbtp"] == r"\ensuremath{-}1.20"


def test_paired_tests_table_shows_no_p_value_that_cannot_reach_significance(paper_dir):
    few = _many_tracks(4, lambda t: -0.2)  # 2 comparisons per metric: bar 0.025; smallest p 2/16
    summary, tests, speed = _frames(few)
    text = report.table_evaluation_tests(tests, "smoke").read_text()
    assert text.count("not testable with $n=4$") == 2 and "0.125" in text and "0.025" in text
    assert "2 of 2 comparisons are not testable" in text
    v = read_numbers(report.numbers_evaluation(summary, tests, speed, "smoke", proposed="phase1b"))
    assert v["tests_testable"] == "0" and v["wilcoxon_min_p"] == "0.125" and v["holm_bar"] == "0.0250"
    assert "no p-values" in v["tests_note"]

    many = _many_tracks(8, lambda t: -0.2 - 0.01 * t)  # 2/256 < 0.025
    summary, tests, speed = _frames(many)
    text = report.table_evaluation_tests(tests, "smoke").read_text()
    assert "not testable" not in text and "scriptsize 0.0" in text  # Holm-adjusted p-values printed
    v = read_numbers(report.numbers_evaluation(summary, tests, speed, "smoke", proposed="phase1b"))
    assert v["tests_testable"] == "2" and "Holm-adjusted p-values" in v["tests_note"]


def test_the_reported_system_is_the_one_chosen_on_validation_not_the_best_on_test(paper_dir):
    results = _results()  # Phase 1B is best on these test results
    summary, tests, speed = _frames(results)
    validation = pd.DataFrame([{"phase": "1a", "valid_perceptual": 0.61}, {"phase": "1b", "valid_perceptual": 0.64}])
    v = read_numbers(report.numbers_evaluation(summary, tests, speed, "smoke", results=results, n_boot=200,
                                               proposed="phase1a", validation=validation))
    assert v["proposed_system"] == "Phase 1A" and v["proposed_mrstft"] == "0.815"
    assert v["phase1a_valid_loss"] == "0.610" and v["phase1b_valid_loss"] == "0.640"
    assert v["proposed_vs_input_diff"] == v["phase1a_vs_input_diff"]
    try:
        report.numbers_evaluation(summary, tests, speed, "smoke", proposed="identity")
    except ValueError as err:
        assert "not one of the Phase 1 systems" in str(err)
    else:
        raise AssertionError("a baseline was accepted as the Phase 1 system")


def test_worse_than_input_share_counts_excerpts(paper_dir):
    # Phase 1B is nearer the master on 9 of 12 tracks and further on 3
    results = _many_tracks(12, lambda t: 0.05 if t % 4 == 0 else -0.2)
    v = read_numbers(report.numbers_evaluation(*_frames(results), "smoke", results=results, n_boot=200,
                                               proposed="phase1b"))
    assert v["proposed_vs_input_worse_pct"] == "25"


def test_other_chains_get_a_generated_sentence(paper_dir):
    summary, tests, speed = _frames(_results())
    v = read_numbers(report.numbers_evaluation(summary, tests, speed, "smoke", proposed="phase1b"))
    assert "demastering chain only" in v["chains_sentence"]
    helps = _many_tracks(12, lambda t: -0.2 - 0.01 * t)
    fails = _many_tracks(12, lambda t: 0.1 + 0.01 * t)
    for chain_results, verdict, share in ((helps, "lower than", "0%"), (fails, "higher than", "100%")):
        text = report.chain_sentence("simple", chain_results, "phase1b", n_boot=300)
        assert f"a distance {verdict} the input's" in text and f"on {share} of these excerpts" in text
        assert "12 excerpts of 12 test tracks" in text and "simpler chain" in text
    mixed = _many_tracks(12, lambda t: 0.05 * (-1) ** t)
    assert "not measurably different from" in report.chain_sentence("simple", mixed, "phase1b", n_boot=300)
    v = read_numbers(report.numbers_evaluation(summary, tests, speed, "smoke", proposed="phase1b",
                                               chains={"simple": fails}))
    assert "higher than the input" in v["chains_sentence"] and "\u2212" not in v["chains_sentence"]
