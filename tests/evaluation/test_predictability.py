"""Blind band-correction predictability: features, predictors, the band-EQ system, the evaluation."""

import json

import numpy as np
import pytest
import torch

from mastering.dsp.eq import parametric_eq
from mastering.evaluation.benchmark import band_set, blind_band_eq
from mastering.evaluation.metrics import third_octave_levels_db
from mastering.evaluation.predictability import evaluate_predictability, plot_band_r2, summarize_predictability
from mastering.evaluation.systems import (PREDICTORS, BandRegressionEQSystem, band_corrections, band_levels,
                                          fit_predictor)

SR = 22050


def _shelved(x: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """``x`` [n, 2, t] through a high shelf at 2 kHz of ``gain_db`` [n]."""
    n = x.shape[0]
    return parametric_eq(x.double(), SR, torch.full((n, 1), 2000.0), gain_db[:, None].double(),
                         torch.full((n, 1), 0.7071), kinds=("high_shelf",), mode="exact").float()


def _pairs(n: int, seed: int, master_spread_db: float, degrade_spread_db: float, seconds: float = 1.0) -> dict:
    """Noise masters whose treble varies by +-``master_spread_db`` (a high shelf), degraded by another
    high shelf of +-``degrade_spread_db``; each pair its own track."""
    g = torch.Generator().manual_seed(seed)
    noise = 0.1 * torch.randn(n, 2, int(seconds * SR), generator=g)
    master = _shelved(noise, (torch.rand(n, generator=g) * 2 - 1) * master_spread_db)
    degraded = _shelved(master, (torch.rand(n, generator=g) * 2 - 1) * degrade_spread_db)
    pairs = {"degraded": degraded.numpy(), "mastered": master.numpy(), "groups": [f"{seed}-{i}" for i in range(n)]}
    return band_set(pairs, SR, keep_audio=True, chunk=5)  # chunks of 5: the joining is exercised too


def test_band_levels_are_balance_not_level():
    x = 0.1 * torch.randn(2, 2, SR)
    centres, a = band_levels(x, SR)
    _, b = band_levels(x * 10.0, SR)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a.mean(axis=-1), 0.0, atol=1e-9)
    assert a.shape == (2, centres.size)
    np.testing.assert_allclose(centres, third_octave_levels_db(x, SR)[0])
    assert np.abs(band_corrections(x, 3.0 * x, SR)).max() < 1e-5  # float32 audio: rounding only


def test_band_corrections_undo_a_known_shelf():
    x = 0.1 * torch.randn(1, 2, 2 * SR)
    y = _shelved(x, torch.tensor([-6.0]))  # the "master" has 6 dB less treble than the degraded x
    centres, _ = band_levels(x, SR)
    d = band_corrections(x, y, SR)[0]
    high, low = centres > 6000, centres < 500
    assert d[high].mean() - d[low].mean() == pytest.approx(-6.0, abs=0.5)


def test_fit_predictor_rejects_bad_input():
    f = np.zeros((4, 3))
    with pytest.raises(ValueError, match="unknown predictor"):
        fit_predictor("svm", f, f)
    with pytest.raises(ValueError, match="equal"):
        fit_predictor("ridge", f, np.zeros((4, 2)))


