"""Sources: Debian package decoding with skip reasons, licences, FMA and MUSDB18-HQ fixture layouts.

The fixtures are built here in ``tmp_path`` with the same folder layout as the real data.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mastering.data import manifest as mf
from mastering.data.debian import decode_file, music_files, parse_license, SkipTrack
from mastering.data.prepare import prepare_debian_package
from mastering.data.sources import cache_local_tracks, fma_tracks, musdb_tracks


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("MASTERING_DATA_DIR", str(root))
    return root


def tone(seconds, sample_rate, channels=2, freq_hz=440.0, amp=0.3):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = amp * np.sin(2 * np.pi * freq_hz * t)
    return np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def make_package(root, package, files, copyright_text="Files: *\nCopyright: 2020 X\nLicense: CC-BY-SA-4.0\n"):
    music = root / "usr/share/games" / package
    music.mkdir(parents=True)
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_text)
    for name, writer in files.items():
        writer(music / name)
    return root


def test_bad_short_and_undocumented_files_are_skipped_with_their_reason(tmp_path, data_root):
    sr = 22050
    pkg = make_package(tmp_path / "pkg", "fake-music", {
        "a_song.ogg": lambda p: sf.write(p, tone(61, 32000), 32000, format="OGG", subtype="VORBIS"),
        "b_jingle.wav": lambda p: sf.write(p, tone(12, sr), sr),
        "c_broken.ogg": lambda p: p.write_bytes(b"OggS" + bytes(range(256)) * 20),
        "d_sound.raw": lambda p: p.write_bytes(bytes(1000)),
        "e_silent.wav": lambda p: sf.write(p, np.zeros((70 * sr, 2), np.float32), sr),
        "f_mono.flac": lambda p: sf.write(p, tone(65, sr, channels=1), sr, format="FLAC"),
        "g_broken.xm": lambda p: p.write_bytes(b"not a module" * 50),
    })
    (pkg / "usr/share/games/fake-music/link.ogg").symlink_to(pkg / "usr/share/games/fake-music/a_song.ogg")
    assert [p.name for p in music_files(pkg)] == [
        "a_song.ogg", "b_jingle.wav", "c_broken.ogg", "d_sound.raw", "e_silent.wav", "f_mono.flac", "g_broken.xm"]
    rows, skips, log = prepare_debian_package("fake-music", sr, package_root=pkg, progress=False)
    assert [r["track_id"] for r in rows] == ["fake-music/a_song", "fake-music/f_mono"]
    reasons = {f.split("/")[-1]: r for _, f, r in log}
    assert reasons["b_jingle.wav"].startswith("short: 12.0 s < 60 s")
    assert reasons["c_broken.ogg"].startswith("undecodable")
    assert "not documented" in reasons["d_sound.raw"]
    assert reasons["e_silent.wav"].startswith("silent")
    assert "xmp" in reasons["g_broken.xm"]
    assert len(skips) == 5 and all(s["reason"] for s in skips)
    song = rows[0]
    assert song["license"] == "CC-BY-SA-4.0" and song["orig_sample_rate"] == 32000
    assert song["sample_rate"] == sr and song["duration_s"] == pytest.approx(61.0, abs=0.01)
    x, rate = sf.read(data_root / song["path"], always_2d=True)
    assert rate == sr and x.shape[1] == 2
    assert rows[1]["channels"] == 2  # mono is kept as (duplicated) stereo


def test_prepare_is_idempotent_and_respects_max_tracks(tmp_path, data_root):
    sr = 22050
    pkg = make_package(tmp_path / "pkg", "fake-music", {
        f"t{i}.wav": (lambda p, i=i: sf.write(p, tone(60.5, sr, freq_hz=200 * (i + 1)), sr)) for i in (1, 2, 10)})
    rows, skips, _ = prepare_debian_package("fake-music", sr, max_tracks=2, package_root=pkg, progress=False)
    assert [r["file"].split("/")[-1] for r in rows] == ["t1.wav", "t2.wav"]  # natural order, 2 of 3
    mf.write_table(pd.DataFrame(rows, columns=mf.TRACK_COLUMNS), mf.tracks_path())
    again, _, _ = prepare_debian_package("fake-music", sr, max_tracks=2, package_root=pkg, progress=False)
    assert again == []  # nothing decoded twice


def test_xblast_raw_songs_are_8_bit_unsigned_stereo_at_22050(tmp_path):
    sr = 22050
    x = tone(3.0, sr, channels=2)
    u8 = np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8)  # interleaved L R L R
    path = tmp_path / "xbsng1.raw"
    path.write_bytes(u8.tobytes())
    dec = decode_file(path, "xblast-tnt-musics", sr, min_seconds=1.0)
    assert dec.orig_sample_rate == 22050 and dec.audio.shape == (2, 3 * sr)
    np.testing.assert_allclose(dec.audio.numpy().T, x, atol=1.5 / 128)
    with pytest.raises(SkipTrack, match="not documented"):
        decode_file(path, "other-package", sr, min_seconds=1.0)


def test_tracker_modules_render_with_xmp_when_installed(tmp_path):
    if shutil.which("xmp") is None:
        pytest.skip("xmp not installed (apt-get install xmp)")
    # a minimal ProTracker module: one sample (a square wave), one pattern, one note per row
    title = b"test".ljust(20, b"\0")
    sample = b"square".ljust(22, b"\0") + (32).to_bytes(2, "big") + bytes([0, 64]) + (0).to_bytes(2, "big") + (32).to_bytes(2, "big")
    empty = bytes(22) + bytes(2) + bytes([0, 0]) + bytes(2) + (1).to_bytes(2, "big")
    header = title + sample + empty * 30 + bytes([1, 127]) + bytes([0] * 128) + b"M.K."
    period = 428  # C-3
    note = bytes([(period >> 8) & 0x0F, period & 0xFF, 0x10, 0x00])  # sample 1 (low nibble in byte 2)
    pattern = (note + bytes(12)) * 64
    data = bytes([100] * 32 + [156] * 32)
    (tmp_path / "t.mod").write_bytes(header + pattern + data)
    # one pattern: 64 rows x 6 ticks x 20 ms (ProTracker defaults, speed 6 at 125 BPM) = 7.68 s
    with pytest.raises(SkipTrack, match="short"):
        decode_file(tmp_path / "t.mod", "fake", 22050, min_seconds=60)
    dec = decode_file(tmp_path / "t.mod", "fake", 22050, min_seconds=0.5)
    assert dec.audio.shape[0] == 2 and dec.audio.shape[-1] / 22050 == pytest.approx(7.68, abs=0.05)
    assert float(dec.audio.abs().max()) > 0.01  # it played the note
    assert "xmp" in dec.orig_format


@pytest.mark.parametrize("text,expected", [
    ("Files: *\nCopyright: 2002 M\nLicense: GPL-2+\n\nFiles: debian/*\nLicense: GPL-3\n", "GPL-2+"),
    ("You are free to distribute this software under the terms of\nthe GNU General Public License, version 2 "
     "or later.\n", "GPL-2+"),
    ("it under the terms of the GNU General Public License as published by\nthe Free Software Foundation; "
     "version 2 dated June, 1991.\n", "GPL-2"),
    ("Licensed under the Creative Commons Attribution-ShareAlike 3.0 licence\n", "CC-BY-SA-3.0"),
    ("All of it is in the public domain.\n", "public-domain"),
    ("Ask the author.\n", "see copyright"),
])
def test_licence_from_debian_copyright_files(text, expected):
    assert parse_license(text) == expected


def _fma_fixture(root, sr=22050):
    audio = root / "fma_small"
    rows = []
    for tid, split, lic in [(2, "training", "Attribution-NonCommercial-ShareAlike 3.0"), (5, "validation", ""),
                            (140, "test", "Attribution 4.0"), (141, "training", "Attribution 4.0")]:
        folder = audio / f"{tid:06d}"[:3]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{tid:06d}.mp3", tone(3.0, sr, freq_hz=300 + tid), sr, format="MP3",
                 subtype="MPEG_LAYER_III")
        rows.append((tid, "small", split, lic, "Rock"))
    meta = root / "fma_metadata"
    meta.mkdir()
    cols = pd.MultiIndex.from_tuples([("set", "subset"), ("set", "split"), ("track", "license"), ("track", "genre_top")])
    df = pd.DataFrame([r[1:] for r in rows], index=pd.Index([r[0] for r in rows], name="track_id"), columns=cols)
    df.drop(index=141).to_csv(meta / "tracks.csv")  # one audio file without metadata
    (audio / "README.txt").write_text("not audio")


def test_fma_layout_gives_tracks_with_fma_splits_and_licences(tmp_path):
    _fma_fixture(tmp_path)
    df = fma_tracks(tmp_path, subset="small")
    assert list(df["track_id"]) == ["000002", "000005", "000140", "000141"]
    assert list(df["split"]) == ["train", "valid", "test", "train"]
    assert df.loc[0, "license"].startswith("Attribution-NonCommercial")
    assert df.loc[3, "license"].startswith("FMA:")  # no metadata row: the default licence
    assert df["duration_s"].between(2.9, 3.2).all() and (df["sample_rate"] == 22050).all()
    with pytest.raises(FileNotFoundError, match="no FMA audio"):
        fma_tracks(tmp_path, subset="medium")


def test_musdb_layout_gives_mixtures_with_train_and_test(tmp_path):
    for split, names in (("train", ["A - One", "B - Two"]), ("test", ["C - Three"])):
        for name in names:
            d = tmp_path / split / name
            d.mkdir(parents=True)
            for stem in ("mixture", "drums", "bass", "other", "vocals"):
                sf.write(d / f"{stem}.wav", tone(2.0, 44100), 44100)
    df = musdb_tracks(tmp_path)
    assert list(df["track_id"]) == ["A - One", "B - Two", "C - Three"]
    assert list(df["split"]) == ["train", "train", "test"]
    assert all(p.endswith("mixture.wav") for p in df["path"])
    with pytest.raises(FileNotFoundError, match="MUSDB18-HQ"):
        musdb_tracks(tmp_path / "train")


def test_local_tracks_are_cached_and_keep_their_own_split(tmp_path, data_root):
    _fma_fixture(tmp_path / "fma")
    (tmp_path / "fma/fma_small/000/000666.mp3").write_bytes(b"\xff\xfb" + bytes(300))  # corrupt clip
    cached, skipped = cache_local_tracks(fma_tracks(tmp_path / "fma"), 22050)
    assert len(cached) == 4 and [f for _, f, _ in skipped] == ["000/000666.mp3"]
    full = mf.load_manifest(source="fma")
    assert dict(zip(full["track_id"], full["split"])) == {
        "fma_small/000002": "train", "fma_small/000005": "valid", "fma_small/000140": "test",
        "fma_small/000141": "train"}
    assert all(str(data_root) in p for p in full["path"])


def test_music_inside_game_archives_is_unpacked_once(tmp_path):
    """ufoai-music ships its OGG files inside a zip (.pk3): they become candidates, safely."""
    import zipfile

    import numpy as np
    import soundfile as sf

    from mastering.data.debian import music_files, unpack_archives

    root = tmp_path / "pkg"
    base = root / "usr/share/games/x/base"
    base.mkdir(parents=True)
    wav = tmp_path / "t.wav"
    sf.write(str(wav), np.zeros((100, 2)), 8000)
    with zipfile.ZipFile(base / "0music.pk3", "w") as zf:
        zf.write(wav, "music/b_track.wav")
        zf.write(wav, "music/a_track.wav")
        zf.writestr("../../escape.wav", b"x")
        zf.writestr("maps/readme.txt", b"not music")
    (base / "broken.zip").write_bytes(b"not a zip")
    got = unpack_archives(root)
    assert [p.name for p in got] == ["a_track.wav", "b_track.wav"]
    assert not (tmp_path / "escape.wav").exists() and not list(root.rglob("readme.txt"))
    assert [p.name for p in music_files(root)] == ["a_track.wav", "b_track.wav"]
    stamp = base / "0music.pk3.d" / ".done"
    before = stamp.stat().st_mtime_ns
    assert unpack_archives(root) == got and stamp.stat().st_mtime_ns == before  # idempotent
