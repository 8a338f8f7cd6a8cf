"""The benchmark of notebook 06: evaluation seeds, statistics, speed, and its report artefacts."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from mastering.data import demaster as dm
from mastering.data import list_tracks
from mastering.data.datasets import PairedDataset, PinkNoiseSegments, derive_seed
from mastering.dsp.signals import pink_noise
from mastering.evaluation import benchmark as B
from mastering.evaluation import report as R
from mastering.evaluation import systems as S
from mastering.io import load_audio


def test_training_seeds_are_the_ones_training_draws_and_evaluation_avoids_them(monkeypatch):
    seen = []
    original = dm.sample_params
    monkeypatch.setattr(dm, "sample_params", lambda seed, *a, **k: (seen.append(seed), original(seed, *a, **k))[1])
    ds = PairedDataset(PinkNoiseSegments(4, 0.5, 8000), seed=derive_seed(0, "train", "pink"))
    for i in range(3):
        ds[i]
    forbidden = B.training_demaster_seeds("smoke", seed=0)
    assert seen and set(seen) <= forbidden  # the enumeration mirrors the training data's derivation
    keys = ["debian/asc-music/machine_wars", "debian/drascula-music/track3", "music21/corpus/x"]
    evaluation = {B.evaluation_seed(k, 0) for k in keys}
    assert len(evaluation) == len(keys) and not evaluation & forbidden
    assert B.evaluation_seed(keys[0], 0) != B.evaluation_seed(keys[0], 1)


def _synthetic_results(n_tracks=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    spec = {"phase1b": ("Phase 1B", "proposed", 0.40), "phase1a": ("Phase 1A", "proposed", 0.45),
            "loudnorm": ("loudness norm.", "baseline", 0.38), "identity": ("identity", "baseline", 0.60)}
    for t in range(n_tracks):
        base = rng.normal(0, 0.02)
        for system, (label, group, mean) in spec.items():
            value = mean + base + rng.normal(0, 0.005)
            rows.append({"system": system, "label": label, "group": group, "track": f"t{t}", "duration_s": 10.0,
                         "seconds": {"identity": 0.01}.get(system, 2.0), "target_lufs": -14.0, "mrstft": value,
                         "band_error_db": 10 * value, "loudness_error_lu": value, "true_peak_dbtp": -1.0 - value,
                         "a_weighted_l1": value / 10, "si_sdr_db": 20 - 10 * value})
    return pd.DataFrame(rows)


def test_summarize_means_intervals_and_ranks():
    results = _synthetic_results()
    summary = B.summarize(results, n_boot=300, seed=1)
    row = summary[(summary.system == "phase1b") & (summary.metric == "mrstft")].iloc[0]
    assert row["mean"] == pytest.approx(results[results.system == "phase1b"]["mrstft"].mean())
    assert row["ci_low"] < row["mean"] < row["ci_high"] and row["n"] == 8
    best = summary[summary["best"]].set_index("metric")["system"]
    assert best["mrstft"] == "loudnorm" and best["si_sdr_db"] == "loudnorm"  # a baseline can win, and is shown
    assert "true_peak_dbtp" not in best.index  # a property, not ranked
    again = B.summarize(results, n_boot=300, seed=1)
    pd.testing.assert_frame_equal(summary, again)  # seeded
    # the interval is the percentile bootstrap over tracks of the repository's helper (same resampling)
    from mastering.semantic.evaluate import bootstrap_ci

    part = results[results.system == "phase1b"]
    lo, hi = bootstrap_ci(part, lambda f: f["mrstft"].mean(), groups="track", n_boot=2000, seed=3)
    wide = B.summarize(results[results.system == "phase1b"], n_boot=2000, seed=3)
    wide = wide[wide.metric == "mrstft"].iloc[0]
    assert wide["ci_low"] == pytest.approx(lo, abs=0.004) and wide["ci_high"] == pytest.approx(hi, abs=0.004)
    single = B.summarize(results[results.track == "t0"], n_boot=50)
    assert single["ci_low"].isna().all()
    assert B.best_system(summary) == "phase1b"  # best of the proposed systems
    assert B.best_system(summary, group=None) == "loudnorm"


def test_summarize_with_one_excerpt_per_track_is_the_bootstrap_of_the_track_means():
    results = _synthetic_results()
    part = results[results.system == "phase1a"]
    summary = B.summarize(results, n_boot=500, seed=4)
    row = summary[(summary.system == "phase1a") & (summary.metric == "mrstft")].iloc[0]
    values = part.sort_values("track")["mrstft"].to_numpy(float)
    ci = stats.bootstrap((values,), np.mean, n_resamples=500, method="percentile", vectorized=True,
                         random_state=np.random.default_rng(4)).confidence_interval  # the interval before excerpts
    assert (row["ci_low"], row["ci_high"]) == (float(ci.low), float(ci.high))
    assert row["mean"] == pytest.approx(values.mean(), abs=1e-15)


def _with_excerpts(results, n, noise=0.0, seed=0):
    """Each row repeated as excerpts 0..n-1 of its track (``noise``: independent excerpt noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        part = results.copy()
        part["excerpt"] = i
        part["item"] = part["track"] + f"#{i}"
        part["mrstft"] = part["mrstft"] + rng.normal(0, noise, len(part)) if noise else part["mrstft"]
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


def test_cluster_bootstrap_resamples_tracks_not_excerpts():
    results = _synthetic_results(n_tracks=10)
    one = B.summarize(results, n_boot=400, seed=2).set_index(["system", "metric"])
    three = B.summarize(_with_excerpts(results, 3), n_boot=400, seed=2).set_index(["system", "metric"])
    # identical excerpts: the same mean, the same interval, n counts tracks (duplicating rows never narrows it)
    for col in ("mean", "ci_low", "ci_high"):
        np.testing.assert_allclose(three[col].to_numpy(float), one[col].to_numpy(float), rtol=0, atol=1e-12)
    assert (three["n"] == 10).all()
    # strongly correlated excerpts (a track effect, little excerpt noise): wider than a naive row bootstrap
    rng = np.random.default_rng(5)
    values = np.repeat(rng.normal(0, 1.0, 12), 4) + rng.normal(0, 0.05, 48)
    groups = np.repeat([f"t{k}" for k in range(12)], 4)
    mean, lo, hi, n = B.cluster_bootstrap_ci(values, groups, n_boot=2000, seed=0)
    naive = stats.bootstrap((values,), np.mean, n_resamples=2000, method="percentile",
                            random_state=np.random.default_rng(0)).confidence_interval
    assert n == 12 and mean == pytest.approx(values.mean())
    assert hi - lo > 1.5 * (naive.high - naive.low)
    # unequal excerpt counts: the statistic is the mean over every excerpt of the drawn tracks
    mean, lo, hi, n = B.cluster_bootstrap_ci([0.0, 0.0, 0.0, 3.0], ["a", "a", "a", "b"], n_boot=200)
    assert mean == pytest.approx(0.75) and lo == pytest.approx(0.0) and hi == pytest.approx(3.0)
    assert np.isnan(B.cluster_bootstrap_ci([1.0, 2.0], ["a", "a"])[1])  # one track: no interval
    with pytest.raises(ValueError, match="chains"):
        B.summarize(pd.concat([results.assign(chain="demaster"), results.assign(chain="simple")]))


def test_paired_tests_use_the_per_track_means_of_several_excerpts():
    results = _synthetic_results()
    tests = B.paired_tests(results, "phase1b")
    three = B.paired_tests(_with_excerpts(results, 3), "phase1b")
    pd.testing.assert_frame_equal(three, tests)  # identical excerpts: the same tests on the same 8 tracks
    noisy = _with_excerpts(results, 3, noise=0.01, seed=1)
    row = B.paired_tests(noisy, "phase1b").set_index(["metric", "other"]).loc[("mrstft", "identity")]
    means = noisy.groupby(["system", "track"])["mrstft"].mean()
    assert row["n"] == 8 and row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(means["phase1b"], means["identity"]).pvalue)
    with pytest.raises(ValueError, match="several rows"):
        B.paired_tests(pd.concat([results, results]), "phase1b")


