"""Paper outputs of the data layer (mastering/data/report.py) on a small fixture cache."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mastering.data import manifest as mf
from mastering.data import report
from mastering.data.prepare import _write_segments


@pytest.fixture
def fixture_cache(tmp_path, monkeypatch):
    """Three 8 s tracks in each of the smoke profile's Debian packages, with manifests."""
    data = tmp_path / "data"
    monkeypatch.setenv("MASTERING_DATA_DIR", str(data))
    monkeypatch.setenv("MASTERING_PAPER_DIR", str(tmp_path / "paper"))
    rows = []
    for p, package in enumerate(["asc-music", "drascula-music"]):
        for i in range(3):
            rel = f"tracks/debian/{package}/t{i}.wav"
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(8 * 44100) / 44100
            amp = 0.1 * (i + 1)
            x = amp * np.stack([np.sin(2 * np.pi * 300 * (p + 1) * t)] * 2, 1)
            sf.write(data / rel, x.astype(np.float32), 44100, subtype="PCM_16")
            lufs = -0.691 + 10 * np.log10(2 * amp**2 / 2)  # approx; only the table's arithmetic is checked
            rows.append({"source": "debian", "kind": "real", "package": package, "track_id": f"{package}/t{i}",
                         "file": f"t{i}.ogg", "path": rel, "duration_s": 8.0, "sample_rate": 44100,
                         "loudness_lufs": lufs, "license": "GPL-2+", "order": i})
    mf.write_table(pd.DataFrame(rows, columns=mf.TRACK_COLUMNS), mf.tracks_path())
    _write_segments(mf.load_manifest("smoke"), "smoke", 3.0, data)
    return tmp_path


def test_statistics_table_counts_tracks_hours_splits_and_segments(fixture_cache):
    stats = report.dataset_statistics("smoke")
    assert list(stats["package"]) == ["asc-music", "drascula-music", ""]
    total = stats.iloc[-1]
    assert total["tracks"] == 6 and total["hours"] == pytest.approx(6 * 8 / 3600)
    assert total["segments"] == 6 * 2  # two full 3 s segments per 8 s track
    assert stats.iloc[0]["train/valid/test"] == "3/0/0"  # whole packages: asc-music trains
    assert stats.iloc[1]["train/valid/test"] == "0/0/3"  # drascula-music is held out for test
    path = report.table_data_statistics(stats, "smoke")
    text = path.read_text()
    assert path.name == "data_statistics.tex" and "\\label{tab:data_statistics}" in text and "smoke" in text
    side = json.loads(path.with_name(path.name + ".json").read_text())
    assert side["profile"] == "smoke" and side["commit"] and side["date"]


def test_figures_are_written_as_pdf_and_png_with_provenance(fixture_cache):
    pairs = report.example_pairs("smoke", n=2, split="test")
    assert [p["kind"] for p in pairs] == ["real", "pink"]
    assert all(p["degraded"].shape == p["mastered"].shape == (2, 3 * 44100) for p in pairs)
    paths = [report.fig_spectrogram_pairs(pairs, "smoke"),
             report.fig_param_distributions(report.param_table(n=40), "smoke"),
             report.fig_segment_loudness("smoke")]
    for pdf in paths:
        assert pdf.exists() and pdf.with_suffix(".png").exists()
        assert json.loads(pdf.with_name(pdf.name + ".json").read_text())["profile"] == "smoke"
    labels = [label for label, _, _ in report.listening_excerpts(pairs, seconds=1.0)]
    assert len(labels) == 4 and labels[0].endswith("mastered")


def test_param_table_shares_follow_the_stage_probabilities():
    table = report.param_table(n=1000, seed=0)
    assert table["level_on"].all()
    assert table["echo_on"].mean() == pytest.approx(0.2, abs=0.04)
    assert table["reverb_on"].mean() == pytest.approx(0.4, abs=0.05)
