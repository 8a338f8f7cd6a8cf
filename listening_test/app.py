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
    store = Store(db_path)
    admin_token_bytes = admin_token.encode("utf-8")

    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    app.config["LT_STORE"] = store
    app.config["LT_MANIFEST"] = manifest
    app.config["LT_CONFIG"] = config

    # -- helpers -----------------------------------------------------------------------------
    def wants_json() -> bool:
        return request.path.startswith(("/api/", "/admin/"))

    def participant():
        if "participant" not in g:
            g.participant = store.participant_by_token(request.cookies.get(COOKIE_NAME))
        return g.participant

    def require_participant():
        p = participant()
        if p is None:
            abort(401, description="no participant session; start at the consent page")
        return p

    def set_cookie(resp: Response, token: str) -> Response:
        resp.set_cookie(
            COOKIE_NAME, token, max_age=config.cookie_days * 86400, httponly=True,
            samesite="Lax", secure=request.is_secure, path="/",
        )
        return resp

    def new_participant() -> tuple[str, object]:
        seed = secrets.randbits(31)
        schedule = build_schedule(
            manifest.rows, seed, config.n_fixed_checks, config.n_anchor_repeats, config.training
        )
        return store.create_participant(schedule, seed, manifest.sha256)

    def where(p) -> str:
        """The page a participant belongs on now."""
        trial = store.current_trial(p.id)
        if trial is None:
            return url_for("done")
        if trial.phase == "training":
            return url_for("instructions")
        return url_for("trial_page")

    def prompt(trial: Trial) -> str:
        return f"Rate how {trial.target} this audio sounds"

    def instruction(trial: Trial) -> str:
        if trial.attention_check == "fixed":
            return (
                f"Attention check: for this clip, please select {trial.expected_rating}, "
                "whatever you hear."
            )
        return ""

    def trial_json(trial: Trial) -> dict:
        return {
            "id": trial.id,
            "index": trial.trial_index,
            "phase": trial.phase,
            "target": trial.target,
            "prompt": prompt(trial),
            "instruction": instruction(trial),
            "audio_url": url_for("audio", trial_id=trial.id),
            "scale": [RATING_MIN, RATING_MAX],
        }

    def check_admin() -> None:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        given = given or request.headers.get("X-Admin-Token", "")
        if not given:
            abort(401, description="admin token required (Authorization: Bearer <token>)")
        if not hmac.compare_digest(given.encode("utf-8"), admin_token_bytes):
            abort(403, description="wrong admin token")

    def parse_submission(data, from_form: bool) -> tuple[int, int, int]:
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

    # -- security headers and errors ---------------------------------------------------------
    @app.after_request
    def headers(resp: Response) -> Response:
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

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            return jsonify(error=exc.description or exc.name), exc.code
        return (
            render_template("error.html", title=config.title, code=exc.code,
                            message=exc.description or exc.name),
            exc.code,
        )

    # -- pages -------------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/")
    def index():
        p = participant()
        if p is not None:
            return redirect(where(p), 303)
        n_main = len(manifest.rows) + config.n_fixed_checks + config.n_anchor_repeats
        return render_template("consent.html", title=config.title, contact=config.contact,
                               n_trials=n_main, error=None)

    @app.post("/consent")
    def consent():
        p = participant()
        if p is not None:  # a resent consent form must not create a second participant
            return redirect(where(p), 303)
        if request.form.get("consent") != "yes":
            n_main = len(manifest.rows) + config.n_fixed_checks + config.n_anchor_repeats
            return (
                render_template("consent.html", title=config.title, contact=config.contact,
                                n_trials=n_main, error="Please tick the box to give your consent."),
                400,
            )
        token, _ = new_participant()
        return set_cookie(redirect(url_for("instructions"), 303), token)

    def render_trial(template: str, p, trial: Trial):
        done, total, _ = store.progress(p.id)
        return render_template(
            template, title=config.title, trial=trial, prompt=prompt(trial),
            instruction=instruction(trial), done=done, total=total,
            scale=list(range(RATING_MIN, RATING_MAX + 1)),
        )

    @app.get("/instructions")
    def instructions():
        p = participant()
        if p is None:
            return redirect(url_for("index"), 303)
        trial = store.current_trial(p.id, mark_shown=True)
        if trial is None or trial.phase != "training":
            return redirect(where(p), 303)
        return render_trial("instructions.html", p, trial)

    @app.get("/trial")
    def trial_page():
        p = participant()
        if p is None:
            return redirect(url_for("index"), 303)
        trial = store.current_trial(p.id, mark_shown=True)
        if trial is None or trial.phase != "main":
            return redirect(where(p), 303)
        return render_trial("trial.html", p, trial)

    @app.post("/respond")
    def respond():
        p = require_participant()
        try:
            fields = request.form.to_dict(flat=False)
            if any(len(v) != 1 for v in fields.values()):
                raise ValueError("each field may be sent once")
            trial_id, rating, plays = parse_submission({k: v[0] for k, v in fields.items()}, from_form=True)
        except ValueError as exc:
            abort(400, description=str(exc))
        try:
            store.submit(p.id, trial_id, rating, plays)
        except TrialNotFound as exc:
            abort(404, description=str(exc))
        except SubmissionConflict as exc:
            abort(409, description=str(exc))
        return redirect(where(p), 303)

    @app.get("/done")
    def done():
        p = participant()
        if p is None:
            return redirect(url_for("index"), 303)
        if store.current_trial(p.id) is not None:
            return redirect(where(p), 303)
        return render_template("done.html", title=config.title, code=p.public_id)

    @app.get("/audio/<int:trial_id>")
    def audio(trial_id: int):
        p = require_participant()
        trial = store.trial_of(p.id, trial_id)
        if trial is None:
            abort(404, description="no such trial for this participant")
        resp = send_file(manifest.resolve(trial.path), mimetype="audio/wav", conditional=True,
                         etag=False, last_modified=None, max_age=3600)
        resp.headers["Cache-Control"] = "private, max-age=3600"
        return resp

    # -- JSON API ----------------------------------------------------------------------------
    @app.post("/api/session")
    def api_session():
        p = participant()
        if p is not None:
            return jsonify(participant=p.public_id, created=False), 200
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or data.get("consent") is not True:
            abort(400, description='consent required: send {"consent": true}')
        token, p = new_participant()
        return set_cookie(jsonify(participant=p.public_id, created=True), token), 201

    @app.get("/api/state")
    def api_state():
        p = require_participant()
        trial = store.current_trial(p.id, mark_shown=True)
        done, total, training_done = store.progress(p.id)
        return jsonify(
            participant=p.public_id, finished=trial is None, training_done=training_done,
            progress={"answered": done, "total": total},
            trial=None if trial is None else trial_json(trial),
        )

    @app.post("/api/responses")
    def api_responses():
        p = require_participant()
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(400, description="send a JSON object")
        try:
            trial_id, rating, plays = parse_submission(data, from_form=False)
        except ValueError as exc:
            abort(400, description=str(exc))
        try:
            result = store.submit(p.id, trial_id, rating, plays)
        except TrialNotFound as exc:
            abort(404, description=str(exc))
        except SubmissionConflict as exc:
            abort(409, description=str(exc))
        nxt = store.current_trial(p.id)
        done, total, _ = store.progress(p.id)
        return (
            jsonify(status=result.status, trial_id=result.trial_id, rating=result.rating,
                    finished=result.finished, progress={"answered": done, "total": total},
                    next_trial_id=None if nxt is None else nxt.id),
            201 if result.status == "stored" else 200,
        )

    # -- admin -------------------------------------------------------------------------------
    @app.get("/admin/export.csv")
    def admin_export():
        check_admin()
        return Response(
            store.export_csv(), mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=listening_test_responses.csv"},
        )

    @app.get("/admin/summary")
    def admin_summary():
        check_admin()
        return jsonify(store.summary())

    return app
