import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from mastering.io import AudioError
from mastering.models.thesis import (THESIS_CHECKPOINT_FORMAT, MelUNetLSTM, ThesisLoss, griffin_lim,
                                     thesis_from_checkpoint, thesis_master)

SR = 16000
TINY = {"n_fft": 256, "hop": 64, "n_mels": 16, "unet_channels": [4, 8], "lstm_hidden": 8, "griffin_lim_iters": 4}


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are tiny: a second thread only adds synchronization (20x slower per op on busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomize_heads(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in (model.mask_head, model.forecaster_head):
            head.weight.copy_(0.1 * torch.randn(head.weight.shape, generator=g))
            head.bias.copy_(0.1 * torch.randn(head.bias.shape, generator=g))


def _music(channels, samples, sample_rate, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / sample_rate
    freqs = torch.tensor([110.0, 440.0, 1250.0, 3100.0])
    x = (torch.sin(2 * torch.pi * freqs[:, None] * t).sum(dim=0) * 0.1).expand(channels, -1).clone()
    return (x + 0.02 * torch.randn(channels, samples, generator=g)).numpy().astype(np.float32)


def test_shapes_bounds_and_identity_at_initialization():
    model = MelUNetLSTM(sample_rate=SR, channels=2, **TINY)
    x = torch.randn(3, 2, SR // 2) * 0.1
    mag = model.stft(x).abs()
    assert mag.shape == (3, 2, 129, SR // 2 // 64 + 1)
    log_mel = model.log_mel(mag)
    assert log_mel.shape == (3, 2, 16, mag.shape[-1])
    out = model(log_mel, mag)
    assert out.shape == mag.shape
    torch.testing.assert_close(out, mag)  # zero heads: the identity on magnitudes
    _randomize_heads(model)
    p = model.predict(log_mel * 50)  # saturating input: the tanh bounds hold
    assert p["mask_db"].abs().max() <= model.max_gain_db + 1e-4
    assert p["gain_db"].abs().max() <= model.max_global_gain_db + 1e-4
    assert p["tilt_db"].abs().max() <= model.max_tilt_db + 1e-4
    assert p["gain_db"].shape == (3, mag.shape[-1]) and p["mel_gain_db"].shape == log_mel.shape


def test_log_mel_matches_torchaudio_mel_spectrogram():
    import torchaudio

    model = MelUNetLSTM(sample_rate=SR, channels=1, **TINY)
    x = torch.from_numpy(_music(1, SR, SR))[None]
    ours = model.log_mel(model.stft(x).abs())
    ref = torchaudio.transforms.MelSpectrogram(SR, n_fft=256, hop_length=64, n_mels=16, f_min=0.0, power=2.0,
                                               norm=None, mel_scale="htk")(x)
    ref_db = 10 * torch.log10((ref / (model.window.sum() / 2) ** 2).clamp_min(1e-10)) / 20
    torch.testing.assert_close(ours, ref_db, atol=1e-3, rtol=0)


def test_mel_gain_back_to_stft_grid():
    model = MelUNetLSTM(sample_rate=SR, channels=1, **TINY)
    const = torch.full((1, 1, 16, 5), 6.0)
    torch.testing.assert_close(model.stft_gain_db(const), torch.full((1, 1, 129, 5), 6.0))  # constant stays constant
    # a tilt in dB per octave comes back as the same tilt at the band centres' frequencies
    mel = model.tilt_octaves[None, None, :, None].expand(1, 1, 16, 1) * 2.0
    on_grid = model.stft_gain_db(mel)[0, 0, :, 0]
    freqs = torch.linspace(0, SR / 2, 129)
    inside = (freqs > 300) & (freqs < 6000)
    err = (on_grid[inside] - 2.0 * torch.log2(freqs[inside] / 1000)).abs().max()
    assert err < 0.6  # piecewise-linear in mel between band centres vs log-frequency: < 0.6 dB apart


def test_loss_equals_auraloss_stft_loss():
    import auraloss

    model = MelUNetLSTM(sample_rate=SR, channels=2, **TINY)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, SR // 2, generator=g) * 0.1
    y = 1.5 * x + 0.01 * torch.randn(2, 2, SR // 2, generator=g)
    ours = ThesisLoss()(model.stft(x).abs(), model.stft(y).abs())
    ref = auraloss.freq.STFTLoss(256, 64, 256, w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0)(x, y)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert float(ThesisLoss()(model.stft(y).abs(), model.stft(y).abs())) == 0.0
    with pytest.raises(ValueError):
        ThesisLoss(0.0, 0.0)


def test_gradients_reach_every_parameter():
    model = MelUNetLSTM(sample_rate=SR, channels=2, **TINY)
    _randomize_heads(model)
    x = torch.randn(2, 2, SR // 4) * 0.1
    mag = model.stft(x).abs()
    loss = ThesisLoss()(model.process_magnitude(mag), mag * 1.5)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradcheck_float64():
    model = MelUNetLSTM(sample_rate=8000, channels=1, n_fft=32, hop=16, n_mels=4, unet_channels=[2],
                        lstm_hidden=2).double()
    _randomize_heads(model)
    mag = torch.rand(1, 1, 17, 4, dtype=torch.float64) + 0.1
    log_mel = model.log_mel(mag).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda lm: model(lm, mag), (log_mel,), eps=1e-6, atol=1e-5)


def test_griffin_lim_equals_torchaudio():
    x = torch.from_numpy(_music(2, SR, SR))
    window = torch.hann_window(256)
    mag = torch.stft(x, 256, 64, window=window, return_complex=True).abs()
    for momentum in (0.0, 0.99):
        ours = griffin_lim(mag, 256, 64, window, n_iter=6, momentum=momentum, length=SR)
        ref = AF.griffinlim(mag, window, 256, 64, 256, 1.0, 6, momentum, SR, False)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    # from the true phase the reconstruction is exact and stays consistent under iteration
    phase = torch.stft(x, 256, 64, window=window, return_complex=True).angle()
    torch.testing.assert_close(griffin_lim(mag, 256, 64, window, n_iter=3, init_phase=phase, length=SR), x,
                               atol=1e-4, rtol=0)
    with pytest.raises(ValueError):
        griffin_lim(mag, 256, 64, window, momentum=1.0)


def _spectral_convergence(a, b, n_fft=1024):
    w = torch.hann_window(n_fft)
    sa = torch.stft(torch.from_numpy(a), n_fft, n_fft // 4, window=w, return_complex=True).abs()
    sb = torch.stft(torch.from_numpy(b), n_fft, n_fft // 4, window=w, return_complex=True).abs()
    return float(torch.linalg.norm(sa - sb) / torch.linalg.norm(sb))


def test_untrained_master_is_griffin_lim_of_the_input():
    model = MelUNetLSTM(sample_rate=SR, channels=2, **TINY)
    audio = _music(2, SR * 2, SR)
    out = thesis_master(model, audio, SR, chunk_s=5.0, n_iter=16)
    window = torch.hann_window(256)
    ref = AF.griffinlim(torch.stft(torch.from_numpy(audio), 256, 64, window=window, return_complex=True).abs(),
                        window, 256, 64, 256, 1.0, 16, 0.0, audio.shape[1], False).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)  # one chunk: the same algorithm on the same magnitude
    sc = _spectral_convergence(out, audio, 256)
    assert sc < 0.5  # 16 plain iterations from zero phase: a rough but recognizable magnitude
    # chunked with crossfades the magnitude error stays in the same range
    chunked = thesis_master(model, audio, SR, chunk_s=0.5, overlap_s=0.1, n_iter=16)
    assert _spectral_convergence(chunked, audio, 256) < sc + 0.1
    # the input-phase variant with no iterations gives back the input
    np.testing.assert_allclose(thesis_master(model, audio, SR, chunk_s=0.5, overlap_s=0.1, init="input", n_iter=0),
                               audio, atol=1e-4)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_master_keeps_shape_and_length(sample_rate, channels):
    model = MelUNetLSTM(sample_rate=44100, channels=2, **dict(TINY, n_fft=512, hop=128))
    _randomize_heads(model)
    n = int(0.7 * sample_rate) + 3
    audio = _music(channels, n, sample_rate)
    out = thesis_master(model, audio, sample_rate, chunk_s=0.3, overlap_s=0.05, n_iter=2)
    assert out.shape == audio.shape and out.dtype == audio.dtype and np.all(np.isfinite(out))
    assert 0.01 < np.sqrt(np.mean(out**2)) < 10  # a signal, neither silence nor an explosion
    short = thesis_master(model, audio[:, :100], sample_rate, n_iter=1)  # shorter than one window
    assert short.shape == (channels, 100)


def test_master_rejects_bad_input():
    model = MelUNetLSTM(sample_rate=SR, channels=2, **TINY)
    good = _music(2, SR, SR)
    bad_inputs = [good.copy(), good.copy(), np.zeros((2, 0), np.float32), good[0], np.zeros((3, 100), np.float32),
                  good.astype(np.int16), [[0.0] * 10]]
    bad_inputs[0][0, 5] = np.nan
    bad_inputs[1][1, 7] = np.inf
    for audio in bad_inputs:
        with pytest.raises(AudioError):
            thesis_master(model, audio, SR)
    for kwargs in ({"sample_rate": 0}, {"sample_rate": 44100.5}, {"chunk_s": 0.0}, {"init": "random"},
                   {"overlap_s": 5.0}):
        with pytest.raises(ValueError):
            thesis_master(model, good, **{"sample_rate": SR, **kwargs})
    with pytest.raises(ValueError):
        MelUNetLSTM(channels=3)
    with pytest.raises(ValueError):
        model.predict(torch.zeros(1, 2, 7, 4))


def test_checkpoint_alone_rebuilds_the_model(tmp_path):
    model = MelUNetLSTM(sample_rate=SR, channels=2, **TINY)
    _randomize_heads(model, seed=4)
    state = {"format": THESIS_CHECKPOINT_FORMAT, "model_config": dict(model.config),
             "model_state": model.state_dict()}
    torch.save(state, tmp_path / "best.pt")
    rebuilt = thesis_from_checkpoint(tmp_path / "best.pt")
    assert not rebuilt.training and rebuilt.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key]), key
    torch.save(dict(state, format="mastering-checkpoint/1"), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a checkpoint of the thesis baseline"):
        thesis_from_checkpoint(tmp_path / "other.pt")
