"""Queue and worker figures for the dashboard, from the ledger's live states and Redis."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from app import jobtypes
from app.extensions import db, queue
from app.models import Job, JobStat, JobStatus
from app.models.base import utcnow

log = logging.getLogger(__name__)


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


# -- throughput history ---------------------------------------------------------------
_MINUTE_KEY = "opsdeck:stats:m:{}"
#: Redis keeps per-minute counters this long; the rollup reads the last ROLLUP_MINUTES.
MINUTE_TTL_SECONDS = 3 * 3600
ROLLUP_MINUTES = 90
#: How long each granularity is kept in the database.
KEEP = {"minute": timedelta(days=2), "hour": timedelta(days=35), "day": timedelta(days=400)}
SPAN = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def count(outcomes: dict[str, int], now: float | None = None) -> None:
    """Add succeeded/failed counts to the current minute (one Redis pipeline)."""
    minute = int((time.time() if now is None else now) // 60) * 60
    key = _MINUTE_KEY.format(minute)
    pipe = queue.redis.pipeline()
    for outcome, n in outcomes.items():
        if n:
            pipe.hincrby(key, outcome, n)
    pipe.expire(key, MINUTE_TTL_SECONDS)
    pipe.execute()


def _floor(moment: datetime, granularity: str) -> datetime:
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _upsert(granularity: str, start: datetime, succeeded: int, failed: int, *, keep_larger: bool) -> None:
    row = db.session.get(JobStat, (granularity, start))
    if row is None:
        db.session.add(JobStat(granularity=granularity, bucket_start=start, succeeded=succeeded, failed=failed))
    elif keep_larger:  # a Redis restart must not shrink a minute already counted
        row.succeeded, row.failed = max(row.succeeded, succeeded), max(row.failed, failed)
    else:
        row.succeeded, row.failed = succeeded, failed


def rollup(now: datetime | None = None) -> dict[str, int]:
    """Copy the last ROLLUP_MINUTES of Redis minute counters into the database, recompute the
    hours and days they touch, and drop rows past KEEP. Idempotent; commits."""
    now = now or utcnow()
    last = _floor(now, "minute")
    minutes = [last - timedelta(minutes=i) for i in range(ROLLUP_MINUTES)]
    pipe = queue.redis.pipeline()
    for minute in minutes:
        pipe.hgetall(_MINUTE_KEY.format(int(minute.timestamp())))
    found = 0
    for minute, counts in zip(minutes, pipe.execute(), strict=True):
        if counts:
            found += 1
            _upsert("minute", minute, int(counts.get(b"succeeded", 0)), int(counts.get(b"failed", 0)), keep_larger=True)
    db.session.flush()
    for coarse, fine in (("hour", "minute"), ("day", "hour")):
        starts = {_floor(m, coarse) for m in minutes}
        for start in starts:
            totals = db.session.execute(
                select(func.coalesce(func.sum(JobStat.succeeded), 0), func.coalesce(func.sum(JobStat.failed), 0)).where(
                    JobStat.granularity == fine,
                    JobStat.bucket_start >= start,
                    JobStat.bucket_start < start + SPAN[coarse],
                )
            ).one()
            if totals[0] or totals[1]:
                _upsert(coarse, start, int(totals[0]), int(totals[1]), keep_larger=False)
        db.session.flush()
    for granularity, keep in KEEP.items():
        db.session.execute(delete(JobStat).where(JobStat.granularity == granularity, JobStat.bucket_start < now - keep))
    db.session.commit()
    record_depth(queue_stats(), now=now.timestamp())
    return {"minutes": found}


def series(granularity: str, buckets: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The last `buckets` buckets, oldest first, zero-filled: [{"start", "succeeded", "failed"}]."""
    now = now or utcnow()
    first = _floor(now, granularity) - SPAN[granularity] * (buckets - 1)
    rows = db.session.scalars(
        select(JobStat).where(JobStat.granularity == granularity, JobStat.bucket_start >= first)
    ).all()
    by_start = {r.bucket_start.astimezone(UTC): r for r in rows}
    db.session.rollback()
    out = []
    for i in range(buckets):
        start = first + SPAN[granularity] * i
        row = by_start.get(start)
        out.append({"start": start, "succeeded": row.succeeded if row else 0, "failed": row.failed if row else 0})
    return out


