"""Manifest, by-track splits and segment offsets (mastering/data/manifest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mastering.data import manifest as mf


def _tracks(n_per_pkg=(3, 7, 20), source="debian"):
    rows = []
    for p, n in enumerate(n_per_pkg):
        for i in range(n):
            rows.append({"source": source, "kind": "real", "package": f"pkg{p}", "track_id": f"pkg{p}/t{i}",
                         "duration_s": 30.0 + i, "path": f"tracks/{source}/pkg{p}/t{i}.wav", "order": i})
    return pd.DataFrame(rows)


def _many_packages(n=12):
    return _tracks(tuple(2 + (i % 4) for i in range(n)))


def test_splits_are_reproducible_by_seed_and_change_with_it():
    df = _many_packages()
    a = mf.assign_splits(df, seed=0)
    b = mf.assign_splits(df.sample(frac=1.0, random_state=3), seed=0).sort_index()
    assert (a["split"] == b["split"]).all()  # row order does not matter, only the seed
    c = mf.assign_splits(df, seed=1)
    assert (a["split"] != c["split"]).any()


def test_no_album_is_on_two_sides():
    """Real music is split by package (a game's or an album's music): every package lies in one split."""
    out = mf.assign_splits(_many_packages(), seed=5)
    assert (out.groupby("package")["split"].nunique() == 1).all()
    per_split = out.groupby("split")["package"].nunique()
    assert per_split["test"] >= 1 and per_split["valid"] >= 1 and per_split["train"] > per_split["test"]
    # two packages: one test, one train; three: one of each
    two = mf.assign_splits(_tracks((3, 5)), seed=0)
    assert sorted(two.groupby("package")["split"].first()) == ["test", "train"]
    three = mf.assign_splits(_tracks((3, 5, 4)), seed=0)
    assert sorted(three.groupby("package")["split"].first()) == ["test", "train", "valid"]


def test_named_heldout_packages_and_rendered_pieces():
    real = _tracks((3, 4, 2, 5))
    rendered = _tracks((1, 1, 1), source="music21").assign(kind="rendered", package="corpus")
    rendered["track_id"] = [f"corpus/piece{i}" for i in range(len(rendered))]
    out = mf.assign_splits(pd.concat([real, rendered], ignore_index=True), seed=0,
                           heldout={"valid": ["pkg2"], "test": ["pkg1", "not-prepared"]})
    by_pkg = out[out["kind"] == "real"].groupby("package")["split"].agg(set)
    assert by_pkg.to_dict() == {"pkg0": {"train"}, "pkg1": {"test"}, "pkg2": {"valid"}, "pkg3": {"train"}}
    # rendered pieces are units of their own (one corpus, three works): one per split
    assert sorted(out.loc[out["kind"] == "rendered", "split"]) == ["test", "train", "valid"]
    with pytest.raises(ValueError, match="both"):
        mf.assign_splits(real, seed=0, heldout={"valid": ["pkg1"], "test": ["pkg1"]})
    with pytest.raises(ValueError, match="'valid' and 'test'"):
        mf.assign_splits(real, seed=0, heldout={"train": ["pkg1"]})


def test_profiles_hold_out_whole_packages_they_use():
    from mastering.profiles import PROFILES

    for name, params in PROFILES.items():
        held = params["heldout_packages"]
        assert set(held["valid"]).isdisjoint(held["test"]) and held["test"], name
        assert set(held["valid"]) | set(held["test"]) < set(params["debian_packages"]), name  # some train


def test_split_fractions_are_validated():
    with pytest.raises(ValueError, match="sum to 1"):
        mf.assign_splits(_tracks(), seed=0, fractions={"train": 0.5, "valid": 0.1, "test": 0.1})
    with pytest.raises(ValueError, match="train/valid/test"):
        mf.assign_splits(_tracks(), seed=0, fractions={"train": 1.0})


def test_no_segment_of_a_test_track_is_in_train():
    tracks = mf.assign_splits(_many_packages(), seed=0)
    tracks["split"] = tracks["split"].astype(str)
    tracks = tracks.assign(license="x", sample_rate=44100)
    seg = mf.segment_manifest(tracks, segment_seconds=5.0, loudness=False)
    by_track = seg.groupby("track_id")["split"].nunique()
    assert (by_track == 1).all()
    train_ids = set(seg.loc[seg["split"] == "train", "track_id"])
    test_ids = set(seg.loc[seg["split"] == "test", "track_id"])
    assert train_ids.isdisjoint(test_ids) and test_ids


@pytest.mark.parametrize("duration,seg,hop,expected", [
    (10.0, 3.0, None, [0.0, 3.0, 6.0]),
    (9.0, 3.0, None, [0.0, 3.0, 6.0]),
    (2.0, 3.0, None, []),
    (10.0, 4.0, 2.0, [0.0, 2.0, 4.0, 6.0]),
])
def test_segment_offsets(duration, seg, hop, expected):
    np.testing.assert_allclose(mf.segment_offsets(duration, seg, hop), expected)


def test_segment_offsets_reject_bad_lengths():
    with pytest.raises(ValueError):
        mf.segment_offsets(10.0, 0.0)
    with pytest.raises(ValueError):
        mf.segment_offsets(10.0, 1.0, -1.0)


def test_load_manifest_without_prepared_data_says_how_to_prepare(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make data"):
        mf.load_manifest("smoke")


def test_loudness_columns_read_as_pyloudnorm(tmp_path, monkeypatch):
    """Track and segment loudness (mastering.dsp.loudness, design "rbj") equal pyloudnorm's default
    meter, -inf for digital silence, NaN for a segment past the end of a (truncated) file; the
    batched segment measurement equals one call per segment."""
    import pyloudnorm as pyln
    import soundfile as sf

    rate = 22050
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((2, 7 * rate))).astype(np.float32)
    x[:, 3 * rate:4 * rate] *= 0.01
    x[:, 5 * rate:6 * rate] = 0.0  # one silent segment
    lufs, peak = mf.loudness_peak(x, rate)
    assert lufs == pytest.approx(pyln.Meter(rate).integrated_loudness(x.T.astype(np.float64)), abs=1e-9)
    assert peak == pytest.approx(20 * np.log10(np.abs(x).max()))
    wav = tmp_path / "t.wav"
    sf.write(wav, x.T, rate, subtype="FLOAT")
    tracks = pd.DataFrame([{"source": "debian", "kind": "real", "package": "p", "track_id": "p/t", "split": "test",
                            "duration_s": 8.0, "license": "x", "path": str(wav), "sample_rate": rate}])
    monkeypatch.setattr(mf, "_LOUDNESS_BATCH_SAMPLES", 3 * rate)  # batches of three segments
    seg = mf.segment_manifest(tracks, segment_seconds=1.0)
    assert len(seg) == 8
    meter = pyln.Meter(rate)
    for i in range(7):
        ref = meter.integrated_loudness(x[:, i * rate:(i + 1) * rate].T)
        got = seg["loudness_lufs"].iloc[i]
        if i == 5:
            assert got == ref == -np.inf
        else:
            assert got == pytest.approx(ref, abs=1e-5)
    assert np.isnan(seg["loudness_lufs"].iloc[7])  # the manifest says 8 s, the file has 7 s
