"""The schedules page: every schedule with its interval, next and last run; pause/resume and
run now (admins, audited), honoured by real scheduler processes."""

from __future__ import annotations

import time

from app.extensions import db
from app.models import AuditEntry, SchedulerTick
from app.services import scheduler
from app.services.scheduler import Schedule, fire
from tests.fakes.processes import wait_until
from tests.helpers import post


def ticks(name: str, **filters) -> list[SchedulerTick]:
    db.session.rollback()
    return db.session.query(SchedulerTick).filter_by(name=name, **filters).all()


def audited(action: str) -> list[str]:
    db.session.rollback()
    return [e.target for e in db.session.query(AuditEntry).filter_by(action=action)]


def test_every_schedule_is_listed_with_its_last_run_and_next_run(app, admin):
    table = scheduler.table(app)
    assert {"outbox.relay", "email.kick", "retention.check", "routers.check", "provisioning.expiry",
            "scans.signatures", "queues.long_wait", "webhooks.settle"} <= {s.name for s in table}  # fmt: skip
    (prune,) = [s for s in table if s.name == "scheduler.prune_ticks"]
    assert fire(app, prune, "test-scheduler")
    html = admin.get("/admin/schedules").text
    for schedule in table:
        assert f'data-schedule="{schedule.name}"' in html
    row = html[html.index('data-schedule="scheduler.prune_ticks"') :].split("</tr>")[0]
    assert "succeeded" in row and "3600 s" in row and "in 59 min" in row  # next run: a period after the last
    assert "never" in html[html.index('data-schedule="stats.rollup"') :].split("</tr>")[0]


def test_a_run_records_its_outcome_and_duration(app):
    def slow() -> None:
        time.sleep(0.2)

    def boom() -> None:
        raise RuntimeError("no luck")

    assert fire(app, Schedule("test.slow", 60, slow), "a")
    assert fire(app, Schedule("test.boom", 60, boom), "a")
    (ok,) = ticks("test.slow")
    assert ok.status == "succeeded" and ok.duration_seconds >= 0.2
    (bad,) = ticks("test.boom")
    assert bad.status == "failed" and bad.error == "RuntimeError: no luck"


def test_a_paused_schedule_is_not_fired_and_viewers_cannot_pause(app, admin, viewer):
    assert viewer.post("/admin/schedules/stats.rollup/pause").status_code in (400, 403)
    assert post(viewer, "/admin/schedules/stats.rollup/pause").status_code == 403
    assert post(admin, "/admin/schedules/nope/pause").status_code == 404
    assert post(admin, "/admin/schedules/stats.rollup/pause").status_code == 302
    runs = []
    assert fire(app, Schedule("stats.rollup", 60, lambda: runs.append(1)), "a") is False
    assert runs == [] and ticks("stats.rollup") == []
    assert "paused" in admin.get("/admin/schedules").text
    assert audited("schedule.paused") == ["stats.rollup"]
    assert post(admin, "/admin/schedules/stats.rollup/resume").status_code == 302
    assert fire(app, Schedule("stats.rollup", 60, lambda: runs.append(1)), "a") is True and runs == [1]
    assert audited("schedule.resumed") == ["stats.rollup"]


def test_a_pause_holds_for_every_scheduler_process_until_resumed(app, admin, workers):
    settings = {"OUTBOX_RELAY_INTERVAL": 0.5}
    post(admin, "/admin/schedules/outbox.relay/pause")
    workers.start_scheduler(name="scheduler-1", **settings)
    workers.start_scheduler(name="scheduler-2", **settings)
    wait_until(lambda: len(ticks("payments.match")) >= 1, 30, 0.2, what="the schedulers to fire")
    time.sleep(2)  # four relay periods
    assert ticks("outbox.relay") == [], workers.logs()
    post(admin, "/admin/schedules/outbox.relay/resume")
    wait_until(lambda: len(ticks("outbox.relay")) >= 2, 15, 0.2, what="the relay to run again")


def test_run_now_runs_a_paused_schedule_once_and_is_audited(app, admin, workers):
    post(admin, "/admin/schedules/scheduler.prune_ticks/pause")
    workers.start_scheduler(name="scheduler-1")
    workers.start_scheduler(name="scheduler-2")
    wait_until(lambda: len(ticks("payments.match")) >= 1, 30, 0.2, what="the schedulers to fire")
    assert ticks("scheduler.prune_ticks") == []
    assert post(admin, "/admin/schedules/scheduler.prune_ticks/run").status_code == 302
    wait_until(lambda: len(ticks("scheduler.prune_ticks", status="succeeded")) == 1, 15, 0.2, what="the run")
    time.sleep(2)  # both schedulers polled again meanwhile
    (run,) = ticks("scheduler.prune_ticks")
    assert run.manual and run.status == "succeeded" and run.finished_at is not None
    assert audited("schedule.run_now") == ["scheduler.prune_ticks"]
    row = admin.get("/admin/schedules").text
    row = row[row.index('data-schedule="scheduler.prune_ticks"') :].split("</tr>")[0]
    assert "(run now)" in row and "paused" in row
