"""The listening-test analysis (mastering/evaluation/listening_analysis.py): export reading,
exclusions, ANOVA, mixed model, post-hoc tests, simulated power, objective spectral proxies and the
guard against simulated data in real outputs."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import signal, stats
from statsmodels.stats.multitest import multipletests

from listening_test.store import Store
from mastering.evaluation import listening_analysis as A
from mastering.evaluation.listening_design import CONDITIONS, EXPORT_COLUMNS, TARGETS, build_schedule
from mastering.evaluation.listening_manifest import ManifestRow, load_manifest, write_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def simulated():
    """12 simulated participants (10 clips, full design) with a clear condition effect."""
    return A.simulate_responses(12, 10, effect_d=1.0, seed=3)


def _one_way(n=9, k=4, n_items=3, seed=0):
    """A one-target design with integer ratings and a condition effect (participants x conditions x clips)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n):
        base = rng.normal(4, 0.7)
        for c in range(k):
            for i in range(n_items):
                r = int(np.clip(np.rint(base + 0.4 * c + rng.normal(0, 1.0 + 0.3 * c)), 1, 7))
                rows.append({"participant": f"p{p}", "item": f"i{i}", "condition": CONDITIONS[c],
                             "target": "warm", "rating": r})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- reading the export
def test_load_responses_reads_the_apps_export(tmp_path):
    rows = [ManifestRow(f"item0{i}", c, t, f"{c}/{t}/item0{i}.wav", True)
            for i in (1, 2) for c in CONDITIONS for t in TARGETS]
    store = Store(tmp_path / "responses.sqlite")
    schedule = build_schedule(rows, seed=5, n_fixed_checks=2, n_anchor_repeats=2)
    _, participant = store.create_participant(schedule, 5, "0" * 64)
    while (trial := store.current_trial(participant.id)) is not None:
        store.submit(participant.id, trial.id, trial.expected_rating or 4)
    path = tmp_path / "responses.csv"
    path.write_text(store.export_csv())
    store.close()

    with pytest.raises(ValueError, match=r"real rating\(s\) and no stimuli manifest to check them against"):
        A.load_responses(path)  # real responses are never analysed without the manifest they were rated on
    df = A.validate_responses(pd.read_csv(path, dtype=str, keep_default_na=False))
    assert list(df.columns) == EXPORT_COLUMNS and EXPORT_COLUMNS[-1] == "simulated"
    assert len(df) == len(schedule) and not df["simulated"].any() and df["placeholder"].all()
    assert df["participant_complete"].all() and df["rating"].dtype.kind == "i"
    assert set(df["attention_check"]) == {"", "fixed", "repeat"}
    kept, table = A.apply_exclusions(df)
    assert len(kept) == len(rows) and not table["excluded"].any()


@pytest.mark.parametrize("change, match", [
    (lambda d: d.drop(columns=["rating", "phase"]), r"lack column\(s\) \['phase', 'rating'\]"),
    (lambda d: d.assign(rating=d["rating"].astype(object).where(d.index != 3, 8)), "1 to 7"),
    (lambda d: d.assign(rating=d["rating"].astype(object).where(d.index != 3, 0)), "1 to 7"),
    (lambda d: d.assign(rating=d["rating"].astype(object).where(d.index != 3, "x")), "1 to 7"),
    (lambda d: d.assign(rating=d["rating"].astype(object).where(d.index != 3, 3.5)), "1 to 7"),
    (lambda d: d.assign(attention_check=d["attention_check"].replace("fixed", "catch")), "attention_check"),
    (lambda d: pd.concat([d, d.iloc[[5]]]), "duplicated"),
])
def test_load_responses_refuses_malformed_exports(tmp_path, simulated, change, match):
    path = tmp_path / "bad.csv"
    change(simulated).to_csv(path, index=False)
    with pytest.raises(ValueError, match=match):
        A.load_responses(path)
    with pytest.raises(ValueError, match="no such file"):
        A.load_responses(tmp_path / "missing.csv")


def test_simulated_rows_stay_marked_through_a_csv(tmp_path, simulated):
    simulated.to_csv(tmp_path / "sim.csv", index=False)
    assert A.load_responses(tmp_path / "sim.csv")["simulated"].all()


