"""Listening test for the semantic-EQ user study: a web app, its stimuli and its export.

Participants rate "how <target> this audio sounds" on a 1-7 scale for every item x condition x
target of a stimuli manifest, in a seeded random order per participant, with attention checks
(:mod:`listening_test.design`). Ratings are stored in SQLite the moment they are given
(:mod:`listening_test.store`) and exported in long format for the analysis. The app is
:func:`listening_test.app.create_app`; the stimuli come from
:func:`listening_test.stimuli.generate_stimuli` (which imports torch and is therefore not loaded
here). Command line: ``python -m listening_test {serve,export,stimuli} --help``.
"""

from .design import RATING_MAX, RATING_MIN, TrialSpec, build_schedule
from .manifest import Manifest, ManifestRow, load_manifest, write_manifest
from .store import EXPORT_COLUMNS, Store, SubmissionConflict, TrialNotFound

__all__ = [
    "RATING_MIN",
    "RATING_MAX",
    "TrialSpec",
    "build_schedule",
    "Manifest",
    "ManifestRow",
    "load_manifest",
    "write_manifest",
    "EXPORT_COLUMNS",
    "Store",
    "SubmissionConflict",
    "TrialNotFound",
    "create_app",
]


def __getattr__(name):
    if name == "create_app":  # Flask is imported only when the app is wanted
        from .app import create_app

        return create_app
    raise AttributeError(name)
