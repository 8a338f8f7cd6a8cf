"""The stimuli generator (listening_test/stimuli.py) on synthetic music written to temporary files.

Loudness is checked against pyloudnorm (ITU-R BS.1770-4) on the written files; the placeholder
EQs against their intended spectral direction and, for a shelf, against its gain at a test tone.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch

from listening_test.cli import main as cli_main
from listening_test.stimuli import (
    StimulusSystem,
    _pedalboard_eq,
    adaptive_gain_db,
    band_share_db,
    generate_stimuli,
    integrated_lufs,
    load_systems,
    loudest_clip,
    loudest_excerpt,
    normalize_loudness,
    placeholder_systems,
    select_tracks,
)
from mastering.evaluation.listening_manifest import load_manifest
from mastering.io import AudioError, load_audio

SOURCE_RATE = 44100


def synthetic_music(seconds: float, sample_rate: int, seed: int, channels: int = 2, tilt: float = 0.0) -> np.ndarray:
    """Notes (harmonic tones with decaying envelopes) over noise, ``(samples, channels)`` as soundfile
    writes it.

    ``tilt`` > 0 adds high-frequency energy (a brighter track), < 0 removes it.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = np.zeros(n)
    seg = t[: int(0.6 * sample_rate)]
    env = np.exp(-seg * 6.0)
    for start in range(0, n, int(0.25 * sample_rate)):
        f0 = rng.choice([110.0, 147.0, 196.0, 262.0, 330.0])
        h = np.arange(1, 12)[:, None]
        note = ((0.3 / h ** (1.2 - 0.4 * tilt)) * np.sin(2 * np.pi * f0 * h * seg + rng.uniform(0, 6.28, (11, 1)))).sum(0)
        stop = min(n, start + seg.size)
        x[start:stop] += (env * note)[: stop - start]
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.maximum(np.arange(n // 2 + 1), 1) ** (0.5 - 0.25 * tilt), n)
    x = x + 0.5 * noise / np.abs(noise).max()
    x = 0.5 * x / np.abs(x).max()
    return np.stack([x * (1.0 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracks")
    paths = []
    for k in range(3):
        path = folder / f"song{k}.wav"
        sf.write(path, synthetic_music(3.0, SOURCE_RATE, seed=k), SOURCE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def read(path):
    data, rate = sf.read(path, always_2d=True)
    return data, rate


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_every_stimulus_is_loudness_matched(tracks, tmp_path, sample_rate, channels):
    manifest = generate_stimuli(tracks[:1], tmp_path / "stim", placeholder_systems(), ("bright",),
                                sample_rate=sample_rate, channels=channels, clip_s=1.0)
    m = load_manifest(manifest.parent)
    files = sorted({r.path for r in m.rows})
    assert len(files) == 1 + 3
    for rel in files:
        data, rate = read(manifest.parent / rel)
        assert rate == sample_rate and data.shape == (sample_rate, channels)
        lufs = pyloudnorm.Meter(rate).integrated_loudness(data)
        assert lufs == pytest.approx(-23.0, abs=0.05), rel  # PCM_24 quantisation only
        assert 20 * math.log10(np.abs(data).max()) <= -1.0


def test_layout_and_manifest(tracks, tmp_path):
    out = tmp_path / "stim"
    manifest = generate_stimuli(tracks[:2], out, placeholder_systems(), ("warm", "clear"), clip_s=1.0)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 4 * 2  # items x conditions x targets: one row per rating trial
    assert {(r["item"], r["condition"], r["target"]) for r in rows} == {
        (f"item{i:02d}", c, t) for i in (1, 2)
        for c in ("original", "adaptive_semantic_eq", "floweq_style", "static_eq")
        for t in ("warm", "clear")}
    for r in rows:
        if r["condition"] == "original":
            assert r["path"] == f"original/{r['item']}.wav" and r["placeholder"] == "0"
        else:
            assert r["path"] == f"{r['condition']}/{r['target']}/{r['item']}.wav"
            assert r["placeholder"] == "1" and r["system"].startswith("placeholder:")
        assert (out / r["path"]).is_file() and float(r["integrated_lufs"]) == pytest.approx(-23.0, abs=0.01)
    assert {r["source"] for r in rows} == {"song0.wav", "song1.wav"}
    with pytest.raises(ValueError, match="exists"):
        generate_stimuli(tracks[:1], out, placeholder_systems(), ("warm",), clip_s=1.0)
    generate_stimuli(tracks[:1], out, placeholder_systems(), ("warm",), clip_s=1.0, overwrite=True)
    assert len(load_manifest(out).rows) == 4


def test_placeholder_eqs_move_the_spectrum_the_intended_way(tracks, tmp_path):
    out = tmp_path / "stim"
    generate_stimuli(tracks[:1], out, placeholder_systems(), ("warm", "bright", "clear"), clip_s=1.5)

    def band_to_rest_db(rel, lo, hi):
        data, rate = read(out / rel)
        share = 10 ** (band_share_db(torch.from_numpy(data.T.copy()), rate, lo, hi) / 10)
        return 10 * math.log10(share / (1 - share))

    bands = {"warm": (20.0, 250.0), "bright": (4000.0, 16000.0), "clear": (2000.0, 5000.0)}
    for target, (lo, hi) in bands.items():
        base = band_to_rest_db("original/item01.wav", lo, hi)
        for condition in ("adaptive_semantic_eq", "floweq_style", "static_eq"):
            gain = band_to_rest_db(f"{condition}/{target}/item01.wav", lo, hi) - base
            # The adaptive placeholder may boost as little as 1 dB, half of it at the shelf corner.
            assert gain > 0.25, (condition, target, gain)


def test_adaptive_placeholder_depends_on_the_input():
    dark = torch.from_numpy(synthetic_music(2.0, SOURCE_RATE, 0, tilt=-1.0).T.copy()).unsqueeze(0)
    bright = torch.from_numpy(synthetic_music(2.0, SOURCE_RATE, 0, tilt=1.0).T.copy()).unsqueeze(0)
    assert band_share_db(bright, SOURCE_RATE, 4000, 16000) > band_share_db(dark, SOURCE_RATE, 4000, 16000) + 3
    g_dark, g_bright = adaptive_gain_db(dark, SOURCE_RATE, "bright"), adaptive_gain_db(bright, SOURCE_RATE, "bright")
    assert 1.0 <= g_bright < g_dark <= 8.0


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_shelf_gain_matches_its_setting(sample_rate):
    """A +5 dB high shelf at 4 kHz: +5 dB well above, 0 dB well below the corner (RBJ cookbook shelf)."""
    t = torch.arange(sample_rate) / sample_rate
    for freq_hz, expected_db in ((100.0, 0.0), (10000.0, 5.0)):
        x = (0.1 * torch.sin(2 * math.pi * freq_hz * t)).reshape(1, 1, -1).repeat(1, 2, 1)
        y = _pedalboard_eq(x, sample_rate, [("high_shelf", 4000.0, 5.0, 0.707)])
        gain_db = 20 * math.log10(float(y[..., sample_rate // 2:].std() / x[..., sample_rate // 2:].std()))
        assert gain_db == pytest.approx(expected_db, abs=0.1)


def test_level_only_system_gives_the_original(tracks, tmp_path):
    """Loudness matching removes pure level differences: a system that only halves the level
    yields the same samples as the original, so loudness cannot bias the ratings."""
    out = tmp_path / "stim"
    generate_stimuli(tracks[:1], out, {"quieter": lambda x, sample_rate, target: 0.5 * x}, ("warm",), clip_s=1.0)
    a, _ = read(out / "original/item01.wav")
    b, _ = read(out / "quieter/warm/item01.wav")
    assert np.abs(a - b).max() < 2e-6  # one PCM_24 step


def test_normalize_loudness_matches_pyloudnorm(tracks):
    data, rate = sf.read(tracks[0], always_2d=True)
    x = torch.from_numpy(data.T.copy())
    ours = normalize_loudness(x, rate, -20.0).numpy().T
    meter = pyloudnorm.Meter(rate)
    ref = pyloudnorm.normalize.loudness(data, meter.integrated_loudness(data), -20.0)
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    assert integrated_lufs(torch.from_numpy(ours.T.copy()), rate) == pytest.approx(-20.0, abs=1e-6)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_integrated_lufs_reads_as_pyloudnorm(sample_rate, channels):
    """mastering.dsp.loudness measures the stimuli; pyloudnorm's default meter is the reference."""
    data = synthetic_music(2.0, sample_rate, seed=4, channels=channels).astype(np.float64)
    ref = pyloudnorm.Meter(sample_rate).integrated_loudness(data)
    x = torch.from_numpy(data.T.copy())
    assert integrated_lufs(x, sample_rate) == pytest.approx(ref, abs=1e-6)
    assert integrated_lufs(x.float(), sample_rate) == pytest.approx(ref, abs=1e-4)
    silence = torch.zeros(channels, sample_rate)
    assert integrated_lufs(silence, sample_rate) == float("-inf") == pyloudnorm.Meter(sample_rate).integrated_loudness(
        silence.double().numpy().T)
    with pytest.raises(AudioError, match="silent"):
        normalize_loudness(silence, sample_rate)
    with pytest.raises(AudioError, match="0.4 s"):
        integrated_lufs(x[:, : int(0.4 * sample_rate) - 1], sample_rate)
    with pytest.raises(AudioError, match="channels, samples"):
        integrated_lufs(x[None], sample_rate)


def test_loudest_excerpt_finds_the_loud_part():
    rate = 8000
    x = torch.zeros(2, 5 * rate)
    x[:, 3 * rate:4 * rate] = 0.5 * torch.sin(torch.arange(rate) * 0.3)
    x[:, : 3 * rate] = 0.01 * torch.sin(torch.arange(3 * rate) * 0.3)
    excerpt, start = loudest_excerpt(x, rate, clip_s=1.0)
    assert start == 3 * rate and excerpt.shape == (2, rate)
    with pytest.raises(AudioError, match="shorter"):
        loudest_excerpt(x, rate, clip_s=6.0)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_loudest_clip_streams_to_the_whole_track_excerpt(tmp_path, sample_rate, channels):
    path = tmp_path / "long.wav"  # 20 s: several blocks of the streamed read
    sf.write(path, synthetic_music(20.0, SOURCE_RATE, seed=7), SOURCE_RATE, subtype="PCM_16")
    audio, _ = load_audio(path, sample_rate=sample_rate, channels=channels)
    ref, ref_start = loudest_excerpt(audio, sample_rate, clip_s=8.0)
    clip, start = loudest_clip(path, sample_rate, channels, clip_s=8.0)
    assert start == ref_start and clip.shape == ref.shape and clip.dtype == torch.float32
    if sample_rate == SOURCE_RATE:
        assert torch.equal(clip, ref)
    else:  # resampled block by block: equal to float rounding
        assert float((clip - ref).abs().max()) < 1e-6
    with pytest.raises(AudioError, match="shorter"):
        loudest_clip(path, sample_rate, channels, clip_s=21.0)


def test_bad_systems_and_inputs_are_refused(tracks, tmp_path):
    def run(systems, targets=("warm",), **kw):
        return generate_stimuli(tracks[:1], tmp_path / "s", systems, targets, clip_s=1.0, overwrite=True, **kw)

    with pytest.raises(AudioError, match="shape"):
        run({"short": lambda x, sample_rate, target: x[..., :-1]})
    with pytest.raises(AudioError, match="shape"):
        run({"numpy": lambda x, sample_rate, target: x.numpy()})
    with pytest.raises(AudioError, match="NaN"):
        run({"nan": lambda x, sample_rate, target: x * float("nan")})

    def click(x, sample_rate, target):
        y = x.clone()
        y[..., 100] = 50.0
        return y

    with pytest.raises(AudioError, match="sample peak"):
        run({"click": click})
    with pytest.raises(ValueError, match="anchor"):
        run({"original": lambda x, sample_rate, target: x})
    with pytest.raises(ValueError, match="lower-case adjective"):
        run({"id": lambda x, sample_rate, target: x}, targets=("Warm!",))
    with pytest.raises(ValueError, match="knows the targets|know the targets"):
        run(placeholder_systems(), targets=("crunchy",))
    with pytest.raises(ValueError, match="clip_s"):
        generate_stimuli(tracks[:1], tmp_path / "s", placeholder_systems(), clip_s=0.5)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((SOURCE_RATE * 2, 2), np.float32), SOURCE_RATE)
    with pytest.raises(AudioError, match="silent"):
        generate_stimuli([silent], tmp_path / "s2", placeholder_systems(), ("warm",), clip_s=1.0)


def test_custom_system_description_and_flag(tracks, tmp_path):
    system = StimulusSystem(lambda x, sample_rate, target: 0.9 * x, "semantic EQ v1 (checkpoint abc)", False)
    manifest = generate_stimuli(tracks[:1], tmp_path / "s", {"adaptive_semantic_eq": system}, ("warm",), clip_s=1.0)
    with open(manifest, newline="") as fh:
        row = [r for r in csv.DictReader(fh) if r["condition"] == "adaptive_semantic_eq"][0]
    assert row["system"] == "semantic EQ v1 (checkpoint abc)" and row["placeholder"] == "0"


def test_select_tracks(tracks, tmp_path):
    folder = tracks[0].parent
    a = select_tracks(folder, 2, seed=5)
    assert a == select_tracks(folder, 2, seed=5) and len(set(a)) == 2
    assert {tuple(select_tracks(folder, 1, seed=s)) for s in range(20)} == {(p,) for p in tracks}
    with pytest.raises(AudioError, match="3 readable track"):
        select_tracks(folder, 4)
    with pytest.raises(AudioError, match="at least 10"):
        select_tracks(folder, 1, min_duration_s=10.0)
    with pytest.raises(AudioError, match="no such folder"):
        select_tracks(tmp_path / "nope", 1)


def test_load_systems():
    assert set(load_systems("placeholder")) == set(load_systems("listening_test.stimuli:placeholder_systems"))
    systems = load_systems("listening_test.stimuli:placeholder_systems")
    assert set(systems) == {"adaptive_semantic_eq", "floweq_style", "static_eq"}
    assert all(s.placeholder for s in systems.values())
    with pytest.raises(ValueError, match="MODULE:FUNCTION"):
        load_systems("listening_test.stimuli")
    with pytest.raises(ValueError, match="not a function"):
        load_systems("listening_test.stimuli:nothing_here")


def test_cli_generates_a_servable_set(tracks, tmp_path):
    out = tmp_path / "stim"
    code = cli_main(["stimuli", "--tracks", str(tracks[0].parent), "--out", str(out), "--n-items", "2",
                     "--clip-s", "1", "--targets", "warm", "bright", "--seed", "3", "--systems", "placeholder"])
    assert code == 0
    m = load_manifest(out)
    assert len(m.rows) == 2 * 4 * 2 and set(m.conditions) == {"original", "adaptive_semantic_eq",
                                                             "floweq_style", "static_eq"}
    from listening_test.app import create_app

    app = create_app(out, tmp_path / "db.sqlite", "x" * 16)  # default design: 4 checks, 4 repeats
    client = app.test_client()
    assert client.post("/api/session", json={"consent": True}).status_code == 201
    state = client.get("/api/state").get_json()
    assert state["progress"]["total"] == 16 + 8
    assert client.get(state["trial"]["audio_url"]).data[:4] == b"RIFF"
    assert cli_main(["stimuli", "--tracks", str(tmp_path / "none"), "--out", str(out)]) == 1


def test_the_command_defaults_to_the_real_systems_and_says_when_they_are_not_built(tracks, tmp_path, monkeypatch,
                                                                                   capsys):
    import listening_test.systems as real
    from listening_test.cli import build_parser
    from listening_test.stimuli import REAL_SYSTEMS_SPEC

    assert build_parser().parse_args(["stimuli", "--out", "x"]).systems == REAL_SYSTEMS_SPEC

    def missing(**_):
        raise FileNotFoundError("no semantic EQ bundle found: build one with `python -m mastering.semantic build`")

    monkeypatch.setattr(real, "load_semantic_eq", missing)
    out = tmp_path / "stim"
    code = cli_main(["stimuli", "--tracks", str(tracks[0].parent), "--out", str(out), "--n-items", "1",
                     "--clip-s", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "mastering.semantic build" in err and "--systems placeholder" in err
    assert not out.exists()


def test_split_tracks_draws_from_the_prepared_test_split(monkeypatch, tmp_path):
    import pandas as pd

    import mastering.data.manifest as track_manifest
    from listening_test.stimuli import split_tracks

    calls = []
    table = pd.DataFrame({"path": [str(tmp_path / f"t{i}.wav") for i in range(6)],
                          "duration_s": [30.0, 30.0, 2.0, 30.0, 30.0, 30.0]})

    def fake_load(split=None, kind=None, **kw):
        calls.append((split, kind))
        return table

    monkeypatch.setattr(track_manifest, "load_manifest", fake_load)
    picked = split_tracks(3, seed=1, min_duration_s=8.0)
    assert calls == [("test", "real")]
    assert picked == split_tracks(3, seed=1, min_duration_s=8.0) and len(set(picked)) == 3
    assert tmp_path / "t2.wav" not in picked  # too short for the clip
    with pytest.raises(AudioError, match="holds 5 real track"):
        split_tracks(6, min_duration_s=8.0)
    split_tracks(3, split="test+valid", min_duration_s=8.0)
    assert calls[-1] == (["test", "valid"], "real")

    def no_data(**kw):
        raise FileNotFoundError("no track manifest")

    monkeypatch.setattr(track_manifest, "load_manifest", no_data)
    with pytest.raises(AudioError, match="--tracks DIR"):
        split_tracks(1)
