"""Actors of the `email` family."""

from __future__ import annotations

import os
import socket
from typing import Any

from app import live
from app.services.email import batches, outcomes
from app.services.jobs.ledger import ClaimedJob
from workers.runtime import job_actor


@job_actor(batches.FLUSH, time_limit=600_000, min_backoff=5_000, max_backoff=60_000)
def flush(job: ClaimedJob) -> dict[str, Any]:
    """email.flush: batches of due mail over one SMTP connection each, EMAIL_DELAY apart, for
    up to FLUSH_BUDGET_SECONDS (the scheduler kicks the next flush). Mail-level retries live in
    the mail rows (EMAIL_RETRY_SCHEDULE); this job retries only if the flush itself crashed."""
    try:
        results = batches.flush(worker=f"{socket.gethostname()}:{os.getpid()}", on_batch=report)
    finally:
        batches.flush_done()
    return {"batches": len(results), "sent": sum(r.sent for r in results)}


def report(result: outcomes.BatchResult) -> None:
    """Tell the operators' feed about a batch the moment it is recorded, not when the flush ends."""
    live.publish(
        "email.batch_sent",
        subject=result.batch_id,
        data={
            "size": result.size,
            "sent": result.sent,
            "retrying": result.retrying,
            "failed": result.failed,
            "deferred": result.deferred,
            "duration_ms": result.duration_ms,
            "error": result.error,
        },
    )
    for failure in result.failures:
        if failure["status"] == "failed":
            live.publish("email.failed", subject=failure["id"], data=failure)
