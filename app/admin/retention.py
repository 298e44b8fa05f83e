"""Retention: policies (edit; audited), run now or dry-run (as a job; progress on the feed),
the history of runs, and legal holds."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.admin import actor, admin_required, bp
from app.admin.forms import ActionForm
from app.extensions import db
from app.models import LegalHold, Tenant
from app.services import jobs, retention


def _back() -> Any:
    return redirect(url_for("admin.retention"))


@bp.get("/retention", endpoint="retention")
def retention_page() -> Any:
    tenants = dict(db.session.execute(select(Tenant.id, Tenant.name)).all())
    return render_template(
        "admin/retention/index.html",
        kinds=retention.KINDS,
        rules=retention.policies(),
        runs=retention.last_runs(20),
        holds=db.session.scalars(select(LegalHold).order_by(LegalHold.id.desc())).all(),
        tenant_names=tenants,
        form=ActionForm(),
    )


def _checked_form() -> None:
    if not ActionForm().validate_on_submit():
        abort(400, "Missing CSRF token.")


@bp.post("/retention/policies/<kind>")
@admin_required
def retention_policy(kind: str) -> Any:
    _checked_form()
    try:
        retention.set_policy(
            kind,
            days=int(request.form.get("days", "")),
            batch_size=int(request.form.get("batch_size", "")),
            enabled=request.form.get("enabled") == "on",
            actor=actor(),
        )
        flash(f"Policy {kind} saved.", "ok")
    except (ValueError, retention.RetentionError) as err:
        db.session.rollback()
        flash(
            f"{kind}: {err}"
            if isinstance(err, retention.RetentionError)
            else f"{kind}: days and batch size are numbers.",
            "error",
        )
    return _back()


@bp.post("/retention/run")
@admin_required
def retention_run_now() -> Any:
    _checked_form()
    dry = request.form.get("dry_run") == "1"
    job = jobs.submit(retention.RUN.name, {"dry_run": dry, "triggered_by": actor()}, priority="high")
    db.session.commit()
    flash(f"{'Dry run' if dry else 'Run'} queued as job {job.id[:8]}; progress appears in the feed.", "ok")
    return _back()


@bp.post("/retention/holds")
@admin_required
def retention_hold() -> Any:
    _checked_form()
    tenant_id, reason = request.form.get("tenant", ""), (request.form.get("reason") or "").strip()
    event_id = (request.form.get("event_id") or "").strip() or None
    scan_id = (request.form.get("scan_id") or "").strip() or None
    if db.session.get(Tenant, tenant_id) is None or not reason:
        flash("A hold needs a tenant and a reason.", "error")
    else:
        try:
            retention.hold(tenant_id, reason=reason, actor=actor(), event_id=event_id, scan_id=scan_id)
            flash("Hold placed.", "ok")
        except retention.RetentionError as err:
            db.session.rollback()
            flash(str(err), "error")
    return _back()


@bp.post("/retention/holds/<int:hold_id>/release")
@admin_required
def retention_release(hold_id: int) -> Any:
    _checked_form()
    flash("Hold released." if retention.release(hold_id, actor=actor()) else "No such hold.", "ok")
    return _back()
