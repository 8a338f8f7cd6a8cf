"""Defaults and allowed ranges of the mastering chain's user-facing settings.

One owner for both :func:`mastering.master.master_file` and the command line, kept free of heavy
imports so that ``mastering --help`` starts fast.
"""

TARGET_LUFS = -14.0
TARGET_LUFS_RANGE = (-40.0, -5.0)
TRUE_PEAK_DBTP = -1.0
TRUE_PEAK_DBTP_RANGE = (-12.0, 0.0)
INTENSITY_RANGE = (0.0, 2.0)
HIGHPASS_HZ = 20.0  # the chain's subsonic high-pass (0 turns it off)
HIGHPASS_HZ_RANGE = (5.0, 60.0)
HIGHPASS_ORDER = 4  # Butterworth: 24 dB/octave below the corner, minimum phase
MIN_SAMPLE_RATE = 8000  # Hz: what the chain and the data tools accept
MAX_SAMPLE_RATE = 384000
