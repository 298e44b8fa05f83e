"""Actors of the `scans` family."""

from __future__ import annotations

from typing import Any

from app import live
from app.services.jobs.ledger import ClaimedJob
from app.services.scans import signatures, verdicts
from workers.runtime import job_actor


@job_actor(verdicts.SCAN, time_limit=300_000, max_backoff=60_000)
def scan(job: ClaimedJob) -> dict[str, Any]:
    """scans.scan: one INSTREAM to clamd per run (CLAMD_TIMEOUT on every socket operation,
    far below the 300 s limit). With no verdict the service raises the next delay from
    SCAN_RETRY_SCHEDULE, then gives up with the scan in `error`."""
    outcome = verdicts.run(job.payload["scan_id"], job)
    for event_type, data in outcome.live:
        live.publish(event_type, subject=data["id"], data=data, tenant_id=outcome.tenant_id)
    if outcome.retry is not None:
        raise outcome.retry
    return outcome.result


@job_actor(signatures.RESCAN, time_limit=120_000, max_backoff=60_000)
def rescan(job: ClaimedJob) -> dict[str, Any]:
    """scans.rescan: queue rescans of recent clean files after a signature update (resumable:
    rows are marked as they are queued)."""
    result = signatures.queue_rescans(job.payload["db_version"])
    live.publish("scans.rescans_queued", subject=str(result["db_version"]), data=result)
    return result
