"""Actors of the `system` family."""

from __future__ import annotations

from typing import Any

from app.services import system
from app.services.jobs.ledger import ClaimedJob
from workers.runtime import job_actor


@job_actor(
    system.ECHO, min_backoff=1_000, max_backoff=30_000, time_limit=90_000, max_age=3_600_000, notify_shutdown=True
)
def echo(job: ClaimedJob) -> dict[str, Any]:
    """system.echo: the canary. Retries 1 s … 30 s; 90 s time limit (sleep is capped at 60);
    dead if not started within an hour of being due; released (not failed) at shutdown."""
    return system.echo(**job.payload)


@job_actor(system.BULK, min_backoff=5_000, max_backoff=60_000, time_limit=3_600_000)
def bulk(job: ClaimedJob) -> dict[str, Any]:
    """jobs.bulk: retry or cancel many jobs from the admin, with live progress."""
    from app import live
    from app.services import jobs

    payload = job.payload

    def progress(done: int, changed: int, total: int) -> None:
        data = {"action": payload["action"], "done": done, "changed": changed, "total": total}
        live.publish("jobs.bulk_progress", subject=job.id, data=data)

    flt = jobs.JobFilter.from_dict(payload["filter"]) if payload.get("filter") is not None else None
    summary = jobs.bulk_apply(
        payload["action"], job_ids=payload.get("job_ids"), flt=flt, actor=payload["actor"], on_progress=progress
    )
    live.publish("jobs.bulk_completed", subject=job.id, data={"action": payload["action"], **summary})
    return summary