# ----------------------------------------------------------------------------- provenance: simulated? which stimuli?
def _stimuli_manifest(root, n_items=2):
    """A stimuli folder with only its ``manifest.csv`` (the hash check does not open the WAVs)."""
    root.mkdir(parents=True, exist_ok=True)
    records = [{"item": f"item0{i}", "condition": c, "target": t, "path": f"{c}/{t}/item0{i}.wav"}
               for i in range(1, n_items + 1) for c in CONDITIONS for t in TARGETS]
    write_manifest(root, records, ["item", "condition", "target", "path"])
    return load_manifest(root, check_files=False)


def _real_export(tmp_path, manifest, hashes):
    """The app's CSV export of one finished participant per entry of ``hashes`` (the manifest they were served)."""
    store = Store(tmp_path / "responses.sqlite")
    for seed, sha in enumerate(hashes):
        _, participant = store.create_participant(build_schedule(manifest.rows, seed, 2, 2), seed, sha)
        while (trial := store.current_trial(participant.id)) is not None:
            store.submit(participant.id, trial.id, trial.expected_rating or 4)
    path = tmp_path / "responses.csv"
    path.write_text(store.export_csv())
    store.close()
    return path


def test_a_correct_real_export_passes_the_manifest_check(tmp_path, simulated):
    manifest = _stimuli_manifest(tmp_path / "stimuli")
    path = _real_export(tmp_path, manifest, [manifest.sha256] * 2)
    header = path.read_text().splitlines()[0].split(",")
    assert header == EXPORT_COLUMNS and "simulated" in header
    for given in (manifest, tmp_path / "stimuli", str(tmp_path / "stimuli")):
        df = A.load_responses(path, manifest=given)
        assert not df["simulated"].any() and (df["manifest_sha256"] == manifest.sha256).all()
    A.check_manifest(df, manifest)
    A.check_manifest(simulated, manifest)  # simulated rows carry no manifest hash to check


@pytest.mark.parametrize("change, match", [
    (lambda d: d.drop(columns=["simulated"]), "has no 'simulated' column: every row must say whether it is simulated"),
    (lambda d: d.assign(simulated=d["simulated"].where(d.index != 3, "")), r"'simulated' is empty in 1 row\(s\)"),
    (lambda d: d.assign(simulated=d["simulated"].where(d.index != 3, "maybe")), "'simulated' must hold 0/1"),
])
def test_a_real_export_must_say_it_is_not_simulated(tmp_path, simulated, change, match):
    manifest = _stimuli_manifest(tmp_path / "stimuli")
    path = _real_export(tmp_path, manifest, [manifest.sha256])
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert (df["simulated"] == "0").all()
    change(df).to_csv(path, index=False)
    with pytest.raises(ValueError, match=match):
        A.load_responses(path)
    with pytest.raises(ValueError, match=match):
        A.validate_responses(change(df))
    with pytest.raises(ValueError, match="has no 'simulated' column"):  # also when built in memory
        A.apply_exclusions(simulated.drop(columns=["simulated"]))


def test_ratings_of_another_stimulus_set_are_refused(tmp_path):
    manifest = _stimuli_manifest(tmp_path / "stimuli")
    other = _stimuli_manifest(tmp_path / "other", n_items=3)
    assert other.sha256 != manifest.sha256
    # every participant rated the other stimulus set
    path = _real_export(tmp_path, other, [other.sha256])
    n = len(pd.read_csv(path))
    with pytest.raises(ValueError, match=rf"{n} of {n} real rating\(s\) were made on another stimulus set") as info:
        A.load_responses(path, manifest=manifest)
    assert other.sha256 in str(info.value) and manifest.sha256 in str(info.value) and str(path) in str(info.value)
    A.load_responses(path, manifest=other)
    # one row of a correct export carries another hash
    path = _real_export(tmp_path / "one", manifest, [manifest.sha256])
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[3, "manifest_sha256"] = other.sha256
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match=rf"1 of {len(df)} real rating\(s\)") as info:
        A.load_responses(path, manifest=manifest)
    assert other.sha256 in str(info.value) and manifest.sha256 in str(info.value)
    with pytest.raises(ValueError, match="2 different stimulus sets"):  # pooled even without the manifest
        A.load_responses(path)
    # a real export without the hash column cannot be checked
    with pytest.raises(ValueError, match="no 'manifest_sha256' column"):
        A.check_manifest(A.validate_responses(df.drop(columns=["manifest_sha256"])), manifest)


