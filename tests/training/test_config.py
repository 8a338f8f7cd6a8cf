import pytest

from mastering.profiles import PROFILES
from mastering.training.config import TrainConfig, train_config

SMOKE_TRAIN, FULL_TRAIN = PROFILES["smoke"]["train"], PROFILES["full"]["train"]


def test_profiles_resolve_and_overrides_merge():
    smoke = train_config("1b", "smoke")
    assert smoke.phase == "1b" and smoke.profile == "smoke" and smoke.model == SMOKE_TRAIN["model"]
    assert smoke.batch_size == SMOKE_TRAIN["batch_size"]
    full = train_config("1c", "full")
    assert full.model == {} and full.segment_seconds == FULL_TRAIN["segment_seconds"]
    cfg = train_config("1a", "smoke", epochs=2, data={"train_items": 4}, model={"latent_dim": 16})
    assert cfg.epochs == 2 and cfg.data["train_items"] == 4
    assert cfg.data["valid_items"] == SMOKE_TRAIN["data"]["valid_items"]  # nested dicts merge
    assert cfg.model["latent_dim"] == 16 and cfg.model["encoder"] == SMOKE_TRAIN["model"]["encoder"]
    ratios = train_config("1a", "smoke", data={"ratios": {"real": 1.0}}).data["ratios"]
    assert ratios == {"real": 1.0}  # ratios are replaced, not merged
    assert cfg.model_kwargs()["phase"] == "1a" and cfg.model_kwargs()["sample_rate"] == 44100


def test_roundtrip_and_hash():
    cfg = train_config("1a", "smoke", epochs=3)
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert again.digest("v1") == cfg.digest("v1")
    assert cfg.digest("v1") != cfg.digest("v2")  # the code version is part of the run's identity
    assert train_config("1a", "smoke", epochs=4).digest("v1") != cfg.digest("v1")
    assert train_config("1a", "smoke", epochs=3, progress=False).digest("v1") == cfg.digest("v1")
    assert cfg.run_name("v1").startswith("phase1a-smoke-") and len(cfg.run_name("v1")) == len("phase1a-smoke-") + 10


@pytest.mark.parametrize("bad, match", [
    ({"phase": "2"}, "phase"), ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"),
    ({"segment_seconds": 0.1}, "segment_seconds"), ({"steps_per_epoch": 0}, "steps_per_epoch"),
])
def test_invalid_values_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_unknown_option_and_profile():
    with pytest.raises(ValueError, match="unknown training option"):
        train_config("1a", "smoke", learning_rate=1.0)
    with pytest.raises(ValueError, match="unknown profile"):
        train_config("1a", "huge")
