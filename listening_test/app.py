"""The listening-test web application (Flask).

Pages (server-rendered, work without JavaScript; ``static/app.js`` adds play/replay control,
keyboard shortcuts and guards against rating before listening):

========================  ==============================================================
``GET /``                 consent page for a new visitor, else a redirect to where they are
``POST /consent``         records consent, creates the participant and their schedule
``GET /instructions``     instructions and the training trial
``GET /trial``            the current rating trial ("Rate how warm this audio sounds", 1-7)
``POST /respond``         stores one rating (form), then redirects to the next page
``GET /done``             thank-you page with the completion code
``GET /audio/<trial>``    the stimulus of one of *your* trials (no condition in the URL)
========================  ==============================================================

JSON API (same rules, used by scripted clients and the load test):

========================  ==============================================================
``POST /api/session``     ``{"consent": true}`` -> participant (sets the cookie)
``GET /api/state``        progress and the current trial
``POST /api/responses``   ``{"trial_id": int, "rating": 1..7, "plays": int}``
``GET /admin/export.csv`` all ratings, long format (``Authorization: Bearer <admin token>``)
``GET /admin/summary``    counts (admin token)
``GET /healthz``          liveness
========================  ==============================================================

Status codes: 400 malformed input, 401 no participant / no admin token, 403 wrong admin token,
404 a trial that is not yours, 409 a trial answered differently or not current, 413 body too
large. Participants are told apart only by the secret cookie; the stimulus URL, page and API
never reveal the condition being rated.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, abort, g, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from mastering.evaluation.listening_design import RATING_MAX, RATING_MIN, build_schedule
from mastering.evaluation.listening_manifest import Manifest, load_manifest

from .store import Store, SubmissionConflict, Trial, TrialNotFound

__all__ = ["create_app", "AppConfig", "COOKIE_NAME"]

COOKIE_NAME = "lt_participant"
MIN_ADMIN_TOKEN_CHARS = 16
_INT_RE = re.compile(r"^[0-9]{1,12}$")
_RATING_RE = re.compile(rf"^[{RATING_MIN}-{RATING_MAX}]$")
_MAX_PLAYS = 10_000


@dataclass(frozen=True)
class AppConfig:
    """Study settings.

    Attributes:
        n_fixed_checks: fixed-answer attention checks per participant.
        n_anchor_repeats: repeated ``original`` trials per participant.
        training: start with a training trial.
        title: the study title shown on every page.
        contact: who participants contact with questions (shown on the consent page).
        cookie_days: how long the participant cookie lives (they can resume within it).
    """

    n_fixed_checks: int = 4
    n_anchor_repeats: int = 4
    training: bool = True
    title: str = "Listening test: how does this audio sound?"
    contact: str = "the study team"
    cookie_days: int = 30


def _int_field(value, name: str, lo: int, hi: int, from_form: bool) -> int:
    """Strict integer within [lo, hi]: a JSON int (not bool, not float, not a string), or for an
    HTML form a string of digits."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    if isinstance(value, int) and not from_form:
        out = value
    elif from_form and isinstance(value, str) and _INT_RE.match(value):
        out = int(value)
    else:
        raise ValueError(f"{name} must be an integer")
    if not lo <= out <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}")
    return out


def create_app(
    stimuli_dir: str | Path,
    db_path: str | Path,
    admin_token: str,
    config: AppConfig | None = None,
) -> Flask:
    """Build the app for one stimuli folder and one database.

    Args:
        stimuli_dir: folder with ``manifest.csv`` and the WAV files
            (:mod:`mastering.evaluation.listening_manifest`).
        db_path: SQLite file holding participants and ratings (created when missing).
        admin_token: secret for the export; at least 16 characters.
        config: study settings.

    Raises:
        ValueError: an invalid manifest, a short admin token, or a design the manifest cannot fill
            (e.g. more anchor repeats than ``original`` stimuli).
    """
    config = config or AppConfig()
    if not isinstance(admin_token, str) or len(admin_token) < MIN_ADMIN_TOKEN_CHARS:
        raise ValueError(
            f"the admin token must have at least {MIN_ADMIN_TOKEN_CHARS} characters; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`"
        )
    manifest: Manifest = load_manifest(stimuli_dir)
    # Fail at start-up, not at the first participant, when the design cannot be built.
    build_schedule(manifest.rows, 0, config.n_fixed_checks, config.n_anchor_repeats, config.training)
    study = _Study(Store(db_path), manifest, config, admin_token.encode("utf-8"))

    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    app.config["LT_STORE"] = study.store
    app.config["LT_MANIFEST"] = manifest
    app.config["LT_CONFIG"] = config
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, study.http_error)
    for method, rule, endpoint in _ROUTES:
        app.add_url_rule(rule, endpoint=endpoint, view_func=getattr(study, endpoint), methods=[method])
    return app


