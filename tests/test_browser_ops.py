"""End to end in headless Chromium: the workers page follows worker processes live (a process
appears, shows the job it runs, leaves), and a schedule is paused and run now from its page."""

from __future__ import annotations

import time

import pytest

from app.extensions import db
from app.models import SchedulerTick
from app.services import users
from tests.fakes.processes import wait_until
from tests.helpers import submit
from tests.test_browser import CHROMIUM, PASSWORD, browser_page  # noqa: F401  (the fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"),
]


def log_in(page, url: str) -> None:
    users.create_user("admin@example.com", PASSWORD, "admin")
    page.goto(f"{url}/admin/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Dashboard')")


def test_the_workers_page_follows_a_worker_live(app, workers, browser_page):  # noqa: F811
    page = browser_page
    url = workers.start_web()
    log_in(page, url)
    page.goto(f"{url}/admin/workers")
    page.wait_for_selector("#workers-table[data-live='1']", state="attached", timeout=15_000)
    assert page.is_visible("#workers-empty")
    worker = workers.start(["default"], threads=2)
    page.wait_for_selector("#workers-table tr[data-worker-id] .state:text('alive')", timeout=30_000)  # no reload
    assert "0 / 2" in page.inner_text("#workers-table tbody")
    job_id = submit(payload={"message": "slow", "sleep_seconds": 15})
    page.wait_for_selector(f'#workers-table a[href="/admin/jobs/{job_id}"]', timeout=20_000)
    assert "1 / 2" in page.inner_text("#workers-table tbody")
    worker.stop(timeout=30)
    page.wait_for_selector("#workers-empty", state="visible", timeout=30_000)
    assert not page.problems, page.problems


def _ticks(name: str) -> list[SchedulerTick]:
    db.session.rollback()
    return db.session.query(SchedulerTick).filter_by(name=name).all()


def test_an_operator_pauses_a_schedule_and_runs_it_now(app, workers, browser_page):  # noqa: F811
    page = browser_page
    url = workers.start_web()
    log_in(page, url)
    page.goto(f"{url}/admin/schedules")
    row = "#schedules-table tr[data-schedule='scheduler.prune_ticks']"
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f"{row} button:text('Pause')")
    page.wait_for_selector(f"{row} .state:text('paused')")
    workers.start_scheduler()
    wait_until(lambda: _ticks("payments.match"), 30, 0.2, what="the scheduler to fire")
    time.sleep(1)
    assert _ticks("scheduler.prune_ticks") == []  # paused: not fired at the scheduler's start
    page.click(f"{row} button:text('Run now')")
    page.wait_for_selector(".flash-ok:text('asked to run now')")
    wait_until(lambda: [t.status for t in _ticks("scheduler.prune_ticks")] == ["succeeded"], 15, 0.2, what="the run")
    page.reload()
    assert "(run now)" in page.inner_text(row) and "succeeded" in page.inner_text(row)
    assert page.is_visible(f"{row} button:text('Resume')")
    assert not page.problems, page.problems
