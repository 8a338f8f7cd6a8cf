"""The real server process over HTTP on loopback: crash/restart mid-session and a load test.

The server is ``python -m listening_test serve`` (waitress); clients are plain ``http.client``
connections, one per simulated participant, each holding its own cookie.
"""

from __future__ import annotations

import csv
import http.client
import io
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .lt_support import ADMIN_TOKEN, ApiClient, answer_for

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def export_rows(port: int) -> list[dict]:
    admin = ApiClient(port)
    status, text, _ = admin.request("GET", "/admin/export.csv", headers=AUTH)
    admin.close()
    assert status == 200
    return list(csv.DictReader(io.StringIO(text)))


def join(port: int) -> tuple[ApiClient, dict]:
    client = ApiClient(port)
    status, body, _ = client.request("POST", "/api/session", {"consent": True})
    assert status == 201, body
    status, state, _ = client.request("GET", "/api/state")
    assert status == 200
    return client, state


def test_restart_mid_session_loses_nothing(live_server, tmp_path):
    """SIGKILL the server after 7 acknowledged answers; the participant resumes at the 8th."""
    server = live_server()
    client, state = join(server.port)
    total = state["progress"]["total"] + 1  # + the training trial
    sent = []
    for k in range(7):
        trial = state["trial"]
        rating = answer_for(trial, k)
        status, body, _ = client.request("POST", "/api/responses", {"trial_id": trial["id"], "rating": rating})
        assert status == 201, body
        sent.append((trial["id"], rating))
        status, state, _ = client.request("GET", "/api/state")
    expected_next = state["trial"]["id"]

    client.close()
    server.restart()  # kill -9, then start again on the same port and database

    status, state, _ = client.request("GET", "/api/state")
    assert status == 200, state
    assert state["trial"]["id"] == expected_next
    assert state["progress"]["answered"] == 6 and state["training_done"]
    # The browser resends the last answer it is unsure about: acknowledged, not duplicated.
    status, body, _ = client.request("POST", "/api/responses", {"trial_id": sent[-1][0], "rating": sent[-1][1]})
    assert status == 200 and body["status"] == "duplicate"
    k = len(sent)
    while not state["finished"]:
        trial = state["trial"]
        rating = answer_for(trial, k)
        status, body, _ = client.request("POST", "/api/responses", {"trial_id": trial["id"], "rating": rating})
        assert status == 201, body
        sent.append((trial["id"], rating))
        status, state, _ = client.request("GET", "/api/state")
        k += 1
    client.close()
    rows = export_rows(server.port)
    assert len(rows) == total == len(sent)
    assert [int(r["rating"]) for r in rows] == [rating for _, rating in sent]
    assert [int(r["trial_index"]) for r in rows] == list(range(total))


def run_participant(port: int, deadline: float, log: dict, resend_every: int = 4) -> None:
    """One simulated participant: join, answer every trial (resending some answers), verify."""
    client, state = join(port)
    log["participant"] = state["participant"]
    log["sent"] = {}
    log["duplicates"] = 0
    status, audio, _ = client.request("GET", state["trial"]["audio_url"])
    assert status == 200 and audio.startswith("RIFF")
    k = 0
    max_steps = 2 * (state["progress"]["total"] + 1)
    while not state["finished"]:
        assert k < max_steps and time.monotonic() < deadline, "participant did not finish in time"
        trial = state["trial"]
        rating = answer_for(trial, k)
        status, body, _ = client.request("POST", "/api/responses", {"trial_id": trial["id"], "rating": rating})
        assert status == 201, (status, body)
        log["sent"][trial["id"]] = rating
        if k % resend_every == 0:  # a double click
            status, body, _ = client.request("POST", "/api/responses", {"trial_id": trial["id"], "rating": rating})
            assert status == 200 and body["status"] == "duplicate", (status, body)
            log["duplicates"] += 1
        status, state, _ = client.request("GET", "/api/state")
        assert status == 200
        k += 1
    client.close()
    log["done"] = True


def test_load_many_concurrent_participants(live_server, one_target_stimuli):
    """50 participants at once through the HTTP API: every answer stored exactly once."""
    n_participants = 50
    server = live_server("--fixed-checks", "1", "--anchor-repeats", "1", stimuli=one_target_stimuli)
    per_participant = 8 + 1 + 1 + 1  # manifest rows + fixed check + repeat + training
    deadline = time.monotonic() + 75.0
    logs = [dict() for _ in range(n_participants)]
    with ThreadPoolExecutor(max_workers=n_participants) as pool:
        futures = [pool.submit(run_participant, server.port, deadline, log) for log in logs]
        errors = [f.exception(timeout=max(1.0, deadline - time.monotonic())) for f in futures]
    assert errors == [None] * n_participants, [e for e in errors if e][:3]
    assert all(log.get("done") for log in logs)

    rows = export_rows(server.port)
    assert len(rows) == n_participants * per_participant
    by_participant = {}
    for r in rows:
        by_participant.setdefault(r["participant"], []).append(r)
    assert set(by_participant) == {log["participant"] for log in logs}
    for log in logs:
        mine = by_participant[log["participant"]]
        assert [int(r["trial_index"]) for r in mine] == list(range(per_participant))
        assert [int(r["rating"]) for r in mine] == list(log["sent"].values())
        assert all(r["participant_complete"] == "1" for r in mine)
    assert sum(log["duplicates"] for log in logs) > n_participants  # resends happened, added nothing
    # The database itself, not only the export: one response per trial, nothing else.
    db = sqlite3.connect(server.db)
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == n_participants * per_participant
    assert db.execute("SELECT COUNT(*) FROM participants WHERE finished_at IS NOT NULL").fetchone()[0] == n_participants
    db.close()


