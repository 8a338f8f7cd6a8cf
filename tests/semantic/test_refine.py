"""Inference-time refinement: N steps bring the re-encoded output closer to the goal than N = 0,
the run is deterministic and its N-step snapshot equals an N-step run, intensity 0 stays the
identity, the quality table and its summary."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import signal

from mastering import paths
from mastering.dsp.signals import pink_noise
from mastering.semantic import refine
from mastering.semantic.adaptive import build_semantic_eq, semantic_eq_settings
from mastering.semantic.safedb import SAFEDB_FILENAME


@pytest.fixture(scope="module")
def bundle():
    if not (paths.safedb_dir() / SAFEDB_FILENAME).is_file():
        pytest.skip("SAFE-DB not found (set MASTERING_SAFEDB_DIR or run `make data`)")
    return build_semantic_eq("smoke", progress=False)[0]


def _music(seconds, sample_rate, channels, batch=1, seed=0):
    x = pink_noise(int(seconds * sample_rate), channels=channels, batch=batch, seed=seed, dtype=torch.float64)
    sos = signal.butter(2, min(6000.0, 0.4 * sample_rate), "low", fs=sample_rate, output="sos")
    x = torch.from_numpy(signal.sosfilt(sos, x.numpy(), axis=-1))
    t = torch.arange(x.shape[-1], dtype=torch.float64) / sample_rate
    return (x * (0.5 + 0.5 * torch.exp(-6 * (t % 0.5)))).float()


def _distance(bundle, settings, x, sample_rate):
    y = settings.apply(x, sample_rate)
    return np.linalg.norm(bundle.relative(bundle.encode(y, sample_rate)) - settings.z_new, axis=-1)


@pytest.mark.parametrize("descriptor", ["warm", "bright"])
def test_refinement_reduces_the_reencoded_distance(bundle, descriptor):
    """The descent itself (no stopping rule) brings the re-encoded output nearer its goal."""
    x = _music(1.0, 44100, 2, batch=2, seed=4)
    kept, hist = refine.refine_trajectory(bundle, x, 44100, descriptor, 1.0, steps=10, lr=0.05, seed=0, snapshots=[0],
                                          cosine_slack=None)
    before, after = _distance(bundle, kept[0], x, 44100), _distance(bundle, kept[10], x, 44100)
    assert np.all(after < before), (before, after)
    assert float(hist["distance"].iloc[-1]) < float(hist["distance"].iloc[0])
    # N = 0 is the two-stage system itself
    two = semantic_eq_settings(bundle, x, 44100, descriptor, 1.0)
    np.testing.assert_allclose(kept[0].gain_db, two.gain_db, atol=1e-9)
    assert list(hist["step"]) == list(range(11)) and np.all(np.diff(hist["seconds"]) >= 0)


def test_deterministic_and_a_prefix_of_longer_runs(bundle):
    x = _music(1.0, 44100, 1, seed=8)
    a, _ = refine.refine_settings(bundle, x, 44100, "warm", 1.0, steps=6, lr=0.05, seed=3)
    b, _ = refine.refine_settings(bundle, x, 44100, "warm", 1.0, steps=6, lr=0.05, seed=3)
    kept, _ = refine.refine_trajectory(bundle, x, 44100, "warm", 1.0, steps=9, lr=0.05, seed=3, snapshots=[6])
    for s in (b, kept[6]):
        np.testing.assert_array_equal(a.gain_db, s.gain_db)
        np.testing.assert_array_equal(a.freq_hz, s.freq_hz)
    assert a.method == "refined" and a.gain_db.shape == (1, 10)


def test_intensity_zero_stays_the_identity(bundle):
    x = _music(1.0, 44100, 2, seed=1)
    s, hist = refine.refine_settings(bundle, x, 44100, "clear", 0.0, steps=5)
    assert np.abs(s.response_db()).max() < 1e-6 and len(hist) == 6
    y = s.apply(x, 44100)
    assert float((y - x).abs().max()) < 1e-6


def test_quality_table_and_summary(bundle):
    x = _music(1.0, 44100, 2, batch=3, seed=6)
    meta = pd.DataFrame({"clip": ["a@0", "a@1", "b@0"], "track": ["a", "a", "b"]})
    rows = refine.refinement_quality(bundle, meta, x, 44100, "warm", 1.0, steps=(0, 3), progress=False)
    assert len(rows) == 6 and set(rows["steps"]) == {0, 3}
    assert (rows[rows.steps == 0]["seconds"] == 0).all() and (rows[rows.steps == 3]["seconds"] > 0).all()
    summary = refine.summarize_refinement(rows, n_boot=50)
    assert list(summary["steps"]) == [0, 3]
    assert summary["reduction"].iloc[0] == 0.0 and summary["distance"].iloc[1] < summary["distance"].iloc[0]
    assert np.isfinite(summary[["distance_lo", "distance_hi"]].to_numpy()).all()


def test_bad_input(bundle):
    x = _music(1.0, 44100, 2)
    with pytest.raises(ValueError, match="steps"):
        refine.refine_settings(bundle, x, 44100, "warm", 1.0, steps=-1)
    with pytest.raises(ValueError, match="snapshots"):
        refine.refine_trajectory(bundle, x, 44100, "warm", 1.0, steps=2, snapshots=[5])
    with pytest.raises(ValueError, match="lr"):
        refine.refine_settings(bundle, x, 44100, "warm", 1.0, steps=2, lr=0.0)
    with pytest.raises(ValueError, match="intensity"):
        refine.refine_settings(bundle, x, 44100, "warm", 5.0, steps=2)


@pytest.mark.parametrize("descriptor", ["warm", "bright"])
def test_refinement_stops_before_it_leaves_the_human_curve(bundle, descriptor):
    """The stopping rule keeps every snapshot's cosine with the descriptor's mean SAFE curve within
    the slack of its start; without the rule the same descent leaves the curve further."""
    from mastering.semantic.evaluate import curve_metrics

    x = _music(1.0, 44100, 2, batch=2, seed=4)
    ref = bundle.reference_curves[descriptor]

    def cosines(kept):
        return {n: curve_metrics(s.response_db(bundle.reference_freqs_hz), ref)["cosine"] for n, s in kept.items()}

    snaps = [0, 10, 20, 40]
    ruled, hist = refine.refine_trajectory(bundle, x, 44100, descriptor, 1.0, steps=40, lr=0.2, snapshots=snaps,
                                           cosine_slack=0.02)
    free, _ = refine.refine_trajectory(bundle, x, 44100, descriptor, 1.0, steps=40, lr=0.2, snapshots=snaps,
                                       cosine_slack=None)
    c_ruled, c_free = cosines(ruled), cosines(free)
    for n in snaps:
        assert np.all(c_ruled[n] >= c_ruled[0] - 0.02 - 1e-9), (n, c_ruled)
    assert hist["stopped"].iloc[-1] >= 1 and np.min(c_free[40] - c_free[0]) < -0.02, c_free
