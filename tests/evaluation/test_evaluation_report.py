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
    v = read_numbers(report.numbers_evaluation(summary, tests, speed, "smoke"))
    assert v["proposed_system"] == "Phase 1B" and v["proposed_mrstft"] == "0.615"
    assert v["identity_mrstft"] == "1.215" and v["loudnorm_mrstft"] == "1.015"
    assert v["proposed_vs_identity_pct"] == r"\ensuremath{-}49"
    assert v["best_mrstft_system"] == "Phase 1B" and v["best_band_error_system"] == "static mean EQ"
    assert v["best_si_sdr_system"] == "Phase 1B"
    assert v["baseline_wins"] == "1" and v["ranked_metrics"] == "5"  # true peak has no better direction
    assert v["tracks"] == "4" and v["mrstft_tests"] == "4"
    assert v["phase1b_cpu_ms_per_5s"] == "100" and v["phase1b_design_cpu_ms"] == "270"
