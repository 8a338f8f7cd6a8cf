"""Fair baselines (#19 item 1): every system ends in the same loudness finish; matchering's
references come from the same album or, for the oracle, the same master elsewhere; the U-Net+LSTM
baseline trains with Phase 1's budget and sits beside its Griffin-Lim floor and input-phase variant."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyloudnorm as pyln
import pytest
import torch

from mastering.dsp.signals import pink_noise
from mastering.evaluation import benchmark as B
from mastering.evaluation import metrics as M
from mastering.evaluation import systems as S
from mastering.io import load_audio, save_audio
from mastering.models.thesis import MelUNetLSTM
from mastering.profiles import PROFILES, get_profile

SR = 22050  # the tiny U-Net+LSTM's rate: no resampling, fast tests


def _noise(seconds, seed, level_dbfs=-24.0):
    return pink_noise(int(seconds * SR), channels=2, batch=1, seed=seed, level_dbfs=level_dbfs)[0].float()


def _lufs(x):
    return pyln.Meter(SR).integrated_loudness(np.asarray(x, np.float64).T)


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    """Three tracks of package P (a, b, c) and one of package Q, as WAVs, at different levels."""
    folder = tmp_path_factory.mktemp("album")
    tracks = []
    for i, (package, name, level) in enumerate([("P", "a", -20.0), ("P", "b", -12.0), ("P", "c", -28.0),
                                                ("Q", "d", -14.0)]):
        path = folder / f"{name}.wav"
        save_audio(path, _noise(12.0, seed=100 + i, level_dbfs=level), SR, subtype="FLOAT")
        tracks.append(SimpleNamespace(key=f"debian/{package}/{name}", package=package, path=path, duration_s=12.0))
    return tracks


def _pair(track, offset_s=4.0, duration_s=2.0):
    x, sr = load_audio(track.path, offset_s=offset_s, duration_s=duration_s, channels=2)
    return {"track": track.key, "item": f"{track.key}#0", "package": track.package, "path": str(track.path),
            "track_duration_s": track.duration_s, "offset_s": offset_s, "duration_s": duration_s,
            "mastered": x, "degraded": x * 0.3, "sample_rate": sr}


def test_same_album_reference_is_another_track_of_the_package_at_the_masters_loudness(album):
    pair = _pair(album[0])
    drawn = set()
    for seed in range(12):
        ref = B.album_reference(pair, album, seconds=6.0, seed=seed)
        assert ref["package"] == "P" and ref["track"] != pair["track"]  # same album, never the excerpt's own track
        drawn.add(ref["track"])
        assert ref["audio"].shape[-1] == 6 * SR and ref["offset_s"] == pytest.approx(3.0)  # its middle 6 s
        assert _lufs(ref["audio"]) == pytest.approx(_lufs(pair["mastered"]), abs=0.1)  # loudness-matched
    assert drawn == {"debian/P/b", "debian/P/c"}  # the other package's track is never drawn
    with pytest.raises(ValueError, match="no other track"):
        B.album_reference(_pair(album[3]), album, seconds=6.0)  # Q has one track only


def test_oracle_reference_is_the_same_master_at_another_offset(album):
    track = album[1]
    pair = _pair(track, offset_s=4.0, duration_s=2.0)
    ref = B.oracle_reference(pair, seconds=3.0)
    start, n = ref["offset_s"], ref["audio"].shape[-1]
    assert ref["track"] == pair["track"] and not ref["overlaps"]
    assert start + n / SR <= pair["offset_s"] + 1e-6 or start >= pair["offset_s"] + pair["duration_s"] - 1e-6
    assert n == 3 * SR and start == pytest.approx(7.5)  # centred in the longer gap (6..12 s)
    whole, _ = load_audio(track.path, channels=2)
    i = int(round(start * SR))
    assert torch.allclose(ref["audio"], whole[:, i:i + n], atol=1e-6)  # the master itself, no gain
    assert B.oracle_offset(10.0, 0.0, 10.0, 3.0) == (0.0, None)  # a whole-track excerpt: the whole master


@pytest.fixture(scope="module")
def tiny_phase1(tmp_path_factory):
    from mastering.models.mastering import build_model

    torch.manual_seed(0)
    model = build_model("1a", **get_profile("smoke")["train"]["model"])
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.save({"model_config": model.config, "model_state": model.state_dict(), "config": {"segment_seconds": 1.0}},
               path)
    return path


def _tiny_unet_lstm(seed=0):
    torch.manual_seed(seed)
    model = MelUNetLSTM(sample_rate=22050, channels=2, n_fft=512, hop=128, n_mels=24, unet_channels=(4, 8),
                        lstm_hidden=8, griffin_lim_iters=4).eval()
    with torch.no_grad():  # a model that does something: a nonzero mask and forecaster
        model.mask_head.bias.fill_(0.3)
        model.forecaster_head.bias.copy_(torch.tensor([0.4, -0.2]))
    return model


def test_every_system_meets_the_target_under_the_ceiling(tiny_phase1, album):
    """At a streaming level the limiter works; each finished system lands within 0.5 LU at <= -1 dBTP."""
    pair = _pair(album[1], offset_s=4.0, duration_s=1.5)
    x = pair["degraded"]
    curve = {"freqs_hz": np.array([0.0, 1000.0, SR / 2]), "gain_db": np.array([3.0, 0.0, 6.0]), "items": 1,
             "sample_rate": SR}
    model = _tiny_unet_lstm()
    systems = [S.LoudnessNormSystem(), S.StaticEQSystem(curve), S.Phase1System("1a", tiny_phase1),
               S.ThesisSystem(model, phase="griffin_lim"), S.ThesisSystem(model, phase="input"),
               S.GriffinLimFloorSystem(model.config)]
    try:
        import matchering  # noqa: F401
        systems.append(S.MatcheringArm(lambda p: B.oracle_reference(p, seconds=4.0), "matchering_oracle", "oracle"))
    except ImportError:
        pass
    target = -14.0  # 14 dB above the input: every system needs the limiter
    for system in systems:
        y = system.for_pair(pair).master(x, SR, target)
        assert system.finished and y.shape == x.shape, system.name
        assert _lufs(y) == pytest.approx(target, abs=0.5), system.name
        assert M.true_peak_dbtp(y, SR) <= -1.0 + 1e-3, system.name
    # the unprocessed input is the only system left unfinished
    unfinished = [c.__name__ for c in vars(S).values()
                  if isinstance(c, type) and issubclass(c, S.System) and c is not S.System and not c.finished]
    assert unfinished == ["IdentitySystem"]


def test_spectrogram_variants_and_the_griffin_lim_floor():
    model = _tiny_unet_lstm()
    x = _noise(1.5, seed=7, level_dbfs=-20.0)
    target = _lufs(x)
    finished_input = S.LoudnessNormSystem().master(x, SR, target)
    # an untrained model of the same settings is the identity on magnitudes: the floor is phase retrieval alone
    fresh = MelUNetLSTM(**model.config).eval()
    mag = fresh.stft(x[None]).abs()
    assert torch.allclose(fresh.process_magnitude(mag), mag)
    floor = S.GriffinLimFloorSystem(model.config)
    identity_phase = S.ThesisSystem(fresh, phase="input").master(x, SR, target)
    assert M.si_sdr_db(identity_phase, finished_input) > 40  # input magnitude + input phase = the input
    assert M.si_sdr_db(floor.master(x, SR, target), finished_input) < 10  # Griffin-Lim loses the waveform
    # the trained-like model changes the spectrum; its input-phase variant keeps the waveform closer than Griffin-Lim
    gl = S.ThesisSystem(model, phase="griffin_lim").master(x, SR, target)
    ip = S.ThesisSystem(model, phase="input").master(x, SR, target)
    assert M.si_sdr_db(ip, finished_input) > M.si_sdr_db(gl, finished_input) + 10
    assert {s.name for s in (floor, S.ThesisSystem(model), S.ThesisSystem(model, phase="input"))} == {
        "gl_floor", "unet_lstm", "unet_lstm_input_phase"}
    assert all("thesis" not in s.label.lower() for s in (floor, S.ThesisSystem(model), S.ThesisSystem(model, phase="input")))
    with pytest.raises(ValueError, match="phase"):
        S.ThesisSystem(model, phase="mixed")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_unet_lstm_trains_with_phase1s_budget(profile):
    budget = B.thesis_budget(profile)
    train = get_profile(profile)["train"]
    assert budget["equal"], budget
    assert budget["baseline"]["epochs"] == train["epochs"]
    assert budget["baseline"]["train_items"] == train["data"]["train_items"]
    assert budget["baseline"]["valid_items"] == train["data"]["valid_items"]
    assert budget["baseline"]["batch_size"] == train["batch_size"]


def test_the_evaluation_trains_the_baseline_without_overrides(monkeypatch):
    """thesis_system asks the fit loop for the profile's configuration: no substitute data, no overrides."""
    calls = []
    model = _tiny_unet_lstm()

    def fake(**kwargs):
        calls.append(kwargs)
        return model, {"run_dir": "/x/smoke-abc", "epochs": 4}

    monkeypatch.setattr(B, "fit_or_load_thesis", fake)
    system = B.thesis_system("smoke", seed=0)
    assert calls == [{"profile": "smoke", "seed": 0, "progress": False}]
    assert system.name == "unet_lstm" and system.finished


