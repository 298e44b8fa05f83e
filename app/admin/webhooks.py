"""Webhooks: endpoints (enable, disable, rotate, recover), their deliveries with every attempt
and answer, resend; events with their fan-out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app.admin import actor, admin_required, bp, list_args, paged
from app.admin.forms import ActionForm
from app.extensions import db
from app.models import Event, Tenant, WebhookDelivery, WebhookEndpoint
from app.models.webhooks import DELIVERY_STATES
from app.services.webhooks import delivery, endpoints, events


def _tenant_names() -> dict[str, str]:
    return dict(db.session.execute(select(Tenant.id, Tenant.name)).all())


@bp.get("/webhooks", endpoint="webhooks")
def endpoints_page() -> Any:
    tenant = request.args.get("tenant") or None
    return render_template(
        "admin/webhooks/endpoints.html",
        endpoints=endpoints.list_for(tenant),
        tenant_names=_tenant_names(),
        tenant=tenant,
    )


def _endpoint(endpoint_id: str) -> WebhookEndpoint:
    found = endpoints.get(endpoint_id, None)
    if found is None:
        abort(404, "No such webhook endpoint.")
    return found


@bp.get("/webhooks/endpoints/<endpoint_id>")
def webhook_endpoint(endpoint_id: str) -> Any:
    endpoint = _endpoint(endpoint_id)
    status = request.args.get("status") or None
    if status not in (None, *DELIVERY_STATES):
        flash(f"status: unknown state {status!r}", "error")
        status = None
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    unsettled = dict(
        db.session.execute(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status != "succeeded")
            .group_by(WebhookDelivery.status)
        ).all()
    )
    return render_template(
        "admin/webhooks/endpoint.html",
        endpoint=endpoint,
        tenant=db.session.get(Tenant, endpoint.tenant_id),
        page=paged(query, WebhookDelivery),
        status=status,
        states=DELIVERY_STATES,
        unsettled=unsettled,
        args=list_args(),
        form=ActionForm(),
        grace_hours=current_app.config["WEBHOOK_ROTATION_GRACE"] / 3600,
    )


@bp.post("/webhooks/endpoints/<endpoint_id>/<action>")
@admin_required
def webhook_endpoint_action(endpoint_id: str, action: str) -> Any:
    endpoint = _endpoint(endpoint_id)
    if action not in {"enable", "disable", "rotate", "recover"} or not ActionForm().validate_on_submit():
        abort(400, "Unknown action or missing CSRF token.")
    back = redirect(url_for("admin.webhook_endpoint", endpoint_id=endpoint.id))
    if action == "rotate":
        secret = endpoints.rotate_secret(endpoint, actor=actor())
        db.session.commit()
        response = current_app.make_response(
            render_template("admin/webhooks/secret.html", endpoint=endpoint, secret=secret)
        )
        response.headers["Cache-Control"] = "no-store"
        return response
    if action == "recover":
        window = _window(request.form.get("since", ""), request.form.get("until", ""))
        if window is None:
            flash("Recover needs a start time (YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC) before its end.", "error")
            return back
        if not endpoint.enabled:
            flash("Enable the endpoint before recovering its deliveries.", "error")
            return back
        count = delivery.recover(endpoint, *window, actor=actor())
        db.session.commit()
        flash(f"{count} dead or cancelled deliveries queued again.", "ok")
        return back
    endpoints.set_enabled(endpoint, action == "enable", reason=f"disabled by {actor()}", actor=actor())
    db.session.commit()
    flash(f"Endpoint {action}d.", "ok")
    return back


def _window(since: str, until: str) -> tuple[datetime, datetime | None] | None:
    try:
        start = datetime.fromisoformat(since.strip()).replace(tzinfo=UTC) if since.strip() else None
        end = datetime.fromisoformat(until.strip()).replace(tzinfo=UTC) if until.strip() else None
    except ValueError:
        return None
    if start is None or (end is not None and end <= start):
        return None
    return start, end


@bp.get("/webhooks/deliveries/<delivery_id>")
def webhook_delivery(delivery_id: str) -> Any:
    row = delivery.get(delivery_id, None)
    if row is None:
        abort(404, "No such delivery.")
    return render_template(
        "admin/webhooks/delivery.html",
        row=row,
        endpoint=db.session.get(WebhookEndpoint, row.endpoint_id),
        event=db.session.get(Event, row.event_id),
        attempts=delivery.attempts_of(row.id),
        form=ActionForm(),
    )


@bp.post("/webhooks/deliveries/<delivery_id>/resend")
@admin_required
def webhook_delivery_resend(delivery_id: str) -> Any:
    row = delivery.get(delivery_id, None)
    if row is None or not ActionForm().validate_on_submit():
        abort(400, "Unknown delivery or missing CSRF token.")
    endpoint = db.session.get(WebhookEndpoint, row.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        flash("The endpoint is disabled or deleted; enable it first.", "error")
    else:
        delivery.resend(row, actor=actor())
        db.session.commit()
        flash("Delivery queued to be sent again now.", "ok")
    return redirect(url_for("admin.webhook_delivery", delivery_id=delivery_id))


@bp.get("/webhooks/events")
def webhook_events() -> Any:
    query = select(Event)
    tenant, event_type = request.args.get("tenant") or None, (request.args.get("type") or "").strip() or None
    if tenant:
        query = query.where(Event.tenant_id == tenant)
    if event_type:
        query = query.where(Event.type == event_type)
    return render_template(
        "admin/webhooks/events.html",
        page=paged(query, Event),
        tenant_names=_tenant_names(),
        tenant=tenant,
        event_type=event_type or "",
        args=list_args(),
    )


@bp.get("/webhooks/events/<event_id>")
def webhook_event(event_id: str) -> Any:
    event = events.get(event_id, None)
    if event is None:
        abort(404, "No such event.")
    rows = events.deliveries_of(event.id)
    urls = select(WebhookEndpoint.id, WebhookEndpoint.url).where(WebhookEndpoint.id.in_({r.endpoint_id for r in rows}))
    return render_template(
        "admin/webhooks/event.html",
        event=event,
        tenant=db.session.get(Tenant, event.tenant_id),
        deliveries=rows,
        endpoint_urls=dict(db.session.execute(urls).all()),
    )
