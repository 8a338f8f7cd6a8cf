"""Evaluation of the mastering systems (notebook 06) and reports of the listening test (notebook 12).

Modules: ``metrics`` (objective metrics against the original master), ``systems`` (the compared
systems behind one ``master(audio, sample_rate)`` interface), ``benchmark`` (held-out test pairs,
running the systems, bootstrap intervals, paired tests, speed), ``oracle`` (ceilings of ideal
correctors), ``predictability`` (how much of the tonal correction the input reveals: blind band-EQ
regressors on the training and validation pairs, and their learning curve over more pairs),
``report`` / ``report_listening`` (the artefacts of notebooks 06 / 12) and the listening test's
science: ``listening_design``, ``listening_manifest`` and ``listening_analysis`` (statistics). The
web app ``listening_test`` imports these modules; nothing in :mod:`mastering` imports it.
Conventions: :mod:`mastering`.
"""
