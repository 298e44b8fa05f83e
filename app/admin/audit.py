"""Audit log: every admin and API action, filterable, newest first (keyset on id)."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from sqlalchemy import select

from app.admin import bp
from app.extensions import db
from app.models import AuditEntry

PAGE = 50


@bp.get("/audit", endpoint="audit")
def audit_page() -> Any:
    query = select(AuditEntry)
    actor = request.args.get("actor", "").strip()
    action = request.args.get("action", "").strip()
    target = request.args.get("target", "").strip()
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target == target)
    before = request.args.get("before", "")
    if before.isdigit():
        query = query.where(AuditEntry.id < int(before))
    rows = db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(PAGE + 1)).all()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    args = {k: v for k, v in request.args.items() if k != "before"}
    return render_template(
        "admin/audit/list.html",
        entries=rows,
        next_before=rows[-1].id if more else None,
        args=args,
        actor=actor,
        action=action,
        target=target,
    )
