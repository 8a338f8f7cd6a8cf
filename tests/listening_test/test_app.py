"""The app's rules through Flask's test client: validation, isolation, idempotency, export, pages."""

from __future__ import annotations

import csv
import io
import sqlite3
import threading

import pytest

from listening_test.app import COOKIE_NAME, AppConfig, create_app
from mastering.evaluation.listening_design import EXPORT_COLUMNS, build_schedule
from mastering.evaluation.listening_manifest import load_manifest
from .lt_support import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture()
def app(tiny_stimuli, tmp_path):
    return create_app(tiny_stimuli, tmp_path / "db.sqlite", ADMIN_TOKEN,
                      AppConfig(n_fixed_checks=2, n_anchor_repeats=2))


def join(app):
    """A new participant (consent given through the API); returns their client and first state."""
    client = app.test_client()
    resp = client.post("/api/session", json={"consent": True})
    assert resp.status_code == 201
    return client, client.get("/api/state").get_json()


def answer(client, trial_id, rating, **extra):
    return client.post("/api/responses", json={"trial_id": trial_id, "rating": rating, **extra})


def export(app):
    resp = app.test_client().get("/admin/export.csv", headers=AUTH)
    assert resp.status_code == 200
    return list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))


def test_session_cookie_is_secret_httponly_and_samesite(app):
    client = app.test_client()
    resp = client.post("/api/session", json={"consent": True})
    cookie = resp.headers["Set-Cookie"]
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43  # 32 random bytes, base64url
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # The database keeps only a hash of the token.
    db = sqlite3.connect(app.config["LT_STORE"].path)
    assert db.execute("SELECT COUNT(*) FROM participants WHERE token_sha256 = ?", (token,)).fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 1
    # Joining again with the cookie does not create a second participant.
    assert client.post("/api/session", json={"consent": True}).status_code == 200
    assert db.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 1


def test_consent_is_required(app):
    client = app.test_client()
    assert client.post("/api/session", json={}).status_code == 400
    assert client.post("/api/session", json={"consent": "yes"}).status_code == 400
    resp = client.post("/consent", data={})
    assert resp.status_code == 400 and b"tick the box" in resp.data
    assert "Set-Cookie" not in resp.headers
    assert client.get("/api/state").status_code == 401


@pytest.mark.parametrize("rating", [0, 8, -1, 3.5, "4", "four", True, None, [4], 10**20])
def test_invalid_ratings_are_rejected(app, rating):
    client, state = join(app)
    resp = answer(client, state["trial"]["id"], rating)
    assert resp.status_code == 400, resp.get_json()
    assert "rating" in resp.get_json()["error"]
    assert export(app) == []


@pytest.mark.parametrize(
    "payload",
    [{"rating": 3}, {"trial_id": None, "rating": 3}, {"trial_id": "1; DROP TABLE responses", "rating": 3},
     {"trial_id": 1.0, "rating": 3}, {"trial_id": -1, "rating": 3}],
)
def test_invalid_trial_ids_are_rejected(app, payload):
    client, _ = join(app)
    assert client.post("/api/responses", json=payload).status_code == 400
    assert export(app) == []


