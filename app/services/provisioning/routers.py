"""Routers and plans: a tenant's MikroTik routers (password encrypted at rest, never shown) and
the plans it sells; router checks (resources, sessions, online/offline on change) and kicks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, fields
from sqlalchemy import select

from app.extensions import db
from app.jobtypes import JobType, register
from app.models import Job
from app.models.base import new_id, utcnow
from app.models.provisioning import Plan, Router
from app.services import audit, crypto, jobs
from app.services.provisioning import hotspot
from app.services.webhooks import events


class RouterPayload(Schema):
    router_id = fields.String(required=True)


CHECK = register(JobType("router.check", family="provisioning", queue="routers", payload=RouterPayload, max_attempts=1))

#: "30d", "12h", "90m", "3600s", "1w" or plain seconds.
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: RouterOS rate-limit: rx/tx with optional k/M/G, e.g. "2M/2M", "512k/1M".
RATE_LIMIT = re.compile(r"^\d+[kKMG]?/\d+[kKMG]?( .*)?$")


def parse_duration(text: str | int) -> int:
    match = _DURATION.match(str(text))
    if match is None or int(match.group(1)) <= 0:
        raise ValueError("a duration like 30d, 12h, 90m or a number of seconds")
    return int(match.group(1)) * _UNITS[match.group(2)]


def owned(model: Any, row_id: str, tenant_id: str | None) -> Any:
    row = db.session.get(model, row_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        return None
    if getattr(row, "deleted_at", None) is not None:
        return None
    return row


# -- routers ----------------------------------------------------------------------------
def create_router(tenant_id: str, fields_: dict[str, Any], *, actor: str) -> Router:
    now = utcnow()
    password = fields_.pop("password")
    row = Router(
        id=new_id(),
        tenant_id=tenant_id,
        password_encrypted=crypto.encrypt(password),
        status="unknown",
        created_at=now,
        updated_at=now,
        **fields_,
    )
    db.session.add(row)
    audit.record(actor, "router.create", target=row.id, tenant_id=tenant_id, details={"host": row.host})
    return row


def update_router(row: Router, changes: dict[str, Any], *, actor: str) -> None:
    if "password" in changes:
        row.password_encrypted = crypto.encrypt(changes.pop("password"))
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    audit.record(actor, "router.update", target=row.id, tenant_id=row.tenant_id, details={"fields": sorted(changes)})


def delete_router(row: Router, *, actor: str) -> None:
    row.deleted_at = row.updated_at = utcnow()
    audit.record(actor, "router.delete", target=row.id, tenant_id=row.tenant_id)


def routers_of(tenant_id: str | None) -> list[Router]:
    query = select(Router).where(Router.deleted_at.is_(None)).order_by(Router.name)
    if tenant_id is not None:
        query = query.where(Router.tenant_id == tenant_id)
    return list(db.session.scalars(query))


# -- plans ------------------------------------------------------------------------------
def create_plan(tenant_id: str, fields_: dict[str, Any], *, actor: str) -> Plan:
    now = utcnow()
    row = Plan(id=new_id(), tenant_id=tenant_id, created_at=now, updated_at=now, **fields_)
    db.session.add(row)
    audit.record(actor, "plan.create", target=row.id, tenant_id=tenant_id, details={"name": row.name})
    return row


def plans_of(tenant_id: str | None) -> list[Plan]:
    query = select(Plan).order_by(Plan.name)
    if tenant_id is not None:
        query = query.where(Plan.tenant_id == tenant_id)
    return list(db.session.scalars(query))


# -- checks -----------------------------------------------------------------------------
@dataclass
class Checked:
    result: dict[str, Any] = field(default_factory=dict)
    live: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tenant_id: str | None = None


def queue_checks() -> dict[str, int]:
    """The scheduler's tick: a `router.check` job per router that has none waiting."""
    waiting = set(
        db.session.scalars(
            select(Job.payload["router_id"].as_string()).where(
                Job.type == CHECK.name, Job.status.in_(("pending", "queued", "running"))
            )
        )
    )
    queued = 0
    for row in routers_of(None):
        if row.id not in waiting:
            jobs.submit(CHECK.name, {"router_id": row.id}, tenant_id=row.tenant_id)
            queued += 1
    db.session.commit()
    return {"queued": queued}


def check(router_id: str) -> Checked:
    """/system/resource and /ip/hotspot/active: online with figures, or offline with the
    reason; `router.online`/`router.offline` when the state changes."""
    row = db.session.get(Router, router_id)
    if row is None or row.deleted_at is not None:
        return Checked({"skipped": "no such router"})
    db.session.rollback()
    figures: dict[str, Any] = {}
    sessions: list[dict[str, Any]] | None = None
    error = None
    try:
        figures, sessions = hotspot.call(row, lambda api: (hotspot.resources(api), hotspot.active_sessions(api)))
    except hotspot.RouterError as err:
        error = str(err)
    row = db.session.get(Router, router_id)
    assert row is not None, "routers are only ever soft-deleted"
    before, now = row.status, utcnow()
    row.checked_at = row.updated_at = now
    if error is None:
        row.status, row.last_error, row.active_sessions = "online", None, sessions
        row.version, row.uptime = figures.get("version"), figures.get("uptime")
        row.board_name = figures.get("board-name")
        row.cpu_load = _int(figures.get("cpu-load"))
        row.free_memory = _int(figures.get("free-memory"))
    else:
        row.status, row.last_error = "offline", error[:500]
    outcome = Checked({"status": row.status, "error": error}, tenant_id=row.tenant_id)
    if row.status != before and not (before == "unknown" and row.status == "online"):
        event_type = f"router.{row.status}"
        data = {"id": row.id, "name": row.name, "host": row.host, "status": row.status, "error": error}
        events.emit(row.tenant_id, event_type, data)
        outcome.live.append((event_type, data))
    db.session.commit()
    return outcome


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def kick(row: Router, session_id: str, *, actor: str) -> None:
    """End one hotspot session now (the user may log in again while subscribed)."""
    hotspot.call(row, lambda api: hotspot.kick(api, session_id))
    row.active_sessions = [s for s in row.active_sessions or [] if s.get(".id") != session_id]
    audit.record(actor, "router.kick", target=row.id, tenant_id=row.tenant_id, details={"session": session_id})
