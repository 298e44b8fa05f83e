"""Email sent by real `dramatiq workers` and scheduler processes through a real SMTP server:
the scheduler kicks flushes, and a worker SIGKILLed mid-batch loses nothing."""

from __future__ import annotations

import pytest

from app import live
from app.extensions import db
from app.models import Email
from app.services.email import mails, outcomes
from tests.fakes.processes import wait_until

pytestmark = pytest.mark.slow


def queue_mails(tenant_id: str, count: int) -> None:
    mails.submit(
        tenant_id, [mails.NewMail(to=f"u{i}@example.com", subject=f"Hello {i}", text="Hi") for i in range(count)]
    )
    db.session.commit()


def sent_count() -> int:
    db.session.rollback()
    return db.session.query(Email).filter_by(status="sent").count()


def test_a_worker_killed_mid_batch_loses_nothing_and_resends_at_most_one_chunk(app, tenant, workers, sink):
    settings = {
        "SMTP_PORT": sink.port,
        "EMAIL_RATE_PER_MINUTE": 0,
        "EMAIL_DELAY": 0.2,
        "EMAIL_LEASE_SECONDS": 3,
        "JOB_LEASE_SECONDS": 3,
        "OUTBOX_RELAY_INTERVAL": 0.5,
        "OUTBOX_GRACE_SECONDS": 1,
    }
    sink.data_delay = 0.03  # a batch of 100 takes about 3 s: the kill lands mid-batch
    queue_mails(tenant.tenant_id, 250)
    doomed = workers.start(["email"], name="doomed", **settings)
    workers.start_scheduler(**settings)  # kicks the flush (EMAIL_DELAY) and relays
    wait_until(lambda: len(sink.received) >= 60, 60, 0.05, what="the first batch to be under way")
    doomed.kill()
    doomed.proc.wait(10)
    workers.start(["email"], name="rescuer", **settings)
    wait_until(lambda: sent_count() == 250, 120, 0.2, what="every mail to be sent")
    ids = sink.message_ids()
    assert len(set(ids)) == 250  # nothing lost
    # Sent twice at most: the mails whose 250 came after the last committed chunk, and the one in flight.
    assert len(ids) - 250 <= outcomes.RECORD_EVERY + 1, len(ids) - 250
    # The operators' feed hears of each recorded batch; the killed worker's batch never reports.
    wait_until(lambda: batch_reports(), 10, 0.1, what="the batch reports on the feed")
    assert sum(e["data"]["sent"] for e in batch_reports()) <= 250


def batch_reports() -> list[dict]:
    return [e for e in live.recent(50) if e["type"] == "email.batch_sent"]
