import json
from pathlib import Path

import pytest
import torch

from mastering.dsp.loudness import loudness
from mastering.evaluation.benchmark import load_test_pairs
from mastering.evaluation.metrics import evaluate_pair
from mastering.evaluation.release import (EQUIVALENT_VALID_LOSS, MAX_BYTES, machine_card, release_choice,
                                          release_weights, validation_record)
from mastering.evaluation.systems import Phase1System
from mastering.models.mastering import build_model, model_from_checkpoint
from mastering.weights import DEFAULT_NAME, WeightsError, default_weights, sha256, verified, weights_dir

TINY = dict(latent_dim=8, encoder={"stem_channels": 8, "block_channels": [8, 8, 8, 8], "spectral_bands": 16,
                                   "spectral_hidden": 8},
            decoder_hidden=8, residual_channels=[4, 8, 8], dynamics_hidden=8)


@pytest.fixture()
def checkpoint(tmp_path):
    model = build_model("1b", **TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    history = [{"epoch": 1, "valid_total": 0.9, "valid_perceptual": 0.88, "valid_stft": 0.8},
               {"epoch": 2, "valid_total": 0.7, "valid_perceptual": 0.69, "valid_stft": 0.6},
               {"epoch": 3, "valid_total": 0.8, "valid_perceptual": 0.79, "valid_stft": 0.7}]
    path = tmp_path / "best.pt"
    torch.save({"model_config": model.config, "model_state": model.state_dict(), "config": {"segment_seconds": 1.5},
                "history": history, "epoch": 3, "optimizer": {"big": torch.zeros(1000)},
                "identity": {"identity_perceptual": 1.5, "identity_matched_perceptual": 0.8}}, path)
    return path, model.eval()


def test_the_machine_card_names_this_machine():
    """What a card records of where it was made (training's floats depend on the CPU's kernels)."""
    import os

    card = machine_card()
    assert card["cores"] == os.cpu_count() and card["torch_threads"] == torch.get_num_threads()
    assert card["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert card["cpu"] and card["cpu"] != "unknown" and json.loads(json.dumps(card)) == card


def test_a_release_is_float16_with_a_card_that_checks_it(tmp_path, checkpoint):
    path, model = checkpoint
    pt, card_path = release_weights(path, {"phase": "1b", "profile": "smoke"}, folder=tmp_path / "w")
    card = json.loads(card_path.read_text())
    assert card["sha256"] == sha256(pt) and card["bytes"] == pt.stat().st_size <= MAX_BYTES
    assert card["file"] == f"{DEFAULT_NAME}.pt" and card["phase"] == "1b" and card["dtype"] == "float16"
    state = torch.load(pt, weights_only=True)
    assert "optimizer" not in state and "history" not in state
    assert all(v.dtype == torch.float16 for v in state["model_state"].values() if v.is_floating_point())
    assert verified(folder=tmp_path / "w")[0] == pt and default_weights(tmp_path / "w")[0] == pt
    again = model_from_checkpoint(state)  # float16 weights load into the float32 model
    x = torch.randn(1, 2, 22050) * 0.1
    with torch.no_grad():
        a, b = model(x)["output"], again(x)["output"]
    assert (a - b).abs().max() < 2e-2 * a.abs().max()


def test_a_damaged_or_missing_release_is_refused(tmp_path, checkpoint):
    folder = tmp_path / "w"
    assert default_weights(folder) is None  # nothing shipped: no release, no error
    pt, card_path = release_weights(checkpoint[0], {"phase": "1b"}, folder=folder)
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0x01
    pt.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="differs from its card"):
        default_weights(folder)
    pt.unlink()
    with pytest.raises(WeightsError, match="does not exist"):
        verified(folder=folder)
    card_path.write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable"):
        verified(folder=folder)


def test_validation_record_reads_the_best_epoch(checkpoint):
    record = validation_record(checkpoint[0])
    assert record["epoch"] == 2 and record["valid_perceptual"] == 0.69 and record["epochs_trained"] == 3
    assert record["identity_matched_perceptual"] == 0.8


def test_the_release_is_the_simplest_phase_that_validation_cannot_tell_from_the_best():
    def rows(**losses):
        return [{"phase": p, "valid_perceptual": v} for p, v in losses.items()]

    amd = rows(**{"1a": 0.6315115988254547, "1b": 0.6373983509838581, "1c": 0.6313603837043047})
    assert release_choice(amd) == "1a"  # 0.00015 above 1C: within the spread of one run between CPUs
    assert release_choice(amd, tolerance=0.0) == "1c"  # without a tolerance: the lowest
    apart = rows(**{"1a": 0.6362, "1b": 0.6351, "1c": 0.6330})
    assert release_choice(apart) == "1c"  # 0.002 and more above the lowest: told apart
    assert release_choice(rows(**{"1a": 0.70, "1b": 0.6330, "1c": 0.6314})) == "1b"
    assert release_choice(rows(**{"1a": float("nan"), "1c": 0.64})) == "1c"
    assert release_choice(rows(**{"1c": 0.64, "1a": 0.64 + EQUIVALENT_VALID_LOSS})) == "1a"  # order-free, edge in
    with pytest.raises(ValueError, match="no candidate"):
        release_choice(rows(**{"1a": float("nan")}))


def test_the_weights_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_WEIGHTS_DIR", str(tmp_path))
    assert weights_dir() == tmp_path


# -- the release committed in weights/ ---------------------------------------------------------

SHIPPED = Path(__file__).resolve().parents[1] / "weights"


def _mrstft_before_after(system, pairs):
    """MR-STFT (matched loudness) of each degraded input and of its master by ``system`` at the
    original master's loudness, against that master."""
    before, after = [], []
    for p in pairs:
        sr, target = p["sample_rate"], p["mastered"]
        y = system.master(p["degraded"], sr, float(loudness(target[None].double(), sr)))
        assert torch.isfinite(y).all() and y.shape == target.shape
        before.append(evaluate_pair(p["degraded"], target, sr)["mrstft"])
        after.append(evaluate_pair(y, target, sr)["mrstft"])
    return before, after


def test_the_shipped_weights_are_committed_with_a_card_that_checks_them():
    path, card = verified(folder=SHIPPED)  # raises on a missing file or a SHA-256 that differs from the card
    assert card["sha256"] == sha256(path) and card["bytes"] == path.stat().st_size <= MAX_BYTES
    assert card["dtype"] == "float16" and card["profile"] == "cpu" and card["phase"] in ("1a", "1b", "1c")
    assert card["data"]["heldout_packages"]["test"] == ["drascula-music"]
    assert "drascula-music" not in card["data"]["splits"]["train"]["packages"]
    lowest = min(card["candidates"], key=lambda r: r["valid_perceptual"])
    assert card["lowest_validation_phase"] == lowest["phase"]  # chosen on validation only
    assert card["phase"] == release_choice(card["candidates"], card["equivalent_valid_loss"])
    state = torch.load(path, weights_only=True)
    model = model_from_checkpoint(state)
    assert model.config["sample_rate"] == card["sample_rate"]


@pytest.mark.needs_data
@pytest.mark.xfail(strict=True, reason=(
    "shortfall of the cpu release (#17): chosen on validation (Phase 1A, 0.6315 vs 0.653 for the "
    "loudness-matched input), it ends further from the master on these two held-out excerpts taken "
    "together (MR-STFT 0.479 -> 0.448 but 0.615 -> 0.683); strict, so a release that helps makes this "
    "fail until the mark is removed"))
def test_the_shipped_weights_move_held_out_music_toward_its_master():
    """Drascula's music is held out of the release's training and validation (and is the smoke
    profile's test split): demastered, then mastered by `mastering master`'s chain at the master's
    own loudness, it must end nearer its master than the input (MR-STFT at matched loudness)."""
    path, card = verified(folder=SHIPPED)
    pairs = load_test_pairs("smoke", max_tracks=2, max_seconds=8.0)
    assert pairs and all("drascula-music" in p["track"] for p in pairs)
    before, after = _mrstft_before_after(Phase1System(card["phase"], path), pairs)
    assert sum(after) < sum(before), (before, after)


@pytest.mark.needs_data
def test_the_shipped_weights_move_held_out_music_toward_its_master_under_the_evaluation_protocol():
    """The cpu evaluation's protocol (three 30 s excerpts per held-out track, the training chain with
    the evaluation's seeds) on the smoke profile's held-out drascula tracks: on average the release
    ends nearer the master than its input (MR-STFT at matched loudness), as it does on all 23 test
    tracks of the cpu evaluation; single short excerpts may still get worse (the xfail above)."""
    path, card = verified(folder=SHIPPED)
    pairs = load_test_pairs("smoke", max_seconds=30.0, excerpts_per_track=3)
    assert len(pairs) >= 6 and all("drascula-music" in p["track"] for p in pairs)
    before, after = _mrstft_before_after(Phase1System(card["phase"], path), pairs)
    assert sum(after) < sum(before), (before, after)
