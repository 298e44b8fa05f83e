"""Tenants & keys: create tenants; create, rotate (with grace) and revoke API keys. A secret
is shown once, on the page that created it, and never again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.admin import actor, admin_required, bp
from app.admin.forms import ActionForm, TenantForm
from app.extensions import db
from app.models import ApiKey, Tenant
from app.services import tenants


def _checked(model: Any, ident: str) -> Any:
    """The row a key action targets, once the form's CSRF token is valid (400 otherwise)."""
    row = db.session.get(model, ident)
    if row is None or not ActionForm().validate_on_submit():
        abort(400, "Unknown tenant or key, or missing CSRF token.")
    return row


@bp.get("/tenants", endpoint="tenants")
def tenants_page() -> Any:
    rows = db.session.scalars(select(Tenant).order_by(Tenant.name)).all()
    return render_template("admin/tenants/list.html", tenants=rows, form=TenantForm())


@bp.post("/tenants")
@admin_required
def tenant_create() -> Any:
    form = TenantForm()
    if not form.validate_on_submit():
        flash("A tenant needs a name (up to 200 characters).", "error")
        return redirect(url_for("admin.tenants"))
    try:
        issued = tenants.create_tenant(form.name.data or "", actor=actor())
    except tenants.TenantError as err:
        flash(str(err), "error")
        return redirect(url_for("admin.tenants"))
    return _show_secret(issued, "Tenant created.")


def _show_secret(issued: tenants.IssuedKey, message: str) -> Any:
    """Rendered, never redirected to: the secret exists only in this response."""
    tenant = db.session.get(Tenant, issued.tenant_id)
    response = current_app.make_response(
        render_template("admin/tenants/secret.html", issued=issued, tenant=tenant, message=message)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/tenants/<tenant_id>")
def tenant_detail(tenant_id: str) -> Any:
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        abort(404, "No such tenant.")
    grace = current_app.config["API_KEY_ROTATION_GRACE_HOURS"]
    return render_template("admin/tenants/detail.html", tenant=tenant, form=ActionForm(), grace_hours=grace)


@bp.post("/tenants/<tenant_id>/contact")
@admin_required
def tenant_contact(tenant_id: str) -> Any:
    tenant = _checked(Tenant, tenant_id)
    try:
        tenants.set_contact(tenant, request.form.get("contact_email"), actor=actor())
        flash(f"Contact set to {tenant.contact_email}." if tenant.contact_email else "Contact cleared.", "ok")
    except tenants.TenantError as err:
        db.session.rollback()
        flash(str(err).capitalize() + ".", "error")
    return redirect(url_for("admin.tenant_detail", tenant_id=tenant_id))


@bp.post("/tenants/<tenant_id>/keys")
@admin_required
def key_create(tenant_id: str) -> Any:
    tenant = _checked(Tenant, tenant_id)
    mode = request.form.get("mode", "add")
    grace = None if mode == "rotate" else timedelta(days=36500)  # "add": older keys stay valid
    try:
        hours = request.form.get("grace_hours")
        if mode == "rotate" and hours not in (None, ""):
            grace = timedelta(hours=float(hours))
    except ValueError:
        flash("Grace must be a number of hours.", "error")
        return redirect(url_for("admin.tenant_detail", tenant_id=tenant_id))
    issued = tenants.rotate_key(tenant, grace=grace, actor=actor())
    return _show_secret(issued, "Key rotated." if mode == "rotate" else "Key created.")


@bp.post("/keys/<key_id>/revoke")
@admin_required
def key_revoke(key_id: str) -> Any:
    key = _checked(ApiKey, key_id)
    tenants.revoke_key(key_id, actor=actor())
    flash(f"Key {key_id} revoked.", "ok")
    return redirect(url_for("admin.tenant_detail", tenant_id=key.tenant_id))
