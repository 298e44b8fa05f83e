"""Actors of the `provisioning` family: payments, router work on subscriptions, router checks,
each on its own queue (`payments`, `provisioning`, `routers`) so worker pools can be sized apart."""

from __future__ import annotations

from typing import Any

from app import live
from app.services.jobs.ledger import ClaimedJob
from app.services.provisioning import payments, routers, subscriptions
from workers.runtime import job_actor


def _publish(items: list[tuple[str, dict[str, Any]]], tenant_id: str | None) -> None:
    for event_type, data in items:
        live.publish(event_type, subject=data["id"], data=data, tenant_id=tenant_id)


@job_actor(payments.PROCESS, time_limit=60_000, min_backoff=1_000, max_backoff=30_000)
def process_payment(job: ClaimedJob) -> dict[str, Any]:
    """payment.process: database only (no outside call), so quick retries suffice."""
    result = payments.process(job.payload["payment_id"])
    live_data = result.pop("live", None)
    if live_data is not None:
        _publish([("payment.processed", live_data)], job.tenant_id)
    return result


@job_actor(subscriptions.PROVISION, time_limit=60_000)
def provision(job: ClaimedJob) -> dict[str, Any]:
    """subscription.provision: two or three RouterOS calls, each within ROUTER_TIMEOUT (60 s
    limit, as the brief's); retries on PROVISION_RETRY_SCHEDULE (5/15/30/60/120 s)."""
    outcome = subscriptions.provision(job.payload["subscription_id"], job)
    _publish(outcome.live, outcome.tenant_id)
    if outcome.retry is not None:
        raise outcome.retry
    return outcome.result


@job_actor(subscriptions.DEPROVISION, time_limit=60_000)
def deprovision(job: ClaimedJob) -> dict[str, Any]:
    """subscription.deprovision: remove the user, kick its sessions (retried until done)."""
    outcome = subscriptions.deprovision(job.payload["subscription_id"], job)
    _publish(outcome.live, outcome.tenant_id)
    if outcome.retry is not None:
        raise outcome.retry
    return outcome.result


@job_actor(routers.CHECK, time_limit=60_000)
def check_router(job: ClaimedJob) -> dict[str, Any]:
    """router.check: one attempt; the scheduler queues the next check."""
    outcome = routers.check(job.payload["router_id"])
    _publish(outcome.live, outcome.tenant_id)
    return outcome.result
