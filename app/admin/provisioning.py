"""Provisioning: routers with their last check (check now, kick a session), plans, subscribers,
subscriptions (extend, expire, provision again) and vouchers (generate a batch, print it);
payments are in app/admin/payments.py. Viewers read only; every change is audited by the
services."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app.admin import actor, admin_required, bp, checked_form, choice, list_args, names, paged
from app.extensions import db
from app.models import Tenant
from app.models.base import utcnow
from app.models.provisioning import SUBSCRIPTION_STATES, Plan, Router, Subscriber, Subscription
from app.services import jobs
from app.services.provisioning import hotspot, phones, routers, subscriptions, vouchers

SOURCES = ("payment", "voucher", "manual")
#: Voucher prefixes: what the API accepts too.
PREFIX = re.compile(r"^[A-Za-z0-9_\-]{0,10}$")
#: How far back the voucher print page looks when no batch is named.
RECENT_MINUTES = 60


def _private(html: str) -> Any:
    """A page with hotspot credentials on it: not kept by browsers or proxies."""
    response = current_app.make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_template_filter("seconds_text")
def seconds_text(seconds: int | None) -> str:
    """3600 → '1 h', 90061 → '1 d 1 h 1 min'."""
    if not seconds:
        return "—"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:3])


@bp.app_template_filter("bytes_text")
def bytes_text(size: int | None) -> str:
    if size is None:
        return "—"
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value >= 1024:
            value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


# -- routers ----------------------------------------------------------------------------
@bp.get("/provisioning/routers", endpoint="routers")
def routers_page() -> Any:
    tenant = request.args.get("tenant") or None
    return render_template(
        "admin/provisioning/routers.html", routers=routers.routers_of(tenant), tenant_names=names(Tenant), tenant=tenant
    )


def _router(router_id: str) -> Router:
    row = routers.owned(Router, router_id, None)
    if row is None:
        abort(404, "No such router.")
    return row


@bp.get("/provisioning/routers/<router_id>")
def router_detail(router_id: str) -> Any:
    row = _router(router_id)
    sessions = row.active_sessions or []
    users = {s.get("user") for s in sessions if s.get("user")}
    known = select(Subscription.username, Subscription.id).where(
        Subscription.router_id == row.id, Subscription.username.in_(users)
    )
    return render_template(
        "admin/provisioning/router.html",
        row=row,
        sessions=sessions,
        tenant=db.session.get(Tenant, row.tenant_id),
        subscription_of=dict(db.session.execute(known).all()) if users else {},
    )


@bp.post("/provisioning/routers/<router_id>/check")
@admin_required
def router_check(router_id: str) -> Any:
    row = _router(router_id)
    checked_form()
    job = jobs.submit(routers.CHECK.name, {"router_id": row.id}, tenant_id=row.tenant_id)
    db.session.commit()
    flash(f"Check queued (job {job.id[:8]}); the page shows its result once a worker has run it.", "ok")
    return redirect(url_for("admin.router_detail", router_id=row.id))


@bp.post("/provisioning/routers/<router_id>/kick")
@admin_required
def router_kick(router_id: str) -> Any:
    row = _router(router_id)
    checked_form()
    session_id = request.form.get("session", "")
    back = redirect(url_for("admin.router_detail", router_id=row.id))
    listed = {s.get(".id"): s for s in row.active_sessions or []}
    if session_id not in listed:
        flash("That session is not in the last check any more; check the router again.", "error")
        return back
    try:
        routers.kick(row, session_id, actor=actor())
    except hotspot.RouterError as err:
        db.session.rollback()
        flash(f"The router refused or could not be reached: {err}", "error")
        return back
    db.session.commit()
    flash(f"Session of {listed[session_id].get('user') or 'unknown user'} ended.", "ok")
    return back


# -- plans and subscribers ----------------------------------------------------------------
@bp.get("/provisioning/plans", endpoint="plans")
def plans_page() -> Any:
    tenant = request.args.get("tenant") or None
    return render_template(
        "admin/provisioning/plans.html", plans=routers.plans_of(tenant), tenant_names=names(Tenant), tenant=tenant
    )


@bp.get("/provisioning/subscribers", endpoint="subscribers")
def subscribers_page() -> Any:
    tenant, phone = request.args.get("tenant") or None, (request.args.get("phone") or "").strip()
    query = select(Subscriber)
    if tenant:
        query = query.where(Subscriber.tenant_id == tenant)
    if phone:
        # A whole number in any form finds its subscriber; a fragment is looked for as typed.
        try:
            wanted = phones.normalise(phone)
        except phones.InvalidPhone:
            wanted = phone
        query = query.where(Subscriber.phone.contains(wanted, autoescape=True))
    page = paged(query, Subscriber)
    counts = select(Subscription.subscriber_id, func.count()).where(
        Subscription.subscriber_id.in_([s.id for s in page.items])
    )
    return render_template(
        "admin/provisioning/subscribers.html",
        page=page,
        tenant=tenant,
        phone=phone,
        counts=dict(db.session.execute(counts.group_by(Subscription.subscriber_id)).all()),
        tenant_names=names(Tenant),
        args=list_args(),
    )


# -- subscriptions ------------------------------------------------------------------------
@bp.get("/provisioning/subscriptions", endpoint="subscriptions")
def subscriptions_page() -> Any:
    status, source = choice("status", SUBSCRIPTION_STATES), choice("source", SOURCES)
    tenant, router = request.args.get("tenant") or None, request.args.get("router") or None
    subscriber = request.args.get("subscriber") or None
    query = select(Subscription)
    for column, value in (
        (Subscription.status, status),
        (Subscription.source, source),
        (Subscription.tenant_id, tenant),
        (Subscription.router_id, router),
        (Subscription.subscriber_id, subscriber),
    ):
        if value:
            query = query.where(column == value)
    return render_template(
        "admin/provisioning/subscriptions.html",
        page=paged(query, Subscription),
        status=status,
        source=source,
        tenant=tenant,
        router=router,
        states=SUBSCRIPTION_STATES,
        sources=SOURCES,
        tenant_names=names(Tenant),
        router_names=names(Router),
        plan_names=names(Plan),
        args=list_args(),
    )


def _subscription(subscription_id: str) -> Subscription:
    row = subscriptions.get(subscription_id, None)
    if row is None:
        abort(404, "No such subscription.")
    return row


@bp.get("/provisioning/subscriptions/<subscription_id>")
def subscription_detail(subscription_id: str) -> Any:
    row = _subscription(subscription_id)
    html = render_template(
        "admin/provisioning/subscription.html",
        row=row,
        password=subscriptions.password_of(row) if current_user.is_admin else None,
        tenant=db.session.get(Tenant, row.tenant_id),
        plan=db.session.get(Plan, row.plan_id),
        router=db.session.get(Router, row.router_id),
        subscriber=db.session.get(Subscriber, row.subscriber_id) if row.subscriber_id else None,
    )
    return _private(html)


@bp.post("/provisioning/subscriptions/<subscription_id>/<action>")
@admin_required
def subscription_action(subscription_id: str, action: str) -> Any:
    row = _subscription(subscription_id)
    if action not in {"extend", "expire", "reprovision"}:
        abort(400, "Unknown action.")
    checked_form()
    back = redirect(url_for("admin.subscription_detail", subscription_id=row.id))
    try:
        if action == "extend":
            seconds = routers.parse_duration(request.form.get("duration", ""))
            subscriptions.extend(row, seconds, actor=actor())
            message = f"Extended by {seconds_text(seconds)}: now expires {row.expires_at:%Y-%m-%d %H:%M} UTC."
        elif action == "expire":
            subscriptions.expire_now(row, actor=actor())
            message = "Expiring now: the user is being removed from the router."
        else:
            subscriptions.reprovision(row, actor=actor())
            message = "The user is being pushed to the router again."
    except (subscriptions.SubscriptionError, ValueError) as err:
        db.session.rollback()
        flash(f"{action}: {err}", "error")
        return back
    db.session.commit()
    flash(message, "ok")
    return back


# -- vouchers -----------------------------------------------------------------------------
@bp.get("/provisioning/vouchers", endpoint="vouchers")
def vouchers_page() -> Any:
    return render_template(
        "admin/provisioning/vouchers.html",
        routers=routers.routers_of(None),
        plans=[p for p in routers.plans_of(None) if p.active],
        charsets=list(vouchers.CHARSETS),
        tenant_names=names(Tenant),
        max_batch=vouchers.MAX_BATCH,
        minutes=RECENT_MINUTES,
    )


def _int_field(name: str, low: int, high: int, errors: list[str]) -> int:
    try:
        value = int(request.form.get(name, ""))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        errors.append(f"{name}: a number from {low} to {high}")
    return value


@bp.post("/provisioning/vouchers")
@admin_required
def vouchers_generate() -> Any:
    checked_form()
    form, errors = request.form, []
    plan, router = db.session.get(Plan, form.get("plan", "")), routers.owned(Router, form.get("router", ""), None)
    if plan is None or router is None:
        errors.append("Choose a plan and a router.")
    elif plan.tenant_id != router.tenant_id:
        errors.append("The plan and the router belong to different tenants.")
    count = _int_field("count", 1, vouchers.MAX_BATCH, errors)
    length = _int_field("length", 4, 16, errors)
    prefix, charset = form.get("prefix", "").strip(), form.get("charset", "lower")
    if not PREFIX.match(prefix):
        errors.append("prefix: up to 10 letters, digits, '_' or '-'")
    if charset not in vouchers.CHARSETS:
        errors.append(f"charset: one of {', '.join(vouchers.CHARSETS)}")
    if errors:
        for error in errors:
            flash(error, "error")
        return redirect(url_for("admin.vouchers"))
    assert plan is not None and router is not None
    try:
        made = vouchers.generate(
            plan.tenant_id,
            plan,
            router,
            count=count,
            prefix=prefix,
            length=length,
            charset=charset,
            same_password=bool(form.get("same_password")),
            actor=actor(),
        )
    except subscriptions.SubscriptionError as err:
        db.session.rollback()
        flash(str(err), "error")
        return redirect(url_for("admin.vouchers"))
    db.session.commit()
    flash(f"{len(made)} vouchers generated for {plan.name} on {router.name}; they are being provisioned.", "ok")
    return redirect(
        url_for(
            "admin.vouchers_print",
            router=router.id,
            plan=plan.id,
            since=made[0].created_at.isoformat(),
            until=made[-1].created_at.isoformat(),
        )
    )


def _time_arg(name: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None
    return value if value.tzinfo else None


@bp.get("/provisioning/vouchers/print")
@admin_required  # it shows customers' hotspot passwords: not for read-only operators
def vouchers_print() -> Any:
    """One batch (since/until from the generate redirect) or the vouchers of the last `minutes`."""
    router, plan = request.args.get("router") or None, request.args.get("plan") or None
    since, until = _time_arg("since"), _time_arg("until")
    if since is None:
        try:
            minutes = max(1, min(int(request.args.get("minutes") or RECENT_MINUTES), 7 * 24 * 60))
        except ValueError:
            minutes = RECENT_MINUTES
        since = utcnow() - timedelta(minutes=minutes)
    query = select(Subscription).where(Subscription.source == "voucher", Subscription.created_at >= since)
    if until is not None:
        query = query.where(Subscription.created_at <= until)
    if router:
        query = query.where(Subscription.router_id == router)
    if plan:
        query = query.where(Subscription.plan_id == plan)
    rows = db.session.scalars(query.order_by(Subscription.created_at, Subscription.id).limit(vouchers.MAX_BATCH)).all()
    plans = {p.id: p for p in db.session.scalars(select(Plan).where(Plan.id.in_({r.plan_id for r in rows})))}
    html = render_template(
        "admin/provisioning/print.html",
        rows=rows,
        plans=plans,
        router_names=names(Router),
        passwords={r.id: subscriptions.password_of(r) for r in rows},
    )
    return _private(html)
