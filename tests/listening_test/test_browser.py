"""A person's session in headless Chromium (Debian ``chromium`` + ``chromium-driver``, Selenium).

The browser consents, reads the instructions, does the training trial and every rating trial
(pressing Play and waiting for the clip to end, as the page requires), answers the attention
checks as instructed, reloads a page, closes its tab and opens a new one, and lives through a
server crash and restart in the middle; the exported CSV must then hold exactly its answers.
Screenshots of every page type go to a temporary folder (``LISTENING_TEST_SCREENSHOTS`` keeps
them in a folder of your choice).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .lt_support import ADMIN_TOKEN, ApiClient, LiveServer, make_stimuli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="headless browser test needs Debian's chromium and chromium-driver "
           "(`apt-get install -y chromium chromium-driver`; `make setup` installs them)",
)

WAIT_S = 20


@pytest.fixture()
def browser(tmp_path):
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--mute-audio", "--window-size=1000,1150",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture()
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("LISTENING_TEST_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def page_id(driver) -> str:
    return driver.execute_script("return document.querySelector('main.card').id")


def wait_page(driver, pid: str) -> None:
    WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(lambda d: page_id(d) == pid)


_STATE_JS = """
const q = (s) => document.querySelector(s);
const section = q('section.trial');
return {
  page: q('main.card').id,
  trial: section ? parseInt(section.dataset.trialId, 10) : null,
  prompt: q('#prompt') ? q('#prompt').textContent.trim() : '',
  instruction: q('#instruction') ? q('#instruction').textContent.trim() : '',
  progress: q('#progress') ? parseInt(q('#progress').value, 10) : null,
  label: q('#progress-label') ? q('#progress-label').textContent.trim() : '',
  ready: q('#rating-form') ? q('#rating-form').dataset.ready : null,
  next_disabled: q('#next') ? q('#next').disabled : null,
  scale_disabled: q('#rating-1') ? q('#rating-1').disabled : null,
  duration: q('#stimulus') ? q('#stimulus').duration : null,
};
"""


def state(driver) -> dict:
    """Everything the test reads from a page, in one round trip."""
    return driver.execute_script(_STATE_JS)


def listen(driver) -> None:
    """Press Play and wait until the clip has played to its end (the scale unlocks then)."""
    before = state(driver)
    assert before["ready"] == "0" and before["next_disabled"] and before["scale_disabled"]
    driver.find_element(By.ID, "play").click()
    WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(lambda d: state(d)["ready"] == "1")
    after = state(driver)
    assert not after["scale_disabled"]
    # The clip was fetched and decoded by the browser: a real duration, not an error.
    assert after["duration"] == pytest.approx(0.4, abs=0.01)


def rate(driver, rating: int) -> None:
    """Answer and wait until the page has replaced this trial's section.

    Next submits the form, so the browser navigates to the next page. The section is marked in the
    page and the wait asks the page whether a marked section is still there, retrying while the
    navigation is under way. Holding a WebDriver reference to the section instead (``staleness_of``)
    races with the navigation: Chromium then may answer "Node with given id does not belong to the
    document", which Selenium does not map to a stale element (a CI run failed so).
    """
    driver.execute_script("document.querySelector('section.trial').dataset.answered = '1';")
    driver.find_element(By.ID, f"rating-{rating}").click()
    driver.find_element(By.ID, "next").click()
    WebDriverWait(driver, WAIT_S, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete'"
            " && document.querySelector('section.trial[data-answered]') === null;"))


@pytest.fixture()
def server(tmp_path, tmp_path_factory):
    """One target, so 8 rated stimuli (2 items x 4 conditions) + 1 fixed check + 1 repeat."""
    stimuli = make_stimuli(tmp_path_factory.mktemp("browser-stimuli"), targets=("warm",))
    server = LiveServer(stimuli, tmp_path / "responses.sqlite", tmp_path, ["--fixed-checks", "1", "--anchor-repeats", "1"])
    yield server.start()
    server.stop()


N_MAIN = 10


def test_browser_completes_session(server, browser, shots):
    d = browser
    d.get(server.url + "/")
    wait_page(d, "page-consent")
    d.save_screenshot(str(shots / "1_consent.png"))
    # Without ticking the box the browser's own validation keeps the participant here.
    d.find_element(By.ID, "start").click()
    assert page_id(d) == "page-consent"
    d.find_element(By.ID, "consent").click()
    d.find_element(By.ID, "start").click()

    wait_page(d, "page-instructions")
    st = state(d)
    assert st["prompt"] == "Rate how warm this audio sounds"
    listen(d)
    d.find_element(By.ID, "rating-4").click()
    d.save_screenshot(str(shots / "2_instructions_training.png"))
    answers = {st["trial"]: 4}
    rate(d, 4)

    shot_trial = shot_check = False
    k = 0
    while page_id(d) == "page-trial":
        st = state(d)
        assert st["label"] == f"Clip {k + 1} of {N_MAIN}" and st["progress"] == k
        if k in (2, 4, 6):
            if k == 2:  # reload
                d.refresh()
            elif k == 4:  # close the tab, come back in a new one
                old = d.current_window_handle
                d.switch_to.new_window("tab")
                new = d.current_window_handle
                d.switch_to.window(old)
                d.close()
                d.switch_to.window(new)
                d.get(server.url + "/")
            else:  # the server crashes and comes back (same port, same database)
                server.restart()
                d.refresh()
            wait_page(d, "page-trial")
            again = state(d)
            assert (again["trial"], again["label"]) == (st["trial"], st["label"]), f"not resumed at clip {k + 1}"
        listen(d)
        if st["instruction"]:
            rating = int(st["instruction"].split("please select ")[1][0])
            if not shot_check:
                d.find_element(By.ID, f"rating-{rating}").click()
                d.save_screenshot(str(shots / "4_attention_check.png"))
                shot_check = True
        else:
            rating = 1 + (k * 5) % 7
            if not shot_trial:
                d.find_element(By.ID, f"rating-{rating}").click()
                d.save_screenshot(str(shots / "3_trial.png"))
                shot_trial = True
        answers[st["trial"]] = rating
        rate(d, rating)
        k += 1

    wait_page(d, "page-done")
    d.save_screenshot(str(shots / "5_done.png"))
    code = d.find_element(By.ID, "completion-code").text
    assert k == N_MAIN and shot_trial and shot_check
    for name in ("1_consent", "2_instructions_training", "3_trial", "4_attention_check", "5_done"):
        assert (shots / f"{name}.png").stat().st_size > 10_000

    # Back at the start after finishing: straight to the thank-you page, no second participant.
    d.get(server.url + "/")
    wait_page(d, "page-done")

    admin = ApiClient(server.port)
    status, text, _ = admin.request("GET", "/admin/export.csv", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    admin.close()
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == N_MAIN + 1 and {r["participant"] for r in rows} == {code}
    assert [int(r["trial_index"]) for r in rows] == list(range(N_MAIN + 1))
    assert rows[0]["phase"] == "training" and all(r["phase"] == "main" for r in rows[1:])
    assert [int(r["rating"]) for r in rows] == list(answers.values())  # in the order given
    assert all(int(r["plays"]) >= 1 for r in rows)  # every clip was played before it was rated
    assert all(r["participant_complete"] == "1" for r in rows)
    checks = [r for r in rows if r["attention_check"] == "fixed"]
    assert len(checks) == 1 and checks[0]["rating"] == checks[0]["expected_rating"]
    assert sum(r["attention_check"] == "repeat" for r in rows) == 1
