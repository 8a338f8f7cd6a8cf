"""Differentiable, batched DSP: audio is ``[batch, channels, samples]``, parameters ``[batch, bands]``.

* :mod:`~mastering.dsp.eq` — RBJ biquads and the parametric EQ (exact IIR and fast frequency sampling)
* :mod:`~mastering.dsp.dynamics` — compressor, expander, true-peak limiter
* :mod:`~mastering.dsp.weighting` — IEC 61672-1 A-weighting, ITU-R BS.1770-4 K-weighting
* :mod:`~mastering.dsp.loudness` — BS.1770-4 integrated loudness, true peak, EBU Tech 3342 LRA
* :mod:`~mastering.dsp.signals` — sines, pink noise, EBU Tech 3341/3342 test signals
"""

from .dynamics import Compressor, Expander, compressor, compressor_gain_db, expander, expander_gain_db, limiter
from .eq import (
    EQ_KINDS,
    PARAM_RANGES,
    ParametricEQ,
    biquad_coefficients,
    default_kinds,
    freq_response_db,
    log_frequency_grid,
    normalized_to_params,
    parametric_eq,
    params_to_normalized,
    sos_from_params,
)
from .loudness import (
    LoudnessMeter,
    block_loudness,
    loudness,
    loudness_range,
    momentary_loudness,
    normalize_loudness,
    short_term_loudness,
    true_peak,
    true_peak_stream,
)
from .signals import ebu_tech_3341_signals, ebu_tech_3342_signals, pink_noise, sine, sine_sequence
from .weighting import (
    IEC_61672_A_TABLE,
    a_weighting,
    a_weighting_analog_db,
    a_weighting_coefficients,
    a_weighting_sos,
    k_weighting,
    k_weighting_coefficients,
    k_weighting_sos,
)

__all__ = [
    "Compressor", "Expander", "compressor", "compressor_gain_db", "expander", "expander_gain_db", "limiter",
    "EQ_KINDS", "PARAM_RANGES", "ParametricEQ", "biquad_coefficients", "default_kinds", "freq_response_db",
    "log_frequency_grid", "normalized_to_params", "parametric_eq", "params_to_normalized", "sos_from_params",
    "block_loudness", "loudness", "loudness_range", "momentary_loudness", "normalize_loudness",
    "short_term_loudness", "true_peak", "LoudnessMeter", "true_peak_stream",
    "ebu_tech_3341_signals", "ebu_tech_3342_signals", "pink_noise", "sine", "sine_sequence",
    "IEC_61672_A_TABLE", "a_weighting", "a_weighting_analog_db", "a_weighting_coefficients", "a_weighting_sos",
    "k_weighting", "k_weighting_coefficients", "k_weighting_sos",
]
