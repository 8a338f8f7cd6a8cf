"""The literature demonstrations measure what the notebook claims (small, fast versions)."""

import pytest
import torch

from mastering import literature as lit
from mastering.dsp.eq import parametric_eq
from mastering.dsp.signals import pink_noise


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