def test_a_predictable_correction_is_learnt_and_helps(paper_dir):
    """Masters of one balance, degraded by random shelves: the input reveals its correction, so ridge
    regression nearly reaches the oracle while the input-blind mean cannot."""
    train, valid = _pairs(48, 0, 0.0, 8.0), _pairs(12, 1, 0.0, 8.0)
    np.testing.assert_allclose(train["features"][7], band_levels(train["degraded"][7], SR)[1][0])
    results, fits = evaluate_predictability(train, valid)
    r2 = {k: np.array(v["band_r2"]) for k, v in ((k, fits["predictors"][k]) for k in PREDICTORS)}
    high = np.array(fits["centres_hz"]) > 4000
    assert r2["ridge"][high].min() > 0.9
    assert r2["mean"][high].max() < 0.2
    summary = summarize_predictability(results, n_boot=200).set_index("system")
    assert set(summary.index) == {"loudnorm", "band_mean", "band_ridge", "band_extra_trees", "oracle_band"}
    assert summary.loc["band_ridge", "ci_high_pct"] < -20.0  # clearly closer to the master than the input
    assert summary.loc["band_ridge", "worse_share"] == 0.0
    assert summary.loc["band_ridge", "band_mse_db2"] < 0.1 * summary.loc["loudnorm", "band_mse_db2"]
    assert summary.loc["oracle_band", "change_pct"] < summary.loc["band_mean", "change_pct"]
    assert abs(summary.loc["loudnorm", "change_pct"]) < 1e-9
    # the paper's numbers and figure from these frames; the verdict comes from the interval
    from mastering.evaluation import report

    versus = summarize_predictability(results, reference="band_mean", n_boot=200)
    path = report.numbers_predictability(summary.reset_index(), fits, "smoke", versus_model=versus)
    values = json.loads(path.with_name(path.name + ".json").read_text())["values"]
    assert values["trees_pct"] == pytest.approx(summary.loc["band_extra_trees", "change_pct"])
    assert values["valid_pairs"] == 12 and values["trees_best_r2"] > 0.9 >= values["mean_best_r2"]
    # masters of one balance: all the variation between pairs is the correction's
    assert values["master_balance_sd_db"] < 0.5 * values["correction_sd_db"]
    assert "model_pct" not in values and values["trees_vs_model_verdict"] in ("lower than", "not measurably different from")
    assert report.fig_predictability(fits, "smoke").with_suffix(".png").is_file()
    # the comparison's blind EQ, fitted the same way, corrects a pair it never saw
    blind = blind_band_eq(train=train)
    assert blind.name == "band_extra_trees" and blind.trained_on["pairs"] == 48
    x = torch.from_numpy(valid["degraded"][0])
    assert np.mean((blind.curve(x, SR)[1] - valid["corrections"][0]) ** 2) < 0.5 * np.mean(valid["corrections"][0] ** 2)


def test_an_unpredictable_correction_is_reported_as_such():
    """Masters whose own treble varies far more than the degradation: the input hides the correction,
    every predictor explains little of it, and the oracle stays far ahead."""
    train, valid = _pairs(48, 2, 12.0, 2.0), _pairs(16, 3, 12.0, 2.0)
    results, fits = evaluate_predictability(train, valid)
    high = np.array(fits["centres_hz"]) > 4000
    for kind in PREDICTORS:
        assert np.mean(np.array(fits["predictors"][kind]["band_r2"])[high]) < 0.3
    summary = summarize_predictability(results, n_boot=200).set_index("system")
    assert summary.loc["oracle_band", "change_pct"] < summary.loc["band_ridge", "change_pct"] - 10.0
    assert fits["master_balance_sd_db"] > 2.0 * fits["correction_sd_db"]  # the music varies more than the chain
    fig = plot_band_r2(fits)
    assert len(fig.axes[0].lines) >= len(PREDICTORS)


def test_band_regression_system_applies_its_curve():
    x = 0.1 * torch.randn(2, SR)
    centres, _ = band_levels(x, SR)
    curve = np.where(centres > 3000, 6.0, 0.0)
    system = BandRegressionEQSystem(None, "fixed", "fixed", curve_db=curve)
    y = system.master(x, SR, target_lufs=-20.0)
    assert y.shape == x.shape
    gain = band_levels(y, SR)[1][0] - band_levels(x, SR)[1][0]
    assert gain[centres > 6000].mean() - gain[centres < 1000].mean() == pytest.approx(6.0, abs=0.7)
    with pytest.raises(ValueError, match="predictor"):
        BandRegressionEQSystem(None, "x", "x")