def with_live_minutes(series_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The minute series with every bucket Redis still holds read live (one pipeline), so a
    minute that ended since the last rollup is not drawn empty until the next one."""
    if not series_:
        return series_
    try:
        pipe = queue.redis.pipeline(transaction=False)
        for bucket in series_:
            pipe.hgetall(_MINUTE_KEY.format(int(bucket["start"].timestamp())))
        live = pipe.execute()
    except Exception:  # Redis down: the database's rolled-up figures are what there is
        return series_
    for bucket, counts in zip(series_, live, strict=True):
        if counts:  # a Redis restart may have lost a minute already rolled up: keep the larger
            bucket["succeeded"] = max(bucket["succeeded"], int(counts.get(b"succeeded", 0)))
            bucket["failed"] = max(bucket["failed"], int(counts.get(b"failed", 0)))
    return series_


def with_live_total(granularity: str, coarse: list[dict[str, Any]], fine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `granularity` series (hours, days) with each bucket at least the sum of the finer
    series' buckets inside it (already read live), so this hour, the hour that just ended and
    today are not behind the minute chart until the next rollup. Both are lower bounds of the
    truth, so the larger is the better one."""
    span = SPAN[granularity]
    for bucket in coarse:
        inside = [b for b in fine if bucket["start"] <= b["start"] < bucket["start"] + span]
        for outcome in ("succeeded", "failed"):
            bucket[outcome] = max(bucket[outcome], sum(b[outcome] for b in inside))
    return coarse


# -- queue depth history (the dashboard's sparklines) -----------------------------------
_DEPTH_KEY = "opsdeck:stats:depth:{}"
#: Per-minute depth samples are kept this long in Redis (the sparklines show the last hour).
DEPTH_TTL_SECONDS = 2 * 3600


def record_depth(queues: list[QueueStats], now: float | None = None) -> None:
    """Keep each queue's waiting count as this minute's sample (the last write in a minute wins).
    Called by the minute rollup and by the dashboard; never raises (Redis down: no sample)."""
    minute = int((time.time() if now is None else now) // 60) * 60
    key = _DEPTH_KEY.format(minute)
    try:
        pipe = queue.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={q.name: q.waiting for q in queues})
        pipe.expire(key, DEPTH_TTL_SECONDS)
        pipe.execute()
    except Exception as err:
        log.warning("queue depth not recorded: %s", err)


def depth_history(names: list[str], minutes: int = 60, now: float | None = None) -> dict[str, list[int | None]]:
    """Per queue, its waiting count at each of the last `minutes` minutes, oldest first (None
    where no sample was taken). One Redis pipeline."""
    last = int((time.time() if now is None else now) // 60) * 60
    starts = [last - 60 * i for i in range(minutes - 1, -1, -1)]
    history: dict[str, list[int | None]] = {name: [] for name in names}
    try:
        pipe = queue.redis.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(_DEPTH_KEY.format(start))
        samples = pipe.execute()
    except Exception:
        return {name: [None] * minutes for name in names}
    for sample in samples:
        for name in names:
            raw = sample.get(name.encode())
            history[name].append(int(raw) if raw is not None else None)
    return history


# -- per job type figures ---------------------------------------------------------------
#: Finished jobs read per state for the per-type figures; past it they describe the latest ones.
TYPE_STATS_LIMIT = 5000


@dataclass
class TypeStats:
    job_type: str
    succeeded: int = 0
    dead: int = 0
    runtimes: list[float] = field(default_factory=list)
    #: True when TYPE_STATS_LIMIT cut the window short.
    partial: bool = False

    @property
    def count(self) -> int:
        return self.succeeded + self.dead

    @property
    def failure_rate(self) -> float:
        return self.dead / self.count if self.count else 0.0

    def percentile(self, p: float) -> float | None:
        """Runtime in seconds at percentile `p` (0-100), nearest rank."""
        if not self.runtimes:
            return None
        ordered = sorted(self.runtimes)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]


def job_type_stats(window: timedelta = timedelta(hours=1), now: datetime | None = None) -> list[TypeStats]:
    """Per job type: jobs finished (succeeded or dead) within `window`, and the runtimes of
    their last attempt (finished_at - started_at). One ordered range scan of the
    (status, finished_at) index per state, at most TYPE_STATS_LIMIT rows each."""
    since = (now or utcnow()) - window
    by_type: dict[str, TypeStats] = {}
    for status in (JobStatus.SUCCEEDED.value, JobStatus.DEAD.value):
        rows = db.session.execute(
            select(Job.type, Job.started_at, Job.finished_at)
            .where(Job.status == status, Job.finished_at >= since)
            .order_by(Job.finished_at.desc())
            .limit(TYPE_STATS_LIMIT)
        ).all()
        for job_type, started, finished in rows:
            stats = by_type.setdefault(job_type, TypeStats(job_type))
            setattr(stats, status, getattr(stats, status) + 1)
            if started is not None and finished is not None:
                stats.runtimes.append(max((finished - started).total_seconds(), 0.0))
        if len(rows) == TYPE_STATS_LIMIT:
            for stats in by_type.values():
                stats.partial = True
    db.session.rollback()
    return sorted(by_type.values(), key=lambda s: (-s.count, s.job_type))