def test_simulated_and_real_rows_are_never_pooled(tmp_path, simulated):
    manifest = _stimuli_manifest(tmp_path / "stimuli")
    real = pd.read_csv(_real_export(tmp_path, manifest, [manifest.sha256]), dtype=str, keep_default_na=False)
    mixed = pd.concat([real, simulated.astype(str)], ignore_index=True)
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    for call in (lambda: A.load_responses(tmp_path / "mixed.csv"),
                 lambda: A.load_responses(tmp_path / "mixed.csv", manifest=manifest),
                 lambda: A.apply_exclusions(mixed),
                 lambda: A.check_manifest(mixed, manifest)):
        with pytest.raises(ValueError, match=r"mix \d+ simulated and \d+ real row\(s\)"):
            call()
    # a simulated row relabelled as real is caught by its manifest marker
    flipped = simulated.assign(simulated=False)
    with pytest.raises(ValueError, match="marked as real .* carry manifest_sha256 'simulated'"):
        A.validate_responses(flipped)


# ----------------------------------------------------------------------------- exclusions
def test_exclusions_catch_fixed_failures_inconsistent_repeats_and_incomplete_sessions(simulated):
    df = simulated.copy()
    fixed = df.index[(df["participant"] == "S002") & (df["attention_check"] == "fixed")][0]
    df.loc[fixed, "rating"] = df.loc[fixed, "expected_rating"] % 7 + 1  # one wrong fixed answer
    rep = df.index[(df["participant"] == "S005") & (df["attention_check"] == "repeat")][0]
    first = df.index[(df["participant"] == "S005") & (df["trial_index"] == df.loc[rep, "repeat_of_trial_index"])][0]
    df.loc[first, "rating"] = 1
    df.loc[rep, "rating"] = 6  # 5 points apart
    df = df.drop(df.index[(df["participant"] == "S009") & (df["trial_index"] > 40)])
    df.loc[df["participant"] == "S009", "participant_complete"] = False

    base_kept, base_table = A.apply_exclusions(simulated)
    kept, table = A.apply_exclusions(df)
    reasons = table.set_index("participant")["reason"]
    assert "failed 1 of 4 fixed-answer" in reasons["S002"]
    assert "5 points apart" in reasons["S005"]
    assert "incomplete session" in reasons["S009"]
    before = set(base_table.loc[base_table["excluded"], "participant"])
    newly = set(table.loc[table["excluded"], "participant"]) - before
    assert newly == {"S002", "S005", "S009"}
    assert not kept["participant"].isin(["S002", "S005", "S009"]).any()
    assert (kept["phase"] == "main").all() and (kept["attention_check"] == "").all()
    assert len(kept) == 120 * kept["participant"].nunique()
    # the thresholds are what they say
    lenient = A.apply_exclusions(df, max_fixed_failures=1, max_repeat_diff=5)[1].set_index("participant")
    assert not lenient.loc["S002", "excluded"] and not lenient.loc["S005", "excluded"]
    assert lenient.loc["S009", "excluded"]


def test_simulated_inattentive_and_incomplete_participants_are_excluded():
    df = A.simulate_responses(8, 4, effect_d=0.5, seed=1, n_inattentive=2, n_incomplete=1, sd_residual=0.5)
    _, table = A.apply_exclusions(df)
    table = table.set_index("participant")
    incomplete = df.loc[~df["participant_complete"], "participant"].unique()
    assert len(incomplete) == 1 and "incomplete" in table.loc[incomplete[0], "reason"]
    assert table["excluded"].sum() >= 3  # the random raters fail the fixed checks (p = 1 - 7^-4)


# ----------------------------------------------------------------------------- ANOVA
def _gg_box(Y):
    """Greenhouse-Geisser epsilon by Box's (1954) formula on the double-centred covariance."""
    S = np.cov(Y, rowvar=False)
    k = S.shape[0]
    num = k**2 * (np.mean(np.diag(S)) - S.mean()) ** 2
    den = (k - 1) * (np.sum(S**2) - 2 * k * np.sum(S.mean(axis=1) ** 2) + k**2 * S.mean() ** 2)
    return num / den


