"""Training of the thesis baseline: Phase 1B's configuration, learning, the run cache and resuming."""

import csv
import json

import pytest
import torch

from mastering.models.thesis import thesis_from_checkpoint
from mastering.profiles import get_profile
from mastering.training import thesis
from mastering.training.config import train_config
from mastering.training.thesis import fit_or_load_thesis, thesis_config
from mastering.training.loop import rng_state

from ..conftest import shelf_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 16000
TINY = {"n_fft": 256, "hop": 64, "n_mels": 16, "unet_channels": [4, 8], "lstm_hidden": 8, "griffin_lim_iters": 4}


def _pairs(n, seed):
    return shelf_pairs(n, seed, SR, gain_db=4.0)


OVERRIDES = {"model": TINY, "train": {"sample_rate": SR, "segment_seconds": 0.5, "batch_size": 4, "epochs": 3,
                                      "lr": 0.01, "device": "cpu", "data": {"num_workers": 0}}}


def test_config_follows_phase_1b():
    config, settings = thesis_config("full", seed=3)
    ref = train_config("1b", "full", seed=3)
    for key in ("epochs", "batch_size", "segment_seconds", "sample_rate", "lr", "steps_per_epoch", "data", "device"):
        assert getattr(config, key) == getattr(ref, key), key
    assert settings["model"]["griffin_lim_iters"] > get_profile("smoke")["thesis"]["model"]["griffin_lim_iters"]
    with pytest.raises(ValueError):
        thesis_config("huge")
    with pytest.raises(ValueError):
        thesis_config("smoke", overrides={"optimizer": {}})


def test_training_learns_caches_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path / "runs"))
    data = (_pairs(8, 0), _pairs(4, 1))
    model, info = fit_or_load_thesis("smoke", progress=False, data=data, overrides=OVERRIDES)
    run = tmp_path / "runs" / "thesis"
    assert info["trained"] and info["epochs"] == 3 and info["run_dir"].startswith(str(run / "smoke-"))
    valid = [row["valid_loss"] for row in info["history"]]
    assert valid[-1] < valid[0] and info["valid_loss"] == min(valid)
    assert info["valid_loss"] < 0.8 * info["identity_valid_loss"], info  # learns the shelf and the level
    with open(f"{info['run_dir']}/metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and {"train_loss", "valid_loss", "identity_valid_loss", "lr", "seconds"} <= set(rows[0])
    assert json.loads(open(f"{info['run_dir']}/config.json").read())["settings"]["train"]["epochs"] == 3
    rebuilt = thesis_from_checkpoint(f"{info['run_dir']}/best.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key]), key

    # a second call loads the cached run and trains nothing
    real_evaluate = thesis._evaluate
    monkeypatch.setattr(thesis, "_evaluate", lambda *a, **k: pytest.fail("retrained a cached run"))
    again, info2 = fit_or_load_thesis("smoke", progress=False, data=data, overrides=OVERRIDES)
    assert not info2["trained"] and info2["valid_loss"] == info["valid_loss"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key

    # an interrupted run resumes from last.pt and ends where the uninterrupted one did
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path / "runs2"))
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # identity, epoch 1, then stop during epoch 2
            raise RuntimeError("interrupted")
        out = real_evaluate(*args, **kwargs)
        calls["rng"] = rng_state()  # after epoch 1's validation: what last.pt stores
        return out

    monkeypatch.setattr(thesis, "_evaluate", interrupted)
    with pytest.raises(RuntimeError):
        fit_or_load_thesis("smoke", progress=False, data=data, overrides=OVERRIDES)
    last = next((tmp_path / "runs2" / "thesis").glob("smoke-*/last.pt"))
    state = torch.load(last, weights_only=True)  # tensors and plain data only
    assert state["epoch"] == 1 and torch.equal(state["rng"]["torch"], calls["rng"]["torch"])
    assert state["rng"]["numpy"] == calls["rng"]["numpy"] and state["rng"]["python"] == calls["rng"]["python"]
    resumed, info3 = fit_or_load_thesis("smoke", progress=False, data=data, overrides=OVERRIDES)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in info["history"]]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in info3["history"]]
    for key, value in model.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key

    # other data: another run folder
    _, other = fit_or_load_thesis("smoke", progress=False, data=(_pairs(8, 2), _pairs(4, 1)),
                                  overrides=dict(OVERRIDES, train=dict(OVERRIDES["train"], epochs=1)))
    assert other["run_dir"] != info["run_dir"] and other["epochs"] == 1