def test_command_on_the_smoke_pairs(tmp_path, capsys):
    """The command as a user runs it, on the smoke profile's real training/validation pairs."""
    from mastering.evaluation.predictability import main

    assert main(["--profile", "smoke", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "summary.json").read_text())
    assert report["fits"]["profile"] == "smoke" and report["fits"]["valid_pairs"] > 0
    systems = {row["system"]: row for row in report["summary"]}
    assert set(systems) == {"loudnorm", "band_mean", "band_ridge", "band_extra_trees", "oracle_band"}
    assert systems["oracle_band"]["mrstft"] < systems["loudnorm"]["mrstft"]  # the true correction helps
    assert (tmp_path / "band_r2.png").stat().st_size > 0 and (tmp_path / "results.csv").is_file()
    assert "band_extra_trees" in capsys.readouterr().out


def test_learning_sizes_are_doublings_around_the_profile_count():
    from mastering.evaluation.predictability import LEARNING_SIZES, learning_sizes

    assert tuple(learning_sizes(1024)) == LEARNING_SIZES == (128, 256, 512, 1024, 2048, 4096, 8192)
    assert learning_sizes(96) == [12, 24, 48, 96, 192, 384, 768]
    assert learning_sizes(3) == [3, 6, 12, 24]  # never below two pairs
    assert learning_sizes(100, halvings=1, doublings=0) == [50, 100]
    for bad in ((1,), (8, -1)):
        with pytest.raises(ValueError, match="train_items"):
            learning_sizes(*bad)


def test_the_learning_curve_shows_what_more_pairs_teach(paper_dir):
    """Nested training sets: where the input reveals the correction, more pairs bring the predictor
    to the oracle; where the music's own balance hides it, more pairs do not help."""
    from mastering.evaluation.predictability import learning_curve, plot_learning_curve

    pool, valid = _pairs(64, 4, 0.0, 8.0), _pairs(12, 5, 0.0, 8.0)
    curve, results = learning_curve(pool, valid, sizes=(64, 3, 12), kinds=("mean", "ridge"), render=("ridge",),
                                    n_boot=200)
    ridge = curve[curve["kind"] == "ridge"].set_index("train_pairs")
    assert list(ridge.index) == [3, 12, 64]  # sorted, nested
    assert ridge.loc[64, "r2_median"] > 0.9 and ridge.loc[64, "r2_median"] > ridge.loc[3, "r2_median"]
    assert ridge.loc[64, "band_mse_db2"] < ridge.loc[3, "band_mse_db2"]
    assert (curve[curve["kind"] == "mean"]["r2_median"] < 0.2).all()  # the input-blind mean learns nothing
    assert ridge.loc[64, "ci_high_pct"] < -20.0 and ridge.loc[64, "worse_share"] == 0.0
    assert curve[curve["kind"] == "mean"]["change_pct"].isna().all()  # not rendered
    assert set(results["system"]) == {"loudnorm", "oracle_band", "band_ridge_3", "band_ridge_12", "band_ridge_64"}
    assert curve.attrs["oracle"]["change_pct"] <= ridge.loc[64, "change_pct"] + 5.0
    assert len(plot_learning_curve(curve).axes) == 2
    # the paper's numbers: the smallest, the own and the largest count, and the largest against the own
    from mastering.evaluation import report

    versus = summarize_predictability(results, reference="band_ridge_12", n_boot=200)
    path = report.numbers_learning_curve(curve, "smoke", 12, versus_own=versus, kind="ridge")
    values = json.loads(path.with_name(path.name + ".json").read_text())["values"]
    assert (values["min_pairs"], values["own_pairs"], values["max_pairs"]) == (3, 12, 64)
    assert values["max_pct"] == pytest.approx(ridge.loc[64, "change_pct"])
    assert values["own_pct_lo"] == pytest.approx(ridge.loc[12, "ci_low_pct"])
    assert values["max_median_r2"] == pytest.approx(ridge.loc[64, "r2_median"])
    assert values["pct_per_doubling"] < 0.0  # more pairs, closer to the master
    assert values["ridge_max_median_r2"] > values["ridge_min_median_r2"]
    assert values["oracle_pct"] == pytest.approx(curve.attrs["oracle"]["change_pct"])
    assert values["max_vs_own_pct"] == pytest.approx(versus.set_index("system").loc["band_ridge_64", "change_pct"])
    assert values["max_vs_own_verdict"] in ("lower than", "not measurably different from")
    assert report.fig_learning_curve(curve, "smoke").with_suffix(".png").is_file()
    with pytest.raises(ValueError, match="own_pairs"):
        report.numbers_learning_curve(curve, "smoke", 5, kind="ridge")
    with pytest.raises(ValueError, match="rendered"):
        report.numbers_learning_curve(curve, "smoke", 12, kind="mean")

    hidden_pool, hidden_valid = _pairs(64, 6, 12.0, 2.0), _pairs(16, 7, 12.0, 2.0)
    hidden, _ = learning_curve(hidden_pool, hidden_valid, sizes=(8, 64), kinds=("ridge",), render=())
    assert (hidden["r2_median"] < 0.3).all() and "change_pct" not in hidden
    assert len(plot_learning_curve(hidden).axes) == 1

    with pytest.raises(ValueError, match="sizes"):
        learning_curve(pool, valid, sizes=(8, 65))
    with pytest.raises(ValueError, match="unfitted"):
        learning_curve(pool, valid, sizes=(8,), kinds=("ridge",), render=("extra_trees",))
    with pytest.raises(ValueError, match="audio"):
        learning_curve(pool, {k: v for k, v in valid.items() if k != "degraded"}, sizes=(8,), kinds=("ridge",),
                       render=("ridge",))