def test_rm_anova_one_way_equals_the_hand_computation():
    df = _one_way()
    table = A.rm_anova(df)
    assert list(table["effect"]) == ["condition"]
    Y = df.groupby(["participant", "condition"])["rating"].mean().unstack()[list(CONDITIONS)].to_numpy()
    n, k = Y.shape
    grand = Y.mean()
    ss_c = n * np.sum((Y.mean(axis=0) - grand) ** 2)
    ss_e = np.sum((Y - Y.mean(axis=1, keepdims=True) - Y.mean(axis=0) + grand) ** 2)
    f = (ss_c / (k - 1)) / (ss_e / ((k - 1) * (n - 1)))
    row = table.iloc[0]
    assert row["F"] == pytest.approx(f, rel=1e-10)
    assert (row["num_df"], row["den_df"]) == (k - 1, (k - 1) * (n - 1))
    assert row["p"] == pytest.approx(stats.f.sf(f, k - 1, (k - 1) * (n - 1)), rel=1e-8)
    assert row["partial_eta_sq"] == pytest.approx(ss_c / (ss_c + ss_e), rel=1e-10)
    eps = _gg_box(Y)
    assert row["eps_gg"] == pytest.approx(eps, rel=1e-8) and 1 / (k - 1) <= eps < 1
    assert row["p_gg"] == pytest.approx(stats.f.sf(f, eps * (k - 1), eps * (k - 1) * (n - 1)), rel=1e-8)
    assert row["p_gg"] >= row["p"] and not row["simulated"]


def test_rm_anova_two_way_and_the_vectorised_power_statistic_agree(simulated):
    kept, _ = A.apply_exclusions(simulated)
    table = A.rm_anova(kept).set_index("effect")
    n = kept["participant"].nunique()
    assert list(table.index) == ["condition", "target", "condition:target"]
    assert tuple(table.loc["condition", ["num_df", "den_df"]]) == (3, 3 * (n - 1))
    assert tuple(table.loc["condition:target", ["num_df", "den_df"]]) == (6, 6 * (n - 1))
    assert table.loc["condition", "p"] < 1e-3 and table["simulated"].all()
    Y, *_ = A.cell_means(kept)
    f, eps, df1, df2 = A._condition_f(Y[None])
    assert f[0] == pytest.approx(table.loc["condition", "F"], rel=1e-10)
    assert eps[0] == pytest.approx(table.loc["condition", "eps_gg"], rel=1e-10)
    assert eps[0] == pytest.approx(_gg_box(Y.mean(axis=2)), rel=1e-8)


def test_rm_anova_refuses_unfiltered_or_unbalanced_tables(simulated):
    with pytest.raises(ValueError, match="apply_exclusions"):
        A.rm_anova(simulated)
    kept, _ = A.apply_exclusions(simulated)
    with pytest.raises(ValueError, match="lack ratings"):
        A.rm_anova(kept.drop(kept.index[(kept["participant"] == "S001") & (kept["condition"] == "static_eq")]))


# ----------------------------------------------------------------------------- mixed model
def test_mixed_model_recovers_the_effect_and_reports_its_fit(simulated):
    kept, _ = A.apply_exclusions(simulated)
    mm = A.mixed_model(kept)
    fixed = mm[mm["kind"] == "fixed"].set_index("label")
    assert len(fixed) == 12 and fixed.index[0] == "Intercept"
    adaptive = fixed.loc["condition[adaptive_semantic_eq]"]  # 1 SD above the original in the model (warm)
    assert abs(adaptive["estimate"] - 1.0) < 3 * adaptive["se"] and adaptive["p"] < 1e-3
    assert adaptive["ci_low"] < adaptive["estimate"] < adaptive["ci_high"]
    variances = mm[mm["kind"] == "variance"].set_index("term")["estimate"]
    assert set(variances.index) == {"participant Var", "item Var", "residual Var"}
    assert 0.6 < variances["residual Var"] < 1.4  # sd_residual = 1 (rounding adds ~1/12)
    assert mm["converged"].all() and mm["n_obs"].iloc[0] == len(kept) and mm["simulated"].all()
    nested = A.mixed_model(kept, structure="nested")
    assert {"participant Var", "participant x item Var"} <= set(nested["term"])


