"""The literature demonstrations measure what the notebook claims (small, fast versions)."""

import json

import pytest
import torch

from mastering import literature as lit
from mastering.dsp.eq import parametric_eq
from mastering.dsp.signals import pink_noise
from mastering.figures import read_numbers
from mastering.paper import referenced_values


def test_eq_recovery_reduces_response_error_and_gradcheck_passes():
    res = lit.eq_recovery_demo(sample_rate=22050, seconds=0.5, steps=40, seed=1)
    err = res["history"]["response_error_db"]
    assert res["gradcheck_float64"] is True
    assert err[-1] < 0.5 * err[0]


def test_mrstft_rates_phase_changes_far_below_l1():
    # Pink noise high-passed at 60 Hz: like music, little energy where a 256-sample window
    # cannot separate a bin from its negative-frequency image (there MR-STFT sees phase too).
    x = parametric_eq(pink_noise(22050, channels=2, seed=3), 22050, torch.tensor([[60.0]]), torch.tensor([[0.0]]),
                      torch.tensor([[0.707]]), ["highpass"])
    r = lit.phase_shift_losses(x, 22050, phases_deg=[0, 90], delays_ms=[0, 0.25], shelf_gains_db=[0, 3])
    assert r["phase"]["mrstft"][0] == pytest.approx(0.0, abs=1e-3)
    # In units of a 1 dB shelf: L1 is fooled by phase at least 10x more than MR-STFT.
    assert r["phase"]["l1"][1] > 10 * r["phase"]["mrstft"][1]
    assert r["delay"]["l1"][1] > 10 * r["delay"]["mrstft"][1]
    # ... and both see a 3 dB shelf as ~3 "1 dB shelves".
    assert r["shelf"]["mrstft"][1] == pytest.approx(3.0, rel=0.2)


def test_weighting_curves_report_class1_and_pyloudnorm_agreement():
    w = lit.weighting_curves((44100, 48000))
    assert all(v["within_class1_20_16k"] for v in w["a"].values())
    assert all(v["max_dev_db"] < 0.1 for v in w["k"].values())


def test_tcn_receptive_field_analytic_equals_measured():
    r = lit.tcn_receptive_field_demo(num_samples=4096)
    assert r["analytic_samples"] == r["measured_samples"] == 551


def test_unet_skips_help_on_the_toy_task():
    torch.set_num_threads(1)
    r = lit.unet_skip_demo(steps=40, n=1024, batch=4)
    assert r["curves"]["skip"]["snr_db"][-1] > r["curves"]["no_skip"]["snr_db"][-1] + 1.0


def test_figures_record_profile(paper_dir):
    r = lit.tcn_receptive_field_demo(num_samples=4096)
    pdf = lit.fig_tcn_receptive_field(r, "smoke")
    assert pdf.exists() and pdf.with_suffix(".png").exists()
    assert '"profile": "smoke"' in pdf.with_name(pdf.name + ".json").read_text()


def _fake_literature_results(runs):
    folder = runs / "literature"
    folder.mkdir(parents=True)
    table = [{"freq_hz": f, "a_weighting_db": nom, "class1_upper_db": 1.0, "class1_lower_db": lo}
             for f, nom, lo in [(10.0, -70.4, None), (20.0, -50.5, -2.0), (1000.0, 0.0, -1.1),
                                (10000.0, -2.5, -3.1), (16000.0, -6.6, -17.0)]]
    results = {
        "eq_recovery": {"steps": 150, "seconds": 1.0, "gradcheck_float64": True,
                        "history": {"response_error_db": [4.5, 1.0, 0.05]}},
        "phase_invariance": {"phases_deg": [0, 45, 90, 180], "delays_ms": [0, 0.5, 2.0], "shelf_gains_db": [0, 3, 6],
                             "phase": {"l1": [0, 40.0, 70.0, 100.0], "mrstft": [0, 2.0, 3.04, 0.0]},
                             "delay": {"l1": [0, 30.0, 95.0], "mrstft": [0, 0.5, 0.8]},
                             "shelf": {"l1": [0, 3.0, 6.0], "mrstft": [0, 3.1, 6.2]}},
        "weighting_curves": {"table": table,
                             "a": {"44100": {"table_freqs_db": [-70.0, -50.4, 0.0, -2.9, -15.2],
                                             "max_dev_20_16k_db": 8.6},
                                   "48000": {"table_freqs_db": [-70.0, -50.5, 0.0, -2.7, -13.1],
                                             "max_dev_20_16k_db": 6.5}},
                             "k": {"44100": {"max_dev_db": 0.04}, "48000": {"max_dev_db": 0.01}}},
        "tcn_receptive_field": {"analytic_samples": 551, "analytic_ms": 12.49, "measured_samples": 551,
                                "hop_samples": 16},
        "unet_skip": {"steps": 150, "noise_snr_db": 10.0,
                      "curves": {"skip": {"snr_db": [10.0, 17.5]}, "no_skip": {"snr_db": [10.0, 12.26]}}},
        "loudness_real_tracks": {"rows": [
            {"difference_lu": 0.004, "lufs_ours": -9.5, "true_peak_dbtp": 0.3},
            {"difference_lu": -0.012, "lufs_ours": -17.26, "true_peak_dbtp": -1.2}]},
    }
    for name, result in results.items():
        (folder / f"{name}.json").write_text(json.dumps({"provenance": {}, **result}))


def test_numbers_literature_reads_the_saved_results(paper_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path / "runs"))
    _fake_literature_results(tmp_path / "runs")
    values = read_numbers(lit.numbers_literature("smoke"))
    assert values["eq_error_start_db"] == "4.50" and values["eq_error_end_db"] == "0.05"
    assert values["eq_gradcheck"] == "yes"
    assert values["phase_deg"] == "90" and values["phase_l1"] == "70.0" and values["phase_mrstft"] == "3.0"
    assert values["delay_ms"] == "2.0" and values["delay_l1"] == "95.0" and values["delay_mrstft"] == "0.8"
    assert values["shelf_max_db"] == "6.0" and values["shelf_mrstft"] == "6.2"
    # rows from 20 Hz to 16 kHz at both rates (8), all within their tolerances; the 10 Hz row is outside the band
    assert values["a_class1_total"] == "8"
    assert values["a_class1_ok"] == "8"
    assert values["a_weighting_max_dev_10k_db"] == "0.40" and values["a_weighting_max_dev_db"] == "8.6"
    assert values["k_weighting_max_dev_db"] == "0.040"
    assert values["tcn_rf_samples"] == "551" and values["unet_skip_snr_db"] == "17.5"
    assert values["unet_no_skip_snr_db"] == "12.3"
    assert values["loudness_tracks"] == "2" and values["loudness_max_abs_diff_lu"] == "0.012"
    assert values["loudness_above_target"] == "1"  # -9.5 LUFS is above the loudest platform target
    assert values["loudness_min_lufs"] == r"\ensuremath{-}17.3" and values["loudness_max_true_peak_dbtp"] == "0.3"
    used = referenced_values()["literature"]  # the paper and its supplement
    assert used - set(values) == set(), f"the text prints literature numbers never written: {used - set(values)}"
