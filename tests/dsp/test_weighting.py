"""A- and K-weighting against IEC 61672-1, ITU-R BS.1770-4, scipy and pyloudnorm."""

import numpy as np
import pyloudnorm as pyln
import pytest
import torch
from scipy import signal

from mastering.dsp.weighting import (
    BS1770_K_WEIGHTING_48K,
    IEC_61672_A_TABLE,
    a_weighting,
    a_weighting_analog_db,
    a_weighting_coefficients,
    a_weighting_sos,
    k_weighting,
    k_weighting_coefficients,
    k_weighting_sos,
    sosfilt,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATES = (22050, 44100, 48000)

CHANNELS = (1, 2)
# Exact base-ten mid-band frequencies of the table rows (IEC 61260-1): 1000 * 10**(n/10), n=-20..13.
EXACT_FREQ_HZ = 1000.0 * 10.0 ** (np.arange(-20, 14) / 10.0)
TABLE_A_DB = np.array([row.a_weighting_db for row in IEC_61672_A_TABLE])
UPPER_DB = np.array([row.class1_upper_db for row in IEC_61672_A_TABLE])
LOWER_DB = np.array([row.class1_lower_db for row in IEC_61672_A_TABLE])


def response_db(sos: np.ndarray, freq_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    _, h = signal.sosfreqz(sos, worN=freq_hz, fs=sample_rate)
    return 20.0 * np.log10(np.abs(h))


# ---------------------------------------------------------------------------------- IEC table


def test_iec_table_layout():
    nominal = [row.freq_hz for row in IEC_61672_A_TABLE]
    assert len(nominal) == 34 and nominal[0] == 10.0 and nominal[-1] == 20000.0
    # Nominal frequencies are the rounded exact ones (within 3 % for the R10 series).
    np.testing.assert_allclose(nominal, EXACT_FREQ_HZ, rtol=0.03)
    assert np.all(UPPER_DB > 0) and np.all(LOWER_DB < 0)
    assert IEC_61672_A_TABLE[20].freq_hz == 1000.0 and IEC_61672_A_TABLE[20].a_weighting_db == 0.0


def test_iec_table_equals_analog_formula_rounded():
    """The nominal values are A(f) of Annex E at the exact frequencies, rounded to 0.1 dB."""
    analog = a_weighting_analog_db(EXACT_FREQ_HZ)
    np.testing.assert_array_equal(np.round(analog, 1), TABLE_A_DB)
    assert np.max(np.abs(analog - TABLE_A_DB)) <= 0.05 + 1e-9
    assert abs(float(a_weighting_analog_db(1000.0))) < 1e-12


# ---------------------------------------------------------------------------------- A-weighting


@pytest.mark.parametrize(
    "sample_rate, max_freq_hz",
    [(44100, 16000.0), (48000, 16000.0), (96000, 20000.0), (22050, 6300.0)],
)
def test_a_weighting_within_class1_limits(sample_rate, max_freq_hz):
    """Digital response minus table value lies inside the class-1 limits from 10 Hz to max_freq_hz."""
    sos = a_weighting_sos(sample_rate)
    use = EXACT_FREQ_HZ <= max_freq_hz * 1.03
    deviation = response_db(sos, EXACT_FREQ_HZ[use], sample_rate) - TABLE_A_DB[use]
    assert np.all(deviation <= UPPER_DB[use]), deviation
    assert np.all(deviation >= LOWER_DB[use]), deviation


@pytest.mark.parametrize("sample_rate", (44100, 48000))
def test_a_weighting_close_to_analog_where_bilinear_is_accurate(sample_rate):
    """Below 4 kHz the bilinear transform barely warps: the digital filter follows A(f) to 0.1 dB,
    and 20 Hz-16 kHz stays within the errors documented in a_weighting_zpk's docstring."""
    f = np.geomspace(10.0, 4000.0, 200)
    err = response_db(a_weighting_sos(sample_rate), f, sample_rate) - a_weighting_analog_db(f)
    assert np.max(np.abs(err)) < 0.1
    f_hi = EXACT_FREQ_HZ[[29, 31, 32]]  # the 8, 12.5 and 16 kHz bands
    err_hi = response_db(a_weighting_sos(sample_rate), f_hi, sample_rate) - a_weighting_analog_db(f_hi)
    documented = {44100: [-0.65, -3.46, -8.21], 48000: [-0.53, -2.74, -6.21]}[sample_rate]
    np.testing.assert_allclose(err_hi, documented, atol=0.01)


@pytest.mark.parametrize("sample_rate", RATES + (96000, 8000))
def test_a_weighting_unity_at_1khz_and_forms_agree(sample_rate):
    sos = a_weighting_sos(sample_rate)
    assert abs(response_db(sos, np.array([1000.0]), sample_rate)[0]) < 1e-9
    b, a = a_weighting_coefficients(sample_rate)
    assert b.dtype == np.float64 and a.dtype == np.float64 and a[0] == pytest.approx(1.0)
    f = np.geomspace(50.0, 0.45 * sample_rate, 50)
    _, h_ba = signal.freqz(b, a, worN=f, fs=sample_rate)
    _, h_sos = signal.sosfreqz(sos, worN=f, fs=sample_rate)
    np.testing.assert_allclose(np.abs(h_ba), np.abs(h_sos), rtol=1e-6)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_a_weighting_torch_equals_scipy(sample_rate, channels):
    rng = np.random.default_rng(sample_rate + channels)
    x = rng.standard_normal((2, channels, sample_rate // 2))
    reference = signal.sosfilt(a_weighting_sos(sample_rate), x, axis=-1)
    # Differentiable path (torchaudio lfilter) in float64.
    x64 = torch.tensor(x, requires_grad=True)
    y64 = a_weighting(x64, sample_rate)
    np.testing.assert_allclose(y64.detach().numpy(), reference, atol=1e-10)
    # No-gradient path (scipy) in float32, and the differentiable path in float32.
    x32 = torch.tensor(x, dtype=torch.float32)
    y32 = a_weighting(x32, sample_rate)
    assert y32.dtype == torch.float32 and y32.shape == x32.shape
    np.testing.assert_allclose(y32.numpy(), reference, atol=1e-5)
    y32_grad = a_weighting(x32.clone().requires_grad_(True), sample_rate)
    np.testing.assert_allclose(y32_grad.detach().numpy(), reference, atol=2e-3 * np.abs(reference).max())


def test_a_weighting_gradcheck():
    x = torch.randn(1, 2, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: a_weighting(t, 8000), (x,))


# ---------------------------------------------------------------------------------- K-weighting


def test_k_weighting_48k_equals_bs1770_tables():
    printed = np.array([np.concatenate(stage) for stage in BS1770_K_WEIGHTING_48K])
    np.testing.assert_allclose(k_weighting_sos(48000), printed, rtol=0, atol=1e-14)
    np.testing.assert_allclose(k_weighting_sos(48000, "deman"), printed, rtol=0, atol=1e-14)
    (b1, a1), (b2, a2) = k_weighting_coefficients(48000)
    assert a1[0] == 1.0 and a2[0] == 1.0
    np.testing.assert_array_equal(b2, [1.0, -2.0, 1.0])
    # pyloudnorm's default RBJ filters are close to, but not, the printed ones (its stage-2
    # numerator is scaled to unit passband gain: 0.995 instead of 1).
    diff = np.abs(k_weighting_sos(48000, "rbj") - printed).max()
    assert 1e-3 < diff < 2e-2


@pytest.mark.parametrize("sample_rate", RATES + (96000, 32000))
def test_k_weighting_matches_pyloudnorm_filters(sample_rate):
    """"deman" is pyloudnorm's DeMan filter class, "rbj" its default K-weighting, at any rate."""
    for design, filter_class, atol in (("deman", "DeMan", 1e-11), ("rbj", "K-weighting", 1e-14)):
        meter = pyln.Meter(sample_rate, filter_class=filter_class)
        theirs = np.array([np.concatenate([f.b, f.a]) for f in meter._filters.values()])
        np.testing.assert_allclose(k_weighting_sos(sample_rate, design), theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("sample_rate", (22050, 44100, 96000))
def test_k_weighting_bs1770_response_independent_of_rate(sample_rate):
    """The default design has the 48 kHz magnitude response (within 0.05 dB up to 0.4 fs)."""
    f = np.geomspace(20.0, min(10000.0, 0.4 * sample_rate), 100)
    ours = response_db(k_weighting_sos(sample_rate), f, sample_rate)
    at_48k = response_db(k_weighting_sos(48000), f, 48000)
    assert np.max(np.abs(ours - at_48k)) < 0.05
    # The printed 48 kHz filter: +0.691 dB at 1 kHz is what the -0.691 dB loudness offset cancels.
    assert response_db(k_weighting_sos(48000), np.array([1000.0]), 48000)[0] == pytest.approx(0.691, abs=0.01)
    assert response_db(k_weighting_sos(48000), np.array([20.0]), 48000)[0] < -13.0


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_k_weighting_torch_equals_scipy(sample_rate, channels):
    rng = np.random.default_rng(7 * sample_rate + channels)
    x = rng.standard_normal((2, channels, sample_rate // 2))
    reference = signal.sosfilt(k_weighting_sos(sample_rate), x, axis=-1)
    y = k_weighting(torch.tensor(x, requires_grad=True), sample_rate)
    np.testing.assert_allclose(y.detach().numpy(), reference, atol=1e-10)
    np.testing.assert_allclose(k_weighting(torch.tensor(x), sample_rate).numpy(), reference, atol=1e-12)


def test_k_weighting_gradcheck():
    x = torch.randn(2, 1, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: k_weighting(t, 16000), (x,))


def test_sosfilt_generic_shapes_and_normalization():
    sos = signal.butter(4, 0.2, output="sos")
    x = torch.randn(3, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = signal.sosfilt(sos, x.numpy(), axis=-1)
    # Sections with a0 != 1 are normalized: scaling a whole section changes nothing ...
    same = sosfilt(x.clone().requires_grad_(True), 3.0 * sos)
    np.testing.assert_allclose(same.detach().numpy(), expected, atol=1e-12)
    # ... while scaling the numerator of one section scales the output.
    louder = sos.copy()
    louder[0, :3] *= 2.0
    np.testing.assert_allclose(sosfilt(x.clone().requires_grad_(True), louder).detach().numpy(), 2 * expected, atol=1e-12)
    np.testing.assert_allclose(sosfilt(x, torch.tensor(louder)).numpy(), 2 * expected, atol=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda: a_weighting_sos(0),
        lambda: a_weighting_sos(-44100),
        lambda: a_weighting_sos(1500),
        lambda: a_weighting_sos("44100"),
        lambda: k_weighting_coefficients(3000),
        lambda: k_weighting_coefficients(48000, design="itu"),
        lambda: a_weighting(torch.zeros(2, 100), 44100),
        lambda: k_weighting(torch.zeros(1, 1, 100, dtype=torch.int32), 44100),
        lambda: k_weighting(np.zeros((1, 1, 100)), 44100),
        lambda: sosfilt(torch.zeros(1, 10), np.zeros((2, 5))),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