def test_form_submission_validation(app):
    client, state = join(app)
    tid = state["trial"]["id"]
    for bad in ({"trial_id": tid, "rating": "8"}, {"trial_id": tid, "rating": "0"},
                {"trial_id": tid, "rating": "3.0"}, {"trial_id": tid, "rating": " 3"},
                {"trial_id": "x", "rating": "3"}, {"trial_id": tid, "rating": "3", "plays": "-1"},
                {"trial_id": tid, "rating": "3", "admin": "1"}, {"trial_id": tid, "rating": ["3", "5"]}):
        assert client.post("/respond", data=bad).status_code == 400, bad
    resp = client.post("/respond", data={"trial_id": str(tid), "rating": "3", "plays": "2"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/trial")
    rows = export(app)
    assert [(r["rating"], r["plays"]) for r in rows] == [("3", "2")]


def test_unknown_fields_and_non_json_are_rejected(app):
    client, state = join(app)
    assert answer(client, state["trial"]["id"], 3, participant_id=1).status_code == 400
    resp = client.post("/api/responses", data="trial_id=1&rating=3",
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 400


def test_body_size_is_limited(app):
    client, state = join(app)
    resp = client.post("/api/responses", data=b"{" + b" " * 20000 + b"}", content_type="application/json")
    assert resp.status_code == 413


def test_participants_cannot_touch_each_others_trials(app):
    alice, a_state = join(app)
    bob, b_state = join(app)
    a_tid, b_tid = a_state["trial"]["id"], b_state["trial"]["id"]
    assert a_tid != b_tid
    # Bob answers Alice's current trial: refused, and Alice's data is untouched.
    assert answer(bob, a_tid, 5).status_code == 404
    assert bob.get(f"/audio/{a_tid}").status_code == 404
    assert answer(alice, a_tid, 2).status_code == 201
    assert answer(bob, a_tid, 7).status_code == 404  # nor can he overwrite it once answered
    rows = export(app)
    assert len(rows) == 1 and rows[0]["rating"] == "2"
    # Alice's state says nothing about Bob, and Bob still sits at his first trial.
    assert bob.get("/api/state").get_json()["trial"]["id"] == b_tid
    assert bob.get("/api/state").get_json()["progress"]["answered"] == 0
    # No cookie, or a forged one: no participant.
    anon = app.test_client()
    assert answer(anon, b_tid, 3).status_code == 401
    assert anon.get(f"/audio/{b_tid}").status_code == 401
    anon.set_cookie(COOKIE_NAME, "forged-token-" + "x" * 40)
    assert answer(anon, b_tid, 3).status_code == 401
    assert anon.get("/api/state").status_code == 401


def test_only_the_current_trial_can_be_answered(app):
    client, state = join(app)
    tid = state["trial"]["id"]
    schedule_ids = [tid + i for i in range(1, 4)]  # this participant's later trials
    resp = answer(client, schedule_ids[1], 4)
    assert resp.status_code == 409 and "not your current trial" in resp.get_json()["error"]
    assert export(app) == []


def test_double_submission_is_idempotent(app):
    client, state = join(app)
    tid = state["trial"]["id"]
    first = answer(client, tid, 6, plays=1)
    assert first.status_code == 201 and first.get_json()["status"] == "stored"
    again = answer(client, tid, 6, plays=3)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    changed = answer(client, tid, 2)
    assert changed.status_code == 409 and "cannot be changed" in changed.get_json()["error"]
    form_again = client.post("/respond", data={"trial_id": str(tid), "rating": "6"})
    assert form_again.status_code == 303
    rows = export(app)
    assert len(rows) == 1 and (rows[0]["rating"], rows[0]["plays"]) == ("6", "1")


def test_concurrent_double_submissions_store_one_row(app):
    """Twelve threads send the same answer at once (a frantic double click): one row, no error."""
    client, state = join(app)
    tid = state["trial"]["id"]
    cookie = client.get_cookie(COOKIE_NAME).value
    codes = []

    def send():
        c = app.test_client()
        c.set_cookie(COOKIE_NAME, cookie)
        codes.append(answer(c, tid, 5).status_code)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == [200] * 11 + [201]
    assert len(export(app)) == 1


def test_admin_token_is_required(app):
    client = app.test_client()
    assert client.get("/admin/export.csv").status_code == 401
    assert client.get("/admin/summary").status_code == 401
    for header in ({"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {ADMIN_TOKEN}"},
                   {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}, {"X-Admin-Token": ADMIN_TOKEN + "x"}):
        status = client.get("/admin/export.csv", headers=header).status_code
        assert status in (401, 403), header
    assert client.get("/admin/export.csv", headers={"X-Admin-Token": ADMIN_TOKEN}).status_code == 200
    # A participant's cookie is no admin token.
    participant, _ = join(app)
    assert participant.get("/admin/export.csv").status_code == 401


def test_admin_token_compared_in_constant_time(app, monkeypatch):
    import listening_test.app as app_module

    calls = []
    real = app_module.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(app_module.hmac, "compare_digest", spy)
    assert app.test_client().get("/admin/summary", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert calls == [(b"nope", ADMIN_TOKEN.encode())]


def test_short_admin_token_refused(tiny_stimuli, tmp_path):
    with pytest.raises(ValueError, match="at least 16"):
        create_app(tiny_stimuli, tmp_path / "db.sqlite", "short")


def test_design_that_the_manifest_cannot_fill_is_refused_at_start(tiny_stimuli, tmp_path):
    with pytest.raises(ValueError, match="anchor repeats"):
        create_app(tiny_stimuli, tmp_path / "db.sqlite", ADMIN_TOKEN, AppConfig(n_anchor_repeats=50))


def test_full_session_and_export_format(app, tiny_stimuli):
    client, state = join(app)
    manifest = load_manifest(tiny_stimuli)
    answers = []
    k = 0
    while not state["finished"]:
        trial = state["trial"]
        assert trial["prompt"] == f"Rate how {trial['target']} this audio sounds"
        # Blinding: nothing the participant receives names the condition or the item.
        assert all(c not in str(trial) for c in manifest.conditions + manifest.items)
        audio = client.get(trial["audio_url"])
        assert audio.status_code == 200 and audio.mimetype == "audio/wav" and audio.data[:4] == b"RIFF"
        if trial["instruction"]:
            rating = int(trial["instruction"].split("please select ")[1][0])
        else:
            rating = 1 + k % 7
        resp = answer(client, trial["id"], rating, plays=1)
        assert resp.status_code == 201
        answers.append(rating)
        state = client.get("/api/state").get_json()
        k += 1
    assert state["progress"] == {"answered": 16 + 4, "total": 16 + 4}
    rows = export(app)
    assert list(rows[0]) == EXPORT_COLUMNS
    assert len(rows) == 1 + 16 + 4 and [int(r["rating"]) for r in rows] == answers
    main = [r for r in rows if r["phase"] == "main" and not r["attention_check"]]
    assert sorted((r["item"], r["condition"], r["target"]) for r in main) == sorted(
        (m.item, m.condition, m.target) for m in manifest.rows)
    fixed = [r for r in rows if r["attention_check"] == "fixed"]
    assert len(fixed) == 2 and all(r["rating"] == r["expected_rating"] for r in fixed)
    repeats = [r for r in rows if r["attention_check"] == "repeat"]
    assert len(repeats) == 2 and all(r["condition"] == "original" for r in repeats)
    for r in repeats:
        first = rows[int(r["repeat_of_trial_index"])]
        assert (first["item"], first["condition"], first["target"]) == (r["item"], r["condition"], r["target"])
        assert int(r["trial_index"]) >= int(first["trial_index"]) + 2
    assert all(r["shown_at"] and r["shown_at"] <= r["answered_at"] for r in rows)
    assert all(r["placeholder"] == "1" and r["manifest_sha256"] == manifest.sha256 for r in rows)
    # Every row says explicitly that it is real, so the analysis accepts it against this manifest.
    assert "simulated" in rows[0] and all(r["simulated"] == "0" for r in rows)
    # The recorded seed rebuilds the order the participant saw.
    seed = int(rows[0]["participant_seed"])
    schedule = build_schedule(manifest.rows, seed, 2, 2, True)
    assert [(t.row.item, t.row.condition, t.row.target, t.attention_check) for t in schedule] == [
        (r["item"], r["condition"], r["target"], r["attention_check"]) for r in rows]
    # Finished: pages lead to the thank-you page, and no further answers are possible.
    assert client.get("/trial").headers["Location"].endswith("/done")
    assert answer(client, 10**6, 3).status_code == 404
    summary = app.test_client().get("/admin/summary", headers=AUTH).get_json()
    assert summary == {"participants": 1, "finished": 1, "responses": 21}


def test_the_export_passes_the_analysis_checks_against_its_own_manifest_only(app, tiny_stimuli, tmp_path):
    from mastering.evaluation.listening_analysis import load_responses

    client, state = join(app)
    while not state["finished"]:
        instruction = state["trial"]["instruction"]
        rating = int(instruction.split("please select ")[1][0]) if instruction else 4
        assert answer(client, state["trial"]["id"], rating).status_code == 201
        state = client.get("/api/state").get_json()
    path = tmp_path / "responses.csv"
    path.write_text(app.test_client().get("/admin/export.csv", headers=AUTH).get_data(as_text=True))
    df = load_responses(path, manifest=tiny_stimuli)
    assert len(df) == 21 and not df["simulated"].any()
    # the same ratings claimed for another stimulus set are refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.csv").write_text((tiny_stimuli / "manifest.csv").read_text() + "\n")
    with pytest.raises(ValueError, match="21 of 21 real rating.*another stimulus set"):
        load_responses(path, manifest=other)


def test_pages_follow_the_participant(app):
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and b'id="page-consent"' in page.data
    assert client.get("/trial").headers["Location"].endswith("/")
    resp = client.post("/consent", data={"consent": "yes"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/instructions")
    # A resent consent form does not create a second participant.
    assert client.post("/consent", data={"consent": "yes"}).headers["Location"].endswith("/instructions")
    assert app.test_client().get("/admin/summary", headers=AUTH).get_json()["participants"] == 1
    page = client.get("/instructions")
    assert b'id="page-instructions"' in page.data and b"Practice clip" in page.data
    assert client.get("/").headers["Location"].endswith("/instructions")
    assert client.get("/trial").headers["Location"].endswith("/instructions")
    tid = client.get("/api/state").get_json()["trial"]["id"]
    client.post("/respond", data={"trial_id": str(tid), "rating": "4"})
    page = client.get("/trial")
    assert b'id="page-trial"' in page.data and b"Clip 1 of 20" in page.data and b"<progress" in page.data
    assert client.get("/done").headers["Location"].endswith("/trial")
    assert "Content-Security-Policy" in page.headers and page.headers["X-Frame-Options"] == "DENY"
    err = client.post("/respond", data={"trial_id": str(tid), "rating": "9"})
    assert err.status_code == 400 and b"Continue where you were" in err.data
