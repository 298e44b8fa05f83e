"""Actors of the `system` family."""

from __future__ import annotations

from typing import Any

from app.services import system
from app.services.ledger import ClaimedJob
from workers.broker import job_actor


@job_actor(
    system.ECHO, min_backoff=1_000, max_backoff=30_000, time_limit=90_000, max_age=3_600_000, notify_shutdown=True
)
def echo(job: ClaimedJob) -> dict[str, Any]:
    """system.echo: the canary. Retries 1 s … 30 s; 90 s time limit (sleep is capped at 60);
    dead if not started within an hour of being due; released (not failed) at shutdown."""
    return system.echo(**job.payload)
