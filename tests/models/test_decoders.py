import math

import numpy as np
import pytest
import torch
from scipy import signal

from mastering.dsp.eq import freq_response_db, sos_from_params
from mastering.models.decoders import (
    AdaptiveParametricDecoder,
    ParametricDecoder,
    ResidualDecoder,
    active_bands,
    binary_entropy,
    hard_concrete_gate,
)


@pytest.mark.parametrize("decoder_cls, bands", [(ParametricDecoder, 5), (AdaptiveParametricDecoder, 10)])
def test_parameters_stay_in_design_ranges(decoder_cls, bands):
    dec = decoder_cls(latent_dim=16, num_bands=bands, hidden=8)
    with torch.no_grad():
        for p in dec.parameters():
            p.normal_(0, 3.0)  # drive the heads far into saturation
    params = dec(torch.randn(64, 16) * 10)
    assert params["freq_hz"].shape == (64, bands)
    assert params["freq_hz"].min() >= 20.0 and params["freq_hz"].max() <= 20000.0
    assert params["gain_db"].abs().max() <= 12.0
    assert params["q"].min() >= 0.5 and params["q"].max() <= 5.0


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_decoder_starts_as_identity_eq(sample_rate, channels):
    dec = ParametricDecoder(latent_dim=16, hidden=8)
    params = dec(torch.randn(3, 16))
    assert torch.all(params["gain_db"] == 0)
    freqs = params["freq_hz"][0]
    assert torch.all(freqs[1:] > freqs[:-1])  # bands spread from low to high at initialization
    x = torch.randn(3, channels, 4096)
    y = dec.equalize(x, sample_rate, params)
    assert torch.allclose(y, x, atol=1e-5)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_eq_path_matches_scipy_sosfilt(sample_rate, channels):
    dec = ParametricDecoder(latent_dim=8, hidden=8)
    with torch.no_grad():
        dec.net.heads["gain_db"].bias.normal_(0, 1.0)
    params = dec(torch.randn(2, 8))
    x = torch.randn(2, channels, 3000, dtype=torch.float64)
    y = dec.equalize(x, sample_rate, params, mode="exact")
    for b in range(2):
        sos = sos_from_params(params["freq_hz"][b].detach().double().numpy(), params["gain_db"][b].detach().double().numpy(),
                              params["q"][b].detach().double().numpy(), dec.eq.kinds, sample_rate)
        ref = signal.sosfilt(sos, x[b].numpy(), axis=-1)
        np.testing.assert_allclose(y[b].detach().numpy(), ref, atol=1e-9)
    assert params["gain_db"].abs().max() > 0.5  # a real, non-trivial EQ was checked


def test_gates_scale_gains_and_regularizers():
    dec = AdaptiveParametricDecoder(latent_dim=8, num_bands=10, hidden=8, gate_bias=0.0).eval()
    with torch.no_grad():
        dec.net.heads["gain_db"].bias.fill_(2.0)
    z = torch.randn(4, 8)
    params = dec(z)
    assert torch.allclose(params["gain_db"], params["raw_gain_db"] * params["gate"])
    assert torch.allclose(params["gate"], torch.full_like(params["gate"], 0.5), atol=0.02)  # log_alpha ~ 0
    reg = dec.regularization(params)
    assert reg["sparsity"].item() == pytest.approx(params["gate_open"].mean().item(), abs=1e-6)
    assert 0.7 < reg["sparsity"].item() < 0.95  # P(open) at log_alpha 0: sigmoid(2/3 ln 11)
    with torch.no_grad():
        dec.net.heads["select"].bias.fill_(-30.0)
    closed = dec(z)
    assert closed["gain_db"].abs().max() == 0.0 and bool((active_bands(closed["gain_db"]) == 0).all())
    assert dec.regularization(closed)["sparsity"] < 1e-9
    assert dec.regularization(closed)["decisiveness"] < 1e-4
    x = torch.randn(4, 2, 2048)
    assert torch.allclose(dec.equalize(x, 44100, closed), x, atol=1e-5)  # all bands off: identity


