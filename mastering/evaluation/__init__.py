"""Evaluation of the mastering systems (notebook 06) and reports of the listening test (notebook 12).

* :mod:`mastering.evaluation.metrics`: objective metrics against the original master (MR-STFT,
  1/3-octave band error, loudness error, true peak, A-weighted L1, SI-SDR).
* :mod:`mastering.evaluation.systems`: the compared systems behind one ``master(audio,
  sample_rate)`` interface.
* :mod:`mastering.evaluation.benchmark`: held-out test pairs, running the systems, bootstrap
  intervals, paired tests and speed.
* :mod:`mastering.evaluation.report`: the figures and tables of notebook 06;
  :mod:`mastering.evaluation.listening`: those of notebook 12.

See the package docstring of :mod:`mastering` for conventions.
"""
