import numpy as np
import pyloudnorm as pyln
import pytest
import torch

from mastering.dsp.dynamics import compressor
from mastering.dsp.eq import parametric_eq
from mastering.dsp.loudness import loudness, true_peak
from mastering.models.mastering import (
    DESIGN_PARAMETERS,
    PHASES,
    build_model,
    model_from_checkpoint,
    parameter_counts,
)
from mastering.models.unet import count_parameters

TINY = dict(latent_dim=8, encoder={"stem_channels": 8, "block_channels": [8, 8, 8, 8]}, decoder_hidden=8,
            residual_channels=[4, 8, 8], dynamics_hidden=8)


def _music_like(batch, channels, n, sample_rate, seed=0):
    """Decaying tones plus noise: something with loudness above the gates and a spectrum."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / sample_rate
    x = torch.zeros(batch, channels, n)
    for f in (110.0, 440.0, 1760.0, 5000.0):
        x += 0.1 * torch.sin(2 * torch.pi * f * t + torch.rand(batch, channels, 1, generator=g) * 6)
    x += 0.02 * torch.randn(batch, channels, n, generator=g)
    return x * (0.5 + 0.5 * torch.exp(-((t % 0.25) * 8)))


def test_design_parameter_counts_and_phase_differences():
    counts = {phase: parameter_counts(phase) for phase in PHASES}
    # the encoder of the architecture document (128 -> 512 channels, dilations 1..8)
    assert counts["1a"]["encoder"] == counts["1b"]["encoder"] == counts["1c"]["encoder"] == 1_616_768
    # 1B adds the FiLM Wave-U-Net; 1C swaps in the 10-band gated decoder and keeps the residual
    assert counts["1a"]["residual"] == 0 and counts["1b"]["residual"] == counts["1c"]["residual"] > 600_000
    assert counts["1c"]["decoder"] - counts["1b"]["decoder"] == 3 * 5 * 257 + 10 * 257  # 5 more bands x 3 heads + selector
    for phase, design in DESIGN_PARAMETERS.items():
        assert abs(counts[phase]["total"] - design) / design < 0.3, (phase, counts[phase]["total"])
    assert counts["1b"]["total"] - counts["1a"]["total"] == counts["1b"]["residual"]


@pytest.mark.parametrize("phase", list(PHASES))
def test_stages_follow_phase_and_switches(phase):
    model = build_model(phase, **TINY)
    assert (model.residual is not None) == PHASES[phase]["residual"]
    assert model.decoder.num_bands == PHASES[phase]["num_bands"]
    bare = build_model(phase, dynamics=False, loudness=False, limiter=False, **TINY)
    assert bare.dynamics is None and bare.loudness is None and bare.limiter is None
    assert count_parameters(model) - count_parameters(bare) == count_parameters(model.dynamics)
    x = _music_like(2, 2, 22050, 44100)
    out = bare(x)
    assert "dynamics" not in out["params"]
    assert torch.equal(out["output"], out["processed"])  # no loudness stage: nothing after the processors


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_forward_composes_the_processors(sample_rate, channels):
    model = build_model("1b", sample_rate=sample_rate, channels=channels, **TINY)
    with torch.no_grad():
        model.decoder.net.heads["gain_db"].bias.normal_(0, 1.0)
        model.dynamics.net[-1].bias[1] = 2.0  # ratio well above 1
    x = _music_like(2, channels, sample_rate // 2, sample_rate)
    out = model(x, target_lufs=-18.0)
    eq, dyn = out["params"]["eq"], out["params"]["dynamics"]
    expected_eq = parametric_eq(x, sample_rate, eq["freq_hz"], eq["gain_db"], eq["q"], kinds=model.decoder.eq.kinds,
                                mode="exact")
    assert torch.allclose(out["eq"], expected_eq, atol=1e-6)
    assert torch.equal(out["residual"], torch.zeros_like(x))  # zero at initialization
    assert torch.allclose(out["processed"], compressor(expected_eq, sample_rate, **dyn), atol=1e-6)
    measured = loudness(out["output"], sample_rate)
    assert torch.allclose(measured, torch.full_like(measured, -18.0), atol=1e-3)
    ref = pyln.Meter(sample_rate).integrated_loudness(out["output"][0].detach().numpy().T.astype(np.float64))
    assert ref == pytest.approx(-18.0, abs=0.1)


def test_limiter_runs_at_inference_only_when_asked():
    model = build_model("1a", **TINY).eval()
    x = _music_like(1, 2, 44100, 44100) * 3.0
    with torch.no_grad():
        loud = model(x, target_lufs=-8.0)
        limited = model(x, target_lufs=-8.0, limit=True)
    assert true_peak(loud["output"], 44100).item() > -1.0
    assert true_peak(limited["output"], 44100).item() <= -1.0 + 1e-3
    assert torch.equal(loud["processed"], limited["processed"])


def test_residual_at_a_foreign_rate_keeps_length():
    model = build_model("1c", **TINY)
    with torch.no_grad():
        model.residual.unet.out.weight.normal_(0, 0.1)
    x = _music_like(1, 2, 8001, 8000)
    z = torch.randn(1, 8)
    out = model.process(x, model.predict(z), z, sample_rate=8000)
    assert out["output"].shape == x.shape and out["residual"].abs().max() > 0


def test_gradients_reach_every_parameter_of_1c():
    model = build_model("1c", **TINY)
    with torch.no_grad():
        model.residual.unet.out.weight.normal_(0, 0.1)
    x = _music_like(2, 2, 22050, 44100)
    out = model(x, target_lufs=loudness(x, 44100).detach() + 3.0)
    loss = (out["output"] - x).abs().mean() + sum(model.regularization(out["params"]).values())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_checkpoint_rebuilds_the_same_model(tmp_path):
    model = build_model("1b", **TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "ckpt.pt"
    torch.save({"model_config": model.config, "model_state": model.state_dict()}, path)
    again = model_from_checkpoint(path)
    model.eval()
    x = _music_like(1, 2, 22050, 44100)
    with torch.no_grad():
        assert torch.equal(model(x)["output"], again(x)["output"])
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a mastering-model checkpoint"):
        model_from_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not exist"):
        model_from_checkpoint(tmp_path / "missing.pt")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown phase"):
        build_model("2a")
    with pytest.raises(ValueError, match="eq_mode"):
        build_model("1a", eq_mode="slow", **TINY)
    model = build_model("1a", **TINY)
    with pytest.raises(ValueError, match=r"\[batch, 2, samples\]"):
        model(torch.randn(2, 1, 4096))


def test_a_mixed_precision_step_keeps_the_dsp_in_full_precision():
    """Under bfloat16 autocast (what --amp does on a GPU; reproduced here on the CPU) the networks run
    in bfloat16 while the EQ, compressor, loudness stage and A-weighting stay in float32: torchaudio's
    lfilter refuses 16-bit input, and the full recipe's first training step failed on a GPU."""
    from mastering.dsp.weighting import a_weighting
    from mastering.models.mastering import build_model
    from mastering.profiles import get_profile

    torch.manual_seed(0)
    model = build_model("1b", **get_profile("smoke")["train"]["model"])
    x = 0.1 * torch.randn(2, 2, 22050)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, target_lufs=-14.0)
        loss = a_weighting(out["output"] - x, 44100).abs().mean()
    loss.backward()
    assert out["output"].dtype == torch.float32 and out["eq"].dtype == torch.float32
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_a_spectral_encoder_checkpoint_rebuilds_at_its_rate(tmp_path):
    cfg = dict(TINY, encoder=dict(TINY["encoder"], spectral_bands=24, spectral_hidden=8))
    model = build_model("1a", sample_rate=48000, **cfg).eval()
    assert model.encoder.config["sample_rate"] == 48000 and model.encoder.spectral.bands == 24
    path = tmp_path / "ckpt.pt"
    torch.save({"model_config": model.config, "model_state": model.state_dict()}, path)
    again = model_from_checkpoint(path)
    x = _music_like(1, 2, 24000, 48000)
    with torch.no_grad():
        assert torch.equal(model(x)["output"], again(x)["output"])
