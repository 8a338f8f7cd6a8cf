"""benchmarks/bench_training.py: one tiny measurement per kind of step (Trainer's, the thesis baseline's)."""

import importlib.util
import math
import sys

import pytest

from mastering.paths import REPO_ROOT


def _load():
    path = REPO_ROOT / "benchmarks" / "bench_training.py"
    spec = importlib.util.spec_from_file_location("bench_training", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.mark.parametrize("phase", ["1a", "thesis"])
def test_measure_one_tiny_step(phase):
    # 0.5 s: the shortest segment TrainConfig accepts (loudness gating)
    rows = bench.measure(phase, "smoke", steps=1, segment_seconds=0.5, batch_size=2, data="pink", warmup=False)
    assert [r["variant"] for r in rows] == list(bench.VARIANTS)
    row = rows[0]
    assert row["phase"] == phase and row["batch_size"] == 2 and row["audio_s_per_step"] == pytest.approx(1.0)
    assert "pink" in row["data"] and row["params"] > 0
    for key in ("audio_s_per_s", "model_audio_s_per_s"):
        assert math.isfinite(row[key]) and row[key] > 0
    assert row["model_audio_s_per_s"] >= row["audio_s_per_s"]
    parts = sum(row[f"{p}_s"] for p in bench.PARTS)
    assert all(row[f"{p}_s"] > 0 for p in bench.PARTS)
    assert parts == pytest.approx(row["step_s"], rel=0.02)


def test_print_table_ratios(capsys):
    row = {"phase": "1b", "variant": "current", "params": 10, "batch_size": 2, "segment_seconds": 0.5,
           "audio_s_per_step": 1.0, "pairs_s": 0.1, "forward_s": 0.2, "loss_s": 0.3, "backward_s": 0.4,
           "step_s": 1.0, "audio_s_per_s": 1.0, "model_audio_s_per_s": 1 / 0.9, "data": "pink"}
    bench.print_table([row, dict(row, variant="new", step_s=0.5, audio_s_per_s=2.0)])
    out = capsys.readouterr().out
    assert "Phase 1B" in out and "2.00" in out and "pairs 10 %" in out


def test_main_writes_json(tmp_path, monkeypatch, capsys):
    import json

    import torch

    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--phases", "thesis", "--steps", "1", "--no-warmup",
                                      "--segment-seconds", "0.5", "--batch-size", "2", "--data", "pink",
                                      "--threads", str(torch.get_num_threads()), "--out", str(out)])
    bench.main()
    assert "thesis baseline" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert {"torch", "threads", "profile", "commit", "date", "omp_wait_policy"} <= set(record)
    assert record["profile"] == "smoke" and record["rows"][0]["phase"] == "thesis"
