"""SQLite storage of participants, their schedules and their ratings.

Every rating is committed the moment it is given (WAL journal, ``synchronous=FULL``), so a
reload, a closed tab, a crashed or restarted server loses nothing: the state of a participant is
entirely in the database (the next trial is the lowest-index trial without a response).

Integrity is enforced by the schema as well as by the code: ``responses.trial_id`` is the primary
key (a trial is answered at most once, so a repeated submission cannot add a row), a rating is an
integer in 1..7 (``CHECK``), and a trial belongs to exactly one participant. Submissions run in
``BEGIN IMMEDIATE`` transactions, which serialises the check-then-insert across server threads.

Participants are identified by a random token (``secrets.token_urlsafe(32)``, 256 bits) kept in a
cookie; the database stores only its SHA-256, and exports use a separate random pseudonym.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from mastering.evaluation.listening_design import EXPORT_COLUMNS, RATING_MAX, RATING_MIN, TrialSpec

__all__ = [
    "Store",
    "Participant",
    "Trial",
    "SubmitResult",
    "TrialNotFound",
    "SubmissionConflict",
]

SCHEMA_VERSION = "1"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    token_sha256    TEXT NOT NULL UNIQUE,
    seed            INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    finished_at     TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    id              INTEGER PRIMARY KEY,
    participant_id  INTEGER NOT NULL REFERENCES participants(id),
    trial_index     INTEGER NOT NULL,
    phase           TEXT NOT NULL CHECK (phase IN ('training', 'main')),
    item            TEXT NOT NULL,
    condition       TEXT NOT NULL,
    target          TEXT NOT NULL,
    path            TEXT NOT NULL,
    placeholder     INTEGER NOT NULL CHECK (placeholder IN (0, 1)),
    attention_check TEXT NOT NULL CHECK (attention_check IN ('', 'fixed', 'repeat')),
    expected_rating INTEGER,
    repeat_of       INTEGER,
    first_shown_at  TEXT,
    UNIQUE (participant_id, trial_index)
);
CREATE TABLE IF NOT EXISTS responses (
    trial_id        INTEGER PRIMARY KEY REFERENCES trials(id),
    participant_id  INTEGER NOT NULL REFERENCES participants(id),
    rating          INTEGER NOT NULL CHECK (rating BETWEEN {RATING_MIN} AND {RATING_MAX}),
    plays           INTEGER NOT NULL DEFAULT 0 CHECK (plays >= 0),
    answered_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_participant ON responses(participant_id);
"""


class TrialNotFound(LookupError):
    """The trial does not exist or belongs to another participant (the two are not told apart)."""


class SubmissionConflict(ValueError):
    """A valid trial of this participant that cannot take this rating now."""


@dataclass(frozen=True)
class Participant:
    id: int
    public_id: str
    seed: int
    created_at: str
    finished_at: str | None


@dataclass(frozen=True)
class Trial:
    id: int
    participant_id: int
    trial_index: int
    phase: str
    item: str
    condition: str
    target: str
    path: str
    attention_check: str
    expected_rating: int | None


