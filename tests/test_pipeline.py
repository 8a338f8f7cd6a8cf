"""The chain's shared pieces: subsonic high-pass, the loudness finish and its retry policy."""

import math

import numpy as np
import pyloudnorm as pyln
import pytest
import torch
from scipy import signal

from mastering.dsp.loudness import true_peak
from mastering.pipeline import (clean, excerpt_starts, finish_audio, limit_to_target, scale_params,
                                subsonic_highpass_sos)


def test_subsonic_highpass_is_a_24_db_per_octave_butterworth_at_20_hz():
    sos = subsonic_highpass_sos(48000)
    freqs = np.array([5.0, 10.0, 20.0, 40.0, 100.0])
    _, h = signal.sosfreqz(sos, worN=freqs, fs=48000)
    db = 20 * np.log10(np.abs(h))
    assert db[2] == pytest.approx(-3.01, abs=0.02)  # Butterworth: -3 dB at the corner
    assert db[0] - db[1] == pytest.approx(-24.0, abs=0.3)  # fourth order, far below the corner
    assert db[3] > -0.05 and db[4] > -0.001  # the bass is left alone
    assert subsonic_highpass_sos(48000, 0.0) is None


def test_clean_removes_the_offset_inside_the_file_only():
    x = np.full((2, 10), 0.5)
    y = clean(x, None, np.array([0.5, 0.5]), valid=6)
    assert np.all(y[:, :6] == 0.0) and np.all(y[:, 6:] == 0.5)


def test_excerpts_spread_over_the_track():
    assert excerpt_starts(100, 200, 8) == [0]
    starts = excerpt_starts(10_000, 1000, 4)
    assert starts[0] == 0 and starts[-1] == 9000 and len(starts) == 4


def test_scale_params_scales_processing_not_settings():
    params = {"eq": {"gain_db": torch.tensor([[4.0, -2.0]]), "freq_hz": torch.tensor([[100.0, 1e3]])},
              "dynamics": {"ratio": torch.tensor([3.0]), "makeup_gain_db": torch.tensor([2.0])}}
    half = scale_params(params, 0.5)
    assert torch.equal(half["eq"]["gain_db"], torch.tensor([[2.0, -1.0]]))
    assert torch.equal(half["eq"]["freq_hz"], params["eq"]["freq_hz"])
    assert float(half["dynamics"]["ratio"]) == 2.0 and float(half["dynamics"]["makeup_gain_db"]) == 1.0
    assert torch.equal(params["eq"]["gain_db"], torch.tensor([[4.0, -2.0]]))  # the input is not changed


def test_limit_to_target_raises_the_gain_by_the_shortfall_and_lowers_the_ceiling_by_the_excess():
    calls = []

    def run_pass(gain_db, ceiling_db):
        calls.append((gain_db, ceiling_db))
        lufs = -20.0 + gain_db - (1.0 if len(calls) == 1 else 1.1)  # limiting costs 1 LU, then a little more
        return lufs, 10 ** ((ceiling_db + (0.3 if len(calls) == 1 else 0.0)) / 20)  # and overshoots once

    gain_db, lufs, tp = limit_to_target(run_pass, 6.0, -14.0, -1.0)
    assert len(calls) == 2
    assert calls[1][0] == pytest.approx(7.0)  # +1 LU shortfall
    assert calls[1][1] == pytest.approx(calls[0][1] - 0.25 - 0.02)  # the 0.25 dB excess and a margin
    assert gain_db == pytest.approx(7.0) and lufs == pytest.approx(-14.1)


def test_limit_to_target_lowers_a_gain_that_overshot_the_target():
    calls = []

    def run_pass(gain_db, ceiling_db):
        calls.append(gain_db)
        return -20.0 + gain_db, 10 ** (ceiling_db / 20)  # no limiting

    limit_to_target(run_pass, 7.0, -14.0, -1.0)  # 1 LU too loud, as a wrong forecast would be
    assert calls == [7.0, 6.0]


def test_limit_to_target_stops_after_its_attempts():
    calls = []
    limit_to_target(lambda g, c: calls.append(g) or (-30.0, 0.5), 0.0, -14.0, -1.0, attempts=3)
    assert len(calls) == 3


