"""Descriptors users can trust: only words with enough SAFE-DB settings from the VAE's training
contributors are offered, and centroids come from those contributors only (real SAFE-DB rows)."""

import numpy as np
import pytest
import torch

from mastering import paths
from mastering.semantic.adaptive import SemanticEQ
from mastering.semantic.descriptors import (
    MIN_DESCRIPTOR_SETTINGS,
    descriptor_centroids,
    is_word,
    offered_descriptors,
    offered_from_centroids,
    training_counts,
    training_index,
    unknown_style_message,
)
from mastering.semantic.safedb import PARAM_NAMES, SAFEDB_FILENAME, load_safedb
from mastering.semantic.vae import SemanticVAE, encode_settings, split_by_contributor


@pytest.fixture(scope="module")
def df():
    if not (paths.safedb_dir() / SAFEDB_FILENAME).is_file():
        pytest.skip("SAFE-DB not found (set MASTERING_SAFEDB_DIR or run `make data`)")
    return load_safedb()


def test_is_word():
    assert is_word("warm") and is_word("bright") and is_word("clear")
    for bad in ("re27", "lv2", "1", "compo1", "", "Warm", "warm ", "a-b", None, 3.0):
        assert not is_word(bad), bad


def test_training_index_is_the_vae_split(df):
    """The profile's VAE split (val_fraction, seed), every contributor on one side only."""
    train, val = split_by_contributor(df, 0.2, 0)
    np.testing.assert_array_equal(training_index(df, "smoke"), train)
    np.testing.assert_array_equal(training_index(df, "smoke", seed=3), split_by_contributor(df, 0.2, 3)[0])
    assert not set(df.iloc[train]["contributor"]) & set(df.iloc[val]["contributor"])


def test_only_words_with_enough_training_settings_are_offered(df):
    train = training_index(df, "smoke")
    offered = offered_descriptors(df, train)
    # Counted independently on the training contributors' rows.
    raw = df.iloc[train]["descriptor"].value_counts()
    expected = {d: int(n) for d, n in raw.items() if n >= MIN_DESCRIPTOR_SETTINGS and d.isalpha() and d.islower()}
    assert offered.to_dict() == expected
    assert MIN_DESCRIPTOR_SETTINGS == 50
    assert set(offered.index) == {"warm", "bright"} and offered["warm"] == 446 and offered["bright"] == 446
    # "clear" has 10 settings in all, 6 from training contributors; "re27" is not a word (8 settings).
    all_counts = df["descriptor"].value_counts()
    assert all_counts["clear"] == 10 and raw["clear"] == 6 and all_counts["re27"] == 8
    assert "clear" not in offered.index and "re27" not in offered.index
    assert "re27" not in training_counts(df, train).index and "clear" in training_counts(df, train).index
    # Counted on training rows, not all rows: all rows give warm 537.
    assert offered["warm"] < all_counts["warm"]
    # The threshold is the rule: lower it and rarer words come in, never a non-word.
    low = offered_descriptors(df, train, min_settings=5)
    assert {"warm", "bright", "clear", "thin"} <= set(low.index) and all(is_word(d) for d in low.index)


def test_centroids_are_means_over_training_contributors_only(df):
    torch.manual_seed(0)
    model = SemanticVAE(latent_dim=3, hidden_sizes=(16,)).eval()
    train, val = split_by_contributor(df, 0.2, 0)
    cent = descriptor_centroids(model, df, train, min_count=1)
    train_df = df.iloc[train]
    for word in ("warm", "bright", "clear"):
        rows = train_df[train_df["descriptor"] == word]
        np.testing.assert_allclose(cent.loc[word, ["z_0", "z_1", "z_2"]].to_numpy(float),
                                   encode_settings(model, rows).mean(0), atol=1e-10)
        assert cent.loc[word, "count"] == len(rows)
    assert all(is_word(d) for d in cent.index) and "re27" not in cent.index
    # Changing every held-out contributor's settings moves no centroid...
    changed = df.copy()
    held = changed.index[val]
    changed.loc[held, PARAM_NAMES[0]] = -changed.loc[held, PARAM_NAMES[0]]
    changed.loc[held, "descriptor"] = "warm"
    again = descriptor_centroids(model, changed, train, min_count=1)
    np.testing.assert_allclose(again[["z_0", "z_1", "z_2", "count"]].to_numpy(float),
                               cent[["z_0", "z_1", "z_2", "count"]].to_numpy(float))
    # ... while changing one training row does.
    first_warm = train_df.index[train_df["descriptor"] == "warm"][0]
    changed.loc[first_warm, PARAM_NAMES[0]] = 12.0 if df.at[first_warm, PARAM_NAMES[0]] < 0 else -12.0
    moved = descriptor_centroids(model, changed, train, min_count=1)
    assert not np.allclose(moved.loc["warm", ["z_0", "z_1", "z_2"]].to_numpy(float),
                           cent.loc["warm", ["z_0", "z_1", "z_2"]].to_numpy(float))


def test_bundle_offers_only_the_frequent_words(tiny_semantic_bundle, tmp_path):
    bundle, folder = tiny_semantic_bundle
    assert bundle.descriptors == ["bright", "warm"] == offered_from_centroids(bundle.centroids)
    assert "clear" in bundle.known_descriptors and "re27" not in bundle.known_descriptors
    assert bundle.offered("  Warmer ") == "warm"
    for word in ("clear", "re27", "purple"):
        with pytest.raises(ValueError) as err:
            bundle.offered(word)
        assert str(err.value).startswith(f"unknown style '{word}'")
        assert "available: bright, warm (descriptors with >= 50 SAFE-DB settings" in str(err.value)
    # The research code still reaches the rarer centroids (the listening test's "clear").
    assert bundle.descriptor("clear") == "clear"
    loaded = SemanticEQ.load(folder)
    assert loaded.descriptors == ["bright", "warm"]
    # An old bundle (no axis reference) is refused with how to rebuild it.
    meta = (folder / "semantic_eq.json").read_text().replace('"format": 3', '"format": 2', 1)
    old = tmp_path / "old"
    old.mkdir()
    (old / "semantic_eq.json").write_text(meta)
    with pytest.raises(ValueError, match="rebuild it with `python -m mastering.semantic build --profile smoke`"):
        SemanticEQ.load(old)


def test_unknown_style_message():
    text = unknown_style_message("clear", ["warm", "bright"], 50)
    assert text == ("unknown style 'clear': available: bright, warm (descriptors with >= 50 SAFE-DB settings "
                    "from the training contributors)")
    assert unknown_style_message("Clearer", ["warm"], 50).startswith("unknown style 'Clearer' (read as 'clear'): ")
    assert unknown_style_message("x", [], 50).startswith("unknown style 'x': available: none")