@dataclass(frozen=True)
class SubmitResult:
    """``status`` is ``"stored"`` for a new rating or ``"duplicate"`` for a repeat of a stored one."""

    status: str
    trial_id: int
    rating: int
    finished: bool


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Store:
    """Thread-safe access to the listening-test database (one connection per thread).

    Args:
        db_path: the SQLite file (created with its folder when missing).
    """

    def __init__(self, db_path: str | os.PathLike):
        self.path = Path(db_path).expanduser().resolve()
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; give the path of a database file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        con = self._con()
        con.executescript(_SCHEMA)
        con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise ValueError(f"{self.path}: database schema {version}, this app writes {SCHEMA_VERSION}")

    # -- connections -------------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
        return con

    def _write(self):
        return _Transaction(self._con())

    # -- participants ------------------------------------------------------------------------
    def create_participant(
        self, schedule: Sequence[TrialSpec], seed: int, manifest_sha256: str
    ) -> tuple[str, Participant]:
        """Create a participant with their schedule; returns ``(secret token, participant)``."""
        if not schedule:
            raise ValueError("a participant needs at least one trial")
        token = secrets.token_urlsafe(32)
        now = utc_now()
        with self._write() as con:
            while True:
                public_id = "P" + secrets.token_hex(5)
                try:
                    cur = con.execute(
                        "INSERT INTO participants(public_id, token_sha256, seed, manifest_sha256, created_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (public_id, hash_token(token), int(seed), manifest_sha256, now),
                    )
                    break
                except sqlite3.IntegrityError:  # pseudonym collision (1 in 10^12): draw again
                    continue
            pid = int(cur.lastrowid)
            con.executemany(
                "INSERT INTO trials(participant_id, trial_index, phase, item, condition, target, path,"
                " placeholder, attention_check, expected_rating, repeat_of)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (pid, i, t.phase, t.row.item, t.row.condition, t.row.target, t.row.path,
                     int(t.row.placeholder), t.attention_check, t.expected_rating, t.repeat_of)
                    for i, t in enumerate(schedule)
                ],
            )
        return token, Participant(pid, public_id, int(seed), now, None)

    def participant_by_token(self, token: str | None) -> Participant | None:
        if not token or len(token) > 200:
            return None
        row = self._con().execute(
            "SELECT id, public_id, seed, created_at, finished_at FROM participants WHERE token_sha256 = ?",
            (hash_token(token),),
        ).fetchone()
        return Participant(*row) if row else None

    # -- trials ------------------------------------------------------------------------------
    @staticmethod
    def _trial(row: sqlite3.Row) -> Trial:
        return Trial(
            row["id"], row["participant_id"], row["trial_index"], row["phase"], row["item"],
            row["condition"], row["target"], row["path"], row["attention_check"], row["expected_rating"],
        )

    _CURRENT_SQL = (
        "SELECT t.* FROM trials t LEFT JOIN responses r ON r.trial_id = t.id"
        " WHERE t.participant_id = ? AND r.trial_id IS NULL ORDER BY t.trial_index LIMIT 1"
    )

    def current_trial(self, participant_id: int, mark_shown: bool = False) -> Trial | None:
        """The participant's next unanswered trial (``None`` when finished).

        With ``mark_shown`` the first time a trial is shown is recorded (``shown_at`` in the export).
        """
        con = self._con()
        row = con.execute(self._CURRENT_SQL, (participant_id,)).fetchone()
        if row is None:
            return None
        if mark_shown and row["first_shown_at"] is None:
            with self._write() as wcon:
                wcon.execute(
                    "UPDATE trials SET first_shown_at = ? WHERE id = ? AND first_shown_at IS NULL",
                    (utc_now(), row["id"]),
                )
        return self._trial(row)

    def trial_of(self, participant_id: int, trial_id: int) -> Trial | None:
        """The trial ``trial_id`` if it belongs to ``participant_id``, else ``None``."""
        row = self._con().execute(
            "SELECT * FROM trials WHERE id = ? AND participant_id = ?", (int(trial_id), participant_id)
        ).fetchone()
        return self._trial(row) if row else None

    def progress(self, participant_id: int) -> tuple[int, int, bool]:
        """``(answered main trials, main trials, training answered)``."""
        row = self._con().execute(
            "SELECT SUM(t.phase = 'main' AND r.trial_id IS NOT NULL), SUM(t.phase = 'main'),"
            " SUM(t.phase = 'training' AND r.trial_id IS NULL)"
            " FROM trials t LEFT JOIN responses r ON r.trial_id = t.id WHERE t.participant_id = ?",
            (participant_id,),
        ).fetchone()
        done, total, training_open = row
        return int(done or 0), int(total or 0), not training_open

    # -- responses ---------------------------------------------------------------------------
    def submit(self, participant_id: int, trial_id: int, rating: int, plays: int = 0) -> SubmitResult:
        """Store a rating for the participant's current trial.

        Submitting the stored rating of an already answered trial again is a no-op reported as
        ``"duplicate"`` (a double click, a resent form); submitting a different one is refused,
        as is answering any trial but the current one.

        Raises:
            ValueError: a rating outside 1..7 or a negative play count.
            TrialNotFound: ``trial_id`` is not one of this participant's trials.
            SubmissionConflict: the trial was answered with another rating, or is not current.
        """
        if isinstance(rating, bool) or not isinstance(rating, int) or not RATING_MIN <= rating <= RATING_MAX:
            raise ValueError(f"rating must be an integer from {RATING_MIN} to {RATING_MAX}")
        if isinstance(plays, bool) or not isinstance(plays, int) or plays < 0:
            raise ValueError("plays must be a non-negative integer")
        with self._write() as con:
            trial = con.execute(
                "SELECT id, trial_index FROM trials WHERE id = ? AND participant_id = ?",
                (int(trial_id), participant_id),
            ).fetchone()
            if trial is None:
                raise TrialNotFound(f"trial {trial_id} is not one of your trials")
            stored = con.execute("SELECT rating FROM responses WHERE trial_id = ?", (trial["id"],)).fetchone()
            if stored is not None:
                if stored["rating"] != rating:
                    raise SubmissionConflict(
                        f"trial {trial_id} was already answered with {stored['rating']}; answers cannot be changed"
                    )
                return SubmitResult("duplicate", trial["id"], rating, self._finished(con, participant_id))
            current = con.execute(self._CURRENT_SQL, (participant_id,)).fetchone()
            if current["id"] != trial["id"]:
                raise SubmissionConflict(
                    f"trial {trial_id} is not your current trial (that is trial {current['id']})"
                )
            now = utc_now()
            con.execute(
                "INSERT INTO responses(trial_id, participant_id, rating, plays, answered_at) VALUES (?, ?, ?, ?, ?)",
                (trial["id"], participant_id, rating, plays, now),
            )
            con.execute(
                "UPDATE trials SET first_shown_at = COALESCE(first_shown_at, ?) WHERE id = ?", (now, trial["id"])
            )
            finished = self._finished(con, participant_id)
            if finished:
                con.execute(
                    "UPDATE participants SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                    (now, participant_id),
                )
        return SubmitResult("stored", trial["id"], rating, finished)

    @staticmethod
    def _finished(con: sqlite3.Connection, participant_id: int) -> bool:
        return con.execute(Store._CURRENT_SQL, (participant_id,)).fetchone() is None

    # -- admin -------------------------------------------------------------------------------
    def export_rows(self) -> Iterator[dict]:
        """Every stored rating in long format (one row per participant x trial), see ``EXPORT_COLUMNS``.

        ``simulated`` is always 0 (the database holds real participants only) and
        ``manifest_sha256`` is the hash of the stimuli manifest the participant was served; the
        analysis (:func:`mastering.evaluation.listening_analysis.load_responses`) checks both.
        """
        cur = self._con().execute(
            "SELECT p.public_id, p.seed, p.finished_at, p.manifest_sha256, t.trial_index, t.phase, t.item,"
            " t.condition, t.target, r.rating, t.attention_check, t.expected_rating, t.repeat_of,"
            " t.placeholder, t.path, r.plays, t.first_shown_at, r.answered_at"
            " FROM responses r JOIN trials t ON t.id = r.trial_id JOIN participants p ON p.id = r.participant_id"
            " ORDER BY p.id, t.trial_index"
        )
        for row in cur:
            yield {
                "participant": row["public_id"],
                "participant_seed": row["seed"],
                "participant_complete": int(row["finished_at"] is not None),
                "trial_index": row["trial_index"],
                "phase": row["phase"],
                "item": row["item"],
                "condition": row["condition"],
                "target": row["target"],
                "rating": row["rating"],
                "attention_check": row["attention_check"],
                "expected_rating": "" if row["expected_rating"] is None else row["expected_rating"],
                "repeat_of_trial_index": "" if row["repeat_of"] is None else row["repeat_of"],
                "placeholder": row["placeholder"],
                "stimulus": row["path"],
                "plays": row["plays"],
                "shown_at": row["first_shown_at"] or "",
                "answered_at": row["answered_at"],
                "manifest_sha256": row["manifest_sha256"],
                "simulated": 0,  # the app stores real participants only; the analysis requires the column
            }

    def export_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.export_rows())
        return buf.getvalue()

    def summary(self) -> dict:
        con = self._con()
        n_participants, n_finished = con.execute(
            "SELECT COUNT(*), COUNT(finished_at) FROM participants"
        ).fetchone()
        n_responses = con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        return {"participants": n_participants, "finished": n_finished, "responses": n_responses}

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
        else:
            self.con.execute("ROLLBACK")