def test_run_benchmark_counts_warnings_per_excerpt_and_binds_references():
    class Warner(S.LoudnessNormSystem):
        name, label = "warner", "warner"

        def for_pair(self, pair):
            self.last_warnings = tuple(f"w{i}" for i in range(pair["excerpt"] + 1))
            return self

    mastered = _noise(1.0, seed=3, level_dbfs=-16.0)
    pairs = [{"track": "t", "item": f"t#{i}", "excerpt": i, "mastered": mastered, "degraded": mastered * 0.5,
              "sample_rate": SR, "duration_s": 1.0} for i in range(2)]
    results, _ = B.run_benchmark([Warner(), S.IdentitySystem()], pairs, keep_outputs=0)
    w = results[results.system == "warner"]
    assert list(w["warnings"]) == [1, 2] and list(w["warning_text"])[1] == "w0 | w1"
    assert list(results[results.system == "identity"]["warnings"]) == [0, 0]
    assert list(results.drop_duplicates("system")["finished"]) == [True, False]


def test_baselines_table_and_numbers_report_the_finish_the_warnings_and_the_budget(paper_dir):
    from mastering.evaluation import report as R
    from mastering.figures import read_numbers

    systems = [("phase1b", "Phase 1B", "proposed", 0.6, True), ("identity", "input, unprocessed", "baseline", 1.2, False),
               ("loudnorm", "input + finish", "baseline", 1.0, True),
               ("matchering_album", "matchering, same-album ref.", "baseline", 1.1, True),
               ("matchering_oracle", "matchering, oracle ref.", "oracle", 0.5, True),
               ("unet_lstm", "U-Net+LSTM, Griffin-Lim", "spectrogram", 1.6, True),
               ("unet_lstm_input_phase", "U-Net+LSTM, input phase", "spectrogram", 0.95, True),
               ("gl_floor", "Griffin-Lim floor (input)", "spectrogram", 1.5, True)]
    rows = []
    for track in range(3):
        for name, label, group, base, finished in systems:
            warns = track if name == "matchering_album" else 0
            rows.append({"track": f"t{track}", "item": f"t{track}#0", "system": name, "label": label, "group": group,
                         "mrstft": base + 0.01 * track, "band_error_db": 2.0, "loudness_error_lu": 0.1,
                         "true_peak_dbtp": -1.0 - 0.1 * track, "a_weighted_l1": base / 10, "si_sdr_db": 10 - base,
                         "duration_s": 5.0, "seconds": 0.5, "finished": finished, "warnings": warns,
                         "warning_text": " | ".join(["Audio is clipping: x"] * warns)})
    results = pd.DataFrame(rows)
    summary = B.summarize(results, n_boot=100, seed=0)
    # the oracle sees the master: it is shown but never ranked, so it cannot count as a baseline win
    mr = summary[summary["metric"] == "mrstft"].set_index("system")
    assert mr.loc["matchering_oracle", "mean"] < mr.loc["phase1b", "mean"]
    assert pd.isna(mr.loc["matchering_oracle", "rank"]) and bool(mr.loc["phase1b", "best"])
    budget = B.thesis_budget("smoke")
    text = R.table_evaluation_baselines(results, summary, "smoke", budget=budget, reference_seconds=20.0).read_text()
    body = [line for line in text.splitlines() if line.endswith("\\\\")]
    assert body[1].startswith("Phase 1B") and body[3].startswith("input, unprocessed$^\\dagger$")
    assert sum("dagger" in line for line in body) == 1  # only the unprocessed input is unfinished
    album = next(line for line in body if line.startswith("matchering, same-album"))
    assert album.split("&")[-1].strip(" \\") == "1.0 (max 2)"  # warnings per excerpt: mean and max
    assert "Audio is clipping" in text and "4 epochs on 96 pairs" in text and "thesis" not in text.lower()
    v = read_numbers(R.numbers_baselines(results, summary, "smoke", budget=budget))
    assert v["matchering_album_warnings"] == "1.0" and v["unet_lstm_epochs"] == "4"
    assert v["gl_floor_vs_loudnorm_mrstft"] == "0.500" and v["unet_lstm_train_items"] == "96"