def test_mixed_model_records_convergence_warnings_instead_of_hiding_them(paper_dir):
    from mastering.evaluation import report_listening as report

    # no participant or clip variance at all: the variance components sit on the boundary
    df = A.simulate_responses(6, 3, effect_d=0.0, seed=0, sd_participant=0.0, sd_item=0.0,
                              sd_participant_condition=0.0)
    kept, _ = A.apply_exclusions(df, max_repeat_diff=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes the fit
        mm = A.mixed_model(kept)
    assert "ConvergenceWarning" in mm["warnings"].iloc[0]
    text = report.table_listening_mixed_model(mm, "smoke", name="listening_mixed_model_simulated").read_text()
    caption = next(line for line in text.splitlines() if line.startswith("\\caption"))
    assert "ConvergenceWarning" in caption and "SIMULATED" in caption
    assert "_" not in caption.replace("\\_", "")  # the warnings are LaTeX-escaped


# ----------------------------------------------------------------------------- post-hoc tests
def test_pairwise_tests_holm_and_cohens_dz_by_hand(simulated):
    kept, _ = A.apply_exclusions(simulated)
    pw = A.pairwise(kept)
    assert len(pw) == 6 * 3
    assert np.allclose(pw["p_holm"], multipletests(pw["p"], method="holm")[1], rtol=1e-12)
    means = kept.groupby(["participant", "condition", "target"])["rating"].mean()
    row = pw[(pw["target"] == "bright") & (pw["condition_a"] == "adaptive_semantic_eq")
             & (pw["condition_b"] == "static_eq")].iloc[0]
    a = means.xs(("adaptive_semantic_eq", "bright"), level=("condition", "target")).sort_index()
    b = means.xs(("static_eq", "bright"), level=("condition", "target")).sort_index()
    diff = a.to_numpy() - b.to_numpy()
    assert row["d_z"] == pytest.approx(diff.mean() / diff.std(ddof=1), rel=1e-12)
    ref = stats.ttest_rel(a, b)
    assert row["t"] == pytest.approx(ref.statistic, rel=1e-12) and row["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert row["t"] == pytest.approx(row["d_z"] * math.sqrt(row["n"]), rel=1e-12)
    per_target = A.pairwise(kept, family="target")
    for _, g in per_target.groupby("target"):
        assert np.allclose(g["p_holm"], multipletests(g["p"], method="holm")[1], rtol=1e-12)


def test_vectorised_holm_equals_multipletests():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, (4, 18))  # few rows: multipletests runs gc.collect() on every call
    p[:, 3] = p[:, 4]  # ties
    expected = np.stack([multipletests(row, method="holm")[1] for row in p])
    assert np.allclose(A.holm(p), expected, rtol=1e-12)


# ----------------------------------------------------------------------------- simulation and power
def test_simulated_responses_have_the_export_format_and_the_effect():
    df = A.simulate_responses(150, 10, effect_d=1.0, seed=2)
    assert list(df.columns) == EXPORT_COLUMNS and df["simulated"].all()
    assert (df["manifest_sha256"] == "simulated").all()
    kept, table = A.apply_exclusions(df, max_repeat_diff=7)
    assert not table["excluded"].any() and len(kept) == 150 * 120
    assert kept["rating"].between(1, 7).all()
    m = kept.groupby("condition")["rating"].mean()
    assert m["adaptive_semantic_eq"] - m["static_eq"] == pytest.approx(1.0, abs=0.15)
    assert m["floweq_style"] - m["static_eq"] == pytest.approx(0.5, abs=0.15)
    assert m["original"] - m["static_eq"] == pytest.approx(0.0, abs=0.15)


def test_power_is_alpha_without_an_effect_and_high_with_a_large_one():
    null = A.power_analysis([12], effect_d=0.0, n_sims=1000, alpha=0.05, seed=4).iloc[0]
    assert 0.03 <= null["power_anova"] <= 0.075  # 0.05 +- 3 Monte-Carlo SE (0.007)
    assert null["power_anova_gg"] <= null["power_anova"]
    assert null["power_pairwise"] <= 0.05 + 3 * null["mc_se_pairwise"]  # Holm keeps the familywise rate
    big = A.power_analysis([6, 24], effect_d=1.0, n_sims=200, seed=5).set_index("n_participants")
    assert big.loc[24, "power_anova"] >= 0.95 and big.loc[24, "power_pairwise"] >= 0.8
    assert big.loc[24, "power_pairwise"] > big.loc[6, "power_pairwise"]
    assert big["simulated"].all()


def test_power_analysis_is_reproducible_and_checks_its_arguments():
    a = A.power_analysis([6, 8], effect_d=0.5, n_sims=30, seed=7)
    b = A.power_analysis([6, 8], effect_d=0.5, n_sims=30, seed=7)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match=">= 2"):
        A.power_analysis([1], n_sims=5)
    with pytest.raises(ValueError, match="contrast"):
        A.power_analysis([6], n_sims=5, contrast=("adaptive_semantic_eq", "nope"))


