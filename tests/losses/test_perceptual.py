import math

import pytest
import torch

from mastering.dsp.weighting import a_weighting_analog_db
from mastering.losses import AWeightedL1Loss, LoudnessLoss, MasteringLoss, ParameterRegularization


def _sine(freq_hz, sample_rate=48000, seconds=1.0, amplitude=0.1, channels=2):
    t = torch.arange(int(sample_rate * seconds), dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * freq_hz * t)).expand(1, channels, -1).clone()


@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("freq_hz", [50.0, 200.0, 4000.0])
def test_aweighted_l1_scales_errors_by_the_a_curve(sample_rate, freq_hz):
    loss = AWeightedL1Loss(sample_rate)
    target = torch.zeros(1, 2, sample_rate, dtype=torch.float64)
    err_1k = float(loss(_sine(1000.0, sample_rate), target))
    err_f = float(loss(_sine(freq_hz, sample_rate), target))
    expected_db = float(a_weighting_analog_db(freq_hz))
    assert 20 * math.log10(err_f / err_1k) == pytest.approx(expected_db, abs=0.5)


@pytest.mark.parametrize("gain_db", [-6.0, -1.0, 3.0])
def test_loudness_loss_is_the_level_difference_in_lu(gain_db):
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(2, 2, 48000, generator=g, dtype=torch.float64)
    y = x * 10 ** (gain_db / 20)
    assert float(LoudnessLoss(48000)(y, x)) == pytest.approx(abs(gain_db), abs=0.01)
    per_item = LoudnessLoss(48000, target_lufs=-20.0, reduction="none")(x)
    assert per_item.shape == (2,)
    with pytest.raises(ValueError, match="target"):
        LoudnessLoss(48000)(x)


def test_parameter_regularization_prefers_flat_and_q_near_one():
    reg = ParameterRegularization()
    flat = reg(torch.zeros(1, 5), torch.ones(1, 5))
    assert float(flat) == 0.0
    assert float(reg(torch.full((1, 5), 6.0), torch.ones(1, 5))) == pytest.approx(0.25)
    assert float(reg(torch.zeros(1, 5), torch.full((1, 5), 0.5))) == pytest.approx(
        float(reg(torch.zeros(1, 5), torch.full((1, 5), 2.0))))
    with pytest.raises(ValueError, match="positive"):
        reg(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))


def test_combined_loss_weights_and_gradients():
    g = torch.Generator().manual_seed(1)
    target = 0.1 * torch.randn(2, 2, 44100, generator=g)
    pred = (target * 0.7 + 0.01 * torch.randn(2, 2, 44100, generator=g)).requires_grad_(True)
    gain_db = torch.full((2, 5), 3.0, requires_grad=True)
    q = torch.full((2, 5), 2.0)
    loss = MasteringLoss(44100)
    assert loss.weights == {"stft": 1.0, "aweighted": 0.1, "loudness": 0.01, "params": 0.01}
    terms = loss.components(pred, target, gain_db, q)
    assert set(terms) == {"stft", "aweighted", "loudness", "params"}
    total = loss(pred, target, gain_db, q)
    expected = sum(loss.weights[k] * v for k, v in terms.items())
    assert torch.allclose(total, expected)
    total.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert gain_db.grad.abs().sum() > 0
    assert float(terms["loudness"]) == pytest.approx(20 * math.log10(1 / 0.7), abs=0.2)
