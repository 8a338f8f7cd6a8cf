"""Checkpoints load tensors and plain data only: a crafted checkpoint runs no code (issue 20)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mastering import provenance
from mastering.master import MasterError, master_file
from mastering.models import thesis
from mastering.models.mastering import model_from_checkpoint
from mastering.training import TensorPairs, Trainer, train_config
from mastering.training import thesis as thesis_training

TINY = dict(latent_dim=8, encoder={"stem_channels": 8, "block_channels": [8, 8, 8, 8]}, decoder_hidden=8,
            dynamics=False)


class _Touch:
    """Unpickled by ``torch.load(weights_only=False)``, it calls ``Path.touch(path)``: code a file must not run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


@pytest.fixture()
def evil(tmp_path):
    """``(checkpoint, marker)``: a checkpoint-shaped file whose unpickling creates ``marker``."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model_config": {}, "model_state": {}, "config": _Touch(marker)}, path)
    return path, marker


def _pairs():
    x = torch.zeros(2, 2, 8000)
    return TensorPairs(x, x)


def _trainer_load(path):
    config = train_config("1a", "smoke", sample_rate=16000, segment_seconds=0.5, progress=False, device="cpu",
                          model=TINY)
    Trainer(config, _pairs(), _pairs(), run_dir=path.parent / "run", publish=False).load_checkpoint(path)


def test_the_crafted_checkpoint_is_live(evil):
    path, marker = evil
    torch.load(path, weights_only=False)
    assert marker.exists()  # unsafe unpickling runs it: the tests below are not vacuous


@pytest.mark.parametrize("load", [lambda p: provenance.safe_torch_load(p), model_from_checkpoint,
                                  thesis.thesis_from_checkpoint, _trainer_load],
                         ids=["safe_torch_load", "model_from_checkpoint", "thesis_from_checkpoint", "trainer_resume"])
def test_loaders_refuse_the_crafted_checkpoint_and_run_nothing(evil, load):
    path, marker = evil
    with pytest.raises(ValueError, match="could not be read safely") as info:
        load(path)
    assert not marker.exists()
    assert "\n" not in str(info.value) and "getattr" in str(info.value)  # one line naming the refused global


def test_thesis_resume_refuses_a_crafted_last_checkpoint(evil, tmp_path, monkeypatch):
    path, marker = evil
    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path / "runs"))
    overrides = {"model": {"n_fft": 256, "hop": 64, "n_mels": 16, "unet_channels": [4, 8], "lstm_hidden": 8},
                 "train": {"sample_rate": 16000, "segment_seconds": 0.5, "device": "cpu", "epochs": 1}}

    def stop(*args, **kwargs):
        raise RuntimeError("stop")

    monkeypatch.setattr(thesis_training, "_evaluate", stop)  # creates the run folder, trains nothing
    with pytest.raises(RuntimeError, match="stop"):
        thesis_training.fit_or_load_thesis("smoke", progress=False, data=(_pairs(), _pairs()), overrides=overrides)
    run_dir = next((tmp_path / "runs" / "thesis").glob("smoke-*"))
    (run_dir / "last.pt").write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="could not be read safely"):
        thesis_training.fit_or_load_thesis("smoke", progress=False, data=(_pairs(), _pairs()), overrides=overrides)
    assert not marker.exists()


def test_numpy_allowance_is_arrays_of_numbers_only(tmp_path):
    before = set(torch.serialization.get_safe_globals())
    torch.save({"keys": np.arange(4, dtype=np.uint32), "gain": np.ones(2)}, tmp_path / "numbers.pt")
    assert provenance.safe_torch_load(tmp_path / "numbers.pt")["keys"].tolist() == [0, 1, 2, 3]
    torch.save({"objects": np.array([1, "a"], dtype=object)}, tmp_path / "objects.pt")
    with pytest.raises(ValueError, match="could not be read safely.*ObjectDType"):
        provenance.safe_torch_load(tmp_path / "objects.pt")
    assert set(torch.serialization.get_safe_globals()) == before  # the allowance does not outlive the load


@pytest.fixture()
def wav(tmp_path):
    """One second of stereo noise at 44.1 kHz."""
    path = tmp_path / "in.wav"
    sf.write(str(path), 0.1 * np.random.default_rng(0).standard_normal((44100, 2)), 44100)
    return path


def test_master_file_refuses_the_crafted_checkpoint(evil, wav, tmp_path):
    path, marker = evil
    with pytest.raises(MasterError, match="evil.pt could not be read safely"):
        master_file(wav, tmp_path / "out.wav", checkpoint=path, progress=False)
    assert not marker.exists() and not (tmp_path / "out.wav").exists()


def test_command_line_refuses_the_crafted_checkpoint(evil, wav, tmp_path):
    path, marker = evil
    done = subprocess.run([sys.executable, "-m", "mastering", "master", str(wav), str(tmp_path / "out.wav"),
                           "--checkpoint", str(path)], capture_output=True, text=True, timeout=300)
    assert not marker.exists()  # the crafted checkpoint writes nothing
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not be read safely" in lines[0], done.stderr
