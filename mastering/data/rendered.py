"""Rendered music: scores of music21's bundled corpus, written to MIDI, rendered with FluidSynth.

The pieces are taken round-robin from a fixed list of corpus folders (Joplin, Haydn, Mozart and
Beethoven string quartets, Bach chorales, Monteverdi madrigals) so the first few already differ in
style. Each part gets a General MIDI program from its instrument name (violin 40, viola 41, cello
42, piano 0, ...); vocal and unnamed parts get one ensemble (strings, organ, brass, woodwinds,
choir) chosen from a hash of ``seed`` and the piece, so the same seed renders the same audio.
FluidSynth (Debian ``fluidsynth``) renders with the FluidR3 General MIDI soundfont (Debian
``fluid-soundfont-gm``, MIT licence); the corpus scores are public domain or CC (music21's corpus
licence), recorded per track as ``license``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import data_dir
from . import manifest as mf
from .debian import SkipTrack, natural_key

log = logging.getLogger(__name__)

__all__ = ["SOUNDFONT", "CORPUS_FOLDERS", "corpus_pieces", "gm_program", "render_piece", "prepare_rendered"]

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
#: Corpus folders visited round-robin (each in its natural order).
CORPUS_FOLDERS = ("joplin", "haydn", "mozart", "beethoven", "bach", "monteverdi")
LICENSE = "music21 corpus (public domain / CC-BY, see music21 corpus licence); FluidR3_GM soundfont MIT"
MIN_SECONDS = 30.0
MAX_SECONDS = 600.0

_PROGRAMS = {
    "violin": 40, "viola": 41, "violoncello": 42, "cello": 42, "contrabass": 43, "double bass": 43,
    "piano": 0, "harpsichord": 6, "organ": 19, "flute": 73, "piccolo": 72, "oboe": 68,
    "english horn": 69, "clarinet": 71, "bassoon": 70, "horn": 60, "trumpet": 56, "trombone": 57,
    "tuba": 58, "harp": 46, "guitar": 24, "lute": 24,
}
#: Ensembles for vocal/unnamed parts: GM programs from the highest to the lowest part.
_ENSEMBLES = {
    "strings": (40, 40, 41, 42, 43),
    "organ": (19, 19, 19, 19, 19),
    "brass": (56, 56, 60, 57, 58),
    "woodwinds": (73, 68, 71, 70, 70),
    "choir": (52, 52, 52, 52, 52),
}


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def corpus_pieces() -> list[str]:
    """Corpus-relative paths of candidate pieces, round-robin over :data:`CORPUS_FOLDERS`."""
    from music21 import corpus


    root = Path(corpus.getComposer("bach")[0]).parents[1]
    lists = []
    for folder in CORPUS_FOLDERS:
        files = sorted(
            {Path(p).relative_to(root).as_posix() for p in corpus.getComposer(folder)
             if Path(p).suffix in (".mxl", ".xml", ".musicxml")},
            key=natural_key,
        )
        lists.append(files)
    out, i = [], 0
    while any(i < len(lst) for lst in lists):
        out.extend(lst[i] for lst in lists if i < len(lst))
        i += 1
    return out


def gm_program(part_name: str | None) -> int | None:
    """General MIDI program for an instrument/part name, ``None`` when it is a voice or unknown."""
    name = (part_name or "").lower()
    for key, program in _PROGRAMS.items():
        if key in name:
            return program
    return None


def _release_at_end(midi_file) -> None:
    """Release every channel at the end of each track (sustain off, then all notes off, CC 64/123).

    FluidSynth 2.x keeps rendering until the last voice has died away, so one note-on without its
    note-off (music21 writes such notes for zero-length chord symbols) renders for ever: the
    Monteverdi madrigal 3.2 became hours of a held brass chord. Releasing all notes at the end of
    the file keeps the piece's own ending and lets the release tail finish.
    """
    from music21 import midi as m21midi

    cvm = m21midi.ChannelVoiceMessages
    for track in midi_file.tracks:
        channels = sorted({e.channel for e in track.events
                           if not e.isDeltaTime() and e.type in (cvm.NOTE_ON, cvm.NOTE_OFF) and e.channel})
        if not channels:
            continue
        if len(track.events) < 2 or track.events[-1].type != m21midi.MetaEvents.END_OF_TRACK:
            continue
        extra = []
        for channel in channels:
            for controller in (64, 123):
                event = m21midi.MidiEvent(track, type=cvm.CONTROLLER_CHANGE, channel=channel)
                event.parameter1, event.parameter2 = controller, 0
                extra += [event, m21midi.DeltaTime(track, time=0)]
        # ... DeltaTime(d), controllers (each followed by DeltaTime 0), END_OF_TRACK
        track.events[-1:-1] = extra


def _score_to_midi(piece: str, midi_path: Path, seed: int) -> dict:
    from music21 import corpus, harmony, instrument
    from music21.midi import translate

    score = corpus.parse(piece)
    # chord symbols are editorial annotations, not parts: music21 would play them as zero-length
    # chords whose note-offs come before their note-ons (the last one then never ends)
    for symbol in list(score.recurse().getElementsByClass(harmony.Harmony)):
        symbol.activeSite.remove(symbol)
    parts = list(score.parts)
    ensemble_names = sorted(_ENSEMBLES)
    ensemble = ensemble_names[_hash_int(f"{seed}:{piece}") % len(ensemble_names)]
    programs = []
    for i, part in enumerate(parts):
        inst = part.getInstrument(returnDefault=True)
        program = gm_program(part.partName) or gm_program(getattr(inst, "instrumentName", None))
        if program is None:
            palette = _ENSEMBLES[ensemble]
            program = palette[min(i, len(palette) - 1)]
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        new = instrument.Instrument()
        new.midiProgram = int(program)
        part.insert(0, new)
        programs.append(int(program))
    midi_file = translate.music21ObjectToMidiFile(score, addEndDelay=True)
    _release_at_end(midi_file)
    midi_file.open(str(midi_path), "wb")
    try:
        midi_file.write()
    finally:
        midi_file.close()
    return {"programs": programs, "ensemble": ensemble}


#: What a skip for a FluidSynth time-out says. A time-out depends on the machine's load (a niced full
#: build beside busy notebooks), not on the piece, so it is never stored as a skip: the next run
#: tries the piece again.
TIMEOUT_REASON = "fluidsynth timed out"
#: What a skip for a render past its cap says: a very long piece (Beethoven's op. 18 no. 4 as one
#: file), or a note that never ends. Such a skip is final (the same score and seed render the same):
#: op. 18 no. 4 spends 15-30 min in music21 before it runs away, on every run that retried it.
RUNAWAY_REASON = "rendering runs past"
#: How versions that played chord symbols ended that reason; they stored 33 madrigals with it, which
#: render now (a few seconds each), so skips with this ending are rendered again.
LEGACY_RUNAWAY_NOTE = "(the MIDI does not end)"


#: A score whose music, repeats written out, lasts more than this many times the render cap is
#: skipped before music21 writes its MIDI (:func:`written_out_seconds`): writing out Beethoven's
#: op. 18 no. 4 (all movements in one file) took music21 15-30 min, before FluidSynth ran past the
#: cap anyway. The estimate can miss the render by a fifth either way (Joplin's Maple Leaf Rag: 155 s
#: written out, 130 s rendered; Beethoven's op. 18 no. 1, finale: 381 s and 399 s), hence the margin.
RUNAWAY_ESTIMATE_FACTOR = 2.0


def written_out_seconds(piece: str) -> float | None:
    """Seconds of music in ``piece``'s first part with its repeats written out (music21's repeat
    expander, the part's metronome marks, 120 crotchets a minute before the first): an estimate of
    how long a render lasts, or ``None`` where music21 cannot expand the repeats (the MIDI writer then
    decides). Spanners other than repeat brackets (slurs, hairpins, ...) are dropped first, from this
    copy only: they do not change the length, and music21 spends minutes moving them in long scores."""
    from music21 import corpus, repeat, spanner

    try:
        part = corpus.parse(piece).parts[0]  # a fresh copy: the MIDI is written from another parse
        for sp in list(part.recurse().getElementsByClass(spanner.Spanner)):
            if not isinstance(sp, spanner.RepeatBracket):
                sp.activeSite.remove(sp)
        expander = repeat.Expander(part)
        music = expander.process() if expander.isExpandable() else part
        music = part if music is None else music
        return float(sum((end - start) * 60.0 / mark.getQuarterBPM()
                         for start, end, mark in music.metronomeMarkBoundaries()))
    except Exception:  # music21 raises many kinds on odd scores
        return None


def render_piece(piece: str, sample_rate: int, seed: int = 0, timeout_s: float = 1800.0,
                 max_render_s: float | None = None, precheck: bool = True):
    """Render one corpus piece to stereo audio ``[2, samples]`` at ``sample_rate``.

    FluidSynth writes raw 16-bit little-endian stereo, and the file is watched while it grows: a
    render that never ends (seen in the corpus before chord symbols were dropped and every track
    ended with all-notes-off: a 34 kB file rendering tens of hours, 30 GB an hour of disk) is
    stopped after ``max_render_s`` (default ``2 * MAX_SECONDS``) and skipped.

    Raises:
        SkipTrack: FluidSynth/soundfont missing, the score cannot be parsed, rendering fails,
            runs past ``max_render_s`` of audio, or takes longer than ``timeout_s`` of wall time
            (:data:`TIMEOUT_REASON`); with ``precheck``, also a score whose repeats written out
            last more than :data:`RUNAWAY_ESTIMATE_FACTOR` times ``max_render_s``, before any MIDI
            is written (:data:`RUNAWAY_REASON`).
    """
    import time

    import torch


    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise SkipTrack("fluidsynth or the GM soundfont is missing (apt-get install fluidsynth fluid-soundfont-gm)")
    max_render_s = float(max_render_s if max_render_s is not None else 2 * MAX_SECONDS)
    limit_bytes = int(max_render_s * sample_rate) * 2 * 2  # frames x channels x int16
    if precheck:
        estimate = written_out_seconds(piece)
        if estimate is not None and estimate > RUNAWAY_ESTIMATE_FACTOR * max_render_s:
            raise SkipTrack(f"{RUNAWAY_REASON} {max_render_s:.0f} s (its repeats written out last about "
                            f"{estimate / 60:.0f} min; not rendered)")
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        midi, raw = Path(tmp) / "piece.mid", Path(tmp) / "piece.raw"
        try:
            meta = _score_to_midi(piece, midi, seed)
        except Exception as exc:  # music21 raises many kinds on odd scores
            raise SkipTrack(f"music21 could not convert the score ({type(exc).__name__}: {exc})") from None
        cmd = ["fluidsynth", "-ni", "-q", "-T", "raw", "-O", "s16", "-E", "little", "-F", str(raw),
               "-r", str(int(sample_rate)), "-g", "0.5", str(SOUNDFONT), str(midi)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        start, why = time.monotonic(), None
        try:
            while proc.poll() is None:
                if raw.exists() and raw.stat().st_size > limit_bytes:
                    why = (f"{RUNAWAY_REASON} {max_render_s:.0f} s (longer than twice the "
                           f"{MAX_SECONDS / 60:.0f}-min track limit, or a note that never ends)")
                elif time.monotonic() - start > timeout_s:
                    why = f"{TIMEOUT_REASON} after {timeout_s:.0f} s (retried by the next run)"
                if why:
                    proc.kill()
                    break
                time.sleep(0.1)
            _, err = proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if why:
            raise SkipTrack(why)
        if proc.returncode != 0 or not raw.exists() or raw.stat().st_size == 0:
            raise SkipTrack(f"fluidsynth failed ({(err or '').strip()[:200]})")
        pcm = np.fromfile(raw, dtype="<i2")
    pcm = pcm[: pcm.size // 2 * 2].reshape(-1, 2).T.astype(np.float32) / 32768.0
    x = torch.from_numpy(np.ascontiguousarray(pcm))
    # trim the silent tail FluidSynth leaves after the last note release (below -70 dBFS)
    env = x.abs().amax(dim=0).numpy()
    loud = np.flatnonzero(env > 10 ** (-70 / 20))
    if len(loud):
        x = x[:, : loud[-1] + 1]
    return x, meta


def _track_id(piece: str) -> str:
    return "corpus/" + Path(piece).with_suffix("").as_posix().replace("/", "_")


def _sidecar(wav: Path) -> Path:
    return wav.with_name(wav.name + ".json")


def _write_sidecar(wav: Path, row: dict) -> None:
    """Store a rendered piece's manifest row beside its WAV (atomically), so that a run that is
    interrupted before it writes the manifest does not render the piece again."""
    side = _sidecar(wav)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    os.replace(tmp, side)


def _resumed_row(root: Path, piece: str, sample_rate: int) -> dict | None:
    """The manifest row of ``piece`` rendered earlier at ``sample_rate``, or ``None``.

    The row is trusted only when its sidecar names this piece and rate and the WAV it points to
    exists with that rate; anything else (a truncated file, another rate) renders the piece again.
    """
    import soundfile as sf


    wav = root / mf.track_cache_path("music21", _track_id(piece))
    side = _sidecar(wav)
    if not (wav.exists() and side.exists()):
        return None
    try:
        row = json.loads(side.read_text())
        info = sf.info(str(wav))
    except (OSError, ValueError, RuntimeError):
        return None
    if row.get("file") != piece or int(row.get("sample_rate", -1)) != int(sample_rate) \
            or int(info.samplerate) != int(sample_rate) or abs(info.frames / info.samplerate - float(row["duration_s"])) > 0.01:
        return None
    return row


def _known_rendered(tracks: pd.DataFrame, skipped: pd.DataFrame, sample_rate: int) -> tuple[dict, dict[str, str]]:
    """What earlier runs recorded: ``{piece: track row}`` and ``{piece: skip reason}`` at ``sample_rate``.

    Stored time-outs and run-away renders of versions that played chord symbols are left out, so they
    are retried (:data:`TIMEOUT_REASON`, :data:`LEGACY_RUNAWAY_NOTE`); a run-away of this version stays.
    """
    def retried(reason: str) -> bool:
        return reason.startswith(TIMEOUT_REASON) or (reason.startswith(RUNAWAY_REASON)
                                                     and reason.endswith(LEGACY_RUNAWAY_NOTE))

    known_files = {r.file: r for r in tracks[tracks["source"] == "music21"].itertuples()}
    known_skips = {
        r.file: r.reason for r in skipped.itertuples()
        if r.source == "music21" and int(r.sample_rate) == int(sample_rate) and not retried(str(r.reason))
    }
    return known_files, known_skips


def _render_checked(piece: str, sample_rate: int, seed: int):
    """:func:`render_piece`, with pieces shorter than :data:`MIN_SECONDS` skipped."""
    x, meta = render_piece(piece, sample_rate, seed=seed)
    duration = x.shape[-1] / sample_rate
    if duration < MIN_SECONDS:
        raise SkipTrack(f"short piece: {duration:.1f} s < {MIN_SECONDS:.0f} s")
    return x, meta


def _rendered_row(root: Path, piece: str, x, meta: dict, sample_rate: int, order: int) -> dict:
    """Cache a rendered piece (cut to :data:`MAX_SECONDS`) with its sidecar; return its manifest row."""
    x = x[:, : int(MAX_SECONDS * sample_rate)]
    track_id = _track_id(piece)
    m = mf.cache_track(root, "music21", track_id, x.numpy(), sample_rate)
    row = {
        "source": "music21", "kind": "rendered", "package": "corpus", "track_id": track_id,
        "file": piece, "path": m["path"], "duration_s": m["duration_s"],
        "sample_rate": int(sample_rate), "orig_sample_rate": int(sample_rate),
        "orig_format": f"MIDI via FluidSynth ({meta['ensemble']}; programs {meta['programs']})",
        "channels": m["channels"], "loudness_lufs": m["loudness_lufs"], "peak_dbfs": m["peak_dbfs"],
        "clipped_samples": m["clipped_samples"], "license": LICENSE,
        "copyright_file": "", "order": order,
    }
    _write_sidecar(root / m["path"], row)
    return row


def prepare_rendered(
    n_tracks: int,
    sample_rate: int,
    tracks: pd.DataFrame | None = None,
    skipped: pd.DataFrame | None = None,
    progress: bool = True,
    seed: int = 0,
) -> tuple[list[dict], list[dict], list[tuple[str, str, str]], str]:
    """Render the first ``n_tracks`` usable pieces into the track cache (idempotent).

    Returns:
        ``(new track rows, new skip rows, skipped (package, file, reason), error message or "")``.
    """
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        return [], [], [], "fluidsynth / fluid-soundfont-gm not installed: rendered source skipped"
    try:
        pieces = corpus_pieces()
    except Exception as exc:
        return [], [], [], f"music21 corpus unavailable ({exc})"
    known_files, known_skips = _known_rendered(mf.read_tracks() if tracks is None else tracks,
                                               mf.read_skipped() if skipped is None else skipped, sample_rate)
    root = data_dir()
    rows, skips, skip_rows = [], [], []
    accepted = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tracks, desc="music21 render", unit="piece", leave=False)
    for order, piece in enumerate(pieces):
        if accepted >= n_tracks:
            break
        if not mf.track_is_cached(known_files.get(piece), root, sample_rate):
            if piece in known_skips:
                skips.append(("corpus", piece, known_skips[piece]))
                continue
            row = _resumed_row(root, piece, sample_rate)  # rendered by an interrupted run before its manifest
            if row is None:
                try:
                    x, meta = _render_checked(piece, sample_rate, seed)
                except SkipTrack as skip:
                    skips.append(("corpus", piece, skip.reason))
                    if not skip.reason.startswith(TIMEOUT_REASON):  # a time-out is transient: not stored
                        skip_rows.append({"source": "music21", "package": "corpus", "file": piece,
                                          "reason": skip.reason, "sample_rate": int(sample_rate),
                                          "min_seconds": MIN_SECONDS})
                    continue
                row = _rendered_row(root, piece, x, meta, sample_rate, order)
            rows.append(row)
        accepted += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rows, skip_rows, skips, ""
