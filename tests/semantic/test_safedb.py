"""SAFE-DB loading and cleaning, descriptor normalization, parameter maps and the SAFE -> biquad ->
dasp-pytorch conversion (checked against dasp-pytorch 0.0.1's own filters)."""

import csv
import inspect
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mastering import paths
from mastering.dsp.eq import freq_response_db, parametric_eq, sos_from_params
from mastering.semantic.safedb import (
    BAND_KINDS,
    PARAM_NAMES,
    PARAM_RANGES,
    SAFEDB_FILENAME,
    SHELF_Q,
    descriptor_counts,
    denormalize_params,
    load_safedb,
    normalize_descriptor,
    normalize_params,
    params_array,
    safe_response_db,
    safe_to_bands,
    safe_to_dasp,
)

dasp_functional = pytest.importorskip("dasp_pytorch.functional")
dasp_signal = pytest.importorskip("dasp_pytorch.signal")

SAFE_CSV = paths.safedb_dir() / SAFEDB_FILENAME
needs_safedb = pytest.mark.skipif(
    not SAFE_CSV.is_file(), reason=f"SAFE-DB not found at {SAFE_CSV} (set MASTERING_SAFEDB_DIR or run `make data`)"
)


@pytest.fixture(scope="module")
def safe():
    if not SAFE_CSV.is_file():
        pytest.skip(f"SAFE-DB not found at {SAFE_CSV}")
    return load_safedb()


@pytest.fixture(scope="module")
def safe_raw():
    if not SAFE_CSV.is_file():
        pytest.skip(f"SAFE-DB not found at {SAFE_CSV}")
    return load_safedb(drop_invalid=False)


# ---------------------------------------------------------------------------------------------
# Loading and cleaning
# ---------------------------------------------------------------------------------------------


@needs_safedb
def test_real_file_counts_match_source_md(safe_raw):
    # SOURCE.md: 1,680 rows; exact strings warm 457, bright 421, test 181, Bright 66, Warm 61,
    # "bright " 13, "warm " 8; after lower()+strip(): warm 532, bright 504, test 181, clear 8.
    assert len(safe_raw) == 1680
    exact = descriptor_counts(safe_raw, "descriptor_raw")
    assert exact[["warm", "bright", "test", "Bright", "Warm", "bright ", "warm "]].tolist() == [457, 421, 181, 66, 61, 13, 8]
    lowered = safe_raw["descriptor_raw"].str.lower().str.strip().value_counts()
    assert lowered[["warm", "bright", "test", "clear"]].tolist() == [532, 504, 181, 8]
    assert lowered.size == 320
    assert safe_raw["contributor"].nunique() == 137


@needs_safedb
def test_real_file_cleaning(safe, safe_raw):
    info = dict(safe.attrs["cleaning"])
    # Every parameter lies in its documented range and is finite; the 181 "test" rows, two
    # "test1" and one "test_warm" are the only invalid ones.
    assert info.pop("source").endswith(SAFEDB_FILENAME)
    assert info == {
        "raw_rows": 1680,
        "dropped_nonfinite": 0,
        "dropped_out_of_range": 0,
        "dropped_invalid_descriptor": 184,
        "rows": 1496,
    }
    assert len(safe) == 1496 and int(safe_raw["valid"].sum()) == 1496
    assert set(safe_raw.loc[~safe_raw["valid"], "descriptor"]) == {"test", "test1"}
    counts = descriptor_counts(safe)
    # Normalized (lower, first word, inflections folded): flowEQ's stem gives warm 536 and
    # bright 518; folding warmth/brightness/brightens too gives 537 and 521.
    assert counts.iloc[:3].to_dict() == {"warm": 537, "bright": 521, "air": 13}
    assert counts["thin"] == 11 and counts.index.is_unique
    x = params_array(safe)
    assert x.shape == (1496, 13) and np.isfinite(x).all()
    lo = np.array([PARAM_RANGES[n][0] for n in PARAM_NAMES])
    hi = np.array([PARAM_RANGES[n][1] for n in PARAM_NAMES])
    assert (x >= lo).all() and (x <= hi).all()
    # The documented ranges are the ranges measured in the file.
    np.testing.assert_allclose(x.min(0), lo, rtol=1e-6)
    np.testing.assert_allclose(x.max(0), hi, rtol=1e-6)
    assert list(safe.columns[:4]) == ["entry_id", "descriptor_raw", "descriptor", "contributor"]
    assert not {"location", "experience", "age", "language"} & set(safe.columns)


