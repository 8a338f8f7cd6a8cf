import json

import numpy as np
import pandas as pd
import pytest
import torch

from mastering.data.demaster import PARAM_VECTOR_NAMES
from mastering.figures import read_numbers
from mastering.models import report
from mastering.models.mastering import build_model
from mastering.training import TensorPairs

TINY = dict(latent_dim=8, encoder={"stem_channels": 8, "block_channels": [8, 8, 8, 8]}, decoder_hidden=8,
            residual_channels=[4, 8, 8], dynamics_hidden=8)


def _run_dir(folder):
    folder.mkdir()
    rows = []
    for epoch in (1, 2, 3):
        row = {"epoch": epoch, "step": 2 * epoch, "lr": 1e-3, "seconds": 1.0}
        for prefix, scale in (("train_", 1.0), ("valid_", 1.1)):
            row.update({f"{prefix}{t}": scale / epoch for t in ("stft", "aweighted", "loudness", "params", "total",
                                                                 "perceptual")})
        row.update({f"identity_{t}": 2.0 for t in ("stft", "aweighted", "loudness", "perceptual")})
        row.update({f"identity_matched_{t}": 1.5 for t in ("stft", "aweighted", "loudness", "perceptual")})
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    steps = [{"step": s, "epoch": (s + 1) // 2, "perceptual": 1.0 / s} for s in range(1, 7)]
    pd.DataFrame(steps).to_csv(folder / "steps.csv", index=False)
    return folder, rows


def test_summary_and_overrides():
    history = [{"epoch": 1, "valid_total": 1.0, "valid_perceptual": 0.9, "identity_perceptual": 1.8,
                "identity_matched_perceptual": 1.2},
               {"epoch": 2, "valid_total": 0.5, "valid_perceptual": 0.6, "identity_perceptual": 1.8,
                "identity_matched_perceptual": 1.2}]
    s = report.validation_summary(history)
    assert s["best_epoch"] == 2 and s["reduction_vs_identity"] == pytest.approx(1 - 0.6 / 1.8)
    assert s["reduction_vs_matched"] == pytest.approx(0.5)
    o = report.notebook_overrides(epochs=3, batch_size=None, ratios={"real": 1.0}, seed=1, train_items=8)
    assert o == {"epochs": 3, "seed": 1, "data": {"ratios": {"real": 1.0}, "train_items": 8}}


def test_figures_and_tables_are_written_with_provenance(tmp_path, paper_dir):
    run, rows = _run_dir(tmp_path / "run")
    made = [report.fig_training_curves(run, "1c", "smoke"), report.fig_validation_components(run, "1c", "smoke"),
            report.table_validation(report.validation_summary(rows), rows, "1c", "smoke"),
            report.table_parameter_counts("smoke")]
    model = build_model("1c", **TINY)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 22050, generator=g) * 0.1
    data = TensorPairs(x, x * 2, sources=["real", "pink", "real"])
    predictions = report.predict_validation(model, data, n=3)
    made += [report.fig_eq_curves(predictions, "1c", "smoke"), report.fig_spectrograms(predictions, "1c", "smoke"),
             report.fig_band_usage(predictions, "smoke")]
    for path in made:
        assert path.is_file() and json.loads(path.with_name(path.name + ".json").read_text())["profile"] == "smoke"
    table = (paper_dir / "tables" / "phase1_parameter_counts.tex").read_text()
    assert "1.617" in table and "2.220" in table and "smoke profile" in table  # encoder, design 1C
    caption = (paper_dir / "tables" / "phase1c_validation.tex").read_text()
    assert "82\\% below the input as it is" in caption  # best epoch 3: 1.1 / 3 against identity 2.0
    assert predictions[0]["gate"].shape == (10,) and predictions[0]["response_db"].shape == (256,)


def test_predicted_validation_item_carries_the_tilt_it_should_undo():
    model = build_model("1a", **TINY)
    params = dict.fromkeys(PARAM_VECTOR_NAMES, 0.0)
    params.update(tilt_db=6.0, pivot_hz=1000.0, low_shelf_freq_hz=100.0, high_shelf_freq_hz=8000.0)
    item = {"degraded": torch.randn(2, 22050) * 0.1, "mastered": torch.randn(2, 22050) * 0.1,
            "params": torch.tensor([params[k] for k in PARAM_VECTOR_NAMES]), "kind": "real", "track_id": "t/1"}
    pred = report.predict_validation(model, [item], n=1)[0]
    inverse = pred["tilt_inverse_db"]
    assert inverse[0] == pytest.approx(3.0, abs=0.2) and inverse[-1] == pytest.approx(-3.0, abs=0.3)
    assert np.all(np.diff(inverse) <= 1e-9)  # a tilt towards the bass undoes a treble tilt


def test_validation_numbers_carry_signed_changes(paper_dir):
    summary = report.validation_summary([
        {"epoch": 1, "valid_total": 1.0, "valid_perceptual": 0.9, "identity_perceptual": 1.8,
         "identity_matched_perceptual": 1.2},
        {"epoch": 2, "valid_total": 0.5, "valid_perceptual": 0.6, "identity_perceptual": 1.8,
         "identity_matched_perceptual": 0.5}])
    path = report.numbers_validation(summary, "1b", "smoke", epochs=2, train_items=96)
    assert path.name == "numbers_phase1b_results.tex"
    v = read_numbers(path)
    assert v["best_epoch"] == "2" and v["valid_loss"] == "0.600" and v["identity_loss"] == "1.800"
    assert v["vs_identity_pct"] == r"\ensuremath{-}67"  # 0.6 / 1.8 - 1
    assert v["vs_matched_pct"] == "20"  # worse than the loudness-matched input: printed as a rise
    assert v["epochs"] == "2" and v["train_items"] == "96"
