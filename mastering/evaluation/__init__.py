"""Evaluation of the mastering systems (notebook 06) and reports of the listening test (notebook 12).

* :mod:`mastering.evaluation.metrics`: objective metrics against the original master (MR-STFT,
  1/3-octave band error, loudness error, true peak, A-weighted L1, SI-SDR).
* :mod:`mastering.evaluation.systems`: the compared systems behind one ``master(audio,
  sample_rate)`` interface.
* :mod:`mastering.evaluation.benchmark`: held-out test pairs, running the systems, bootstrap
  intervals, paired tests and speed.
* :mod:`mastering.evaluation.report`: the figures and tables of notebook 06;
  :mod:`mastering.evaluation.report_listening`: those of notebook 12.
* The listening test's science: :mod:`mastering.evaluation.listening_design` (conditions,
  targets, rating scale, trial schedules, export columns),
  :mod:`mastering.evaluation.listening_manifest` (the stimuli manifest) and
  :mod:`mastering.evaluation.listening_analysis` (exclusions, ANOVA, mixed model, post-hoc tests,
  simulated power, objective proxies). The web app that serves the design, ``listening_test``,
  imports these modules; nothing in :mod:`mastering` imports it.

See the package docstring of :mod:`mastering` for conventions.
"""