def _write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        for i, (word, params) in enumerate(rows, start=1):
            writer.writerow([i, word, f"contributor-{i:03d}", 1, 1, *params, *[""] * 6, f"h{i}"])
    return path


GOOD = [3.0, 120.0, -2.0, 400.0, 0.71, 1.5, 1000.0, 2.0, -4.0, 3300.0, 0.71, 6.0, 8200.0]


def test_cleaning_counts_and_drops_invalid_rows(tmp_path):
    bad_range = list(GOOD)
    bad_range[4] = 25.0  # Q above 10
    bad_freq = list(GOOD)
    bad_freq[12] = 30000.0
    nan_row = list(GOOD)
    nan_row[0] = float("nan")
    csv = _write_csv(
        tmp_path / SAFEDB_FILENAME,
        [(" Warm ", GOOD), ("BRIGHTER", GOOD), ("test", GOOD), ("warm", bad_range), ("bright", bad_freq),
         ("warm", nan_row), ("", GOOD), ("thin, twangy", GOOD)],
    )
    df = load_safedb(tmp_path)
    assert df.attrs["cleaning"] == {
        "source": str(csv), "raw_rows": 8, "dropped_nonfinite": 1, "dropped_out_of_range": 2,
        "dropped_invalid_descriptor": 2, "rows": 3,
    }  # fmt: skip
    assert df["descriptor"].tolist() == ["warm", "bright", "thin"]
    assert df["descriptor_raw"].tolist() == [" Warm ", "BRIGHTER", "thin, twangy"]
    np.testing.assert_array_equal(params_array(df)[0], GOOD)
    everything = load_safedb(csv, drop_invalid=False)
    assert everything.loc[3, "peak1_q"] == 25.0  # invalid values are reported as they are
    assert everything["invalid_reason"].tolist() == [
        "", "", "invalid_descriptor", "out_of_range", "out_of_range", "nonfinite", "invalid_descriptor", ""
    ]


def test_missing_file_names_env_var_and_make_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTERING_SAFEDB_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as info:
        load_safedb()
    msg = str(info.value)
    assert "MASTERING_SAFEDB_DIR" in msg and "make data" in msg and SAFEDB_FILENAME in msg


def test_wrong_layout_is_refused(tmp_path):
    (tmp_path / SAFEDB_FILENAME).write_text("1,warm,c1,1,1,3.0\n")
    with pytest.raises(ValueError, match="25-column"):
        load_safedb(tmp_path)
    (tmp_path / SAFEDB_FILENAME).write_text("1,warm,c1,1,1,3.0\n2,warm,c1,1,1,3.0,4.0\n")
    with pytest.raises(ValueError, match="25-column"):
        load_safedb(tmp_path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("warm", "warm"), (" Warm ", "warm"), ("warm ", "warm"), ("Brighter", "bright"), ("airy bright", "air"),
     ("Warmth ", "warm"), ("thin, twangy", "thin"), ("Tele (bridge pu) bright 1", "tele"), ("  ", ""),
     (None, ""), (float("nan"), ""), ("RE27", "re27")],
)  # fmt: skip
def test_normalize_descriptor(raw, expected):
    assert normalize_descriptor(raw) == expected


def test_descriptor_counts_orders_and_filters():
    df = pd.DataFrame({"descriptor": ["b", "a", "a", "c", "c", "d"], "descriptor_raw": list("xyzxyz")})
    counts = descriptor_counts(df)
    assert counts.index.tolist() == ["a", "c", "b", "d"] and counts.tolist() == [2, 2, 1, 1]
    assert descriptor_counts(df, min_count=2).index.tolist() == ["a", "c"]
    with pytest.raises(ValueError, match="no column"):
        descriptor_counts(df, "label")


