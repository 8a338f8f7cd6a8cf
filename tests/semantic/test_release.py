"""The semantic EQ bundle released in ``weights/``: its card checks it, it holds no SAFE-DB row,
and ``mastering master --style`` uses it right after set-up (no local bundle)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from mastering.semantic.adaptive import SemanticEQ, load_semantic_eq
from mastering.semantic.axis import axis_measure
from mastering.semantic.release import MAX_BYTES, release_semantic_eq
from mastering.weights import SEMANTIC_NAME, WeightsError, verified_files


@pytest.fixture()
def released(tiny_semantic_bundle, tmp_path):
    bundle, folder = tiny_semantic_bundle
    bundle = SemanticEQ.load(folder)
    bundle.axis_reference = {d: bundle.axis_ref(d) for d in bundle.descriptors}
    bundle.config["music_reference"] = {"tracks": 3, "excerpts": 12}
    out = tmp_path / "w"
    out.mkdir()
    target, card_path = release_semantic_eq(bundle, folder, out)
    return out, target, json.loads(card_path.read_text())


def test_a_release_keeps_only_aggregates_of_the_offered_words_and_its_card_checks_it(released):
    out, target, card = released
    assert verified_files(SEMANTIC_NAME, out)[0] == target
    assert set(card["files"]) == {f"{SEMANTIC_NAME}/{n}" for n in ("vae.pt", "encoder.pt", "semantic_eq.json")}
    assert card["bytes"] <= MAX_BYTES and "licence unknown" in card["data"]["safedb"]["note"]
    slim = SemanticEQ.load(target)
    assert slim.descriptors == slim.known_descriptors == ["bright", "warm"]
    assert slim.static_settings == {} and set(slim.reference_curves) == {"bright", "warm"}
    meta = json.loads((target / "semantic_eq.json").read_text())
    assert "contributor" not in json.dumps(meta) and "safedb" not in meta["config"]


def _check_network_cards(target, card, trained=True):
    for part in ("vae", "encoder"):
        own = json.loads((target / f"{part}.json").read_text())
        assert own["sha256"] == card["files"][f"{SEMANTIC_NAME}/{part}.pt"]
        assert own["profile"] == card["profile"] and own["commit"] == card["commit"]
        assert own["split"].startswith("by contributor") and own["parameters"] > 0
        assert own["architecture"] and "licence unknown" in own["safedb"]["note"]
        if trained:
            assert own["metrics"]["n" if part == "encoder" else "n_val"] > 0 and own["training"]["seed"] == 0
            assert "settings of" in own["split"]


def test_each_network_of_a_release_has_its_own_card(released):
    out, target, card = released
    _check_network_cards(target, card, trained=False)


def test_a_damaged_release_is_refused(released):
    out, target, _ = released
    path = target / "semantic_eq.json"
    path.write_text(path.read_text().replace('"excerpt_s": 3.0', '"excerpt_s": 4.0'))
    with pytest.raises(WeightsError, match="differs from its card"):
        verified_files(SEMANTIC_NAME, out)


def test_a_release_needs_a_music_reference(tiny_semantic_bundle, tmp_path):
    bundle, folder = tiny_semantic_bundle
    with pytest.raises(ValueError, match="without real music"):
        release_semantic_eq(bundle, folder, tmp_path)


# ------------------------------------------------------------------------------------------------
# the shipped release
# ------------------------------------------------------------------------------------------------


def test_the_shipped_semantic_release_matches_its_card():
    found = verified_files(SEMANTIC_NAME)
    assert found is not None, "weights/semantic.json is not shipped (`make weights`)"
    folder, card = found
    assert card["profile"] == "cpu" and card["bytes"] <= MAX_BYTES
    assert set(card["descriptors"]["offered"]) == {"warm", "bright"}
    assert card["data"]["music_reference"]["tracks"] > 0
    bundle = SemanticEQ.load(folder)
    assert bundle.descriptors == ["bright", "warm"] and bundle.static_settings == {}
    _check_network_cards(folder, card)
    for d in bundle.descriptors:
        ref = bundle.axis_reference[d]
        assert ref["target"] > ref["typical"] and "note" not in ref


def test_style_works_right_after_set_up_with_the_shipped_releases(tmp_path, monkeypatch, capsys):
    """No local runs at all: ``mastering master IN OUT --style warm`` takes the shipped mastering
    weights and semantic bundle, and the master is warmer than the plain one."""
    from mastering.cli import main
    from mastering.dsp.signals import pink_noise

    monkeypatch.setenv("MASTERING_RUNS_DIR", str(tmp_path / "runs"))
    bundle = load_semantic_eq()
    assert bundle.config.get("profile") == "cpu"
    src = tmp_path / "in.wav"
    x = pink_noise(6 * 44100, channels=2, batch=1, seed=5)[0].numpy() * 0.1
    sf.write(src, x.T, 44100, subtype="FLOAT")
    outs = {}
    for name, extra in (("plain", []), ("warm", ["--style", "warm"])):
        outs[name] = tmp_path / f"{name}.wav"
        assert main(["master", str(src), str(outs[name]), "-q", *extra]) == 0
    curve = bundle.reference_curves["warm"]
    measure = {k: axis_measure(sf.read(p, always_2d=True)[0].T[None], 44100, curve, bundle.reference_freqs_hz)[0]
               for k, p in outs.items()}
    assert measure["warm"] > measure["plain"] + 0.05, measure
    assert np.isfinite(list(measure.values())).all()
    capsys.readouterr()