# ----------------------------------------------------------------------------- refusing simulated data
def test_real_listener_outputs_refuse_simulated_data(paper_dir, simulated):
    from mastering.evaluation import report_listening as report

    kept, exclusions = A.apply_exclusions(simulated)
    anova, pw, mm = A.rm_anova(kept), A.pairwise(kept), A.mixed_model(kept)
    for call in (lambda: report.fig_listening_means(kept, "smoke"),
                 lambda: report.table_listening_anova(anova, "smoke", exclusions),
                 lambda: report.table_listening_pairwise(pw, "smoke"),
                 lambda: report.table_listening_mixed_model(mm, "smoke")):
        with pytest.raises(ValueError, match="SIMULATED"):
            call()
    assert not (paper_dir / "figures").exists() or not list((paper_dir / "figures").glob("listening_means*"))
    # named as simulated, they are written (and say so)
    path = report.table_listening_anova(anova, "smoke", exclusions, name="listening_anova_simulated")
    assert "SIMULATED" in path.read_text()
    # rows of a real export pass, and placeholder stimuli are named in the caption
    real = kept.assign(simulated=False, placeholder=True)
    text = report.table_listening_anova(A.rm_anova(real), "smoke", exclusions).read_text()
    assert "PLACEHOLDER" in text and "SIMULATED" not in text
    assert report.fig_listening_means(real, "smoke").exists()
    report.table_listening_pairwise(A.pairwise(real), "smoke")
    assert "converged: yes" in report.table_listening_mixed_model(A.mixed_model(real), "smoke").read_text()


def test_power_outputs_say_simulated(paper_dir):
    from mastering.evaluation import report_listening as report

    power = A.power_analysis([6, 12], effect_d=0.5, n_sims=20, seed=0)
    table = report.table_power_simulated(power, "smoke")
    figure = report.fig_power_curve_simulated(power, "smoke")
    assert "simulated" in table.name and "simulated" in figure.name
    assert "Simulated power" in table.read_text() and figure.with_suffix(".png").exists()
    assert json.loads(figure.with_name(figure.name + ".json").read_text())["simulated"] is True
    with pytest.raises(ValueError, match="simulated"):
        report.table_power_simulated(power, "smoke", name="listening_power")


# ----------------------------------------------------------------------------- objective proxies
def _noise(seconds, sample_rate, channels, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, (channels, int(seconds * sample_rate)))


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_band_shares_match_the_fft_reference(sample_rate, channels):
    import torch

    from listening_test.stimuli import band_share_db

    x = _noise(2.0, sample_rate, channels)
    b, a = signal.butter(2, 1000, fs=sample_rate)  # coloured: most energy below 1 kHz
    x = signal.lfilter(b, a, x, axis=-1) + 0.05 * x
    m = A.spectral_measures(x, sample_rate)
    ref = torch.from_numpy(x)
    assert m["low_share_db"] == pytest.approx(band_share_db(ref, sample_rate, 20.0, 250.0), abs=0.3)
    assert m["high_share_db"] == pytest.approx(band_share_db(ref, sample_rate, 4000.0, min(16000.0, sample_rate / 2)),
                                               abs=0.3)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_spectral_centroid_of_a_sine_and_of_white_noise(sample_rate):
    t = np.arange(2 * sample_rate) / sample_rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)  # no clicks at the ends (as the stimuli's fades)
    sine = np.sin(2 * np.pi * 1000.0 * t) * fade
    assert A.spectral_measures(sine, sample_rate)["centroid_hz"] == pytest.approx(1000.0, rel=0.005)
    white = A.spectral_measures(_noise(1.0, sample_rate, 1), sample_rate)["centroid_hz"]
    assert white == pytest.approx(sample_rate / 4, rel=0.02)  # flat magnitude: centroid at Nyquist / 2


