"""The page at /ui/ in a real headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium) against a real `remediator serve`: sign in, the live executions list,
an execution's detail, approve from the page, the runbooks list, a simulation; hostile
incident text stays text."""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.store.db import Database
from tests.support.history import make_history, write_history
from tests.support.servers import Server, start_server
from tests.support.service import API_TOKEN, TOKENS, alert, ansible_step, runbook, write_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="no chromium and chromedriver (Debian: chromium chromium-driver): the web "
        "page is NOT tested here",
    ),
]

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">disk full"


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # Its play sets outputs (set_stats), one of them the alert's summary: data, as text.
    step = ansible_step("outputs.yml", lag_s="3", seen="{{ incident.annotations.summary }}")
    config = write_config(
        tmp_path,
        [runbook("approve-me", "DiskFull", step,
                 approval=True, description="Clears the disk once a human says so")],
    )  # fmt: skip
    running = start_server(config)
    yield running
    running.close()


def wait_for(driver: Any, css: str, text: str | None = None, timeout: float = 30) -> Any:
    """The first element matching `css` that is shown (and holds `text`): an element in
    the page but not shown yet (a button waiting for the state that reveals it) cannot be
    clicked or typed into, and one replaced while looked at is looked for again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: Any) -> Any:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed() and (text is None or text in element.text):
                return element
        return False

    return WebDriverWait(
        driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    ).until(found, f"no {css!r} shown" + (f" with {text!r}" if text else ""))


def test_an_on_call_engineer_sees_approves_and_simulates(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    payload = alert("DiskFull", instance="db-1")
    payload["alerts"][0]["annotations"]["summary"] = HOSTILE
    [execution_id] = server.alertmanager(payload).json()["executions"]

    browser.get(f"{server.base}/")  # redirected to the page
    wait_for(browser, "#sign-in-form")
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait_for(browser, "#sign-in-error", "refused")

    browser.find_element(By.ID, "token").clear()
    browser.find_element(By.ID, "token").send_keys(API_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    row = wait_for(browser, f'tr[data-id="{execution_id}"]', "waiting_approval")
    # The payload's markup is shown as text, and nothing in it ran.
    assert HOSTILE in row.text
    assert browser.find_elements(By.CSS_SELECTOR, "#executions img") == []
    assert browser.title == "remediator"

    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("succeeded")
    # The filtered list replaces the rows once its answer is in: wait for that, not for
    # the table (which is there all along).
    WebDriverWait(browser, 30, poll_frequency=0.2).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, f'tr[data-id="{execution_id}"]'),
        "the filter to succeeded still lists the waiting execution",
    )
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("any")
    wait_for(browser, f'tr[data-id="{execution_id}"]').click()

    wait_for(browser, ".facts", "waiting_approval")
    assert wait_for(browser, ".incident", "db-1")
    assert not browser.find_element(By.CSS_SELECTOR, '[data-action="approve"]').get_attribute(
        "disabled"
    )
    browser.find_element(By.ID, "reason").send_keys("checked the volume")
    browser.find_element(By.CSS_SELECTOR, '[data-action="approve"]').click()
    wait_for(browser, ".facts", "succeeded", timeout=90)  # the page follows it live
    wait_for(browser, ".steps", "attempt 1: succeeded")
    outputs = wait_for(browser, ".steps table.outputs", "Outputs")
    assert "lag_s 3" in outputs.text and HOSTILE in outputs.text
    assert browser.find_elements(By.CSS_SELECTOR, ".steps img") == []
    assert browser.title == "remediator"
    wait_for(browser, ".history", "approve by ops-admin — checked the volume")
    assert browser.find_element(By.CSS_SELECTOR, '[data-action="cancel"]').get_attribute("disabled")
    execution = server.api(f"/executions/{execution_id}")
    assert [(a["action"], a["by"]) for a in execution["actions"]] == [("approve", "ops-admin")]

    browser.find_element(By.ID, "nav-runbooks").click()
    card = wait_for(browser, '.runbook[data-name="approve-me"]')
    assert "Clears the disk once a human says so" in card.text and "DiskFull" in card.text
    browser.find_element(By.ID, "reload").click()
    wait_for(browser, '.runbook[data-name="approve-me"]')

    browser.find_element(By.ID, "nav-simulate").click()
    # The list of sources arrives from /api/sources after the form: wait for its option.
    wait_for(browser, "#sources option", "alertmanager")
    Select(browser.find_element(By.ID, "sources")).select_by_visible_text("alertmanager")
    textarea = browser.find_element(By.NAME, "payload")
    textarea.send_keys(json.dumps(alert("DiskFull", instance="db-2")))
    browser.find_element(By.CSS_SELECTOR, "#simulate-form button").click()
    match = wait_for(browser, '.match[data-runbook="approve-me"]')
    assert "all: labels.alertname equals 'DiskFull' holds" in match.text
    assert len(server.api("/executions")) == 1  # simulating ran nothing


def test_a_viewer_sees_everything_and_is_offered_nothing_it_cannot_do(
    browser: Any, server: Server
) -> None:
    from selenium.webdriver.common.by import By

    [execution_id] = server.alertmanager(alert("DiskFull", instance="db-3")).json()["executions"]
    browser.get(f"{server.base}/ui/#/executions/{execution_id}")
    wait_for(browser, "#sign-in-form")
    browser.find_element(By.ID, "token").send_keys(TOKENS["dashboards"])
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait_for(browser, ".facts", "waiting_approval")
    assert browser.find_element(By.ID, "who").text == "dashboards (viewer)"
    approve = browser.find_element(By.CSS_SELECTOR, '[data-action="approve"]')
    assert not approve.is_displayed()
    assert not browser.find_element(By.ID, "nav-simulate").is_displayed()
    browser.find_element(By.ID, "nav-runbooks").click()
    wait_for(browser, '.runbook[data-name="approve-me"]')
    assert not browser.find_element(By.ID, "reload").is_displayed()
    # And were the page to offer it, the API would refuse it.
    answer = httpx.post(f"{server.base}/api/executions/{execution_id}/approve", json={},
                        headers={"authorization": f"Bearer {TOKENS['dashboards']}"})  # fmt: skip
    assert answer.status_code == 403 and "needs role responder" in answer.json()["detail"]
    assert server.api(f"/executions/{execution_id}")["status"] == "waiting_approval"


def test_the_page_is_served_with_a_strict_content_policy(server: Server) -> None:
    page = httpx.get(f"{server.base}/ui/")
    assert page.status_code == 200 and "<title>remediator</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert httpx.get(f"{server.base}/ui/app.js").status_code == 200
    assert httpx.get(f"{server.base}/ui/../remediator.yaml").status_code == 404
    assert httpx.get(f"{server.base}/ui/secrets.txt").status_code == 404
    # The page holds no data: what it shows comes from /api, which wants the token.
    assert httpx.get(f"{server.base}/api/executions").status_code == 401


def colour_share(png: bytes, colour: str) -> float:
    """How much of a screenshot is within a few levels of `colour` (#rrggbb)."""
    from PIL import Image

    want = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    counted: list[tuple[int, tuple[int, int, int]]] = image.getcolors(  # type: ignore[assignment]
        maxcolors=image.width * image.height
    )
    near = [
        n for n, rgb in counted if max(abs(c - w) for c, w in zip(rgb, want, strict=True)) <= 12
    ]
    return sum(near) / (image.width * image.height)


def test_the_stats_page_plots_each_runbook(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    now = datetime.now(UTC)
    history = make_history(400, now=now)
    config = write_config(tmp_path, [])
    db = Database(f"sqlite:///{tmp_path / 'remediator.db'}")
    db.upgrade()
    write_history(db, history)
    db.close()
    server = start_server(config, name="stats-page")
    try:
        browser.get(f"{server.base}/ui/#/stats")
        wait_for(browser, "#sign-in-form")
        browser.find_element(By.ID, "token").send_keys(TOKENS["dashboards"])  # a viewer
        browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
        row = wait_for(browser, 'tr[data-runbook="restart-web"]')
        week = [
            p
            for p in history
            if p.runbook == "restart-web" and p.created_at >= now - timedelta(days=7)
        ]
        won = sum(p.status == "succeeded" for p in week)
        runs = sum(p.status not in ("refused", "shadowed", "diagnosed") for p in week)
        assert f"{won / runs * 100:.1f} %" in row.text
        wait_for(browser, "#plot-success canvas")
        wait_for(browser, "#plot-time canvas")
        success = browser.find_element(By.ID, "plot-success").screenshot_as_png
        times = browser.find_element(By.ID, "plot-time").screenshot_as_png
        (tmp_path / "stats-success.png").write_bytes(success)
        (tmp_path / "stats-time.png").write_bytes(times)
        # Each plotted series is there, in its colour: bars, not an empty frame.
        assert colour_share(success, "#2e7d32") > 0.02, "no success-rate bars"
        assert colour_share(times, "#1565c0") > 0.005, "no p50 bars"
        assert colour_share(times, "#ef6c00") > 0.01, "no p90 bars"
        assert colour_share(success, "#ef6c00") == 0.0  # and only where they belong
        legend = browser.find_element(By.ID, "plot-time").text
        assert "p50" in legend and "p90" in legend
    finally:
        server.close()


def sign_in(browser: Any, server: Server, who: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server.base}/ui/#/executions")
    wait_for(browser, "#sign-in-form")
    browser.find_element(By.ID, "token").clear()
    browser.find_element(By.ID, "token").send_keys(TOKENS[who])
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait_for(browser, "#who", who)


def test_a_responder_pauses_from_the_page_and_every_view_shows_the_banner(
    browser: Any, server: Server
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sign_in(browser, server, "alice")
    assert not browser.find_element(By.ID, "paused").is_displayed()
    wait_for(browser, "#pause-switch")
    browser.find_element(By.ID, "pause-reason").send_keys("major incident <b>now</b>")
    browser.find_element(By.ID, "pause-for").send_keys("2h")
    browser.find_element(By.ID, "pause").click()
    banner = wait_for(browser, "#paused", "by alice")
    assert "major incident <b>now</b>" in banner.text  # text, not markup
    assert "new runs shadow" in banner.text
    assert not browser.find_element(By.ID, "pause-switch").is_displayed()
    browser.find_element(By.ID, "nav-runbooks").click()
    wait_for(browser, '.runbook[data-name="approve-me"]')
    assert browser.find_element(By.ID, "paused").is_displayed()
    assert not browser.find_element(By.ID, "frozen").is_displayed()  # no freeze configured
    state = httpx.get(
        f"{server.base}/api/automation", headers={"authorization": f"Bearer {TOKENS['dashboards']}"}
    ).json()
    assert (
        state["pause"]["by"] == "alice" and state["pause"]["reason"] == "major incident <b>now</b>"
    )

    # A viewer sees the banner, and no switch.
    browser.find_element(By.ID, "sign-out").click()
    sign_in(browser, server, "dashboards")
    wait_for(browser, "#paused", "by alice")
    assert not browser.find_element(By.ID, "resume").is_displayed()
    assert not browser.find_element(By.ID, "pause-switch").is_displayed()

    browser.find_element(By.ID, "sign-out").click()
    sign_in(browser, server, "bob")
    wait_for(browser, "#resume").click()
    WebDriverWait(browser, 30, poll_frequency=0.2).until(
        lambda d: not d.find_element(By.ID, "paused").is_displayed(), "the banner stays"
    )
    assert browser.find_element(By.ID, "pause-switch").is_displayed()
    assert httpx.get(f"{server.base}/api/automation",
                     headers={"authorization": f"Bearer {TOKENS['bob']}"}).json()["pause"]["paused"] is False  # fmt: skip


def test_the_page_follows_a_running_steps_output_live(browser: Any, tmp_path: Path) -> None:
    """A line a playbook task prints is on the page within a second, as text (it may be
    anything a payload said), while the step still runs."""
    from selenium.webdriver.common.by import By

    gate = tmp_path / "gate"
    step = ansible_step("say-then-wait.yml", said="{{ incident.annotations.summary }}",
                        gate=str(gate))  # fmt: skip
    server = start_server(write_config(tmp_path, [runbook("live", "DiskFull", step)]))
    try:
        payload = alert("DiskFull", instance="db-1")
        payload["alerts"][0]["annotations"]["summary"] = HOSTILE
        [execution_id] = server.alertmanager(payload).json()["executions"]
        browser.get(f"{server.base}/ui/#/executions/{execution_id}")
        wait_for(browser, "#sign-in-form")
        browser.find_element(By.ID, "token").send_keys(API_TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
        live = wait_for(browser, ".live-output", "disk full @", timeout=60)
        seen_at = time.time()
        printed = float(live.text.split("disk full @")[1].split('"')[0])
        assert seen_at - printed < 1.0, f"{seen_at - printed:.2f}s from print to page"
        assert "<img src=x onerror=" in live.text and browser.title != "pwned"  # text, not markup
        assert not browser.find_elements(By.CSS_SELECTOR, ".live-output img")
        assert "running" in browser.find_element(By.CSS_SELECTOR, ".facts").text
        gate.touch()
        wait_for(browser, ".live-output", "PLAY RECAP")
        wait_for(browser, ".facts", "succeeded")
    finally:
        server.close()
