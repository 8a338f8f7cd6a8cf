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


def test_a_run_away_render_stored_by_an_earlier_version_is_rendered_again(fake_renderer):
    """Earlier versions played chord symbols as a chord that never ended and stored those pieces as
    run-away skips; this version renders them (other stored skips still keep a piece out)."""
    root, calls = fake_renderer
    empty_tracks = pd.DataFrame(columns=mf.TRACK_COLUMNS)
    old = pd.DataFrame([
        {"source": "music21", "package": "corpus", "file": "bach/bwv1.6.mxl",
         "reason": "rendering runs past 1200 s (the MIDI does not end)", "sample_rate": 8000, "min_seconds": 30.0},
        {"source": "music21", "package": "corpus", "file": "haydn/opus1no1.mxl",
         "reason": "short piece: 12.0 s < 30 s", "sample_rate": 8000, "min_seconds": 30.0},
    ], columns=mf.SKIP_COLUMNS)
    rows, skip_rows, skips, _ = rendered.prepare_rendered(2, 8000, empty_tracks, old, progress=False)
    assert calls == ["bach/bwv1.6.mxl"] and [r["file"] for r in rows] == ["bach/bwv1.6.mxl"]
    assert skips == [("corpus", "haydn/opus1no1.mxl", "short piece: 12.0 s < 30 s")] and skip_rows == []


def test_a_run_away_render_of_this_version_stays_skipped(fake_renderer):
    """A piece that ran past the cap with this renderer would run away again (same score, same seed):
    its stored skip keeps it out, so a later run does not spend minutes converting it once more."""
    root, calls = fake_renderer
    reason = ("rendering runs past 1200 s (longer than twice the 10-min track limit, or a note that never "
              "ends)")
    stored = pd.DataFrame([{"source": "music21", "package": "corpus", "file": "bach/bwv1.6.mxl",
                            "reason": reason, "sample_rate": 8000, "min_seconds": 30.0}], columns=mf.SKIP_COLUMNS)
    rows, skip_rows, skips, _ = rendered.prepare_rendered(1, 8000, pd.DataFrame(columns=mf.TRACK_COLUMNS), stored,
                                                          progress=False)
    assert calls == ["haydn/opus1no1.mxl"] and [r["file"] for r in rows] == ["haydn/opus1no1.mxl"]
    assert ("corpus", "bach/bwv1.6.mxl", reason) in skips and skip_rows == []


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
    with pytest.raises(SkipTrack, match=r"runs past 2 s \(longer than"):  # FluidSynth watched and stopped
        rendered.render_piece(piece, rate, seed=0, max_render_s=2.0, precheck=False)


@needs_fluidsynth
@pytest.mark.parametrize("piece, notated_s", [("bach/bwv66.6.mxl", None), ("mozart/k80/movement2.mxl", 168.0)])
def test_the_written_out_length_is_the_rendered_length(piece, notated_s):
    """The pre-check's estimate: the music with its repeats written out (Mozart's K. 80 slow movement:
    168 s as notated, both halves repeated) lasts as long as the render, less its release tail."""
    x, _ = rendered.render_piece(piece, 8000, seed=0, precheck=False)
    seconds, estimate = x.shape[1] / 8000, rendered.written_out_seconds(piece)
    assert seconds - 3.0 <= estimate <= seconds
    if notated_s is not None:
        assert estimate > 1.9 * notated_s


@needs_fluidsynth
def test_a_piece_far_past_the_cap_is_skipped_before_its_midi_is_written(monkeypatch):
    """Beethoven's op. 18 no. 4 (all movements in one file) ran past the 1200 s cap after 15-30 min
    of music21 writing its MIDI; its written-out length (about 65 min) now skips it within seconds,
    as a final run-away, and neither music21's MIDI writer nor FluidSynth is started."""
    from mastering.data.debian import SkipTrack

    def never(*args, **kwargs):
        raise AssertionError("the MIDI was written")

    monkeypatch.setattr(rendered, "_score_to_midi", never)
    monkeypatch.setattr(rendered.subprocess, "Popen", never)
    with pytest.raises(SkipTrack, match=r"runs past 1200 s \(its repeats written out last about 65 min") as info:
        rendered.render_piece("beethoven/opus18no4.mxl", 8000, seed=0, max_render_s=1200.0)
    assert str(info.value).startswith(rendered.RUNAWAY_REASON)  # stored as final (not retried)
    with pytest.raises(SkipTrack, match=r"runs past 2 s \(its repeats written out"):  # a short piece, a tiny cap
        rendered.render_piece("bach/bwv66.6.mxl", 8000, seed=0, max_render_s=2.0)


