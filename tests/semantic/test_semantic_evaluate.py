"""The semantic EQ evaluation's measures: spectral tilt (physics), curve metrics, the bootstrap over
tracks, the summary's adaptivity and monotonicity, and the report's table and figures."""

import numpy as np
import pandas as pd
import pytest
import torch

from mastering.dsp.signals import pink_noise
from mastering.semantic import report
from mastering.semantic.evaluate import bootstrap_ci, curve_metrics, spectral_tilt, summarize_semantic_eq


@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_spectral_tilt_of_white_and_pink_noise(sample_rate, channels):
    """Third-octave band energy: white noise rises 3 dB/octave (bandwidth doubles), pink is flat."""
    g = torch.Generator().manual_seed(0)
    white = torch.randn(2, channels, 10 * sample_rate, generator=g, dtype=torch.float64)
    pink = pink_noise(10 * sample_rate, channels=channels, batch=2, seed=1, dtype=torch.float64)
    np.testing.assert_allclose(spectral_tilt(white, sample_rate), 10 * np.log10(2), atol=0.1)
    np.testing.assert_allclose(spectral_tilt(pink, sample_rate), 0.0, atol=0.15)
    # A gain does not change the tilt.
    np.testing.assert_allclose(spectral_tilt(0.1 * pink, sample_rate), spectral_tilt(pink, sample_rate), atol=1e-9)


def test_curve_metrics_by_hand():
    f = np.linspace(0, 1, 64)
    ref = 6.0 * f
    m = curve_metrics(np.stack([ref + 3.0, -ref, 2 * ref, np.zeros_like(f)]), ref)
    r = ref - ref.mean()
    rms = np.sqrt((r**2).mean())
    np.testing.assert_allclose(m["cosine"], [1.0, -1.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(m["amount_db"], [rms, -rms, 2 * rms, 0.0], atol=1e-12)
    np.testing.assert_allclose(m["rms_db"], [rms, rms, 2 * rms, 0.0], atol=1e-12)


def test_bootstrap_resamples_whole_tracks():
    frame = pd.DataFrame({"track": np.repeat(["a", "b", "c", "d"], 5), "v": np.repeat([0.0, 1.0, 2.0, 3.0], 5)})
    lo, hi = bootstrap_ci(frame, lambda f: f["v"].mean(), n_boot=500, seed=0)
    assert 0.0 <= lo < 1.5 < hi <= 3.0
    assert bootstrap_ci(frame, lambda f: f["v"].mean(), n_boot=500, seed=0) == (lo, hi)  # seeded
    one = frame[frame["track"] == "a"]
    assert all(np.isnan(bootstrap_ci(one, lambda f: f["v"].mean())))


def _results():
    rows = []
    rng = np.random.default_rng(0)
    for c in range(12):
        before = rng.normal()
        for method in ("adaptive", "static"):
            for i in (0.0, 0.5, 1.0, 1.5):
                amount = i * (1.0 - before) if method == "adaptive" else 1.5 * i
                after = before + (1.0 - before) * i if method == "adaptive" else before + i
                rows.append({"clip": f"t{c % 4}@{c}", "track": f"t{c % 4}", "descriptor": "warm", "method": method,
                             "intensity": i, "position_before": before, "position_after": after,
                             "cosine": 1.0 if amount > 0 else -1.0, "amount_db": amount, "rms_db": abs(amount),
                             "tilt_before": -4.0, "tilt_after": -4.0 - 0.5 * amount})
    return pd.DataFrame(rows)


def test_summary_measures_adaptivity_and_monotonicity():
    res = _results()
    s = summarize_semantic_eq(res, n_boot=100).set_index("method")
    assert s.loc["adaptive", "adaptivity_rho"] == pytest.approx(-1.0)
    assert np.isnan(s.loc["static", "adaptivity_rho"])  # the same EQ for every clip
    adaptive_at_1 = res[(res.method == "adaptive") & (res.intensity == 1.0)]
    assert s.loc["adaptive", "direction_accuracy"] == pytest.approx((adaptive_at_1["amount_db"] > 0).mean())
    assert s.loc["static", "direction_accuracy"] == 1.0
    assert s.loc["adaptive", "position_after_sd"] == pytest.approx(0.0, abs=1e-12)  # everyone reaches the target
    assert s.loc["static", "monotone_position"] == 1.0
    assert s.loc["adaptive", "clips"] == 12 and s.loc["adaptive", "tracks"] == 4


def test_report_writes_the_table_and_figures(paper_dir):
    res = _results()
    summary = summarize_semantic_eq(res, n_boot=50)
    tex = report.table_semantic_eq_comparison(summary, "smoke").read_text()
    assert "adaptive (ours)" in tex and "$-$" in tex and "$$" not in tex and "smoke profile" in tex
    assert report.fig_semantic_eq_adaptivity(res, "smoke").is_file()
    assert report.fig_semantic_eq_intensity(res, "smoke").is_file()
    freqs = np.geomspace(20, 20000, 16)
    curves = pd.concat([pd.DataFrame({"clip": c, "descriptor": "warm", "method": m, "freq_hz": freqs,
                                      "gain_db": np.linspace(2, -2, 16)})
                        for c in res["clip"].unique() for m in ("adaptive", "static")])
    pdf = report.fig_semantic_eq_examples(res, curves, {"warm": np.linspace(3, -3, 16)}, freqs, "smoke")
    assert pdf.is_file() and pdf.with_suffix(".png").is_file()


def test_direction_summary_counts_reversals_monotonicity_and_adaptivity(paper_dir):
    """Two made-up methods on 4 tracks x 2 clips: 'good' adds less to clips that already have more
    and grows with the intensity; 'bad' takes the quality away from half of the clips at
    intensity 1 and falls at the top intensity."""
    from mastering.figures import read_numbers
    from mastering.semantic.evaluate import summarize_direction

    rows = []
    for c in range(8):
        before = 0.1 * c
        for k in (0.0, 0.5, 1.0, 1.5):
            good = before + k * (1.0 - 0.1 * c)
            bad = before + (k * (-1) ** c if k < 1.5 else -0.5)
            for method, after in (("good", good), ("bad", bad)):
                rows.append({"clip": f"c{c}", "track": f"t{c // 2}", "descriptor": "warm", "method": method,
                             "intensity": k, "axis_before": before, "axis_after": after,
                             "centroid_before": 1000.0, "centroid_after": 1000.0 - 100 * k,
                             "low_share_before": 0.3, "low_share_after": 0.3 + 0.01 * k,
                             "tilt_before": -3.0, "tilt_after": -3.0 - 0.2 * k})
    summary = summarize_direction(pd.DataFrame(rows), n_boot=200).set_index("method")
    good, bad = summary.loc["good"], summary.loc["bad"]
    assert good["reversed"] == 0.0 and good["reversed_any"] == 0.0 and good["monotone"] == 1.0
    assert good["adaptivity_rho"] == pytest.approx(-1.0) and good["adaptivity_rho_hi"] < 0
    assert bad["reversed"] == 0.5 and bad["reversed_any"] == 1.0 and bad["monotone"] == 0.0
    assert good["centroid_change_hz"] == pytest.approx(-100.0) and good["tilt_change"] == pytest.approx(-0.2)
    table = report.table_semantic_eq_direction(summary.reset_index(), "smoke").read_text()
    assert "8 excerpts of 4 held-out" in table and "\\label{tab:semantic_eq_direction}" in table
    values = read_numbers(report.numbers_semantic_direction(summary.reset_index(), "smoke"))
    assert values["warm_good_reversed"] == "0.00" and values["warm_bad_reversed_any"] == "1.00"