@pytest.mark.parametrize("target", [-14.0, -9.0])
def test_finish_audio_reaches_the_target_under_the_ceiling(target):
    rng = np.random.default_rng(0)
    t = np.arange(3 * 44100) / 44100
    x = 0.05 * rng.standard_normal((2, t.size)) * (0.3 + np.abs(np.sin(2 * np.pi * 2 * t)))
    y = finish_audio(x, 44100, target, -1.0)
    assert pyln.Meter(44100).integrated_loudness(y.T) == pytest.approx(target, abs=0.35)
    assert true_peak(torch.from_numpy(y)[None], 44100).item() <= -1.0 + 1e-3
    assert math.isfinite(float(np.abs(y).max()))
    assert np.array_equal(finish_audio(np.zeros((2, 44100)), 44100, target), np.zeros((2, 44100)))


def test_chunked_unet_gives_the_one_call_output():
    """Pieces on the decimation grid with the receptive field as context: one call's output, any length."""
    from mastering.models.unet import WaveUNet
    from mastering.pipeline import ChunkedUNet, unet_reach

    torch.manual_seed(3)
    unet = WaveUNet(2, (4, 8, 8), cond_dim=6).eval()
    for film in (m for m in unet.modules() if hasattr(m, "proj")):
        torch.nn.init.normal_(film.proj.weight, std=0.3)
    assert unet_reach(unet) == 7 * (1 + 2 + 4 + 8) + (8 + 4 + 2) + 2 * (4 + 2 + 1)  # 133 samples
    chunked = ChunkedUNet(unet, chunk=1000)
    assert chunked.chunk % 16 == 0 and chunked.reach % 16 == 0 and chunked.reach >= 133
    z = torch.randn(1, 6)
    with torch.no_grad():
        for n in (999, 5003, 12800):
            x = torch.randn(1, 2, n)
            assert torch.allclose(chunked(x, z), unet(x, z), atol=1e-6, rtol=0), n


@pytest.mark.parametrize("skip", [True, False])
def test_folded_unet_gives_the_networks_output(skip):
    """FiLM folded into the convolutions, run as 2-D convolutions: the network's own output for the
    ``z`` it was folded for, a new fold for another ``z``, and the network itself under autograd."""
    from mastering.models.unet import WaveUNet
    from mastering.pipeline import ChunkedUNet, FoldedUNet

    torch.manual_seed(4)
    unet = WaveUNet(2, (4, 8, 12), cond_dim=6, skip=skip).eval()
    for film in (m for m in unet.modules() if hasattr(m, "proj")):
        torch.nn.init.normal_(film.proj.weight, std=0.3)
        torch.nn.init.normal_(film.proj.bias, std=0.3)
    folded = FoldedUNet(unet)
    with torch.no_grad():
        for n in (1, 17, 999, 4096):
            for z in (torch.randn(1, 6), torch.randn(1, 6)):
                x = torch.randn(1, 2, n)
                expected = unet(x, z)
                got = folded(x, z)
                assert got.shape == expected.shape and got.is_contiguous()
                assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), n
                assert torch.allclose(folded(x.expand(3, -1, -1), z), unet(x.expand(3, -1, -1), z), atol=1e-5)
        chunked = ChunkedUNet(FoldedUNet(unet), chunk=800)
        x, z = torch.randn(1, 2, 7001), torch.randn(1, 6)
        assert torch.allclose(chunked(x, z), unet(x, z), atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="pass z"):
            folded(x, None)  # a conditioned network still needs its z
    x = torch.randn(1, 2, 512, requires_grad=True)
    z = torch.randn(1, 6)
    folded(x, z).square().sum().backward()  # training sees the network itself
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_folded_unet_without_film_needs_no_z():
    from mastering.models.unet import WaveUNet
    from mastering.pipeline import FoldedUNet

    torch.manual_seed(5)
    unet = WaveUNet(1, (4, 8), cond_dim=None).eval()
    x = torch.randn(2, 1, 3001)
    with torch.no_grad():
        assert torch.allclose(FoldedUNet(unet)(x), unet(x), atol=1e-5, rtol=1e-5)
