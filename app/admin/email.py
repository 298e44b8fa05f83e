"""Emails: the mails (filter by status, recipient, tenant; detail with a rendered preview),
the suppression list (add, remove; audited) and the batch history."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.admin import admin_required, bp, list_args, paged
from app.admin.forms import ActionForm
from app.extensions import db
from app.models import Email, EmailBatch, Suppression, Tenant
from app.models.email import EMAIL_STATES
from app.services.email import compose, mails


def _tenants() -> dict[str, str]:
    return dict(db.session.execute(select(Tenant.id, Tenant.name)).all())


@bp.get("/emails", endpoint="emails")
def emails_page() -> Any:
    query = select(Email)
    status, to, tenant = (
        request.args.get("status") or None,
        request.args.get("to", "").strip(),
        request.args.get("tenant"),
    )
    if status and status not in EMAIL_STATES:
        flash(f"status: unknown state {status!r}", "error")
        status = None
    if status:
        query = query.where(Email.status == status)
    if to:
        query = query.where(Email.to == mails.normalise(to))
    if tenant:
        query = query.where(Email.tenant_id == tenant)
    if request.args.get("batch"):
        query = query.where(Email.batch_id == request.args["batch"])
    return render_template(
        "admin/email/list.html",
        page=paged(query, Email),
        states=EMAIL_STATES,
        status=status,
        to=to,
        tenant=tenant,
        tenant_names=_tenants(),
        args=list_args(),
    )


def _email(email_id: str) -> Email:
    row = mails.get(email_id, None)
    if row is None:
        abort(404, "No such email.")
    return row


@bp.get("/emails/<email_id>")
def email_detail(email_id: str) -> Any:
    row = _email(email_id)
    composed = compose.compose(row)
    return render_template(
        "admin/email/detail.html",
        row=row,
        tenant=db.session.get(Tenant, row.tenant_id),
        headers=composed.headers,
        text=composed.text,
        has_html=composed.html is not None,
        digested=db.session.scalars(select(Email).where(Email.digest_id == row.id)).all(),
    )


@bp.get("/emails/<email_id>/preview")
def email_preview(email_id: str) -> Any:
    """The HTML part on its own, for a sandboxed frame on the detail page: no scripts, no
    requests out (CSP `sandbox; default-src 'none'`)."""
    html = compose.compose(_email(email_id)).html
    if html is None:
        abort(404, "This mail has no HTML part.")
    response = current_app.make_response(html)
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/emails/suppressions")
def email_suppressions() -> Any:
    query = select(Suppression)
    tenant, address = request.args.get("tenant") or None, request.args.get("address", "").strip()
    if tenant:
        query = query.where(Suppression.tenant_id == tenant)
    if address:
        query = query.where(Suppression.address == mails.normalise(address))
    rows = db.session.scalars(query.order_by(Suppression.id.desc()).limit(200)).all()
    return render_template(
        "admin/email/suppressions.html",
        rows=rows,
        tenant_names=_tenants(),
        tenant=tenant,
        address=address,
        form=ActionForm(),
    )


@bp.post("/emails/suppressions")
@admin_required
def email_suppression_change() -> Any:
    if not ActionForm().validate_on_submit():
        abort(400, "Missing CSRF token.")
    tenant_id, address = request.form.get("tenant", ""), request.form.get("address", "").strip()
    actor = f"user:{current_user.email}"
    if db.session.get(Tenant, tenant_id) is None or "@" not in address or len(address) > 254:
        flash("Choose a tenant and give an address.", "error")
    elif request.form.get("action") == "remove":
        changed = mails.unsuppress(tenant_id, address, actor=actor)
        db.session.commit()
        flash(f"{address} removed from the list." if changed else f"{address} was not on the list.", "ok")
    else:
        reason = (request.form.get("reason") or "added by an operator").strip()
        changed = mails.suppress(tenant_id, address, reason, actor=actor)
        db.session.commit()
        flash(f"{address} suppressed." if changed else f"{address} was already on the list.", "ok")
    return redirect(url_for("admin.email_suppressions", tenant=tenant_id or None))


@bp.get("/emails/batches")
def email_batches() -> Any:
    return render_template("admin/email/batches.html", page=paged(select(EmailBatch), EmailBatch), args=list_args())
