"""Queue and worker figures for the dashboard, from the ledger's live states and Redis."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from app import jobtypes
from app.extensions import db, queue
from app.models import Job, JobStatus
from app.models.base import utcnow

#: A worker process whose Dramatiq heartbeat is older than this is not counted alive.
WORKER_ALIVE_SECONDS = 60


@dataclass
class QueueStats:
    name: str
    waiting: int = 0
    delayed: int = 0
    running: int = 0
    retrying: int = 0
    dead: int = 0
    oldest_waiting: datetime | None = None
    extra: dict[str, int] = field(default_factory=dict)


def queue_stats() -> list[QueueStats]:
    """Per queue: waiting (pending/queued, due), delayed (due later), running, retrying, dead,
    and the oldest waiting job. One grouped query over the status index; no full scan of
    finished jobs but the dead ones."""
    now = utcnow()
    by_name = {name: QueueStats(name) for name in jobtypes.all_queue_names()}
    waiting_states = (JobStatus.PENDING.value, JobStatus.QUEUED.value)
    rows = db.session.execute(
        select(
            Job.queue,
            Job.status,
            (Job.next_attempt_at > now).label("later"),
            func.count(),
            func.min(Job.next_attempt_at),
        )
        .where(
            Job.status.in_([*waiting_states, JobStatus.RUNNING.value, JobStatus.RETRYING.value, JobStatus.DEAD.value])
        )
        .group_by(Job.queue, Job.status, "later")
    ).all()
    db.session.rollback()
    for name, status, later, count, oldest in rows:
        stats = by_name.setdefault(name, QueueStats(name))
        if status in waiting_states:
            if later:
                stats.delayed += count
            else:
                stats.waiting += count
                if oldest is not None and (stats.oldest_waiting is None or oldest < stats.oldest_waiting):
                    stats.oldest_waiting = oldest
        else:
            setattr(stats, status, getattr(stats, status) + count)
    return list(by_name.values())


def workers_alive() -> int | None:
    """Broker processes with a recent Dramatiq heartbeat (one ZCOUNT, no KEYS scan);
    None when Redis is unreachable."""
    try:
        broker = queue.broker
        now_ms = int(time.time() * 1000)
        return int(
            queue.redis.zcount(f"{broker.namespace}:__heartbeats__", now_ms - WORKER_ALIVE_SECONDS * 1000, "+inf")
        )
    except Exception:
        return None
