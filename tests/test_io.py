import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from mastering.io import AudioError, audio_info, load_audio, save_audio, to_channels


def _write(path, data, sample_rate, subtype="PCM_24"):
    sf.write(str(path), data, sample_rate, subtype=subtype)
    return path


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000, 192000])
@pytest.mark.parametrize("channels", [1, 2])
def test_load_resamples_and_keeps_channels(tmp_path, sample_rate, channels):
    t = np.arange(int(0.5 * sample_rate)) / sample_rate
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    data = np.stack([tone] * channels, axis=1)
    path = _write(tmp_path / "x.wav", data, sample_rate, "FLOAT")
    x, rate = load_audio(path, sample_rate=44100)
    assert rate == 44100 and x.shape[0] == channels
    assert abs(x.shape[1] - round(0.5 * 44100)) <= 1
    # A 1 kHz tone survives resampling with its amplitude (interior samples, away from the edges).
    interior = x[:, 2000:-2000]
    assert torch.allclose(interior.abs().max(), torch.tensor(0.5), atol=5e-3)


def test_mono_to_stereo_and_back(tmp_path):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, 4410)
    path = _write(tmp_path / "m.wav", data, 44100, "FLOAT")
    x, _ = load_audio(path, channels=2)
    assert x.shape == (2, 4410) and torch.equal(x[0], x[1])
    assert to_channels(x, 1).shape == (1, 4410)


def test_compressed_formats(tmp_path):
    t = np.arange(44100) / 44100
    data = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None].repeat(2, 1)
    for ext, fmt, subtype in [("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS")]:
        path = tmp_path / f"x.{ext}"
        sf.write(str(path), data, 44100, format=fmt, subtype=subtype)
        x, rate = load_audio(path)
        assert x.shape[0] == 2 and rate == 44100 and abs(x.shape[1] - 44100) < 2048


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"this is not audio at all" * 10), "not a readable audio file"),
        (lambda p: p.write_bytes(b""), "not a readable audio file"),
        (lambda p: None, "no such file"),
    ],
)
def test_unreadable_files(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message):
        load_audio(path)


def test_zero_length_audio(tmp_path):
    path = _write(tmp_path / "empty.wav", np.zeros((0, 2)), 44100)
    with pytest.raises(AudioError, match="zero length|not a readable"):
        load_audio(path)


def test_nan_and_inf_rejected(tmp_path):
    data = np.zeros((1000, 2), np.float32)
    data[10, 0] = np.nan
    data[20, 1] = np.inf
    path = _write(tmp_path / "nan.wav", data, 44100, "FLOAT")
    with pytest.raises(AudioError, match="2 NaN/Inf"):
        load_audio(path)


def test_multichannel_refused_with_advice(tmp_path):
    path = _write(tmp_path / "six.wav", np.zeros((1000, 6)), 48000)
    assert audio_info(path).channels == 6
    with pytest.raises(AudioError, match="6-channel.*downmix"):
        load_audio(path)


def test_max_duration_guard(tmp_path):
    path = _write(tmp_path / "long.wav", np.zeros((44100 * 3, 1)), 44100)
    with pytest.raises(AudioError, match="longer than the limit"):
        load_audio(path, max_duration_s=2)
    x, _ = load_audio(path, offset_s=1.0, duration_s=0.5)
    assert x.shape[-1] == 22050


def test_save_is_atomic_and_roundtrips(tmp_path):
    x = 0.25 * torch.randn(2, 4410).clamp(-3, 3)
    out = save_audio(tmp_path / "y.wav", x, 44100, subtype="FLOAT")
    y, rate = load_audio(out)
    assert rate == 44100 and torch.allclose(x, y, atol=1e-7)
    assert [p.name for p in tmp_path.iterdir()] == ["y.wav"]  # no temporary left behind


def test_save_refuses_input_path_and_bad_audio(tmp_path):
    src = _write(tmp_path / "in.wav", np.zeros((100, 2)), 44100)
    before = src.read_bytes()
    with pytest.raises(AudioError, match="refusing to overwrite the input"):
        save_audio(src, torch.zeros(2, 100), 44100, protect=(src,))
    assert src.read_bytes() == before
    bad = torch.zeros(2, 100)
    bad[0, 5] = math.nan
    with pytest.raises(AudioError, match="NaN/Inf"):
        save_audio(tmp_path / "o.wav", bad, 44100)
    assert not (tmp_path / "o.wav").exists()


def test_save_into_missing_or_readonly_folder(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        save_audio(tmp_path / "nope" / "o.wav", torch.zeros(1, 10), 44100)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        # As root, permission bits are not enforced: use a folder no one can create files in.
        target = (ro if not os.access(ro, os.W_OK) else __import__("pathlib").Path("/proc")) / "o.wav"
        with pytest.raises(AudioError, match="not writable|could not write"):
            save_audio(target, torch.zeros(1, 10), 44100)
        assert not target.exists()
    finally:
        ro.chmod(0o700)
