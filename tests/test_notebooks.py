"""The notebook runner, and every numbered notebook executed in the smoke profile.

A notebook passes only if the numbers it writes land where a correct run must land
(:data:`SCIENCE`: ranges from the physics and the design, not from one run's outputs); the same
checks run on the generated files in ``paper/tables`` when they are there.
"""

import json
import math
import os
from pathlib import Path

import nbformat
import pytest

from mastering import notebooks as runner
from mastering import paths
from mastering.figures import interval_verdict, smallest_signed_rank_p
from mastering.semantic.safedb import SAFEDB_FILENAME

REPO = Path(__file__).resolve().parents[1]

#: What a notebook calls when it reads SAFE-DB (directly or through the semantic-EQ bundle).
_SAFEDB_CALLS = ("load_safedb", "build_semantic_eq")


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(src) for src in cells]
    nbformat.write(nb, str(path))
    return path


def test_discover_orders_numerically_and_select(tmp_path):
    for name in ["10_b.ipynb", "02_a.ipynb", "01_z.ipynb", "notes.ipynb"]:
        _notebook(tmp_path / name, [])
    found = runner.discover(tmp_path)
    assert [nb.path.name for nb in found] == ["01_z.ipynb", "02_a.ipynb", "10_b.ipynb"]
    assert [nb.number for nb in runner.select(found, "10,1")] == ["01", "10"]
    with pytest.raises(ValueError, match="no notebook matches"):
        runner.select(found, "07")


def test_runner_passes_profile_and_names_failing_cell(tmp_path):
    ok = _notebook(tmp_path / "01_ok.ipynb", ["import os\nassert profile == 'smoke'\nprint(os.environ['MASTERING_NOTEBOOK'])"])
    out = runner.run_notebook(ok, "smoke", tmp_path / "out")
    executed = json.loads(out.read_text())
    assert any("01_ok" in "".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))

    bad = _notebook(tmp_path / "02_bad.ipynb", ["x = 1", "raise RuntimeError('boom in cell')"])
    with pytest.raises(runner.NotebookFailure) as info:
        runner.run_notebook(bad, "smoke", tmp_path / "out")
    message = str(info.value)
    assert "02_bad.ipynb" in message and "RuntimeError: boom in cell" in message and "cell" in message
    assert "raise RuntimeError" in message  # shows the failing cell's source


def test_run_all_stops_at_first_failure(tmp_path):
    _notebook(tmp_path / "01_fail.ipynb", ["raise ValueError('first')"])
    _notebook(tmp_path / "02_never.ipynb", ["open('ran', 'w').write('yes')"])
    with pytest.raises(runner.NotebookFailure, match="01_fail"):
        runner.run_all("smoke", folder=tmp_path, output_dir=tmp_path / "out")
    assert not (tmp_path / "ran").exists()


def test_unknown_profile_is_refused(tmp_path):
    nb = _notebook(tmp_path / "01_x.ipynb", [])
    with pytest.raises(ValueError, match="unknown profile"):
        runner.run_notebook(nb, "huge", tmp_path)


