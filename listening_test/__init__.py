"""Listening test for the semantic-EQ user study: a web app, its stimuli and its export.

Participants rate "how <target> this audio sounds" on a 1-7 scale for every item x condition x
target of a stimuli manifest, in a seeded random order per participant, with attention checks.
The design (conditions, targets, scale, schedules, export columns) and the manifest format belong
to the science, :mod:`mastering.evaluation.listening_design` and
:mod:`mastering.evaluation.listening_manifest`, as do the statistics
(:mod:`mastering.evaluation.listening_analysis`); this package imports them and is never imported
by :mod:`mastering`. Ratings are stored in SQLite the moment they are given
(:mod:`listening_test.store`) and exported in long format for the analysis. The app is
:func:`listening_test.app.create_app` (Flask, not loaded here); the stimuli come from
:func:`listening_test.stimuli.generate_stimuli` (which imports torch and is therefore not loaded
here), the real systems under test from :func:`listening_test.systems.stimulus_systems`. Command
line: ``python -m listening_test {serve,export,stimuli} --help``.
"""

from .store import Store, SubmissionConflict, TrialNotFound

__all__ = ["Store", "SubmissionConflict", "TrialNotFound"]