def test_paired_tests_match_scipy_and_holm():
    results = _synthetic_results()
    tests = B.paired_tests(results, "phase1b")
    assert set(tests["other"]) == {"phase1a", "loudnorm", "identity"}
    row = tests[(tests.metric == "mrstft") & (tests.other == "identity")].iloc[0]
    a = results[results.system == "phase1b"].set_index("track")["mrstft"]
    b = results[results.system == "identity"].set_index("track")["mrstft"].loc[a.index]
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert row["wilcoxon_p"] == pytest.approx(2 / 2 ** 8)  # every track favours phase1b: exact two-sided p
    assert row["ttest_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert row["mean_difference"] == pytest.approx((a - b).mean())
    part = tests[tests.metric == "mrstft"]
    assert (part["wilcoxon_p_holm"] >= part["wilcoxon_p"] - 1e-12).all()
    assert part["wilcoxon_p_holm"].max() <= 1.0
    with pytest.raises(ValueError, match="not in the results"):
        B.paired_tests(results, "nope")


def test_paired_tests_with_one_track_are_undefined_not_errors():
    results = _synthetic_results(n_tracks=1)
    tests = B.paired_tests(results, "phase1b")
    assert tests["wilcoxon_p"].isna().all() and tests["ttest_p"].isna().all()


def test_run_benchmark_latency_and_speed_table():
    sample_rate = 22050
    mastered = pink_noise(2 * sample_rate, channels=2, batch=1, seed=3, level_dbfs=-16.0)[0].float()
    pairs = [{"track": f"t{i}", "mastered": mastered, "degraded": mastered * 10 ** (-(6.0 + i) / 20),
              "sample_rate": sample_rate, "duration_s": 2.0} for i in range(2)]
    systems = [S.IdentitySystem(), S.LoudnessNormSystem()]
    results, outputs = B.run_benchmark(systems, pairs, keep_outputs=1)
    assert len(results) == 4 and list(outputs) == ["t0"]
    assert list(results["item"]) == list(results["track"]) and set(results["chain"]) == {"demaster"}
    excerpts = [dict(p, track="t0", item=f"t0#{i}", excerpt=i, chain="simple") for i, p in enumerate(pairs)]
    several, kept = B.run_benchmark(systems[:1], excerpts, keep_outputs=2)
    assert list(several["item"]) == ["t0#0", "t0#1"] and list(several["excerpt"]) == [0, 1]
    assert set(several["track"]) == {"t0"} and set(several["chain"]) == {"simple"} and list(kept) == ["t0#0", "t0#1"]
    assert set(outputs["t0"]) == {"degraded", "mastered", "identity", "loudnorm"}
    ident = results[results.system == "identity"].set_index("track")
    assert ident.loc["t0", "loudness_error_lu"] == pytest.approx(6.0, abs=1e-3)
    assert ident.loc["t1", "loudness_error_lu"] == pytest.approx(7.0, abs=1e-3)
    assert ident["mrstft"].max() < 1e-3  # a pure gain vanishes at matched loudness
    assert results[results.system == "loudnorm"]["loudness_error_lu"].max() < 0.35
    latency = B.measure_latency(systems, pairs[0]["degraded"], sample_rate, seconds=1.0, repeats=1, devices=["cpu"])
    assert list(latency["device"]) == ["cpu", "cpu"] and (latency["excerpt_s"] == 1.0).all()
    speed = B.speed_table(results, latency)
    assert list(speed["system"]) == ["identity", "loudnorm"]
    row = speed.set_index("system").loc["loudnorm"]
    assert row["cpu_realtime"] == pytest.approx(4.0 / results[results.system == "loudnorm"]["seconds"].sum())
    assert row["cpu_ms_per_5s"] == pytest.approx(5 * latency.set_index("system").loc["loudnorm", "ms_per_excerpt"])
    assert np.isnan(row["design_cpu_ms_per_5s"])
    fake = results.replace({"system": {"identity": "phase1b"}})
    assert B.speed_table(fake, latency.iloc[:0]).set_index("system").loc["phase1b", "design_cuda_ms_per_5s"] == 23.0


def test_load_test_pairs_demasters_with_evaluation_seeds():
    try:
        pairs = B.load_test_pairs("smoke", max_tracks=1, max_seconds=2.0)
    except FileNotFoundError:
        pytest.skip("smoke data not prepared (make data)")
    p = pairs[0]
    assert p["seed"] == B.evaluation_seed(p["track"], 0)
    assert p["mastered"].shape == p["degraded"].shape and p["mastered"].shape[0] == 2
    assert p["duration_s"] == pytest.approx(2.0, abs=1e-3)
    assert not torch.allclose(p["mastered"], p["degraded"])
    assert p["record"]["seed"] == p["seed"] and "level" in p["record"]["stages"]  # the chain's record
    # one excerpt of the demastering chain is the pair made before excerpts and chains (the middle)
    track = sorted(list_tracks(profile="smoke", split="test", kind="real"), key=lambda t: t.key)[0]
    offset = round((track.duration_s - 2.0) / 2.0, 3)
    x, sr = load_audio(track.path, offset_s=offset, duration_s=2.0, channels=2)
    y, record = dm.demaster(x, sr, seed=B.evaluation_seed(track.key, 0))
    assert p["track"] == track.key and p["offset_s"] == offset and p["record"] == record
    assert torch.equal(p["mastered"], x) and torch.equal(p["degraded"], y.float())


def test_excerpt_offsets_are_evenly_spaced_and_apart_where_the_track_allows():
    assert B.excerpt_offsets(100.0, 8.0, 1) == [46.0]  # the middle, as before excerpts
    four = B.excerpt_offsets(100.0, 8.0, 4)
    assert len(four) == 4 and all(b - a >= 8.0 for a, b in zip(four, four[1:]))  # no overlap
    assert four[0] > 0 and four[-1] + 8.0 < 100.0 and np.ptp(np.diff(four)) < 1e-2
    short = B.excerpt_offsets(12.0, 8.0, 3)  # too short for 3 apart: start to end, evenly
    assert short == [0.0, 2.0, 4.0]
    assert B.excerpt_offsets(6.0, 8.0, 3) == [0.0] and B.excerpt_offsets(100.0, None, 4) == [0.0]


def test_load_test_pairs_gives_several_excerpts_and_the_simple_chain():
    try:
        old = B.load_test_pairs("smoke", max_tracks=1, max_seconds=2.0)
        pairs = B.load_test_pairs("smoke", max_tracks=1, max_seconds=2.0, excerpts_per_track=3)
    except FileNotFoundError:
        pytest.skip("smoke data not prepared (make data)")
    assert len(old) == 1 and old[0]["excerpt"] == 0 and old[0]["chain"] == "demaster"
    assert old[0]["item"] == old[0]["track"] + "#0"
    assert [p["excerpt"] for p in pairs] == [0, 1, 2] and len({p["item"] for p in pairs}) == 3
    assert len({p["track"] for p in pairs}) == 1
    offsets = [p["offset_s"] for p in pairs]
    assert all(b >= a + 2.0 for a, b in zip(offsets, offsets[1:]))  # distinct, non-overlapping
    seeds = [p["seed"] for p in pairs]
    assert len(set(seeds)) == 3 and seeds[0] == old[0]["seed"] == B.evaluation_seed(pairs[0]["track"], 0)
    assert seeds[1] == B.evaluation_seed(pairs[0]["track"] + "#1", 0)
    assert not set(seeds) & B.training_demaster_seeds("smoke", 0)
    for p in pairs:
        assert p["duration_s"] == pytest.approx(2.0, abs=1e-3) and p["mastered"].shape == p["degraded"].shape
    assert not torch.equal(pairs[0]["mastered"], pairs[1]["mastered"])
    simple = B.load_test_pairs("smoke", max_tracks=1, max_seconds=2.0, chain="simple")
    assert simple[0]["chain"] == "simple" and simple[0]["record"]["chain"] == "simple"
    assert simple[0]["seed"] == old[0]["seed"] and torch.equal(simple[0]["mastered"], old[0]["mastered"])
    assert not torch.allclose(simple[0]["degraded"], old[0]["degraded"])
    with pytest.raises(ValueError, match="chain"):
        B.load_test_pairs("smoke", max_tracks=1, max_seconds=2.0, chain="nope")


def test_report_writes_every_artefact_with_its_profile(paper_dir):
    results = _synthetic_results(n_tracks=4)
    summary = B.summarize(results, n_boot=100)
    tests = B.paired_tests(results, "phase1b")
    latency = pd.DataFrame([{"system": s, "label": s, "device": "cpu", "ms_per_excerpt": 100.0, "excerpt_s": 5.0,
                             "realtime": 50.0} for s in results["system"].unique()])
    speed = B.speed_table(results, latency)
    metrics = R.table_evaluation_metrics(summary, "smoke", tracks=4, seconds=8.0).read_text()
    assert "smoke profile" in metrics and "\\textbf{" in metrics
    assert "a system other than Phase~1 is best in" in metrics and "MR-STFT distance" in metrics
    assert "(8-s excerpts)" in metrics and "4 held-out test tracks" in metrics
    text = R.table_evaluation_tests(tests, "smoke").read_text()
    assert "Wilcoxon" in text and "Phase 1B" in text
    assert "270" in R.table_evaluation_speed(speed, "smoke", device_note="2 CPU threads").read_text()
    sr = 8000
    x = pink_noise(sr, channels=2, batch=1, seed=1)[0]
    assert "(3 8-s excerpts each)" in R.table_evaluation_metrics(summary, "smoke", tracks=4, seconds=8.0,
                                                                 excerpts=3).read_text()
    R.fig_metric_distributions(_with_excerpts(results, 2), "smoke")  # several excerpts per track
    figures = [R.fig_metric_distributions(results, "smoke"),
               R.fig_example_spectra({"degraded": 0.5 * x, "mastered": x, "loudnorm": x}, sr, "smoke", track="t0"),
               R.fig_quality_speed(summary, speed, "smoke")]
    for pdf in figures:
        assert pdf.exists() and pdf.with_suffix(".png").exists()
        assert json.loads(pdf.with_name(pdf.name + ".json").read_text())["profile"] == "smoke"
