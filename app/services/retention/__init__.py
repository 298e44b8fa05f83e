"""Retention: every kind of row Opsdeck keeps has a policy (days, enabled, batch size); a run
deletes what is older than its policy, a batch per statement and a commit per batch, children
before the rows they reference, within a time budget, never while another run is going, and
never what a legal hold covers. Every run is recorded.

Each batch is a range of the kind's age index (see `_delete`): never a table scan, and never
thousands of scattered primary-key lookups.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate
from sqlalchemy import and_, delete, func, select

from app.extensions import db, queue
from app.jobtypes import JobType, register
from app.models import LegalHold, RetentionPolicy, RetentionRun
from app.models.base import utcnow
from app.services import audit
from app.services.retention.kinds import BY_NAME, FILE_KINDS, KINDS, Held, Kind
from app.services.scans import cleanup
from app.telemetry import metrics

log = logging.getLogger(__name__)

RUN_LOCK = "opsdeck:retention:running"


class RetentionError(RuntimeError):
    pass


# -- policies -------------------------------------------------------------------------
def policies() -> dict[str, RetentionPolicy]:
    """Every kind's policy (rows created with the defaults the first time)."""
    rows = {p.kind: p for p in db.session.scalars(select(RetentionPolicy))}
    missing = [k for k in KINDS if k.name not in rows]
    for kind in missing:
        rows[kind.name] = RetentionPolicy(kind=kind.name, days=kind.default_days, enabled=True, batch_size=5000)
        db.session.add(rows[kind.name])
    if missing:
        db.session.commit()
    return rows


def set_policy(
    kind: str, *, days: int | None = None, enabled: bool | None = None, batch_size: int | None = None, actor: str
) -> RetentionPolicy:
    """Change a policy. Commits."""
    if kind not in BY_NAME:
        raise RetentionError(f"unknown kind {kind!r} (one of: {', '.join(BY_NAME)})")
    if days is not None and not 0 <= days <= 36500:
        raise RetentionError("days must be between 0 and 36500")
    if batch_size is not None and not 1 <= batch_size <= 100_000:
        raise RetentionError("batch size must be between 1 and 100000")
    policy = policies()[kind]
    changes = {}
    for name, value in (("days", days), ("enabled", enabled), ("batch_size", batch_size)):
        if value is not None and getattr(policy, name) != value:
            changes[name] = [getattr(policy, name), value]
            setattr(policy, name, value)
    policy.updated_at = utcnow()
    audit.record(actor, "retention.policy", target=kind, details=changes)
    db.session.commit()
    return policy


# -- legal holds -------------------------------------------------------------------------
def hold(
    tenant_id: str, *, reason: str, actor: str, event_id: str | None = None, scan_id: str | None = None
) -> LegalHold:
    """Hold a tenant's rows, or one event (with its deliveries) or one scan (with its file)."""
    if event_id and scan_id:
        raise RetentionError("hold one event or one scan, not both")
    target_kind = "event" if event_id else ("scan" if scan_id else None)
    row = LegalHold(
        tenant_id=tenant_id,
        target_kind=target_kind,
        target_id=event_id or scan_id,
        reason=reason[:500],
        created_by=actor,
    )
    db.session.add(row)
    audit.record(
        actor,
        "retention.hold",
        target=event_id or scan_id or tenant_id,
        tenant_id=tenant_id,
        details={"reason": reason, "covers": target_kind or "tenant"},
    )
    db.session.commit()
    return row


def release(hold_id: int, *, actor: str) -> bool:
    row = db.session.get(LegalHold, hold_id)
    if row is None:
        return False
    db.session.delete(row)
    audit.record(actor, "retention.release", target=row.target_id or row.tenant_id, tenant_id=row.tenant_id)
    db.session.commit()
    return True


def current_holds() -> Held:
    rows = db.session.scalars(select(LegalHold)).all()

    def targets(kind: str) -> frozenset[str]:
        return frozenset(r.target_id for r in rows if r.target_kind == kind and r.target_id)

    return Held(frozenset(r.tenant_id for r in rows if r.target_kind is None), targets("event"), targets("scan"))


# -- runs ------------------------------------------------------------------------------
class RunPayload(Schema):
    dry_run = fields.Boolean(load_default=False)
    kinds = fields.List(
        fields.String(validate=validate.OneOf([k.name for k in KINDS])), load_default=None, allow_none=True
    )
    triggered_by = fields.String(load_default="schedule", validate=validate.Length(max=200))


RUN = register(JobType("retention.run", family="retention", queue="maintenance", payload=RunPayload, max_attempts=2))


@dataclass
class Progress:
    kind: str
    deleted: int
    run: RetentionRun
    extra: dict[str, Any] = field(default_factory=dict)


