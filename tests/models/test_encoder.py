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
