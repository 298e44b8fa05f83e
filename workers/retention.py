"""Actors of the `retention` family."""

from __future__ import annotations

import time
from typing import Any

from app import live
from app.services import retention
from app.services.jobs.ledger import ClaimedJob, GiveUp
from workers.runtime import job_actor


@job_actor(retention.RUN, time_limit=4 * 3600_000, min_backoff=60_000, max_backoff=600_000)
def run(job: ClaimedJob) -> dict[str, Any]:
    """retention.run: one run (scheduled daily at RETENTION_AT, or asked for by an operator);
    progress on the feed at most once a second. A run refused because another is going is not
    retried: that one does the work."""
    last = [0.0]

    def progress(p: retention.Progress) -> None:
        if time.monotonic() - last[0] >= 1.0:
            last[0] = time.monotonic()
            live.publish("retention.progress", subject=p.run.id, data={"kind": p.kind, "deleted": p.deleted})

    try:
        record = retention.run(
            dry_run=job.payload.get("dry_run", False),
            kinds=job.payload.get("kinds"),
            triggered_by=job.payload.get("triggered_by", "schedule"),
            on_progress=progress,
        )
    except retention.RetentionError as err:
        raise GiveUp(str(err)) from None
    summary = {
        "run": record.id,
        "status": record.status,
        "dry_run": record.dry_run,
        "counts": record.counts,
        "held": record.held,
        "duration_ms": record.duration_ms,
        "error": record.error,
    }
    live.publish("retention.completed", subject=record.id, data=summary)
    return summary
