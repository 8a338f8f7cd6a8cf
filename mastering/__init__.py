"""auto-mastering: neural perceptual audio mastering and input-adaptive semantic EQ.

Conventions for the whole package: audio tensors are ``[batch, channels, samples]`` (``[channels,
samples]`` where a function says so; NumPy ``(samples, channels)`` only in :mod:`mastering.io`),
filter parameters ``[batch, bands]``; the rate keyword is always ``sample_rate`` (Hz) and units are
in names (``gain_db``, ``freq_hz``, ``attack_ms``, ``target_lufs``, ``true_peak_dbtp``); randomness
takes an explicit ``seed``.

Layers, each importing only the ones before it (``tests/test_layers.py`` checks it): ``paths``,
``profiles``, ``defaults``, ``provenance``, ``runs``, ``io`` -> ``dsp`` -> ``losses``, ``models`` ->
``data`` -> ``training`` -> ``pipeline``, ``master`` -> ``semantic`` -> ``evaluation`` -> reports
(``figures``, ``literature``, ``*.report*``) -> ``paper`` -> ``cli``, ``notebooks``. The
listening-test app imports the package; the package never imports it.
"""

__version__ = "0.1.0"