def _read_midi(midi_path):
    from music21 import midi as m21midi

    midi_file = m21midi.MidiFile()
    midi_file.open(str(midi_path))
    midi_file.read()
    midi_file.close()
    return midi_file


def _held_notes(midi_path):
    """Notes still sounding when each track of a MIDI file ends (note-ons without a release)."""
    from music21 import midi as m21midi

    cvm = m21midi.ChannelVoiceMessages
    held = set()
    for track in _read_midi(midi_path).tracks:
        for e in track.events:
            if e.isDeltaTime():
                continue
            if e.type == cvm.NOTE_ON and e.velocity > 0:
                held.add((e.channel, e.pitch))
            elif e.type == cvm.NOTE_OFF or (e.type == cvm.NOTE_ON and e.velocity == 0):
                held.discard((e.channel, e.pitch))
            elif e.type in (cvm.CONTROLLER_CHANGE, m21midi.ChannelModeMessages.ALL_NOTES_OFF) and e.parameter1 == 123:
                held = {h for h in held if h[0] != e.channel}
    return held


def test_a_note_that_is_never_released_is_released_at_the_end_of_the_file(tmp_path):
    """A note-on without its note-off (FluidSynth would render it for ever) is released by the
    all-notes-off that ends every track, and the notes themselves are left as they were."""
    from music21 import midi as m21midi

    cvm = m21midi.ChannelVoiceMessages
    midi_file = m21midi.MidiFile()
    track = m21midi.MidiTrack(1)
    midi_file.tracks.append(track)
    for delta, pitch, velocity in ((0, 60, 90), (480, 60, 0), (0, 64, 90)):  # 64 is never released
        track.events.append(m21midi.DeltaTime(track, time=delta))
        track.events.append(m21midi.MidiEvent(track, type=cvm.NOTE_ON, channel=3))
        track.events[-1].pitch, track.events[-1].velocity = pitch, velocity
    track.events.append(m21midi.DeltaTime(track, time=480))
    track.events.append(m21midi.MidiEvent(track, type=m21midi.MetaEvents.END_OF_TRACK))
    track.events[-1].data = b""
    track.updateEvents()

    def write(path):
        midi_file.open(str(path), "wb")
        midi_file.write()
        midi_file.close()

    write(tmp_path / "stuck.mid")
    assert _held_notes(tmp_path / "stuck.mid") == {(3, 64)}
    rendered._release_at_end(midi_file)
    write(tmp_path / "released.mid")
    assert _held_notes(tmp_path / "released.mid") == set()
    events = [e for e in midi_file.tracks[0].events if not e.isDeltaTime()]
    assert [e.type for e in events[-3:]] == [cvm.CONTROLLER_CHANGE, cvm.CONTROLLER_CHANGE,
                                            m21midi.MetaEvents.END_OF_TRACK]
    assert sum(e.type == cvm.NOTE_ON for e in events) == 3


def test_chord_symbols_are_not_played_and_every_note_ends(tmp_path):
    """Monteverdi's madrigal 3.2 carries zero-length chord symbols that music21 writes as chords
    whose last one never ends; rendered MIDI holds only the five sung parts and releases them."""
    from music21 import corpus, harmony

    from music21 import midi as m21midi

    piece = "monteverdi/madrigal.3.2"
    score = corpus.parse(piece).stripTies()
    symbols = [n for n in score.recurse().notes if isinstance(n, harmony.Harmony)]
    sung = sum(len(n.pitches) for n in score.recurse().notes if not isinstance(n, harmony.Harmony))
    assert len(symbols) > 0
    meta = rendered._score_to_midi(piece, tmp_path / "p.mid", 0)
    assert len(meta["programs"]) == 5
    assert _held_notes(tmp_path / "p.mid") == set()
    note_ons = sum(1 for t in _read_midi(tmp_path / "p.mid").tracks for e in t.events if not e.isDeltaTime()
                   and e.type == m21midi.ChannelVoiceMessages.NOTE_ON and e.velocity > 0)
    assert note_ons == sung  # one note-on per sung note, none for the chord symbols


@needs_fluidsynth
def test_a_piece_that_rendered_for_ever_now_ends_with_its_music(tmp_path):
    """Before the fix this piece rendered hours of a held chord (skipped at the 1200 s cap); now its
    audio ends within seconds of the score's own length (388 quarter notes at 120 bpm = 194 s)."""
    x, _ = rendered.render_piece("monteverdi/madrigal.3.2", 8000, seed=0, max_render_s=400.0)
    seconds = x.shape[1] / 8000
    assert 190.0 < seconds < 205.0