def _write_stimuli(root, sample_rate=44100, items=3):
    """Noise clips processed by a low shelf (warm) and a high shelf (bright), +9 dB, via pedalboard."""
    import pedalboard

    boards = {"low_shelf": pedalboard.LowShelfFilter(cutoff_frequency_hz=250, gain_db=9.0),
              "high_shelf": pedalboard.HighShelfFilter(cutoff_frequency_hz=4000, gain_db=9.0)}
    rows = []
    for i in range(items):
        x = _noise(1.0, sample_rate, 2, seed=i).astype(np.float32)
        b, a = signal.butter(1, 500 * (i + 1), fs=sample_rate)  # a different tilt per clip
        x = signal.lfilter(b, a, x, axis=-1).astype(np.float32) + 0.02 * x
        item = f"item{i + 1:02d}"
        (root / "original").mkdir(parents=True, exist_ok=True)
        sf.write(root / "original" / f"{item}.wav", x.T, sample_rate, subtype="FLOAT")
        for target in ("warm", "bright"):
            rows.append({"item": item, "condition": "original", "target": target, "path": f"original/{item}.wav",
                         "placeholder": 1})
            for condition, board in boards.items():
                rel = f"{condition}/{target}/{item}.wav"
                (root / condition / target).mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, board(x, sample_rate, reset=True).T, sample_rate, subtype="FLOAT")
                rows.append({"item": item, "condition": condition, "target": target, "path": rel, "placeholder": 1})
    write_manifest(root, rows, ["item", "condition", "target", "path", "placeholder"])
    return root


def test_objective_proxies_see_the_shelving_filters(tmp_path, paper_dir):
    proxies = A.objective_proxies(_write_stimuli(tmp_path / "stimuli"))
    assert len(proxies) == 3 * 3 * 2 and proxies["placeholder"].all()
    p = proxies[proxies["target"] == "warm"].pivot(index="item", columns="condition")
    assert (p["low_share_db"]["low_shelf"] > p["low_share_db"]["original"] + 3).all()
    assert (p["high_share_db"]["high_shelf"] > p["high_share_db"]["original"] + 3).all()
    assert (p["centroid_hz"]["high_shelf"] > p["centroid_hz"]["original"]).all()
    assert (p["centroid_hz"]["low_shelf"] < p["centroid_hz"]["original"]).all()

    deltas = A.objective_deltas(proxies)
    assert (deltas.loc[deltas["condition"] == "original", "delta"] == 0).all()
    warm_low = deltas[(deltas["target"] == "warm") & (deltas["condition"] == "low_shelf")]
    assert (warm_low["measure"] == "low_share_db").all() and (warm_low["delta"] > 3).all()

    res = A.objective_anova(proxies)
    assert list(res["effect"]) == ["condition", "condition:target"]
    assert (res["analysis"] == "OBJECTIVE").all() and res["placeholder"].all()
    # each shelf raises its own target's proxy and lowers the other's: an interaction, no main effect
    assert res.loc[1, "p"] < 1e-3 and res.loc[1, "F"] > 10 * res.loc[0, "F"] and (res["n_items"] == 3).all()

    from mastering.evaluation import report_listening as report

    text = report.table_objective_anova(res, "smoke").read_text()
    assert "OBJECTIVE" in text and "PLACEHOLDER" in text and "energy share" in text
    assert report.fig_objective_proxies(proxies, "smoke").with_suffix(".png").exists()


def test_objective_anova_standardises_within_targets():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        for c, shift in (("original", 0.0), ("static_eq", 1.0), ("adaptive_semantic_eq", 2.0)):
            rows.append({"item": f"i{i}", "condition": c, "target": "warm", "placeholder": False,
                         "low_share_db": -10 + shift + rng.normal(0, 0.3), "high_share_db": 0.0, "centroid_hz": 0.0})
            rows.append({"item": f"i{i}", "condition": c, "target": "bright", "placeholder": False,
                         "low_share_db": 0.0, "high_share_db": -20 + 5 * shift + rng.normal(0, 1.5),
                         "centroid_hz": 0.0})
    proxies = pd.DataFrame(rows)
    res = A.objective_anova(proxies).set_index("effect")
    assert res.loc["condition", "p"] < 1e-4 and not res["placeholder"].any()
    # scaling one target's measure (dB -> any unit) changes nothing after standardisation
    scaled = proxies.assign(high_share_db=proxies["high_share_db"] * 100 + 7)
    assert A.objective_anova(scaled).set_index("effect")["F"].to_numpy() == pytest.approx(res["F"].to_numpy())
    with pytest.raises(ValueError, match="no measure"):
        A.objective_anova(proxies, {"warm": "low_share_db"})


def test_constants_agree_with_the_stimuli_module():
    from listening_test import stimuli

    assert set(stimuli.placeholder_systems()) == set(CONDITIONS) - {"original"}
    assert set(A.DEFAULT_EFFECT_PATTERN) == set(CONDITIONS)
