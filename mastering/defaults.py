"""Defaults and allowed ranges of the mastering chain's user-facing settings.

One owner for both :func:`mastering.master.master_file` and the command line, kept free of heavy
imports so that ``mastering --help`` starts fast.
"""

TARGET_LUFS = -14.0
TARGET_LUFS_RANGE = (-40.0, -5.0)
TRUE_PEAK_DBTP = -1.0
TRUE_PEAK_DBTP_RANGE = (-12.0, 0.0)
INTENSITY_RANGE = (0.0, 2.0)
# The chain's optional subsonic high-pass: off by default (0). Its low-frequency phase shift is
# inaudible but costs 0.2-0.5 MR-STFT (256-2048-point frames) on an otherwise untouched master,
# more than the models' whole correction, and the models were trained without it.
HIGHPASS_HZ = 0.0
SUBSONIC_HZ = 20.0  # corner of the subsonic filter when one is asked for (and of the metrics' 20 Hz floor)
HIGHPASS_HZ_RANGE = (5.0, 60.0)
HIGHPASS_ORDER = 4  # Butterworth: 24 dB/octave below the corner, minimum phase
MIN_SAMPLE_RATE = 8000  # Hz: what the chain and the data tools accept
MAX_SAMPLE_RATE = 384000
