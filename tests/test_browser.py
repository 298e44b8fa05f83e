"""End to end in headless Chromium (Debian's `chromium`, driven by Playwright): log in, see
the dashboard, watch a job die and appear in the feed and in Dead letters without a reload,
retry it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.services import users
from tests.helpers import job_row, submit

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"),
]
PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def browser_page(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(str(err)))
        page.problems = problems  # type: ignore[attr-defined]
        yield page
        shots = os.environ.get("OPSDECK_SCREENSHOTS")
        if shots:
            page.screenshot(path=str(Path(shots) / "last.png"), full_page=True)
        browser.close()


def test_operator_watches_a_job_die_and_retries_it(app, workers, browser_page):
    page = browser_page
    users.create_user("admin@example.com", PASSWORD, "admin")
    url = workers.start_web()
    workers.start()

    page.goto(f"{url}/admin/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Dashboard')")
    assert page.is_visible("#feed")
    page.wait_for_selector("#feed-state:text('live')", timeout=15_000)
    for i in range(3):
        submit(payload={"message": f"ok {i}"})
    # The figures and the per-minute chart follow the feed, without a reload (the chart sums its
    # buckets: the three may straddle a minute).
    page.wait_for_function(
        "() => parseInt(document.querySelector('[data-figure=succeeded]').textContent) >= 3", timeout=30_000
    )
    page.wait_for_function(
        "() => parseInt(document.getElementById('throughput-chart').dataset.succeeded || '0') >= 3", timeout=30_000
    )
    if os.environ.get("OPSDECK_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["OPSDECK_SCREENSHOTS"]) / "dashboard.png"), full_page=True)

    page.goto(f"{url}/admin/dead")
    page.wait_for_selector("#feed-state:text('live')", timeout=15_000)
    assert page.is_visible("#jobs-empty")

    job_id = submit(payload={"message": "browser", "fail": True}, max_attempts=1)
    page.wait_for_selector(f'tr[data-job-id="{job_id}"]', timeout=30_000)  # no reload
    page.wait_for_selector("#feed-events li.ev-job-dead", timeout=10_000)
    assert page.get_attribute("#feed-events li.ev-job-dead a.ev-subject code", "title") == job_id

    page.click(f'tr[data-job-id="{job_id}"] a')
    page.wait_for_selector("h1 code")
    assert "EchoFailure" in page.inner_text("main")
    page.click("button:text('Retry')")
    page.wait_for_selector(".flash-ok")
    assert job_row(job_id).attempts in (0, 1)  # retried from a fresh count (it may be running again)
    assert not [p for p in page.problems if "Content Security Policy" in p or "Refused" in p], page.problems


def test_operator_retries_every_dead_job_and_watches_the_progress(app, workers, browser_page):
    from app.extensions import db
    from app.models import Job

    page = browser_page
    users.create_user("admin@example.com", PASSWORD, "admin")
    dead = [submit(payload={"message": f"d{i}"}) for i in range(1200)]
    db.session.query(Job).filter(Job.id.in_(dead[:600])).update({"status": "dead"})
    db.session.query(Job).filter(Job.id.in_(dead[600:])).update({"status": "dead"})
    db.session.commit()
    url = workers.start_web()

    page.goto(f"{url}/admin/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{url}/admin/dead")
    page.wait_for_selector("#feed-state:text('live')", timeout=15_000)
    page.select_option("select[name=scope]", "all")
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmation
    page.click("#bulk button[value=retry]")
    page.wait_for_selector(".bulk-progress progress")
    assert "queued" in page.inner_text(".bulk-progress")
    workers.start()  # the bulk job runs only now: the bar moves without a reload
    page.wait_for_selector(".bulk-progress[data-done='1']", timeout=60_000)
    assert "1200 examined, 1200 changed" in page.inner_text(".bulk-progress")
    assert page.evaluate("document.querySelector('.bulk-progress progress').value") == 1200
    assert all(job_row(job_id).status != "dead" for job_id in dead[:20])
