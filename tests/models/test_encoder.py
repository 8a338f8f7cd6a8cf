import pytest
import torch

from mastering.models.encoder import AudioEncoder, empirical_receptive_field, receptive_field


def test_shapes_and_latent():
    enc = AudioEncoder()
    assert enc(torch.randn(3, 2, 22050)).shape == (3, 512)
    assert AudioEncoder(latent_dim=64)(torch.randn(2, 2, 4096)).shape == (2, 64)
    with pytest.raises(ValueError, match="batch, channels, samples"):
        enc(torch.randn(2, 4096))


@pytest.mark.parametrize("kernel_size, dilations", [(3, (1, 2, 4, 8)), (5, (1, 2)), (3, (1, 1, 1, 1))])
def test_analytic_receptive_field_matches_gradient(kernel_size, dilations):
    enc = AudioEncoder(kernel_size=kernel_size, dilations=dilations, block_channels=[32] * len(dilations),
                       stem_channels=16, latent_dim=32)
    rf = receptive_field(enc)
    # stem: 15 + 14*4 = 71 samples, hop 16; each dilated conv adds (k-1)*d*16
    assert rf["hop"] == 16
    assert rf["samples"] == 71 + sum((kernel_size - 1) * d * 16 for d in dilations)
    assert empirical_receptive_field(enc) == rf["samples"]


def test_design_receptive_field():
    rf = receptive_field(AudioEncoder())
    assert rf == {"samples": 551, "hop": 16}  # 12.5 ms at 44.1 kHz per frame, before pooling


def test_spectral_summary_reads_the_low_end_and_ignores_level():
    from mastering.models.encoder import SpectralSummary

    sr = 44100
    summary = SpectralSummary(sr, bands=40)
    t = torch.arange(sr) / sr
    levels = []
    for freq in (40.0, 60.0, 1000.0):
        x = torch.sin(2 * torch.pi * freq * t).repeat(1, 2, 1)
        levels.append(summary.band_levels_db(x).mean(dim=-1)[0])
    peaks = [int(lv.argmax()) for lv in levels]
    # 40 Hz and 60 Hz (periods of 25 and 17 ms, beyond the TCN's 12.5 ms) fall in different bands
    assert peaks[0] < peaks[1] < peaks[2]
    x = torch.randn(2, 2, sr // 2)
    torch.manual_seed(0)
    a = summary(x)
    b = summary(x * 10 ** (12 / 20))  # +12 dB: the loudness stage's business, not the encoder's
    assert torch.allclose(a, b, atol=1e-4)


def test_encoder_with_spectral_summary_shapes_and_gradients():
    enc = AudioEncoder(stem_channels=16, block_channels=[16, 16], dilations=[1, 2], latent_dim=24,
                       spectral_bands=32, spectral_hidden=16)
    x = torch.randn(2, 2, 8192)
    z = enc(x)
    assert z.shape == (2, 24) and enc.pooled(x).shape == (2, 16 + 16)
    z.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.spectral.parameters())
    # the receptive-field analysis still counts only the TCN's convolutions
    assert receptive_field(enc)["hop"] == 16
