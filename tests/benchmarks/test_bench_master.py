"""benchmarks/bench_master.py: a tiny side-by-side run of `mastering master` and matchering."""

import importlib.util
import json
import sys

import pytest
import torch

from mastering.models.mastering import build_model
from mastering.paths import REPO_ROOT

TINY = dict(latent_dim=8, encoder={"stem_channels": 8, "block_channels": [8, 8, 8, 8]}, decoder_hidden=8,
            dynamics_hidden=8)


def _load():
    path = REPO_ROOT / "benchmarks" / "bench_master.py"
    spec = importlib.util.spec_from_file_location("bench_master", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


bench = _load()


def test_both_tools_master_the_same_track_at_both_rates(tmp_path, capsys):
    model = build_model("1a", **TINY)
    checkpoint = tmp_path / "tiny.pt"
    torch.save({"model_config": model.config, "model_state": model.state_dict(),
                "config": {"segment_seconds": 1.0}}, checkpoint)
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--seconds", "6", "--threads", "1", "--checkpoint", str(checkpoint),
                       "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [r["sample_rate"] for r in record["rows"]] == [44100, 48000]
    for row in record["rows"]:
        assert row["seconds_audio"] == 6
        assert all(row[f"{k}_s"] > 0 for k in ("mastering", "cli", "matchering", "matchering_cli"))
        assert row["speedup_vs_matchering"] == pytest.approx(row["matchering_s"] / row["mastering_s"])
        assert row["cli_speedup_vs_matchering_cli"] == pytest.approx(row["matchering_cli_s"] / row["cli_s"])
        assert row["matchering_cli_s"] > row["matchering_s"]  # a fresh process pays Python and the imports
    text = capsys.readouterr().out
    assert "44100 Hz: mastering" in text and str(checkpoint) in record["model"]


def test_the_track_and_its_reference_are_stereo_of_the_asked_length():
    track, reference, rate, description = bench.source_tracks(12.0)
    assert track.shape == reference.shape == (2, int(12.0 * rate)) and track.dtype == "float32"
    assert not (track[:, :1000] == reference[:, :1000]).all()
    assert description.startswith(("real music", "synthetic"))


def test_the_tools_take_turns_and_each_gets_its_median():
    calls = []
    clock = iter(range(1000))
    runs = {name: (lambda name=name: calls.append(name)) for name in ("ours", "cli", "theirs")}
    original = bench.time.perf_counter
    bench.time.perf_counter = lambda: float(next(clock))
    try:
        times = bench._median_seconds(runs, repeats=3, warmup=True)
    finally:
        bench.time.perf_counter = original
    assert calls == ["ours", "cli", "theirs"] * 4  # one warm-up round, then three rounds in turn
    assert times == {"ours": 1.0, "cli": 1.0, "theirs": 1.0}  # each call spans one tick of the fake clock
