"""The number files of notebooks 07-11: the values the results text quotes, read from the frames
the notebooks already computed (no training here)."""

import math

import numpy as np
import pandas as pd

from mastering.figures import read_numbers
from mastering.semantic import report, report_clap, report_e2e


def test_vae_numbers_pick_the_main_latent_size(paper_dir):
    metrics = pd.DataFrame([
        {"latent_dim": d, "beta": 0.02, "train_db_mean": t, "val_db_mean": v, "baseline_val_db_mean": 4.7,
         "n_val": 300, "n_val_contributors": 12} for d, t, v in ((1, 2.5, 2.9), (2, 1.8, 2.15), (3, 1.5, 2.0))])
    v = read_numbers(report.numbers_semantic_vae(metrics, 2, 1.234, "smoke"))
    assert (v["latent_dim"], v["train_db"], v["heldout_db"], v["mean_setting_db"]) == ("2", "1.80", "2.15", "4.70")
    assert v["heldout_rows"] == "300" and v["heldout_contributors"] == "12" and v["separation"] == "1.23"
    assert v["latent_sizes"] == "3" and v["beta"] == "0.020"


def test_encoder_numbers(paper_dir):
    rows = [("cnn-mse", "pink", 0.63, 0.87), ("cnn-mse", "music", -5.1, 0.55),
            ("cnn-mse-music", "pink", 0.2, 0.6), ("cnn-mse-music", "music", 0.09, 0.67)]
    table = pd.DataFrame([{"variant": a, "evaluated_on": w, "r2": r, "pair_accuracy": acc, "n": 301}
                          for a, w, r, acc in rows])
    table = pd.concat([table, pd.DataFrame([{"variant": "ltas-mse-music", "evaluated_on": "music", "r2": 0.31,
                                             "pair_accuracy": 0.7, "n": 301, "r2_warm": 0.52, "r2_warm_lo": 0.4,
                                             "r2_warm_hi": 0.61, "r2_bright": -0.2, "r2_bright_lo": -0.5,
                                             "r2_bright_hi": 0.05}])], ignore_index=True)
    v = read_numbers(report.numbers_encoder(table, "smoke"))
    assert v["main_pink_r2"] == "0.63" and v["main_music_r2"] == r"\ensuremath{-}5.10"
    assert v["music_trained_music_r2"] == "0.09" and v["music_trained_music_acc"] == "0.67"
    assert v["music_ltas_music_r2_warm"] == "0.52" and v["music_ltas_music_r2_warm_hi"] == "0.61"
    assert v["music_ltas_music_r2_bright_lo"] == r"\ensuremath{-}0.50"
    assert "main_pink_r2_warm" not in v
    assert v["settings"] == "301" and v["variants"] == "3"


def test_semantic_eq_numbers_compare_adaptive_with_static(paper_dir):
    rows = []
    for d, rho in (("warm", -0.74), ("bright", -0.98)):
        for m, sd in (("adaptive", 0.5), ("static", 1.8), ("floweq", 1.7)):
            rows.append({"descriptor": d, "method": m, "clips": 8, "tracks": 2, "adaptivity_rho": rho if m == "adaptive"
                         else math.nan, "direction_accuracy": 0.9, "tilt_change": -0.35, "position_after_sd": sd})
    v = read_numbers(report.numbers_semantic_eq(pd.DataFrame(rows), "smoke"))
    assert v["warm_rho"] == r"\ensuremath{-}0.74" and v["bright_rho"] == r"\ensuremath{-}0.98"
    assert v["warm_sd_adaptive"] == "0.50" and v["warm_sd_static"] == "1.80"
    assert v["clips"] == "8" and v["intensity"] == "1.0"


def test_e2e_numbers_give_a_verdict_only_from_the_interval(paper_dir):
    rows = []
    for method, (d, lo, hi) in (("e2e-iir", (-0.2, -0.3, -0.1)), ("e2e-dasp", (0.05, -0.1, 0.2))):
        rows.append({"method": method, "descriptor": "all", "measure": "attainment_error", "difference": d,
                     "lo": lo, "hi": hi})
        rows.append({"method": method, "descriptor": "all", "measure": "tilt_change", "difference": 0.1,
                     "lo": 0.0, "hi": 0.2})
        rows.append({"method": method, "descriptor": "warm", "measure": "attainment_error", "difference": 9.0,
                     "lo": 8.0, "hi": 10.0})  # per-descriptor rows are not the pooled numbers
    refinement = pd.DataFrame([{"steps": n, "distance": dist, "seconds": s, "reduction": red, "cosine": c}
                               for n, dist, s, red, c in ((0, 1.0, 0.0, 0.0, 0.5), (10, 0.8, 1.0, 0.2, 0.5),
                                                          (200, 0.4, 20.0, 0.6, 0.3))])
    v = read_numbers(report_e2e.numbers_e2e(pd.DataFrame(rows), refinement, "smoke"))
    assert v["iir_attain"] == r"\ensuremath{-}0.200" and v["iir_verdict"] == "lower"
    assert v["dasp_verdict"] == "not measurably different" and v["dasp_attain_hi"] == "0.200"
    assert v["refine_steps_max"] == "200" and v["refine_distance_0"] == "1.00" and v["refine_distance_max"] == "0.40"
    assert v["refine_reduction_pct"] == "60" and v["refine_seconds_max"] == "20.0"


def test_clap_numbers_say_which_arms_ran(paper_dir):
    arms = pd.DataFrame([{"arm": "custom-pink", "status": "ran"}, {"arm": "clap-random", "status": "ran"},
                         {"arm": "clap-pretrained", "status": "not run", "reason": "no checkpoint given"}])
    table = pd.DataFrame([{"arm": a, "evaluated_on": w, "r2": r, "n": 50}
                          for a, w, r in (("custom-pink", "music", -1.5), ("custom-pink", "pink", 0.6),
                                          ("clap-random", "music", np.nan), ("clap-random", "pink", 0.1))])
    v = read_numbers(report_clap.numbers_clap(table, arms, "smoke"))
    assert v["arms_ran"] == "2" and v["arms_total"] == "3" and v["pretrained_ran"] == "no"
    assert v["custompink_music_r2"] == r"\ensuremath{-}1.50" and v["claprandom_pink_r2"] == "0.10"
    assert "claprandom_music_r2" not in v  # a NaN is left out, never printed
