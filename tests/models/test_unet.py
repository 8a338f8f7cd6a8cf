import pytest
import torch

from mastering.models.unet import FiLM, WaveUNet


@pytest.mark.parametrize("n", [1000, 1024, 4097])
@pytest.mark.parametrize("skip", [True, False])
def test_any_length_roundtrips_shape(n, skip):
    net = WaveUNet(channels=2, skip=skip)
    assert net(torch.randn(2, 2, n)).shape == (2, 2, n)


def test_film_starts_as_identity_and_conditions():
    film = FiLM(8, 4)
    h = torch.randn(2, 4, 10)
    assert torch.equal(film(h, torch.randn(2, 8)), h)
    net = WaveUNet(channels=1, level_channels=(8, 16), cond_dim=8)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, FiLM):
                m.proj.weight.normal_()
    x = torch.randn(1, 1, 512)
    assert not torch.allclose(net(x, torch.zeros(1, 8)), net(x, torch.ones(1, 8)))
    with pytest.raises(ValueError, match="pass z"):
        net(x)


def test_gradients_reach_every_parameter():
    net = WaveUNet(channels=2, level_channels=(8, 16, 24), cond_dim=4)
    net(torch.randn(2, 2, 777), torch.randn(2, 4)).pow(2).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing
