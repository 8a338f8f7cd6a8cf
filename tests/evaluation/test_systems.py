"""The systems of notebook 06: each masters [channels, samples] audio as it says."""

import math

import numpy as np
import pyloudnorm as pyln
import pytest
import torch

from mastering.dsp.eq import parametric_eq
from mastering.dsp.signals import pink_noise
from mastering.evaluation import metrics as M
from mastering.evaluation import systems as S

RATES = (22050, 44100, 48000)
CHANNELS = (1, 2)


def _noise(sample_rate, channels, seconds=2.0, seed=0, level_dbfs=-24.0):
    return pink_noise(int(seconds * sample_rate), channels=channels, batch=1, seed=seed, level_dbfs=level_dbfs)[0].float()


def _lufs(x, sample_rate):
    return pyln.Meter(sample_rate).integrated_loudness(np.asarray(x, np.float64).T)


def test_identity_returns_the_input():
    x = _noise(44100, 2)
    y = S.IdentitySystem().master(x, 44100, -14.0)
    assert torch.equal(x, y) and y is not x


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_loudness_normalisation_reaches_the_target_under_the_ceiling(sample_rate, channels):
    x = _noise(sample_rate, channels, seed=1)
    y = S.LoudnessNormSystem(true_peak_dbtp=-1.0).master(x, sample_rate, -14.0)
    assert y.shape == x.shape
    assert _lufs(y, sample_rate) == pytest.approx(-14.0, abs=0.35)
    assert M.true_peak_dbtp(y, sample_rate) <= -1.0 + 1e-3
    # a quiet target needs no limiting: a pure gain
    z = S.LoudnessNormSystem().master(x, sample_rate, -30.0)
    assert _lufs(z, sample_rate) == pytest.approx(-30.0, abs=0.05)
    assert M.si_sdr_db(z, x) > 60


def test_finish_loudness_leaves_silence_alone():
    x = torch.zeros(2, 44100)
    assert torch.equal(S.finish_loudness(x, 44100, -14.0), x)


def _shelved(x, sample_rate, gain_db):
    """``x`` through a high shelf of ``gain_db`` at 4 kHz (RBJ)."""
    return parametric_eq(x[None].double(), sample_rate, torch.tensor([[4000.0]]), torch.tensor([[gain_db]]),
                         torch.tensor([[0.707]]), kinds=("high_shelf",), mode="exact", backend="torch")[0].float()


@pytest.mark.parametrize("sample_rate", (22050, 44100))
def test_static_eq_learns_the_mean_correction_and_undoes_it(sample_rate):
    pairs = []
    for seed in range(3):
        mastered = _noise(sample_rate, 2, seed=10 + seed, level_dbfs=-18.0)
        pairs.append((_shelved(mastered, sample_rate, -6.0) * 0.3, mastered))  # degraded: duller and quieter
    curve = S.fit_static_eq(pairs, sample_rate)
    f, g = curve["freqs_hz"], curve["gain_db"]
    hi = g[(f > 8000) & (f < 10000)].mean()
    lo = g[(f > 100) & (f < 300)].mean()
    assert hi - lo == pytest.approx(6.0, abs=0.7)  # the shelf, level removed
    system = S.StaticEQSystem(curve)
    test_master = _noise(sample_rate, 2, seed=20, level_dbfs=-18.0)
    degraded = _shelved(test_master, sample_rate, -6.0) * 0.3
    target = _lufs(test_master, sample_rate)
    y = system.master(degraded, sample_rate, target)
    assert y.shape == degraded.shape
    before = M.band_energy_error_db(M.match_loudness(degraded, test_master, sample_rate), test_master, sample_rate)
    after = M.band_energy_error_db(M.match_loudness(y, test_master, sample_rate), test_master, sample_rate)
    assert after < 0.5 * before
    assert M.si_sdr_db(y, test_master) > 15  # linear phase, delay compensated: still sample-aligned
    with pytest.raises(ValueError, match="odd"):
        S.StaticEQSystem(curve, numtaps=2048)
    with pytest.raises(ValueError, match="at least one"):
        S.fit_static_eq([], sample_rate)