def test_hard_concrete_gates_are_exact_when_decided_and_noisy_when_not():
    """Evaluation gates are exactly 0 or 1 once decided; in training a half-open gate is drawn
    anywhere in [0, 1] (so it cannot stand in for a smaller gain), a decided one is not; the L0
    term rises with the gate's location."""
    log_alpha = torch.tensor([-6.0, -2.5, 0.0, 2.5, 6.0])
    gate, _ = hard_concrete_gate(log_alpha, training=False)
    assert gate[0] == 0.0 and gate[1] == 0.0 and gate[3] == 1.0 and gate[4] == 1.0
    torch.manual_seed(0)
    draws = torch.stack([hard_concrete_gate(log_alpha, training=True)[0] for _ in range(2000)])
    assert draws[:, 2].std() > 0.35 and (draws[:, 2] == 0).any() and (draws[:, 2] == 1).any()
    assert (draws[:, 0] == 0).float().mean() > 0.98 and (draws[:, 4] == 1).float().mean() > 0.98
    la = torch.zeros(3, requires_grad=True)
    hard_concrete_gate(la, training=True)[1].sum().backward()
    assert bool((la.grad > 0).all())


def test_l0_gates_learn_to_use_few_bands_for_a_one_band_correction():
    """The 1C decoder fitted (training mode, L0 weight 0.05) to a single +6 dB peak at 1 kHz: in
    evaluation it matches the curve within 1 dB RMS using at most three bands by effective gain,
    while all ten start open (gates of exactly 1)."""
    torch.manual_seed(0)
    dec = AdaptiveParametricDecoder(latent_dim=4, num_bands=10, hidden=16)
    z = torch.randn(1, 4)
    assert bool((dec.eval()(z)["gate"] == 1.0).all())
    dec.train()
    freqs = torch.logspace(math.log10(30.0), math.log10(16000.0), 128)
    target = torch.as_tensor(freq_response_db(torch.tensor([1000.0]), torch.tensor([6.0]), torch.tensor([1.0]),
                                              ["peaking"], 44100, freqs_hz=freqs), dtype=torch.float32)
    opt = torch.optim.Adam(dec.parameters(), lr=0.02)
    for _ in range(600):
        params = dec(z)
        err = (dec.response_db(params, 44100, freqs_hz=freqs) - target).square().mean()
        loss = err + 0.05 * dec.regularization(params)["sparsity"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    dec.eval()
    with torch.no_grad():
        params = dec(z)
        rms = (dec.response_db(params, 44100, freqs_hz=freqs) - target).square().mean().sqrt()
    assert float(rms) < 1.0 and int(active_bands(params["gain_db"])[0]) <= 3, (float(rms), params["gain_db"])


def test_binary_entropy_values():
    p = torch.tensor([0.5, 0.0, 1.0, 0.1])
    h = binary_entropy(p)
    assert h[0].item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert h[1].item() < 1e-4 and h[2].item() < 1e-4
    assert h[3].item() == pytest.approx(-(0.1 * math.log(0.1) + 0.9 * math.log(0.9)), rel=1e-6)


def test_gradcheck_latent_to_equalized_audio():
    """Gradient of the whole 1C controller + EQ path in float64 (heads, gates, biquads)."""
    dec = AdaptiveParametricDecoder(latent_dim=4, num_bands=3, hidden=4).double().eval()
    with torch.no_grad():
        dec.net.heads["gain_db"].weight.normal_(0, 0.5)
    x = torch.randn(1, 1, 64, dtype=torch.float64)

    def f(z):
        return dec.equalize(x, 8000, dec(z), mode="exact")

    z = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (z,), eps=1e-6, atol=1e-5)


def test_residual_starts_at_zero_blocks_dc_and_trains():
    res = ResidualDecoder(channels=2, latent_dim=8, level_channels=(4, 8, 8))
    x, z = torch.randn(2, 2, 22051), torch.randn(2, 8)
    assert torch.equal(res(x, z, 44100), torch.zeros_like(x))
    with torch.no_grad():
        res.unet.out.weight.normal_()
    r = res(x + 0.5, z, 44100)  # a DC offset in the input, and leaky-ReLU features with non-zero means
    raw = res.unet(x + 0.5, z)
    assert raw.mean(dim=-1).abs().max() > 0.05
    assert r[..., 11025:].mean(dim=-1).abs().max() < 0.1 * raw.mean(dim=-1).abs().max()
    r.pow(2).mean().backward()
    missing = [n for n, p in res.named_parameters() if p.grad is None]
    assert not missing
    with pytest.raises(ValueError, match="sample_rate"):
        res(x, z)
    with pytest.raises(ValueError, match="z must be"):
        res(x, torch.randn(3, 8), 44100)
