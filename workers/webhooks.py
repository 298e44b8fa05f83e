"""Actors of the `webhooks` family."""

from __future__ import annotations

from typing import Any

from app import live
from app.services.jobs.ledger import ClaimedJob
from app.services.webhooks import delivery
from workers.runtime import job_actor


@job_actor(delivery.DELIVER, time_limit=60_000, max_backoff=60_000)
def deliver(job: ClaimedJob) -> dict[str, Any]:
    """webhooks.deliver: one attempt per run. The service picks the next delay (the
    WEBHOOK_RETRY_SCHEDULE with jitter, or the receiver's Retry-After) and raises it to the
    ledger; the 60 s time limit is far above WEBHOOK_TIMEOUT (one HTTP call per run)."""
    outcome = delivery.attempt(job.payload["delivery_id"], job)
    if outcome.disabled_reason and outcome.endpoint_id:
        live.publish(
            "webhook.endpoint_disabled",
            subject=outcome.endpoint_id,
            tenant_id=outcome.tenant_id,
            data={"url": outcome.url, "reason": outcome.disabled_reason},
        )
    if outcome.dead and outcome.delivery_id:
        live.publish(
            "webhook.delivery_dead",
            subject=outcome.delivery_id,
            tenant_id=outcome.tenant_id,
            data={"endpoint_id": outcome.endpoint_id, "event_id": outcome.event_id, "error": outcome.error},
        )
    if outcome.retry is not None:
        raise outcome.retry
    job.writes.extend(outcome.writes)  # the attempt's record commits with the job's success
    return outcome.result