def test_matchering_moves_the_target_towards_its_reference():
    sample_rate = 44100
    reference = _noise(sample_rate, 2, seconds=8.0, seed=30, level_dbfs=-12.0)
    target = _shelved(_noise(sample_rate, 2, seconds=6.0, seed=31, level_dbfs=-26.0), sample_rate, -9.0)
    system = S.MatcheringSystem(reference, sample_rate, "noise")
    y = system.master(target, sample_rate, -16.0)
    assert y.shape == target.shape and bool(torch.isfinite(y).all())
    assert _lufs(y, sample_rate) == pytest.approx(-16.0, abs=0.5)  # the common loudness finish sets the level
    assert M.true_peak_dbtp(y, sample_rate) <= -1.0 + 1e-3
    assert system.last_warnings == ()  # a clean target: matchering warns about nothing
    clipped = (target * 40.0).clamp(-1.0, 1.0)  # many samples at full scale: matchering's clipping warning
    system.master(clipped, sample_rate, -16.0)
    assert len(system.last_warnings) == 1 and "clipping" in system.last_warnings[0].lower()
    assert system.warnings == list(system.last_warnings)  # every call's warnings kept, each call's on its own
    _, ly = M.third_octave_levels_db(M.match_loudness(y, reference[:, : y.shape[-1]], sample_rate), sample_rate)
    _, lt = M.third_octave_levels_db(M.match_loudness(target, reference[:, : y.shape[-1]], sample_rate), sample_rate)
    c, lr = M.third_octave_levels_db(reference[:, : y.shape[-1]], sample_rate)
    top = c > 8000
    assert np.abs(ly[0, top] - lr[0, top]).mean() < np.abs(lt[0, top] - lr[0, top]).mean()  # the shelf is undone
    assert system.info() == {"reference": "noise"}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from mastering.models.mastering import build_model
    from mastering.profiles import get_profile

    torch.manual_seed(0)
    model = build_model("1a", **get_profile("smoke")["train"]["model"])
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.save({"model_config": model.config, "model_state": model.state_dict(), "config": {"segment_seconds": 1.0}}, path)
    return path


@pytest.mark.parametrize("sample_rate,channels", [(44100, 2), (22050, 1)])
def test_phase1_system_masters_to_target(tiny_checkpoint, sample_rate, channels):
    system = S.Phase1System("1a", tiny_checkpoint, true_peak_dbtp=-1.0)
    assert (system.name, system.label, system.group) == ("phase1a", "Phase 1A", "proposed")
    x = _noise(sample_rate, channels, seconds=2.5, seed=40)
    y = system.master(x, sample_rate, -16.0)
    assert y.shape == x.shape and bool(torch.isfinite(y).all())
    assert _lufs(y, sample_rate) == pytest.approx(-16.0, abs=0.5)
    assert M.true_peak_dbtp(y, sample_rate) <= -1.0 + 0.05
    assert system.info()["run"] == tiny_checkpoint.parent.name
    with pytest.raises(ValueError, match="does not exist"):
        S.Phase1System("1b", tiny_checkpoint.parent / "missing.pt")


def test_phase1_in_memory_chain_equals_the_file_chain(tiny_checkpoint, tmp_path):
    """The evaluation's in-memory chain is the code of `mastering master`: the same output to float precision."""
    import soundfile as sf

    from mastering.master import master_file

    x = _noise(44100, 2, seconds=2.5, seed=41) + 0.05  # an offset for the clean-up to remove
    y = S.Phase1System("1a", tiny_checkpoint).master(x, 44100, -16.0)
    sf.write(str(tmp_path / "in.wav"), x.numpy().T, 44100, subtype="FLOAT")
    master_file(tmp_path / "in.wav", tmp_path / "out.wav", checkpoint=tiny_checkpoint, target_lufs=-16.0,
                subtype="FLOAT")
    z, _ = sf.read(str(tmp_path / "out.wav"), always_2d=True)
    assert float(np.abs(y.numpy() - z.T).max()) < 1e-4
    assert _lufs(y, 44100) == pytest.approx(-16.0, abs=0.3)


def test_thesis_system_wraps_thesis_master():
    thesis = pytest.importorskip("mastering.models.thesis")
    torch.manual_seed(0)
    model = thesis.MelUNetLSTM(sample_rate=22050, channels=2, n_fft=512, hop=128, n_mels=24, unet_channels=(4, 8),
                               lstm_hidden=8, griffin_lim_iters=2).eval()
    system = S.ThesisSystem(model, {"run_dir": "/x/smoke-abc", "epochs": 1, "history": []})
    assert system.info() == {"run_dir": "/x/smoke-abc", "epochs": 1}
    assert "cuda" in system.devices and system.finished and system.name == "unet_lstm"
    x = _noise(44100, 1, seconds=1.0, seed=50)
    y = system.master(x, 44100, -14.0)
    assert y.shape == x.shape and bool(torch.isfinite(y).all())
    assert _lufs(y, 44100) == pytest.approx(-14.0, abs=0.5)  # through the loudness finish


@pytest.mark.parametrize("bad", [torch.zeros(3, 100), torch.zeros(2, 0), torch.zeros(100), torch.full((2, 10), math.nan)])
def test_systems_refuse_bad_audio(bad):
    with pytest.raises(ValueError):
        S.IdentitySystem().master(bad, 44100)
