"""Figures and tables of the semantic latent: written where the paper reads them, with provenance,
from saved results (no training here)."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from mastering import paths
from mastering.semantic import report
from mastering.semantic.safedb import SAFEDB_FILENAME, load_safedb
from mastering.semantic.vae import split_by_contributor

SAFE_CSV = paths.safedb_dir() / SAFEDB_FILENAME


def _codes(latent_dim, n=200, seed=0):
    rng = np.random.default_rng(seed)
    desc = np.array(["warm"] * (n // 2) + ["bright"] * (n // 4) + ["air"] * (n // 4))
    centre = {"warm": 1.0, "bright": -1.0, "air": 0.0}
    z = rng.normal(size=(n, latent_dim)) * 0.3 + np.array([centre[d] for d in desc])[:, None]
    codes = pd.DataFrame({"entry_id": np.arange(n), "descriptor": desc, "contributor": "c"})
    for i in range(latent_dim):
        codes[f"z_{i}"] = z[:, i]
    return codes


def _embeddings(codes):
    zc = [c for c in codes.columns if c.startswith("z_")]
    emb = codes.groupby("descriptor")[zc].mean()
    emb["count"] = codes.groupby("descriptor").size()
    emb["spread"] = 0.3
    return emb.sort_values("count", ascending=False)


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
def test_latent_map_written_with_provenance(paper_dir, latent_dim):
    codes = _codes(latent_dim)
    freqs = np.geomspace(20, 20000, 32)
    curves = pd.concat([pd.DataFrame({"descriptor": d, "freq_hz": freqs, "gain_db": s * np.log10(freqs / 1000)})
                        for d, s in (("warm", -3.0), ("bright", 3.0))])  # fmt: skip
    pdf = report.fig_latent_map(codes, _embeddings(codes), "smoke", curves=curves if latent_dim == 2 else None)
    assert pdf == paths.figures_dir() / "semantic_latent_map.pdf" and str(pdf).startswith(str(paper_dir))
    assert pdf.stat().st_size > 1000 and pdf.with_suffix(".png").stat().st_size > 1000
    side = json.loads(pdf.with_name(pdf.name + ".json").read_text())
    assert side["profile"] == "smoke" and side["kind"] == "figure" and side["latent_dim"] == latent_dim


def test_reconstruction_table(paper_dir):
    rows = [
        {"latent_dim": ld, "beta": 0.02, "train_db_mean": 2.0 / ld, "val_db_mean": 2.5 / ld, "val_db_median": 1.5,
         "val_db_p90": 4.0, "baseline_val_db_mean": 4.72, "sep_warm_bright_all": 1.19, "n_train": 1195,
         "n_val": 301, "n_val_contributors": 32}
        for ld in (8, 2)
    ]  # fmt: skip
    path = report.table_vae_reconstruction(rows, "smoke")
    text = path.read_text()
    assert path == paths.tables_dir() / "semantic_vae_reconstruction.tex"
    assert "$\\beta$" in text and "4.72" in text and "1.19" in text and "smoke profile" in text
    # Rows sorted by latent size, numbers with two decimals.
    assert text.index("\n2 & 0.02 & 1.00 & 1.25") < text.index("\n8 & 0.02 & 0.25 & 0.31")
    assert "301 settings from 32" in text
    assert json.loads(path.with_name(path.name + ".json").read_text())["latent_dims"] == [2, 8]
    with pytest.raises(ValueError, match="no VAE metrics"):
        report.table_vae_reconstruction([], "smoke")


def test_descriptor_count_table_from_real_safedb(paper_dir):
    if not SAFE_CSV.is_file():
        pytest.skip(f"SAFE-DB not found at {SAFE_CSV}")
    df = load_safedb()
    path = report.table_descriptor_counts(df, "smoke", top=5)
    text = path.read_text()
    # Only the offered descriptors: words with >= 50 settings from the VAE's training contributors
    # (446 each), beside all their settings (held-out contributors too), share and contributors.
    assert "warm & 446 & 537 & 35.9 & 33" in text and "bright & 446 & 521 & 34.8 & 26" in text
    assert "1496 of 1680 settings kept (184 test entries" in text and "Share (\\%)" in text
    assert "at least 50 settings from the VAE's 101 training contributors (1195 settings" in text
    assert "the other 241 descriptors have at most 9 training settings each" in text
    assert text.count("\\\\\n") == 3  # header + 2 rows
    assert not re.search(r"\b(re27|clear|air|thin)\b", text)
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["min_settings"] == 50 and meta["offered"] == {"bright": 446, "warm": 446}
    # The split is the VAE's: an explicit train_index gives the same table.
    train = split_by_contributor(df, 0.2, 0)[0]
    assert report.table_descriptor_counts(df, "smoke", train_index=train).read_text().split("\\begin")[1] == \
        text.split("\\begin")[1]
