import math

import auraloss
import pytest
import scipy.signal
import torch

from mastering.losses import MultiResolutionSTFTLoss


def _music_like(n=44100, channels=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 44100
    tones = sum(torch.sin(2 * math.pi * f * t) / (i + 1) for i, f in enumerate([110, 220, 330, 660, 1320]))
    x = tones + 0.1 * torch.randn(channels, n, generator=g)
    return (0.2 * x / x.abs().max()).unsqueeze(0)


def test_matches_auraloss_with_same_configuration():
    x, y = _music_like(seed=0), _music_like(seed=1)
    ours = MultiResolutionSTFTLoss()
    ref = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[2048, 1024, 512, 256], hop_sizes=[512, 256, 128, 64],
                                                win_lengths=[2048, 1024, 512, 256])
    assert torch.allclose(ours(x, y), ref(x, y), rtol=1e-6)
    assert ours.fft_sizes == (2048, 1024, 512, 256)


def test_zero_for_identical_and_grows_with_noise():
    x = _music_like()
    loss = MultiResolutionSTFTLoss()
    assert float(loss(x, x)) < 1e-6
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(x.shape, generator=g)
    values = [float(loss(x + a * noise, x)) for a in (0.001, 0.01, 0.1)]
    assert values[0] < values[1] < values[2]


def test_phase_rotation_barely_moves_it_while_l1_explodes():
    x = _music_like()
    hx = torch.from_numpy(scipy.signal.hilbert(x.double().numpy(), axis=-1).imag).float()
    y = -hx  # 90 degree rotation: same magnitude spectrum
    loss = MultiResolutionSTFTLoss()
    l1_ratio = float((y - x).abs().mean() / (-x - x).abs().mean())
    assert l1_ratio > 0.4  # the waveform changed as much as ~half a polarity flip
    shelf = torchaudio_highshelf(x)
    assert float(loss(y, x)) < 0.5 * float(loss(shelf, x))  # a 6 dB shelf costs more than twice as much


def torchaudio_highshelf(x):
    import torchaudio.functional as AF

    return AF.treble_biquad(x, 44100, gain=6.0, central_freq=3000.0)


def test_gradient_and_shape_errors():
    x = _music_like(n=8192).requires_grad_(True)
    loss = MultiResolutionSTFTLoss()
    loss(x, _music_like(n=8192, seed=1)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="batch, channels, samples"):
        loss(x[0], x[0])
    with pytest.raises(ValueError, match="shorter than the largest FFT"):
        loss(x[..., :1000], x[..., :1000])
