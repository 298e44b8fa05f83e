"""Retention runs on SQLite and PostgreSQL: each kind deletes exactly what is older than its
policy, children with their parents, nothing held; batches commit one by one (an interrupted
run resumes); dry runs delete nothing; runs never overlap; the daily schedule fires once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db, queue
from app.models import (
    AuditEntry,
    Email,
    Event,
    IdempotencyRecord,
    Job,
    RetentionRun,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.base import new_id, utcnow
from app.services import retention, tenants

#: Every real run ends with the orphan sweep, which lists the scan storage: both backends.
pytestmark = pytest.mark.both_storages

DAY = timedelta(days=1)


def old(days: float):
    return utcnow() - timedelta(days=days)


def job(status: str, finished_days_ago: float, tenant_id: str | None = None) -> str:
    row = Job(
        id=new_id(),
        tenant_id=tenant_id,
        type="system.echo",
        queue="default",
        priority="normal",
        status=status,
        payload={},
        attempts=1,
        max_attempts=3,
        next_attempt_at=old(finished_days_ago),
        created_at=old(finished_days_ago),
        updated_at=old(finished_days_ago),
        finished_at=old(finished_days_ago),
    )
    db.session.add(row)
    return row.id


def event_with_deliveries(tenant_id: str, endpoint_id: str, days: float, status: str = "succeeded") -> tuple[str, str]:
    event = Event(
        id=new_id(),
        tenant_id=tenant_id,
        type="x.y",
        body='{"type":"x.y","timestamp":"","data":{}}',
        created_at=old(days),
    )
    delivery = WebhookDelivery(
        id=new_id(),
        tenant_id=tenant_id,
        event_id=event.id,
        endpoint_id=endpoint_id,
        status=status,
        created_at=old(days),
        updated_at=old(days),
    )
    db.session.add_all([event, delivery])
    db.session.flush()
    db.session.add(
        WebhookAttempt(delivery_id=delivery.id, attempted_at=old(days), duration_ms=1, status_code=200, succeeded=True)
    )
    return event.id, delivery.id


@pytest.fixture
def endpoint(app, tenant):
    row = WebhookEndpoint(tenant_id=tenant.tenant_id, url="https://example.com/hook", secret_encrypted=b"x")
    db.session.add(row)
    db.session.commit()
    return row.id


def count(model) -> int:
    db.session.rollback()
    return db.session.query(model).count()


def test_each_kind_deletes_exactly_what_is_older_than_its_policy(app, tenant, endpoint):
    t = tenant.tenant_id
    kept_jobs = [job("succeeded", 0.5, t), job("dead", 6, t), job("running", 30, t)]
    gone_jobs = [job("succeeded", 2, t), job("dead", 8, t), job("cancelled", 9)]
    db.session.add_all(
        [
            IdempotencyRecord(
                tenant_id=t, key="old", request_hash="h", response_status=202, created_at=old(3), expires_at=old(1)
            ),
            IdempotencyRecord(
                tenant_id=t, key="new", request_hash="h", response_status=202, created_at=old(1), expires_at=utcnow()
            ),
            AuditEntry(actor="x", action="old", created_at=old(400)),
            AuditEntry(actor="x", action="new", created_at=old(10)),
            Email(id=new_id(), tenant_id=t, to="a@x.org", status="sent", message_id="<1@x>", created_at=old(31)),
            Email(id=new_id(), tenant_id=t, to="a@x.org", status="queued", message_id="<2@x>", created_at=old(31)),
            Email(id=new_id(), tenant_id=t, to="a@x.org", status="sent", message_id="<3@x>", created_at=old(5)),
        ]
    )
    old_event, _ = event_with_deliveries(t, endpoint, 40)
    new_event, _ = event_with_deliveries(t, endpoint, 5)
    busy_event, _ = event_with_deliveries(t, endpoint, 40, status="retrying")  # still being delivered
    db.session.commit()

    record = retention.run(triggered_by="test")
    assert record.status == "completed", record.error
    assert record.counts["jobs_succeeded"] == 1 and record.counts["jobs_failed"] == 2
    assert record.counts["idempotency"] == 1 and record.counts["audit_log"] == 1 and record.counts["emails"] == 1
    remaining_jobs = {r.id for r in db.session.query(Job)}
    assert set(kept_jobs) <= remaining_jobs and not set(gone_jobs) & remaining_jobs
    assert [r.key for r in db.session.query(IdempotencyRecord)] == ["new"]
    assert [r.action for r in db.session.query(AuditEntry) if r.action in ("old", "new")] == ["new"]
    assert sorted(r.message_id for r in db.session.query(Email)) == ["<2@x>", "<3@x>"]
    events = {r.id for r in db.session.query(Event)}
    assert events == {new_event, busy_event}  # children first: the old event's deliveries and attempts went too
    assert count(WebhookDelivery) == 2  # the busy event keeps its delivery; attempts age out on their own:
    assert count(WebhookAttempt) == 1  # the 40-day-old attempt of the busy delivery went (30-day policy)
    assert db.session.get(RetentionRun, record.id).finished_at is not None


def test_held_tenants_and_events_are_kept_and_reported(app, tenant, endpoint):
    other = tenants.create_tenant("globex").tenant_id
    for _ in range(2):
        job("succeeded", 3, tenant.tenant_id)
    job("succeeded", 3, other)
    held_event, _ = event_with_deliveries(other, endpoint, 40)
    free_event, _ = event_with_deliveries(other, endpoint, 40)
    db.session.commit()
    retention.hold(tenant.tenant_id, reason="litigation 2026-17", actor="test")
    retention.hold(other, reason="dispute 88", actor="test", event_id=held_event)
    record = retention.run(triggered_by="test")
    assert record.counts["jobs_succeeded"] == 1 and record.held["jobs_succeeded"] == 2
    assert record.held["events"] == 1 and record.counts["events"] == 1
    assert {r.id for r in db.session.query(Event)} == {held_event}
    assert db.session.query(WebhookDelivery).filter_by(event_id=held_event).count() == 1
    assert count(Job) == 2


def test_dry_run_deletes_nothing(app, tenant):
    for _ in range(3):
        job("succeeded", 3, tenant.tenant_id)
    db.session.commit()
    record = retention.run(dry_run=True, triggered_by="test")
    assert record.dry_run and record.counts["jobs_succeeded"] == 3 and count(Job) == 3


def test_batches_commit_one_by_one_and_an_interrupted_run_resumes(app, tenant):
    retention.set_policy("jobs_succeeded", batch_size=2, actor="test")
    for _ in range(5):
        job("succeeded", 3, tenant.tenant_id)
    db.session.commit()
    seen = []
    retention.run(kinds=["jobs_succeeded"], triggered_by="test", on_progress=lambda p: seen.append(p.deleted))
    assert seen == [2, 4, 5] and count(Job) == 0

    for _ in range(5):
        job("succeeded", 3, tenant.tenant_id)
    db.session.commit()
    app.config["RETENTION_TIME_BUDGET"] = 0  # out of time before the first batch
    first = retention.run(kinds=["jobs_succeeded"], triggered_by="test")
    assert first.status == "interrupted" and count(Job) == 5
    app.config["RETENTION_TIME_BUDGET"] = 60
    assert retention.run(kinds=["jobs_succeeded"], triggered_by="test").status == "completed" and count(Job) == 0


def test_a_second_run_is_refused_while_one_is_going(app):
    queue.redis.set(retention.RUN_LOCK, "1", ex=60)
    with pytest.raises(retention.RetentionError, match="another retention run"):
        retention.run(triggered_by="test")
    queue.redis.delete(retention.RUN_LOCK)
    assert retention.run(triggered_by="test").status == "completed"


def test_disabled_policies_and_unknown_kinds(app, tenant):
    job("succeeded", 30, tenant.tenant_id)
    db.session.commit()
    retention.set_policy("jobs_succeeded", enabled=False, actor="test")
    assert "jobs_succeeded" not in retention.run(triggered_by="test").counts and count(Job) == 1
    with pytest.raises(retention.RetentionError):
        retention.set_policy("nope", days=1, actor="test")
    assert db.session.query(AuditEntry).filter_by(action="retention.policy").count() == 1


def test_the_daily_run_is_queued_once_per_day(app):
    app.config["RETENTION_AT"] = "00:00"
    assert retention.due_daily() is not None  # a first scheduler
    assert retention.due_daily() is None  # a second one, or the next minute
    assert db.session.query(Job).filter_by(type="retention.run").count() == 1


def test_cli_lists_sets_and_runs(app, tenant):
    job("succeeded", 3, tenant.tenant_id)
    db.session.commit()
    runner = app.test_cli_runner()
    assert "jobs_succeeded" in runner.invoke(args=["retention", "list"]).output
    assert runner.invoke(args=["retention", "set", "jobs_succeeded", "2"]).exit_code == 0
    dry = runner.invoke(args=["retention", "run", "--dry-run", "--kind", "jobs_succeeded"])
    assert dry.exit_code == 0 and "1 would go" in dry.output and count(Job) == 1
    real = runner.invoke(args=["retention", "run", "--kind", "jobs_succeeded"])
    assert real.exit_code == 0 and "1 deleted" in real.output and count(Job) == 0
    assert runner.invoke(args=["retention", "run", "--kind", "nope"]).exit_code != 0


@pytest.mark.slow
def test_a_run_by_a_worker_reports_progress_and_completion_on_the_feed(app, workers):
    """The `maintenance` worker runs retention and tells the operators: `retention.progress`
    while it deletes, `retention.completed` with the counts when it is done."""
    from app import live
    from app.services import jobs
    from tests.helpers import wait_for_status

    for _ in range(3):
        job("succeeded", 3)
    db.session.commit()
    run = jobs.submit(retention.RUN.name, {"kinds": ["jobs_succeeded"], "triggered_by": "test"})
    db.session.commit()
    workers.start(["maintenance"])
    wait_for_status(run.id, "succeeded", logs=workers.logs)
    feed = live.recent(50)
    progress = [e for e in feed if e["type"] == "retention.progress"]
    completed = [e for e in feed if e["type"] == "retention.completed"]
    assert progress and progress[-1]["data"]["kind"] == "jobs_succeeded"
    assert len(completed) == 1 and completed[0]["data"]["status"] == "completed"
    assert (
        completed[0]["data"]["counts"]["jobs_succeeded"] == 3 and completed[0]["subject"] == completed[0]["data"]["run"]
    )