#: ``(method, rule, endpoint)``; the endpoint is also the name of the :class:`_Study` handler.
_ROUTES = (
    ("GET", "/healthz", "healthz"),
    ("GET", "/", "index"),
    ("POST", "/consent", "consent"),
    ("GET", "/instructions", "instructions"),
    ("GET", "/trial", "trial_page"),
    ("POST", "/respond", "respond"),
    ("GET", "/done", "done"),
    ("GET", "/audio/<int:trial_id>", "audio"),
    ("POST", "/api/session", "api_session"),
    ("GET", "/api/state", "api_state"),
    ("POST", "/api/responses", "api_responses"),
    ("GET", "/admin/export.csv", "admin_export"),
    ("GET", "/admin/summary", "admin_summary"),
)


# -- helpers without state -----------------------------------------------------------------------
def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/admin/"))


def _prompt(trial: Trial) -> str:
    return f"Rate how {trial.target} this audio sounds"


def _instruction(trial: Trial) -> str:
    if trial.attention_check == "fixed":
        return (
            f"Attention check: for this clip, please select {trial.expected_rating}, "
            "whatever you hear."
        )
    return ""


def _trial_json(trial: Trial) -> dict:
    return {
        "id": trial.id,
        "index": trial.trial_index,
        "phase": trial.phase,
        "target": trial.target,
        "prompt": _prompt(trial),
        "instruction": _instruction(trial),
        "audio_url": url_for("audio", trial_id=trial.id),
        "scale": [RATING_MIN, RATING_MAX],
    }


