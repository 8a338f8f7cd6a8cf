"""SAFE-DB EQ pairs (mastering/semantic/datasets.py): the setting's response, reproducibility, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.signal as ss
import torch

from mastering.semantic import safedb as sdb
from mastering.semantic.datasets import SafeEQPairs

SR = 22050


def test_safe_pairs_apply_the_safe_setting():
    rows = [
        [3.0, 100.0, -6.0, 400.0, 1.0, 4.0, 1500.0, 2.0, -3.0, 5000.0, 0.7, 6.0, 8000.0],
        [-4.0, 200.0, 5.0, 800.0, 0.5, -6.0, 2500.0, 4.0, 2.0, 7000.0, 1.5, -2.0, 12000.0],
    ]
    df = pd.DataFrame(rows, columns=list(sdb.PARAM_NAMES)).assign(descriptor=["warm", "bright"])
    ds = SafeEQPairs(df, sample_rate=SR, segment_seconds=4.0, seed=0, length=2)
    assert ds.descriptors == ["bright", "warm"]
    for i in range(2):
        item = ds[i]
        r = item["safe_row"]
        np.testing.assert_allclose(item["params"].numpy(), np.array(rows[r], np.float32))
        assert item["descriptor"] == df.at[r, "descriptor"] and ds.descriptors[item["descriptor_index"]] == item["descriptor"]
        f, px = ss.welch(item["dry"].numpy(), fs=SR, nperseg=4096, axis=-1)
        _, py = ss.welch(item["audio"].numpy(), fs=SR, nperseg=4096, axis=-1)
        measured = 10 * np.log10(py.mean(0) / px.mean(0))
        expected = np.asarray(sdb.safe_response_db(np.array(rows[r]), f[1:], sample_rate=SR))
        band = (f[1:] > 60) & (f[1:] < 9000)
        assert np.max(np.abs(measured[1:][band] - expected[band])) < 0.3
    assert torch.equal(ds[1]["audio"], SafeEQPairs(df, sample_rate=SR, segment_seconds=4.0, seed=0, length=2)[1]["audio"])


def test_safe_pairs_refuse_bad_settings():
    df = pd.DataFrame([[0.0] * 13], columns=list(sdb.PARAM_NAMES)).assign(descriptor=["flat"])
    with pytest.raises(ValueError, match="audio must be"):
        SafeEQPairs(df, sample_rate=SR, audio="speech")
    with pytest.raises(ValueError, match="needs tracks"):
        SafeEQPairs(df, sample_rate=SR, audio="music")
    with pytest.raises(ValueError, match="empty"):
        SafeEQPairs(df.iloc[:0], sample_rate=SR)
    with pytest.raises(IndexError):
        SafeEQPairs(df, sample_rate=SR, segment_seconds=0.5, length=1)[1]