# ---------------------------------------------------------------------------------------------
# Normalized parameters
# ---------------------------------------------------------------------------------------------


def test_normalize_endpoints_and_log_scale():
    lo = np.array([PARAM_RANGES[n][0] for n in PARAM_NAMES])
    hi = np.array([PARAM_RANGES[n][1] for n in PARAM_NAMES])
    np.testing.assert_allclose(normalize_params(lo), 0.0, atol=1e-12)
    np.testing.assert_allclose(normalize_params(hi), 1.0, atol=1e-12)
    # Frequencies and Qs map logarithmically (geometric mean -> 0.5), gains linearly (0 dB -> 0.5).
    mid = np.where(lo > 0, np.sqrt(np.abs(lo * hi)), 0.5 * (lo + hi))
    np.testing.assert_allclose(normalize_params(mid), 0.5, atol=1e-12)
    np.testing.assert_allclose(denormalize_params(np.full(13, 0.5)), mid, rtol=1e-12, atol=1e-12)


def test_round_trip_numpy_and_torch(safe):
    x = params_array(safe)
    n = normalize_params(x)
    assert n.shape == x.shape and n.min() >= 0 and n.max() <= 1
    np.testing.assert_allclose(denormalize_params(n), x, rtol=1e-12)
    t = torch.as_tensor(x)
    nt = normalize_params(t)
    assert isinstance(nt, torch.Tensor) and nt.dtype == torch.float64
    torch.testing.assert_close(nt, torch.as_tensor(n))
    torch.testing.assert_close(denormalize_params(nt), t)
    u = np.random.default_rng(0).uniform(0, 1, (64, 13))
    np.testing.assert_allclose(normalize_params(denormalize_params(u)), u, atol=1e-12)
    # A pandas row works too.
    np.testing.assert_allclose(normalize_params(safe.iloc[0]), n[0])


def test_normalize_refuses_bad_input():
    with pytest.raises(ValueError, match="13 SAFE parameters"):
        normalize_params(np.zeros(12))
    with pytest.raises(ValueError, match="out of range.*peak1_q"):
        normalize_params(np.array(GOOD[:4] + [20.0] + GOOD[5:]))
    with pytest.raises(ValueError, match="NaN"):
        normalize_params(np.array([np.nan] + GOOD[1:]))
    clipped = normalize_params(np.array(GOOD[:4] + [20.0] + GOOD[5:]), clip=True)
    assert clipped[4] == 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        denormalize_params(np.full(13, 1.5))
    np.testing.assert_allclose(denormalize_params(np.full(13, 1.5), clip=True), [PARAM_RANGES[n][1] for n in PARAM_NAMES])