def test_crash_under_load_loses_no_acknowledged_answer(live_server, one_target_stimuli):
    """8 participants answer while the server is killed after 30 acknowledged answers; retries
    after the restart complete them.

    An answer the client saw acknowledged is in the database; an answer whose acknowledgement
    was lost in the crash is either stored (the retry is then a duplicate) or not (the retry
    stores it); either way every participant ends with each trial answered exactly once.
    """
    n_participants = 8
    server = live_server("--fixed-checks", "1", "--anchor-repeats", "1", stimuli=one_target_stimuli)
    port = server.port
    acked = threading.Event()
    acks = []
    lock = threading.Lock()
    deadline = time.monotonic() + 60.0

    def request(client, method, path, body=None):
        while True:  # retry through the outage
            assert time.monotonic() < deadline, "server did not come back"
            try:
                return client.request(method, path, body)
            except (OSError, http.client.HTTPException):
                client.close()
                time.sleep(0.05)

    def participant(log):
        client = ApiClient(port)
        status, body, _ = request(client, "POST", "/api/session", {"consent": True})
        assert status == 201, body
        status, state, _ = request(client, "GET", "/api/state")
        log["participant"], log["sent"] = state["participant"], {}
        k = 0
        while not state["finished"]:
            trial = state["trial"]
            rating = answer_for(trial, k)
            status, body, _ = request(client, "POST", "/api/responses", {"trial_id": trial["id"], "rating": rating})
            assert status in (200, 201), (status, body)
            log["sent"][trial["id"]] = rating
            with lock:
                acks.append((log["participant"], trial["id"], rating))
                if len(acks) >= 30:
                    acked.set()
            status, state, _ = request(client, "GET", "/api/state")
            k += 1
        client.close()

    logs = [dict() for _ in range(n_participants)]
    with ThreadPoolExecutor(max_workers=n_participants) as pool:
        futures = [pool.submit(participant, log) for log in logs]
        assert acked.wait(30)
        with lock:
            acked_before_crash = list(acks)
        server.restart()
        errors = [f.exception(timeout=max(1.0, deadline - time.monotonic())) for f in futures]
    assert errors == [None] * n_participants, [e for e in errors if e][:3]
    rows = export_rows(server.port)
    stored = {(r["participant"], r["trial_index"]) for r in rows}
    assert len(rows) == len(stored) == n_participants * 11
    by_participant = {}
    for r in rows:
        by_participant.setdefault(r["participant"], []).append(int(r["rating"]))
    for log in logs:
        assert by_participant[log["participant"]] == list(log["sent"].values())
    assert 30 <= len(acked_before_crash) < n_participants * 11
    db = sqlite3.connect(server.db)
    for _, trial_id, rating in acked_before_crash:  # acknowledged before the crash: stored as given
        assert db.execute("SELECT rating FROM responses WHERE trial_id = ?", (trial_id,)).fetchone() == (rating,)
    db.close()


def test_cookie_is_secure_behind_a_trusted_https_proxy(live_server):
    server = live_server("--trusted-proxy", "127.0.0.1")
    client = ApiClient(server.port)
    status, _, headers = client.request("POST", "/api/session", {"consent": True},
                                        headers={"X-Forwarded-Proto": "https"})
    assert status == 201 and "Secure" in headers["Set-Cookie"]
    plain = ApiClient(server.port)
    status, _, headers = plain.request("POST", "/api/session", {"consent": True})
    assert status == 201 and "Secure" not in headers["Set-Cookie"]
    client.close()
    plain.close()


def test_export_command_reads_the_database(live_server, tmp_path):
    import subprocess
    import sys

    from .lt_support import REPO_ROOT

    server = live_server("--fixed-checks", "0", "--anchor-repeats", "0", "--no-training")
    client, state = join(server.port)
    status, _, _ = client.request("POST", "/api/responses", {"trial_id": state["trial"]["id"], "rating": 5})
    assert status == 201
    client.close()
    out = tmp_path / "export.csv"
    subprocess.run([sys.executable, "-m", "listening_test", "export", "--db", str(server.db), "--out", str(out)],
                   cwd=REPO_ROOT, check=True, timeout=60)
    rows = list(csv.DictReader(out.open()))
    assert rows == export_rows(server.port) and len(rows) == 1 and rows[0]["rating"] == "5"
    assert rows[0]["phase"] == "main" and rows[0]["trial_index"] == "0"