def test_the_learning_curve_command_on_the_smoke_pairs(tmp_path, capsys):
    """The command as a user runs it: a pool larger than the profile's training pairs, drawn from the
    same mixture, against the profile's own validation pairs."""
    from mastering.evaluation.benchmark import profile_pairs
    from mastering.evaluation.predictability import main

    train, valid, _ = profile_pairs("smoke")
    pool, pool_valid, _ = profile_pairs("smoke", train_items=len(train) + 8)
    assert len(pool) == len(train) + 8 and len(pool_valid) == len(valid)
    np.testing.assert_array_equal(pool_valid[0]["degraded"].numpy(), valid[0]["degraded"].numpy())
    with pytest.raises(ValueError, match="train_items"):
        profile_pairs("smoke", train_items=0)

    assert main(["--profile", "smoke", "--learning-curve", "4,8", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "learning_curve.json").read_text())
    assert report["profile"] == "smoke" and report["sizes"] == [4, 8] and report["valid_pairs"] == len(valid)
    assert {(row["kind"], row["train_pairs"]) for row in report["curve"]} == {
        (k, n) for k in ("ridge", "extra_trees") for n in (4, 8)}
    assert report["oracle"]["mrstft"] < report["loudnorm_mrstft"]  # the true correction helps
    assert (tmp_path / "learning_curve.png").stat().st_size > 0 and (tmp_path / "learning_curve.csv").is_file()
    assert "oracle band EQ" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--learning-curve", "8", "--checkpoint", "x.pt", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--learning-curve", "8,x", "--out", str(tmp_path)])


def test_the_learning_curve_command_defaults_to_the_profiles_sizes(tmp_path, monkeypatch):
    """Without counts, the command draws the notebook's pool: the profile's training pairs doubled three times."""
    from mastering.evaluation import predictability
    from mastering.profiles import get_profile

    asked = {}

    def stop(profile, seed=0, progress=False, train_items=None):
        asked.update(profile=profile, train_items=train_items)
        raise RuntimeError("drawn")

    monkeypatch.setattr(predictability, "profile_pairs", stop)
    for profile in ("smoke", "cpu"):
        with pytest.raises(RuntimeError, match="drawn"):
            predictability.main(["--profile", profile, "--learning-curve", "--out", str(tmp_path)])
        assert asked == {"profile": profile, "train_items": 8 * get_profile(profile)["train"]["data"]["train_items"]}
