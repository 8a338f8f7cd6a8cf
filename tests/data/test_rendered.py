"""Rendering the music21 corpus: an interrupted run does not render its pieces again."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mastering.data import manifest as mf
from mastering.data import rendered


@pytest.fixture
def fake_renderer(tmp_path, monkeypatch):
    """Two corpus pieces rendered as 31 s of noise; counts the renders."""
    monkeypatch.setenv("MASTERING_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(rendered.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(rendered, "SOUNDFONT", tmp_path)  # exists
    monkeypatch.setattr(rendered, "corpus_pieces", lambda: ["bach/bwv1.6.mxl", "haydn/opus1no1.mxl"])
    calls = []

    def render(piece, sample_rate, seed=0, timeout_s=600.0):
        calls.append(piece)
        rng = np.random.default_rng(len(calls))
        x = torch.from_numpy(0.1 * rng.standard_normal((2, int(31 * sample_rate))).astype(np.float32))
        return x, {"ensemble": "test", "programs": [0]}

    monkeypatch.setattr(rendered, "render_piece", render)
    return tmp_path, calls


def test_an_interrupted_render_is_resumed_from_the_cache(fake_renderer):
    root, calls = fake_renderer
    empty_tracks = pd.DataFrame(columns=mf.TRACK_COLUMNS)
    empty_skips = pd.DataFrame(columns=mf.SKIP_COLUMNS)
    rows, _, _, error = rendered.prepare_rendered(2, 8000, empty_tracks, empty_skips, progress=False)
    assert error == "" and len(rows) == 2 and len(calls) == 2
    # the run dies before the manifest is written: the next run reuses both WAVs and their rows
    again, _, _, _ = rendered.prepare_rendered(2, 8000, empty_tracks, empty_skips, progress=False)
    assert len(calls) == 2
    assert again == rows


@pytest.mark.parametrize("damage", ["rate", "truncated", "no-sidecar"])
def test_a_cached_render_that_does_not_match_is_rendered_again(fake_renderer, damage):
    root, calls = fake_renderer
    empty_tracks = pd.DataFrame(columns=mf.TRACK_COLUMNS)
    empty_skips = pd.DataFrame(columns=mf.SKIP_COLUMNS)
    rows, _, _, _ = rendered.prepare_rendered(1, 8000, empty_tracks, empty_skips, progress=False)
    wav = root / rows[0]["path"]
    side = wav.with_name(wav.name + ".json")
    if damage == "rate":
        rendered.prepare_rendered(1, 16000, empty_tracks, empty_skips, progress=False)
        assert len(calls) == 2
        return
    if damage == "truncated":
        row = json.loads(side.read_text())
        row["duration_s"] += 5.0
        side.write_text(json.dumps(row))
    else:
        side.unlink()
    rendered.prepare_rendered(1, 8000, empty_tracks, empty_skips, progress=False)
    assert len(calls) == 2


def test_a_timeout_is_retried_by_the_next_run_and_never_stored(fake_renderer, monkeypatch):
    from mastering.data.debian import SkipTrack

    root, calls = fake_renderer
    fast = rendered.render_piece

    def slow(piece, sample_rate, seed=0, timeout_s=1800.0):
        calls.append(piece)
        raise SkipTrack(f"{rendered.TIMEOUT_REASON} after {timeout_s:.0f} s (retried by the next run)")

    empty_tracks = pd.DataFrame(columns=mf.TRACK_COLUMNS)
    monkeypatch.setattr(rendered, "render_piece", slow)
    rows, skip_rows, skips, _ = rendered.prepare_rendered(1, 8000, empty_tracks, pd.DataFrame(columns=mf.SKIP_COLUMNS),
                                                          progress=False)
    assert rows == [] and skip_rows == [] and len(skips) == 2  # both pieces counted as skipped this run
    # a time-out stored by an earlier version of the code does not keep the piece out either
    old = pd.DataFrame([{"source": "music21", "package": "corpus", "file": "bach/bwv1.6.mxl",
                         "reason": "fluidsynth timed out", "sample_rate": 8000, "min_seconds": 30.0}],
                       columns=mf.SKIP_COLUMNS)
    monkeypatch.setattr(rendered, "render_piece", fast)
    calls.clear()
    rows, _, _, _ = rendered.prepare_rendered(1, 8000, empty_tracks, old, progress=False)
    assert calls == ["bach/bwv1.6.mxl"] and rows[0]["file"] == "bach/bwv1.6.mxl"


needs_fluidsynth = pytest.mark.skipif(
    rendered.shutil.which("fluidsynth") is None or not rendered.SOUNDFONT.exists(),
    reason="fluidsynth / fluid-soundfont-gm not installed (make sysdeps)")


@needs_fluidsynth
def test_raw_rendering_equals_fluidsynths_own_wav(tmp_path):
    """The raw 16-bit stream read back is the same audio FluidSynth writes as a WAV (channel order,
    endianness, scale), and a render that runs past its cap is stopped and skipped."""
    import subprocess

    import soundfile as sf

    from mastering.data.debian import SkipTrack

    piece, rate = "bach/bwv66.6.mxl", 22050
    x, meta = rendered.render_piece(piece, rate, seed=0)
    rendered._score_to_midi(piece, tmp_path / "p.mid", 0)
    subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(tmp_path / "p.wav"), "-r", str(rate), "-g", "0.5",
                    str(rendered.SOUNDFONT), str(tmp_path / "p.mid")], check=True, capture_output=True)
    ref, ref_rate = sf.read(tmp_path / "p.wav", dtype="float32", always_2d=True)
    assert ref_rate == rate and x.shape[0] == 2 and x.shape[1] > 20 * rate
    n = x.shape[1]
    np.testing.assert_array_equal(x.numpy(), ref[:n].T)  # the tail after the last sound is trimmed
    assert np.abs(ref[n:]).max(initial=0.0) <= 10 ** (-70 / 20) + 1 / 32768
    with pytest.raises(SkipTrack, match="runs past 2 s"):
        rendered.render_piece(piece, rate, seed=0, max_render_s=2.0)
