"""Scans: every upload and its verdict (filter by verdict, tenant, time), signature freshness,
the quarantine (delete; release by an admin with a reason), another try for a scan in error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.admin import actor, admin_required, bp, list_args, paged
from app.admin.forms import ActionForm
from app.extensions import db
from app.models import Scan, Tenant
from app.models.base import utcnow
from app.models.scans import SCAN_STATES
from app.services.scans import quarantine, signatures, uploads, verdicts

PAGE = 50
#: The time filter's choices.
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def _listing(location: str | None) -> dict[str, Any]:
    status = request.args.get("status") or None
    if status not in (None, *SCAN_STATES):
        flash(f"status: unknown verdict {status!r}", "error")
        status = None
    tenant = request.args.get("tenant") or None
    since = request.args.get("since") or None
    query = select(Scan)
    if status:
        query = query.where(Scan.status == status)
    if tenant:
        query = query.where(Scan.tenant_id == tenant)
    if location:
        query = query.where(Scan.location == location)
    if since in SINCE:
        query = query.where(Scan.created_at >= utcnow() - SINCE[since])
    return {
        "page": paged(query, Scan),
        "status": status,
        "tenant": tenant,
        "since": since,
        "since_choices": list(SINCE),
        "states": SCAN_STATES,
        "args": list_args(),
        "tenant_names": dict(db.session.execute(select(Tenant.id, Tenant.name)).all()),
        "freshness": signatures.freshness(),
    }


@bp.get("/scans", endpoint="scans")
def scans_page() -> Any:
    return render_template("admin/scans/index.html", quarantine_view=False, **_listing(None))


@bp.get("/scans/quarantine")
def scans_quarantine() -> Any:
    return render_template("admin/scans/index.html", quarantine_view=True, **_listing("quarantine"))


def _scan(scan_id: str) -> Scan:
    row = uploads.get(scan_id, None)
    if row is None:
        abort(404, "No such scan.")
    return row


@bp.get("/scans/<scan_id>")
def scan_detail(scan_id: str) -> Any:
    row = _scan(scan_id)
    tenant = db.session.get(Tenant, row.tenant_id)
    return render_template("admin/scans/detail.html", row=row, tenant=tenant, form=ActionForm())


@bp.post("/scans/<scan_id>/<action>")
@admin_required
def scan_action(scan_id: str, action: str) -> Any:
    row = _scan(scan_id)
    if action not in {"delete", "release", "scan-again"} or not ActionForm().validate_on_submit():
        abort(400, "Unknown action or missing CSRF token.")
    back = redirect(url_for("admin.scan_detail", scan_id=row.id))
    try:
        if action == "delete":
            freed = quarantine.delete(row, actor=actor())
            message = f"Quarantined file deleted ({freed:,} bytes)."
        elif action == "release":
            quarantine.release(row, actor=actor(), reason=request.form.get("reason", ""))
            message = "File released from quarantine: the platform can download it again."
        else:
            verdicts.scan_again(row)
            message = "Scan queued again."
    except (quarantine.QuarantineError, ValueError) as err:
        db.session.rollback()
        flash(str(err), "error")
        return back
    db.session.commit()
    flash(message, "ok")
    return back