def run(
    *,
    dry_run: bool = False,
    kinds: list[str] | None = None,
    triggered_by: str,
    on_progress: Callable[[Progress], None] | None = None,
) -> RetentionRun:
    """One retention run (refused with RetentionError while another is going)."""
    config = current_app.config
    budget, pause = config["RETENTION_TIME_BUDGET"], config["RETENTION_PAUSE_SECONDS"]
    if not queue.redis.set(RUN_LOCK, "1", nx=True, ex=int(budget) + 300):
        raise RetentionError("another retention run is going on")
    record = RetentionRun(dry_run=dry_run, triggered_by=triggered_by, counts={}, held={}, bytes_deleted=0)
    db.session.add(record)
    db.session.commit()
    began = time.monotonic()
    try:
        rules, held = policies(), current_holds()
        todo = [k for k in KINDS if (not kinds or k.name in kinds) and rules[k.name].enabled]
        for index, kind in enumerate(todo):
            policy = rules[kind.name]
            # Each kind gets an equal share of what is left of the budget (a big backlog of one
            # kind cannot starve those after it); time a kind does not use passes on.
            left = began + budget - time.monotonic()
            share = time.monotonic() + max(0.0, left) / (len(todo) - index)
            cutoff = utcnow() - timedelta(days=policy.days)
            conditions = [kind.age < cutoff, *kind.where()]
            kept = kind.hold(held) if kind.hold else []
            if kept:
                record.held = {**record.held, kind.name: _count(kind, [*conditions, ~and_(*kept)])}
            if dry_run:
                record.counts = {**record.counts, kind.name: _count(kind, [*conditions, *kept])}
                db.session.commit()
                continue
            deleted, finished = _delete(
                kind,
                [*conditions, *kept],
                policy.batch_size,
                share,
                pause,
                functools.partial(_progress, record, kind.name, on_progress=on_progress),
            )
            record.counts = {**record.counts, kind.name: deleted}
            if kind.name in FILE_KINDS:  # the rows are committed: now their files
                record.bytes_deleted += cleanup.sweep_tombstones()[1]
            if not finished:
                record.status = "interrupted"  # the next run goes on where this one stopped
            db.session.commit()
        if not dry_run and (not kinds or set(kinds) & FILE_KINDS):
            files, freed = cleanup.sweep_tombstones()  # left by an earlier run that stopped
            orphans, orphan_bytes = cleanup.sweep_orphans()
            record.bytes_deleted += freed + orphan_bytes
            record.counts = {**record.counts, "orphan_files": orphans}
        if record.status == "running":
            record.status = "completed"
    except Exception as err:
        db.session.rollback()
        record.status, record.error = "failed", f"{type(err).__name__}: {err}"[:2000]
        log.exception("retention run %s failed", record.id)
    finally:
        record.finished_at = utcnow()
        record.duration_ms = int((time.monotonic() - began) * 1000)
        metrics.retention_deleted(size=record.bytes_deleted or 0)
        db.session.commit()
        queue.redis.delete(RUN_LOCK)
    return record


def _progress(record: RetentionRun, kind: str, deleted: int, on_progress: Callable[[Progress], None] | None) -> None:
    if on_progress is not None:
        on_progress(Progress(kind, deleted, record))


def _count(kind: Kind, conditions: list[Any]) -> int:
    return db.session.scalar(select(func.count()).select_from(kind.model).where(*conditions)) or 0


def _delete(
    kind: Kind, conditions: list[Any], batch: int, deadline: float, pause: float, progress: Callable[[int], None]
) -> tuple[int, bool]:
    """Batches of the oldest matching rows, a commit each. (deleted, finished within budget)

    A batch is a range of the age index: the age of the batch's last row is read (OFFSET
    batch-1 on the index), then everything matching up to that age is deleted. Rows are touched
    in index (and, for append-mostly tables, heap) order, so each statement stays short, where
    deleting as many scattered primary keys is not."""
    pk = kind.model.__mapper__.primary_key[0]
    deleted, floor = 0, None
    while True:
        if time.monotonic() > deadline:
            return deleted, False
        # Everything matching below the last boundary is gone: start there, not at the
        # front of the index, where every earlier batch left its dead entries.
        matching = [*conditions, kind.age >= floor] if floor is not None else conditions
        boundary = db.session.scalar(select(kind.age).where(*matching).order_by(kind.age).offset(batch - 1).limit(1))
        in_batch = [*matching, kind.age <= boundary] if boundary is not None else matching
        conn = db.session.connection()
        if kind.children is not None:
            kind.children(conn, select(pk).where(*in_batch))
        done = conn.execute(delete(kind.model).where(*in_batch)).rowcount
        db.session.commit()
        metrics.retention_deleted(kind.name, done)
        deleted += done
        if done:
            progress(deleted)
        if boundary is None:  # that was the rest
            return deleted, True
        floor = boundary
        if pause:
            time.sleep(pause)


def last_runs(limit: int = 20) -> list[RetentionRun]:
    return list(db.session.scalars(select(RetentionRun).order_by(RetentionRun.started_at.desc()).limit(limit)))


def due_daily() -> dict[str, Any] | None:
    """The scheduler's minute check: one `retention.run` job per day at RETENTION_AT (UTC),
    claimed in the database, so two schedulers fire it once."""
    from app.services import jobs, scheduler

    if "retention" in current_app.config.get("OPSDECK_DISABLED_FAMILIES", []):
        return None
    hour, _, minute = current_app.config["RETENTION_AT"].partition(":")
    now = utcnow()
    at = now.replace(hour=int(hour), minute=int(minute or 0), second=0, microsecond=0)
    if now < at or not scheduler.claim_tick("retention.daily", at, "scheduler"):
        return None
    job = jobs.submit(RUN.name, {"triggered_by": "schedule"}, priority="low")
    db.session.commit()
    return {"job": job.id}
