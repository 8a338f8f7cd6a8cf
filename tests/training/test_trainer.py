import csv
import json
import os
import random

import numpy as np
import pytest
import torch

from mastering.models.mastering import model_from_checkpoint
from mastering.training import Trainer, latest_checkpoint, select_device, train_config
from mastering.training.__main__ import main as training_main

from ..conftest import shelf_pairs

SR = 16000
TINY = dict(latent_dim=8, encoder={"stem_channels": 8, "block_channels": [8, 8, 8, 8]}, decoder_hidden=8,
            residual_channels=[4, 8, 8], dynamics_hidden=8)


def _pairs(n, seed):
    return shelf_pairs(n, seed, SR)


def _config(phase="1a", **overrides):
    values = dict(sample_rate=SR, segment_seconds=0.5, batch_size=4, epochs=2, lr=0.03, progress=False,
                  model=dict(TINY, dynamics=False), data={"num_workers": 0})
    values.update(overrides)
    return train_config(phase, "smoke", **values)


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_learns_a_fixed_eq_well_below_identity(runs):
    trainer = Trainer(_config(epochs=3, lr=0.05), _pairs(8, 0), _pairs(4, 1), run_dir=runs / "learn")
    history = trainer.fit()
    ident = trainer.identity
    assert ident["identity_matched_perceptual"] < ident["identity_perceptual"]  # level alone explains part
    valid = [row["valid_perceptual"] for row in history]
    assert valid[-1] < 0.6 * ident["identity_matched_perceptual"], (valid, ident)
    model = model_from_checkpoint(runs / "learn" / "best.pt")
    valid = _pairs(4, 1)
    with torch.no_grad():
        params = model.predict(model.encode(valid.degraded))["eq"]
        response = model.decoder.response_db(params, SR, freqs_hz=[200.0, 6000.0]).mean(dim=0)
    assert response[1] - response[0] > 2.0  # treble raised against bass, as the +6 dB shelf target does


def test_resume_equals_uninterrupted_and_logs(runs):
    straight = Trainer(_config(), _pairs(4, 0), _pairs(4, 1), run_dir=runs / "a")
    hist_a = straight.fit()
    first = Trainer(_config(epochs=1), _pairs(4, 0), _pairs(4, 1), run_dir=runs / "b")
    first.fit()
    resumed = Trainer(_config(), _pairs(4, 0), _pairs(4, 1), run_dir=runs / "b")
    hist_b = resumed.fit()
    for key, value in straight.module.state_dict().items():
        assert torch.equal(value, resumed.module.state_dict()[key]), key
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in hist_a]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in hist_b]

    state = torch.load(runs / "a" / "last.pt", weights_only=True)  # tensors and plain data only
    assert state["config"] == _config().to_dict() and state["epoch"] == 2 and state["step"] == 2
    assert state["model_config"]["phase"] == "1a" and state["model_config"]["sample_rate"] == SR
    with open(runs / "a" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and {"valid_stft", "train_total", "identity_perceptual", "lr"} <= set(rows[0])
    with open(runs / "a" / "steps.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    record = latest_checkpoint()
    assert record["checkpoint"].endswith("b/best.pt") and record["phase"] == "1a"  # the last run published
    assert json.loads((runs / "a" / "config.json").read_text())["epochs"] == 2


def _draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_resume_restores_the_random_state_also_from_old_checkpoints(runs):
    trainer = Trainer(_config(epochs=1), _pairs(4, 0), _pairs(4, 1), run_dir=runs / "r", publish=False)
    _draws()  # every generator away from its seed
    path = trainer.save_checkpoint(runs / "r" / "last.pt")
    expected = _draws()
    state = torch.load(path, weights_only=True)
    kind, keys, *rest = state["rng"]["numpy"]
    old = runs / "r" / "old.pt"  # as written before: NumPy's state holds an array
    torch.save(dict(state, rng=dict(state["rng"], numpy=(kind, np.array(keys, dtype=np.uint32), *rest))), old)
    for source in (path, old):
        resumed = Trainer(_config(epochs=1), _pairs(4, 0), _pairs(4, 1), run_dir=runs / "s", publish=False)
        resumed.load_checkpoint(source)
        assert _draws() == expected, source


def test_resume_refuses_another_configuration(runs):
    Trainer(_config(epochs=1), _pairs(4, 0), _pairs(4, 1), run_dir=runs / "c").fit()
    other = Trainer(_config(lr=0.001), _pairs(4, 0), _pairs(4, 1), run_dir=runs / "c")
    with pytest.raises(ValueError, match="different configuration"):
        other.fit()


def test_1c_terms_include_gate_regularizers(runs):
    cfg = _config(phase="1c", w_sparsity=0.5, w_decisiveness=0.25, model=dict(TINY))
    trainer = Trainer(cfg, _pairs(4, 0), _pairs(4, 1), run_dir=runs / "d", publish=False)
    batch = {"degraded": _pairs(2, 3).degraded, "mastered": _pairs(2, 3).mastered}
    total, terms = trainer.batch_losses(batch)
    w = trainer.loss_fn.weights
    expected = (w["stft"] * terms["stft"] + w["aweighted"] * terms["aweighted"] + w["loudness"] * terms["loudness"]
                + w["params"] * terms["params"] + 0.5 * terms["sparsity"] + 0.25 * terms["decisiveness"])
    assert torch.allclose(total, expected)
    assert terms["loudness"] < 1e-3  # the loudness stage matched the reference
    assert latest_checkpoint() is None


def test_device_selection():
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_command_line_rejects_unknown_options(capsys):
    assert training_main(["--phase", "1a", "--set", "learning_rate=1"]) == 2
    assert "unknown training option" in capsys.readouterr().err


def test_command_line_trains_an_experiment_without_making_it_the_default(runs, capsys):
    """``--no-publish``: the run is trained and kept, but ``mastering master`` keeps its default model."""
    tiny = ["--set", f"model={json.dumps(dict(TINY, dynamics=False))}", "--set", "steps_per_epoch=1",
            "--set", "batch_size=4", "--set", 'data={"train_items": 8, "valid_items": 4, "num_workers": 0}',
            "--set", "progress=false", "--epochs", "1"]
    assert training_main(["--phase", "1a", "--profile", "smoke", *tiny, "--run-dir", str(runs / "experiment"),
                          "--no-publish"]) == 0
    assert (runs / "experiment" / "best.pt").is_file() and latest_checkpoint() is None
    assert "validation perceptual loss" in capsys.readouterr().out
    assert training_main(["--phase", "1a", "--profile", "smoke", *tiny, "--run-dir", str(runs / "published")]) == 0
    assert latest_checkpoint()["checkpoint"].endswith("published/best.pt".replace("/", os.sep))
