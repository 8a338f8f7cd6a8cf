"""auto-mastering: neural perceptual audio mastering and input-adaptive semantic EQ.

Conventions, stated once for the whole package:

* Audio tensors are ``[batch, channels, samples]`` (a single signal may be ``[channels, samples]``
  where a function says so). NumPy ``(samples, channels)`` appears only in :mod:`mastering.io`.
* Filter parameters are ``[batch, bands]``.
* The sample-rate keyword is always ``sample_rate`` (Hz); quantities carry their unit in the name:
  ``gain_db``, ``freq_hz``, ``attack_ms``, ``target_lufs``, ``true_peak_dbtp``.
* Randomness takes an explicit ``seed``.

Layers, each importing only the ones before it (``tests/test_layers.py`` checks it): ``paths``,
``profiles``, ``defaults``, ``provenance``, ``io`` -> ``dsp`` -> ``losses``, ``models`` -> ``data`` ->
``training`` -> ``pipeline``, ``master`` -> ``semantic`` -> ``evaluation`` -> reports (``figures``,
``literature``, ``*.report*``) -> ``paper`` -> ``cli``, ``notebooks``. The listening-test app imports
the package; the package never imports it.
"""

__version__ = "0.1.0"