def test_normalize_gradients():
    x = torch.tensor([GOOD], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(normalize_params, (x,))
    y = torch.rand(1, 13, dtype=torch.float64).mul(0.9).add(0.05).requires_grad_()
    assert torch.autograd.gradcheck(denormalize_params, (y,))


# ---------------------------------------------------------------------------------------------
# Conversion to biquad bands and to dasp-pytorch
# ---------------------------------------------------------------------------------------------


def test_safe_to_bands_layout():
    f, g, q, kinds = safe_to_bands(np.array(GOOD))
    assert kinds == BAND_KINDS == ("low_shelf", "peaking", "peaking", "peaking", "high_shelf")
    np.testing.assert_array_equal(f, [120.0, 400.0, 1000.0, 3300.0, 8200.0])
    np.testing.assert_array_equal(g, [3.0, -2.0, 1.5, -4.0, 6.0])
    np.testing.assert_allclose(q, [SHELF_Q, 0.71, 2.0, 0.71, SHELF_Q])
    assert math.isclose(SHELF_Q, 1 / math.sqrt(2))
    ft, gt, qt, _ = safe_to_bands(torch.tensor([GOOD, GOOD]))
    assert isinstance(ft, torch.Tensor) and ft.shape == gt.shape == qt.shape == (2, 5)
    with pytest.raises(ValueError, match="13 SAFE parameters"):
        safe_to_bands(np.zeros((2, 10)))


def test_safe_to_dasp_matches_dasp_signature():
    d = safe_to_dasp(np.array([GOOD, GOOD]))
    expected = [p for p in inspect.signature(dasp_functional.parametric_eq).parameters if p not in ("x", "sample_rate")]
    assert sorted(d) == sorted(expected)
    assert all(v.shape == (2,) for v in d.values())
    assert d["band3_gain_db"].abs().max() == 0  # SAFE has three peaks; dasp's fourth is flat
    assert d["band1_cutoff_freq"][0] == 1000.0 and d["band2_q_factor"][0] == pytest.approx(0.71)
    assert d["low_shelf_q_factor"][0] == pytest.approx(SHELF_Q) and d["high_shelf_q_factor"][0] == pytest.approx(SHELF_Q)
    with pytest.raises(ValueError, match="batch, 13"):
        safe_to_dasp(np.zeros((2, 2, 13)))


def _dasp_sos(params, sample_rate):
    """dasp-pytorch's own six biquads for SAFE settings, [batch, 6, 6] float64."""
    d = safe_to_dasp(params, dtype=torch.float64)
    sections = []
    for name, kind in [("low_shelf", "low_shelf"), ("band0", "peaking"), ("band1", "peaking"), ("band2", "peaking"),
                       ("band3", "peaking"), ("high_shelf", "high_shelf")]:  # fmt: skip
        b, a = dasp_signal.biquad(d[f"{name}_gain_db"], d[f"{name}_cutoff_freq"], d[f"{name}_q_factor"], sample_rate, kind)
        sections.append(torch.cat([b, a], dim=-1))
    return torch.stack(sections, dim=1)


def _below_nyquist(x, sample_rate):
    # mastering.dsp.eq clamps band frequencies to 0.49 x sample_rate; dasp-pytorch does not (a
    # 20 kHz shelf at 22.05 kHz is above Nyquist there). Compare the settings both take as they are.
    return x[(x[:, [1, 3, 6, 9, 12]] < 0.49 * sample_rate).all(axis=1)]


@needs_safedb
@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_biquad_and_dasp_coefficients_agree_on_all_real_rows(safe, sample_rate):
    x = _below_nyquist(params_array(safe), sample_rate)
    assert len(x) > 1000
    dasp_sos = _dasp_sos(x, sample_rate)
    f, g, q, kinds = safe_to_bands(x)
    ours = sos_from_params(f, g, q, kinds, sample_rate)
    # dasp's fourth peaking band (band3) at 0 dB is the identity section (b = a).
    np.testing.assert_allclose(dasp_sos[:, 4, :3].numpy(), dasp_sos[:, 4, 3:].numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(dasp_sos[:, [0, 1, 2, 3, 5]].numpy(), ours, rtol=0, atol=1e-12)


@needs_safedb
@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_biquad_and_dasp_magnitude_agree_on_real_rows(safe, sample_rate):
    x = _below_nyquist(params_array(safe), sample_rate)
    x = x[np.random.default_rng(0).choice(len(x), 48, replace=False)]
    n_fft = 4096
    h = dasp_signal.fft_sosfreqz(_dasp_sos(x, sample_rate), n_fft=n_fft)
    f = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    band = (f >= 20) & (f <= min(20000, sample_rate / 2))
    dasp_db = 20 * np.log10(h.abs().numpy()[:, band])
    ours_db = safe_response_db(x, f[band], sample_rate)
    # Same RBJ design, same shelf-Q convention: agreement to float64 rounding (measured 1e-9 dB
    # on all 1,496 rows at 44.1 kHz).
    assert np.abs(ours_db - dasp_db).max() < 1e-6
    # The curves are real EQs, not all flat: the comparison is not vacuous.
    assert np.abs(ours_db).max(axis=1).mean() > 6


@needs_safedb
@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_biquad_cascade_and_dasp_parametric_eq_filter_alike(safe, sample_rate, channels):
    """Impulse through dasp's parametric_eq (frequency sampling) and our exact IIR cascade."""
    x = _below_nyquist(params_array(safe), sample_rate)
    rows = x[np.random.default_rng(sample_rate).choice(len(x), 4, replace=False)]
    # Include the sharpest resonance in the file (longest impulse response).
    rows[0] = x[np.argmax(np.abs(x[:, [2, 5, 8]]).max(1) * x[:, [4, 7, 10]].max(1))]
    n = 2**14
    impulse = torch.zeros(len(rows), channels, n, dtype=torch.float64)
    impulse[..., 0] = 1.0
    y_dasp = dasp_functional.parametric_eq(impulse, sample_rate, **safe_to_dasp(rows, dtype=torch.float64))
    f, g, q, kinds = safe_to_bands(torch.as_tensor(rows))
    y_ours = parametric_eq(impulse, sample_rate, f, g, q, kinds, mode="exact")
    # dasp applies the response as a circular convolution of length 2n: the difference is the
    # impulse response aliased beyond 2n = 0.7-1.5 s, below float64 rounding here.
    err = (y_dasp - y_ours).norm() / y_ours.norm()
    assert err < 1e-9
    # Their spectra follow the analytic response (truncation at n samples: < 0.01 dB).
    spec = 20 * torch.log10(torch.fft.rfft(y_ours[:, 0], dim=-1).abs()).numpy()
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    band = (freqs >= 20) & (freqs <= min(20000, sample_rate / 2))
    ref = freq_response_db(f, g, q, kinds, sample_rate, freqs_hz=freqs[band]).numpy()
    assert np.abs(spec[:, band] - ref).max() < 0.01


@needs_safedb
def test_dasp_float32_tolerance(safe):
    """In float32 (dasp's usual dtype) the two agree within 0.05 dB (measured 0.012 dB)."""
    x = _below_nyquist(params_array(safe), 44100)[:64]
    h = dasp_signal.fft_sosfreqz(_dasp_sos(x, 44100).float(), n_fft=8192)
    f = np.arange(4097) * 44100 / 8192
    band = (f >= 20) & (f <= 20000)
    err = np.abs(20 * np.log10(h.abs().numpy()[:, band]) - safe_response_db(x, f[band], 44100))
    assert err.max() < 0.05


def test_safe_response_gradient():
    x = torch.tensor([GOOD], dtype=torch.float64, requires_grad=True)
    freqs = np.geomspace(30, 15000, 6)
    assert torch.autograd.gradcheck(lambda p: safe_response_db(p, freqs, 44100), (x,))


def test_response_of_flat_setting_is_zero_and_shelves_reach_gain():
    flat = np.array([0, 100, 0, 500, 1, 0, 1000, 1, 0, 3000, 1, 0, 8000], dtype=float)
    f = np.geomspace(20, 20000, 64)
    np.testing.assert_allclose(safe_response_db(flat, f, 44100), 0.0, atol=1e-9)
    shelf = flat.copy()
    shelf[0], shelf[1] = 12.0, 100.0
    r = safe_response_db(shelf, np.array([1.0, 100.0, 20000.0]), 44100)
    # RBJ shelf: full gain at DC, half the dB gain at the corner, none at the far end.
    assert r[0] == pytest.approx(12.0, abs=0.01) and r[1] == pytest.approx(6.0, abs=0.01) and abs(r[2]) < 0.01


def test_the_shared_copy_beside_the_repository_is_the_default(monkeypatch):
    """CI puts ../shared beside the clone: the SAFE-DB tests and notebooks must find it there rather
    than skip for want of the file."""
    shared = paths.REPO_ROOT.parent / "shared" / "data" / "safedb"
    if not (shared / SAFEDB_FILENAME).is_file():
        pytest.skip("no ../shared/data/safedb beside this checkout")
    monkeypatch.delenv("MASTERING_SAFEDB_DIR", raising=False)
    assert paths.safedb_dir() == shared