def _parse_submission(data, from_form: bool) -> tuple[int, int, int]:
    """``(trial_id, rating, plays)`` of a submitted rating (ValueError for anything malformed)."""
    allowed = {"trial_id", "rating", "plays"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unexpected field(s) {sorted(unknown)}")
    if "trial_id" not in data or "rating" not in data:
        raise ValueError("trial_id and rating are required")
    trial_id = _int_field(data["trial_id"], "trial_id", 1, 2**62, from_form)
    rating = _int_field(data["rating"], "rating", RATING_MIN, RATING_MAX, from_form)
    plays = _int_field(data.get("plays", "0" if from_form else 0), "plays", 0, _MAX_PLAYS, from_form)
    return trial_id, rating, plays


def _security_headers(resp: Response) -> Response:
    """Content security policy and friends on every response; no caching of pages and API answers."""
    resp.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; media-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    if request.path.startswith(("/api/", "/admin/")) or resp.mimetype == "text/html":
        resp.headers["Cache-Control"] = "no-store"
    return resp


# -- the study: state and request handlers -------------------------------------------------------
class _Study:
    """One app's store, manifest and settings, with its request handlers as methods.

    The handlers are registered by :func:`create_app` under the endpoints of :data:`_ROUTES`.
    """

    def __init__(self, store: Store, manifest: Manifest, config: AppConfig, admin_token_bytes: bytes):
        self.store = store
        self.manifest = manifest
        self.config = config
        self._admin_token_bytes = admin_token_bytes

    # -- helpers -----------------------------------------------------------------------------
    def participant(self):
        if "participant" not in g:
            g.participant = self.store.participant_by_token(request.cookies.get(COOKIE_NAME))
        return g.participant

    def require_participant(self):
        p = self.participant()
        if p is None:
            abort(401, description="no participant session; start at the consent page")
        return p

    def set_cookie(self, resp: Response, token: str) -> Response:
        resp.set_cookie(
            COOKIE_NAME, token, max_age=self.config.cookie_days * 86400, httponly=True,
            samesite="Lax", secure=request.is_secure, path="/",
        )
        return resp

    def new_participant(self) -> tuple[str, object]:
        seed = secrets.randbits(31)
        schedule = build_schedule(
            self.manifest.rows, seed, self.config.n_fixed_checks, self.config.n_anchor_repeats,
            self.config.training,
        )
        return self.store.create_participant(schedule, seed, self.manifest.sha256)

    def where(self, p) -> str:
        """The page a participant belongs on now."""
        trial = self.store.current_trial(p.id)
        if trial is None:
            return url_for("done")
        if trial.phase == "training":
            return url_for("instructions")
        return url_for("trial_page")

    def check_admin(self) -> None:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        given = given or request.headers.get("X-Admin-Token", "")
        if not given:
            abort(401, description="admin token required (Authorization: Bearer <token>)")
        if not hmac.compare_digest(given.encode("utf-8"), self._admin_token_bytes):
            abort(403, description="wrong admin token")

    def submit(self, p, trial_id: int, rating: int, plays: int):
        """Store a rating; 404 for a trial that is not the participant's, 409 for a conflict."""
        try:
            return self.store.submit(p.id, trial_id, rating, plays)
        except TrialNotFound as exc:
            abort(404, description=str(exc))
        except SubmissionConflict as exc:
            abort(409, description=str(exc))

    def render_consent(self, error: str | None) -> str:
        n_main = len(self.manifest.rows) + self.config.n_fixed_checks + self.config.n_anchor_repeats
        return render_template("consent.html", title=self.config.title, contact=self.config.contact,
                               n_trials=n_main, error=error)

    def render_trial(self, template: str, p, trial: Trial):
        done, total, _ = self.store.progress(p.id)
        return render_template(
            template, title=self.config.title, trial=trial, prompt=_prompt(trial),
            instruction=_instruction(trial), done=done, total=total,
            scale=list(range(RATING_MIN, RATING_MAX + 1)),
        )

    def current_page(self, template: str, phase: str):
        """The current trial of ``phase`` on ``template``, else a redirect to where the visitor belongs."""
        p = self.participant()
        if p is None:
            return redirect(url_for("index"), 303)
        trial = self.store.current_trial(p.id, mark_shown=True)
        if trial is None or trial.phase != phase:
            return redirect(self.where(p), 303)
        return self.render_trial(template, p, trial)

    # -- errors ------------------------------------------------------------------------------
    def http_error(self, exc: HTTPException):
        if _wants_json():
            return jsonify(error=exc.description or exc.name), exc.code
        return (
            render_template("error.html", title=self.config.title, code=exc.code,
                            message=exc.description or exc.name),
            exc.code,
        )

    # -- pages -------------------------------------------------------------------------------
    def healthz(self):
        return jsonify(status="ok")

    def index(self):
        p = self.participant()
        if p is not None:
            return redirect(self.where(p), 303)
        return self.render_consent(None)

    def consent(self):
        p = self.participant()
        if p is not None:  # a resent consent form must not create a second participant
            return redirect(self.where(p), 303)
        if request.form.get("consent") != "yes":
            return self.render_consent("Please tick the box to give your consent."), 400
        token, _ = self.new_participant()
        return self.set_cookie(redirect(url_for("instructions"), 303), token)

    def instructions(self):
        return self.current_page("instructions.html", "training")

    def trial_page(self):
        return self.current_page("trial.html", "main")

    def respond(self):
        p = self.require_participant()
        try:
            fields = request.form.to_dict(flat=False)
            if any(len(v) != 1 for v in fields.values()):
                raise ValueError("each field may be sent once")
            trial_id, rating, plays = _parse_submission({k: v[0] for k, v in fields.items()}, from_form=True)
        except ValueError as exc:
            abort(400, description=str(exc))
        self.submit(p, trial_id, rating, plays)
        return redirect(self.where(p), 303)

    def done(self):
        p = self.participant()
        if p is None:
            return redirect(url_for("index"), 303)
        if self.store.current_trial(p.id) is not None:
            return redirect(self.where(p), 303)
        return render_template("done.html", title=self.config.title, code=p.public_id)

    def audio(self, trial_id: int):
        p = self.require_participant()
        trial = self.store.trial_of(p.id, trial_id)
        if trial is None:
            abort(404, description="no such trial for this participant")
        resp = send_file(self.manifest.resolve(trial.path), mimetype="audio/wav", conditional=True,
                         etag=False, last_modified=None, max_age=3600)
        resp.headers["Cache-Control"] = "private, max-age=3600"
        return resp

    # -- JSON API ----------------------------------------------------------------------------
    def api_session(self):
        p = self.participant()
        if p is not None:
            return jsonify(participant=p.public_id, created=False), 200
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or data.get("consent") is not True:
            abort(400, description='consent required: send {"consent": true}')
        token, p = self.new_participant()
        return self.set_cookie(jsonify(participant=p.public_id, created=True), token), 201

    def api_state(self):
        p = self.require_participant()
        trial = self.store.current_trial(p.id, mark_shown=True)
        done, total, training_done = self.store.progress(p.id)
        return jsonify(
            participant=p.public_id, finished=trial is None, training_done=training_done,
            progress={"answered": done, "total": total},
            trial=None if trial is None else _trial_json(trial),
        )

    def api_responses(self):
        p = self.require_participant()
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(400, description="send a JSON object")
        try:
            trial_id, rating, plays = _parse_submission(data, from_form=False)
        except ValueError as exc:
            abort(400, description=str(exc))
        result = self.submit(p, trial_id, rating, plays)
        nxt = self.store.current_trial(p.id)
        done, total, _ = self.store.progress(p.id)
        return (
            jsonify(status=result.status, trial_id=result.trial_id, rating=result.rating,
                    finished=result.finished, progress={"answered": done, "total": total},
                    next_trial_id=None if nxt is None else nxt.id),
            201 if result.status == "stored" else 200,
        )

    # -- admin -------------------------------------------------------------------------------
    def admin_export(self):
        self.check_admin()
        return Response(
            self.store.export_csv(), mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=listening_test_responses.csv"},
        )

    def admin_summary(self):
        self.check_admin()
        return jsonify(self.store.summary())