@pytest.fixture(scope="session")
def notebook_env(tmp_path_factory):
    """Hermetic outputs for notebook runs: paper and runs folders in a session temp dir."""
    root = tmp_path_factory.mktemp("notebooks")
    env = {"MASTERING_PAPER_DIR": str(root / "paper"), "MASTERING_RUNS_DIR": str(root / "runs")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", runner.discover(), ids=lambda nb: nb.name)
def test_notebook_runs_in_smoke(notebook, notebook_env):
    if any(call in notebook.path.read_text() for call in _SAFEDB_CALLS) \
            and not (paths.safedb_dir() / SAFEDB_FILENAME).is_file():
        pytest.skip(f"{notebook.name} needs SAFE-DB, which is not at {paths.safedb_dir()} "
                    "(set MASTERING_SAFEDB_DIR or run `make data` online)")
    runner.run_notebook(notebook.path, "smoke", notebook_env / "executed")
    produced = list((notebook_env / "paper").rglob("*.json"))
    mine = [p for p in produced if json.loads(p.read_text()).get("notebook") == notebook.name]
    assert mine, f"{notebook.name} wrote no figure or table under paper/"
    failures = science_failures(notebook_env / "paper" / "tables", notebook.name)
    assert not any(failures.values()), f"{notebook.name} wrote numbers no correct run gives: {failures}"


# ----------------------------------------------------------------------------- numbers a correct run must give
def _finite(v: dict, *keys: str) -> list[str]:
    return [f"{k} = {v.get(k)!r} is missing or not finite" for k in keys
            if not isinstance(v.get(k), (int, float)) or isinstance(v.get(k), bool) or not math.isfinite(v[k])]


def _within(v: dict, key: str, lo: float, hi: float, why: str) -> list[str]:
    bad = _finite(v, key)
    if bad:
        return bad
    return [] if lo <= v[key] <= hi else [f"{key} = {v[key]:.4g} is outside [{lo:g}, {hi:g}]: {why}"]


def _literature(v: dict) -> list[str]:
    out = _within(v, "loudness_max_abs_diff_lu", 0, 0.1, "our BS.1770-4 meter must agree with pyloudnorm within its "
                  "0.1 LU conformance tolerance")
    out += _within(v, "eq_error_end_db", 0, 1.0, "the recovered equaliser must be within 1 dB of the true response")
    out += _within(v, "eq_error_end_db", 0, 0.5 * v.get("eq_error_start_db", math.nan),
                   "the recovery must at least halve the error it started from")
    if v.get("eq_gradcheck") is not True:
        out.append("the equaliser's gradient fails the float64 finite-difference check")
    if v.get("a_class1_ok") != v.get("a_class1_total") or not v.get("a_class1_total"):
        out.append(f"A-weighting meets IEC 61672-1 class 1 at {v.get('a_class1_ok')} of {v.get('a_class1_total')} "
                   "table frequencies, not all")
    if v.get("tcn_rf_measured_samples") != v.get("tcn_rf_samples"):
        out.append("the encoder's measured receptive field differs from the analytic one")
    out += _finite(v, "phase_l1", "phase_mrstft", "delay_l1", "delay_mrstft")
    if not out and not (v["phase_mrstft"] < v["phase_l1"] and v["delay_mrstft"] < v["delay_l1"]):
        out.append("a magnitude loss (MR-STFT) must rate a phase rotation and a delay below a waveform L1")
    out += _within(v, "loudness_above_target", 0, v.get("loudness_tracks", -1), "a count of the tracks")
    return out


def _phase_results(v: dict) -> list[str]:
    out = _finite(v, "valid_loss", "identity_loss", "matched_loss", "vs_identity_pct", "vs_matched_pct")
    if out:
        return out
    out += _within(v, "best_epoch", 1, v.get("epochs", 0), "the best epoch is one of the epochs run")
    out += [] if v["valid_loss"] > 0 else ["a validation loss of MR-STFT distances is positive"]
    for key, ref in (("vs_identity_pct", "identity_loss"), ("vs_matched_pct", "matched_loss")):
        pct = 100 * (v["valid_loss"] / v[ref] - 1)
        if abs(pct - v[key]) > 1e-6 * max(1.0, abs(pct)):
            out.append(f"{key} = {v[key]:.4g} is not the change of the loss against {ref} ({pct:.4g})")
    return out


#: Systems that end in the shared loudness stage and true-peak limiter (the finish of the design).
FINISHED_SYSTEMS = ("phase1a", "phase1b", "phase1c", "loudnorm", "static_eq")
LOUDNESS_TOLERANCE_LU = 0.5
"""Largest loudness error of a finished output: the stage meets its target to 0.5 LU (the limiter
after it may take a little loudness away, never more than this)."""
TRUE_PEAK_CEILING_DBTP = -1.0


def _evaluation(v: dict) -> list[str]:
    out = []
    for system in FINISHED_SYSTEMS:
        out += _within(v, f"{system}_max_loudness_error_lu", 0, LOUDNESS_TOLERANCE_LU,
                       f"{system} ends in the loudness stage, which meets the target")
        out += _within(v, f"{system}_max_true_peak_dbtp", -math.inf, TRUE_PEAK_CEILING_DBTP + 1e-3,
                       f"{system} ends in the true-peak limiter at {TRUE_PEAK_CEILING_DBTP} dBTP")
    out += _finite(v, "proposed_mrstft", "identity_mrstft", "loudnorm_mrstft")
    tracks = v.get("tracks", 0)
    if not isinstance(tracks, int) or tracks < 1:
        return out + [f"tracks = {tracks!r}: no test track was evaluated"]
    verdicts = [k[: -len("_verdict")] for k in v if k.endswith("_verdict")]
    if not any(k.startswith("proposed_vs_") for k in verdicts):
        out.append("no verdict of the best Phase 1 system against the baselines")
    words = ("lower than", "higher than", "not measurably different from")
    for key in verdicts:
        expected = interval_verdict(v.get(f"{key}_lo"), v.get(f"{key}_hi"), n=tracks, words=words)
        if v[f"{key}_verdict"] != expected:
            out.append(f"{key}_verdict = {v[f'{key}_verdict']!r}, but its interval and {tracks} tracks give {expected!r}")
    valid = {k[: -len("_valid_loss")]: v[k] for k in v if k.startswith("phase") and k.endswith("_valid_loss")}
    if valid:
        chosen = "Phase " + min(valid, key=valid.get)[len("phase"):].upper()
        if v.get("proposed_system") != chosen:
            out.append(f"proposed_system = {v.get('proposed_system')!r}, but {chosen} has the lowest validation loss "
                       "(the reported model is chosen on validation)")
    for key in [k for k in v if k.endswith("_worse_pct")]:
        out += _within(v, key, 0, 100, "a share of excerpts in percent")
    if "wilcoxon_min_p" in v:
        if not math.isclose(v["wilcoxon_min_p"], smallest_signed_rank_p(tracks)):
            out.append(f"wilcoxon_min_p = {v['wilcoxon_min_p']} is not 2/2^{tracks}")
        if v.get("mrstft_tests_significant", 0) > v.get("tests_testable", 0):
            out.append("more paired tests are significant than can reach significance at all")
    return out


def _semantic_vae(v: dict) -> list[str]:
    out = _within(v, "train_db", 0, v.get("mean_setting_db", math.nan),
                  "the VAE must reconstruct training settings better than their mean setting does")
    out += _within(v, "heldout_db", 0, v.get("mean_setting_db", math.nan),
                   "the VAE must reconstruct held-out settings better than the mean training setting does")
    return out


def _r2_and_shares(v: dict) -> list[str]:
    out = []
    for k, x in v.items():
        if k.endswith("_r2"):
            out += _within(v, k, -math.inf, 1.0, "R^2 is at most 1")
        elif k.endswith(("_acc", "_accuracy", "_monotone", "_reversed", "_reversed_any")):
            out += _within(v, k, 0.0, 1.0, "a share")
        elif k.endswith("_rho") or k.endswith(("_rho_lo", "_rho_hi")):
            out += _within(v, k, -1.0, 1.0, "a rank correlation")
    return out


def _semantic_encoder(v: dict) -> list[str]:
    out = _r2_and_shares(v)
    for k in [k for k in v if k.endswith(("_r2_warm", "_r2_bright"))]:
        out += _within(v, k, -math.inf, 1.0, "R^2 is at most 1")
        if f"{k}_lo" in v and f"{k}_hi" in v:
            # The percentile interval of a bootstrap over contributors holds the full-sample R^2
            # unless the statistic is badly skewed; lo <= hi always.
            out += _within(v, f"{k}_lo", -math.inf, float(v[f"{k}_hi"]), "the interval's lower end")
            out += _within(v, f"{k}_hi", -math.inf, 1.0, "R^2 is at most 1")
    return out


def _semantic_direction(v: dict) -> list[str]:
    out = _r2_and_shares(v)
    for word in ("warm", "bright", "clear"):
        # The axis equaliser is s * C_d with s >= 0, and the axis measure is an exponential family in s
        # whose derivative is a variance (>= 0): more gain never gives less of the quality.
        out += _within(v, f"{word}_axis_reversed_any", 0, 0, "the axis equaliser never reverses an excerpt")
        out += _within(v, f"{word}_axis_monotone", 1, 1, "the axis equaliser is monotone in the intensity")
    return out


def _semantic_e2e(v: dict) -> list[str]:
    out = []
    for key in ("iir", "dasp"):
        if f"{key}_verdict" in v:
            expected = interval_verdict(v.get(f"{key}_attain_lo"), v.get(f"{key}_attain_hi"))
            if v[f"{key}_verdict"] != expected:
                out.append(f"{key}_verdict = {v[f'{key}_verdict']!r}, but its interval gives {expected!r}")
    for k in ("refine_cosine_0", "refine_cosine_max"):
        out += _within(v, k, -1.0, 1.0, "a cosine") if k in v else []
    if "refine_stopped_pct" in v:
        out += _within(v, "refine_stopped_pct", 0, 100, "a percentage")
    return out


def _oracle(v: dict) -> list[str]:
    out = _finite(v, "identity_mrstft", "oracle_eq_mrstft", "oracle_eq_dynamics_mrstft")
    if out:
        return out
    # a perfect inverse of the chain's equalisers brings the input nearer its master, never further
    out += _within(v, "oracle_eq_pct", -100, 0, "a perfect inverse of the EQ stages cannot move away from the master")
    out += _within(v, "oracle_eq_mrstft", 0, v["identity_mrstft"], "the EQ oracle is at most the input's distance")
    for key in [k for k in v if k.endswith("_pct") or k.endswith("_pct_lo") or k.endswith("_pct_hi")]:
        out += _within(v, key, -100, 100, "a change in percent of the input's distance")
    return out


def _predictability(v: dict) -> list[str]:
    out = _finite(v, "loudnorm_mrstft", "oracle_pct")
    if out:
        return out
    # the true band correction, applied as the EQ, brings the balance to the master's
    out += _within(v, "oracle_pct", -100, 0, "the true band correction cannot move away from the master")
    for key in [k for k in v if k.endswith(("_pct", "_pct_lo", "_pct_hi")) and not k.endswith("worse_pct")]:
        out += _within(v, key, -100, math.inf, "a change in percent of a distance")
    for key in [k for k in v if k.endswith("worse_pct")]:
        out += _within(v, key, 0, 100, "a share of pairs")
    for key in [k for k in v if k.endswith("_r2")]:
        out += _within(v, key, -math.inf, 1.0, "R^2 is at most 1")
    return out


#: ``{numbers file name: check}``; a check returns what is wrong (empty: the numbers are possible).
SCIENCE = {
    "literature": _literature,
    "phase1a_results": _phase_results,
    "phase1b_results": _phase_results,
    "phase1c_results": _phase_results,
    "evaluation": _evaluation,
    "oracle": _oracle,
    "predictability": _predictability,
    "semantic_vae": _semantic_vae,
    "semantic_encoder": _semantic_encoder,
    "semantic_eq": _r2_and_shares,
    "semantic_direction": _semantic_direction,
    "semantic_e2e": _semantic_e2e,
    "clap": _r2_and_shares,
}


def science_failures(tables: Path, notebook: str | None = None) -> dict[str, list[str]]:
    """What is wrong with the numbers files under ``tables`` (of ``notebook`` only, when given)."""
    found = {}
    for sidecar in sorted(Path(tables).glob("numbers_*.tex.json")):
        record = json.loads(sidecar.read_text())
        name = record.get("name", "")
        if name in SCIENCE and (notebook is None or record.get("notebook") == notebook):
            found[name] = SCIENCE[name](record.get("values", {}))
    return found


def test_generated_numbers_land_where_a_correct_run_must():
    """The checks of :data:`SCIENCE` on the numbers the last ``make reproduce`` wrote to paper/tables."""
    tables = REPO / "paper" / "tables"
    if not any(tables.glob("numbers_*.tex.json")):
        pytest.skip("no generated numbers in paper/tables (run `make reproduce`)")
    failures = {name: f for name, f in science_failures(tables).items() if f}
    assert not failures, f"generated numbers that no correct run gives (rerun their notebook): {failures}"


def _good():
    """Numbers of a correct run, one file per check (invented, each inside its range)."""
    return {
        "literature": {"loudness_max_abs_diff_lu": 0.04, "eq_error_start_db": 4.5, "eq_error_end_db": 0.09,
                       "eq_gradcheck": True, "a_class1_ok": 60, "a_class1_total": 60, "tcn_rf_samples": 551,
                       "tcn_rf_measured_samples": 551, "phase_l1": 368.0, "phase_mrstft": 7.0, "delay_l1": 279.0,
                       "delay_mrstft": 7.9, "loudness_above_target": 1, "loudness_tracks": 4},
        "phase1b_results": {"valid_loss": 0.75, "identity_loss": 1.5, "matched_loss": 0.8, "vs_identity_pct": -50.0,
                            "vs_matched_pct": -6.25, "best_epoch": 3, "epochs": 4},
        "evaluation": {**{f"{s}_max_loudness_error_lu": 0.2 for s in FINISHED_SYSTEMS},
                       **{f"{s}_max_true_peak_dbtp": -1.05 for s in FINISHED_SYSTEMS},
                       "proposed_mrstft": 0.54, "identity_mrstft": 0.55, "loudnorm_mrstft": 0.545, "tracks": 2,
                       "proposed_system": "Phase 1B", "phase1a_valid_loss": 0.64, "phase1b_valid_loss": 0.63,
                       "proposed_vs_input_worse_pct": 40.0,
                       "proposed_vs_input_lo": -0.02, "proposed_vs_input_hi": -0.01,
                       "proposed_vs_input_verdict": "not measurably different from",  # 2 tracks show no direction
                       "wilcoxon_min_p": 0.5, "mrstft_tests": 7, "mrstft_tests_significant": 0, "tests_testable": 0},
        "oracle": {"identity_mrstft": 0.63, "oracle_eq_mrstft": 0.5, "oracle_eq_dynamics_mrstft": 0.45,
                   "oracle_eq_pct": -20.6, "oracle_eq_pct_lo": -25.0, "oracle_eq_pct_hi": -16.0},
        "predictability": {"loudnorm_mrstft": 0.62, "oracle_pct": -48.0, "trees_pct": -6.9, "trees_worse_pct": 38.0,
                           "trees_best_r2": 0.28, "ridge_median_r2": 0.05},
        "semantic_vae": {"train_db": 2.1, "heldout_db": 2.2, "mean_setting_db": 4.7},
        "semantic_direction": {f"{w}_axis_{k}": x for w in ("warm", "bright", "clear")
                               for k, x in (("reversed_any", 0.0), ("monotone", 1.0), ("rho", -0.5))},
        "semantic_e2e": {"iir_attain_lo": 0.02, "iir_attain_hi": 0.1, "iir_verdict": "higher",
                         "refine_cosine_0": 0.8, "refine_cosine_max": 0.6, "refine_stopped_pct": 25.0},
        "semantic_encoder": {"main_pink_r2": 0.6, "main_music_r2": -4.2, "main_pink_acc": 0.87},
    }


@pytest.mark.parametrize("name, key, wrong, says", [
    ("literature", "loudness_max_abs_diff_lu", 0.3, "pyloudnorm"),
    ("literature", "eq_error_end_db", 3.0, "within 1 dB"),
    ("literature", "eq_gradcheck", False, "finite-difference"),
    ("literature", "a_class1_ok", 59, "class 1"),
    ("literature", "phase_mrstft", 400.0, "phase rotation"),
    ("phase1b_results", "vs_identity_pct", -40.0, "not the change"),
    ("phase1b_results", "valid_loss", math.nan, "not finite"),
    ("evaluation", "phase1b_max_loudness_error_lu", 0.8, "loudness stage"),
    ("evaluation", "phase1c_max_true_peak_dbtp", -0.5, "true-peak limiter"),
    ("evaluation", "proposed_vs_input_verdict", "lower than", "2 tracks give"),  # a direction from 2 tracks
    ("evaluation", "wilcoxon_min_p", 0.25, "2/2^2"),
    ("evaluation", "phase1a_valid_loss", 0.62, "chosen on validation"),
    ("oracle", "oracle_eq_pct", 12.0, "cannot move away"),
    ("predictability", "oracle_pct", 3.0, "cannot move away"),
    ("predictability", "trees_best_r2", 1.1, "at most 1"),
    ("predictability", "trees_worse_pct", 101.0, "share of pairs"),
    ("evaluation", "proposed_vs_input_worse_pct", 140.0, "share of excerpts"),
    ("evaluation", "mrstft_tests_significant", 1, "can reach significance"),
    ("semantic_vae", "heldout_db", 5.0, "mean training setting"),
    ("semantic_direction", "bright_axis_reversed_any", 0.0625, "never reverses"),
    ("semantic_direction", "clear_axis_monotone", 0.9, "monotone"),
    ("semantic_direction", "warm_axis_rho", 1.3, "rank correlation"),
    ("semantic_e2e", "iir_verdict", "lower", "interval gives"),
    ("semantic_encoder", "main_pink_r2", 1.2, "at most 1"),
    ("semantic_encoder", "main_pink_acc", 1.5, "a share"),
])
def test_science_checks_catch_a_wrong_number(tmp_path, name, key, wrong, says):
    from mastering.figures import save_numbers

    good = _good()
    assert all(not SCIENCE[n](v) for n, v in good.items()), {n: SCIENCE[n](v) for n, v in good.items()}
    os.environ["MASTERING_PAPER_DIR"] = str(tmp_path)  # restored below: save_numbers writes under it
    try:
        values = {**good[name], key: wrong}
        if isinstance(wrong, float) and math.isnan(wrong):
            (tmp_path / "tables").mkdir(parents=True, exist_ok=True)  # save_numbers refuses NaN: write the sidecar
            (tmp_path / "tables" / f"numbers_{name}.tex.json").write_text(json.dumps(
                {"name": name, "notebook": "x", "values": {k: (None if k == key else x) for k, x in values.items()}}))
        else:
            save_numbers(name, values, "smoke")
    finally:
        os.environ.pop("MASTERING_PAPER_DIR")
    failures = science_failures(tmp_path / "tables")[name]
    assert failures and any(says in f for f in failures), failures
