"""Provisioning's payments: the list with the unmatched callbacks (dismiss one), a payment
with its raw callback, and the decision on a held one. Viewers read only; every change is
audited by the services."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.admin import actor, admin_required, bp, checked_form, choice, list_args, names, paged
from app.extensions import db
from app.models import Tenant
from app.models.provisioning import PAYMENT_STATES, Payment, Plan, Router
from app.services.provisioning import payments, unmatched


def _said(err: payments.PaymentError) -> str:
    return " ".join(m for messages in err.messages.values() for m in messages)


@bp.get("/provisioning/payments", endpoint="payments")
def payments_page() -> Any:
    status, tenant = choice("status", PAYMENT_STATES), request.args.get("tenant") or None
    query = select(Payment)
    if status:
        query = query.where(Payment.status == status)
    if tenant:
        query = query.where(Payment.tenant_id == tenant)
    return render_template(
        "admin/provisioning/payments.html",
        page=paged(query, Payment),
        status=status,
        tenant=tenant,
        states=PAYMENT_STATES,
        tenant_names=names(Tenant),
        plan_names=names(Plan),
        args=list_args(),
        filters=_payment_filters(),
        unmatched=unmatched.listed(tenant),
    )


def _payment_filters() -> dict[str, Any]:
    """The payments page's filters, carried through a dismiss and back."""
    return {k: v for k in ("status", "tenant") if (v := request.args.get(k, ""))}


def _payment(payment_id: str) -> Payment:
    row = payments.get(payment_id, None)
    if row is None:
        abort(404, "No such payment.")
    return row


def pretty(raw: str | None) -> str:
    """The callback as indented JSON (as received when it is not JSON); the template escapes it."""
    if not raw:
        return ""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


@bp.get("/provisioning/payments/<payment_id>")
def payment_detail(payment_id: str) -> Any:
    row = _payment(payment_id)
    return render_template(
        "admin/provisioning/payment.html",
        row=row,
        callback=pretty(row.raw_callback),
        tenant=db.session.get(Tenant, row.tenant_id),
        plan=db.session.get(Plan, row.plan_id),
        router=db.session.get(Router, row.router_id),
    )


@bp.post("/provisioning/payments/<payment_id>/<decision>")
@admin_required
def payment_decide(payment_id: str, decision: str) -> Any:
    row = _payment(payment_id)
    if decision not in {"provision", "reject"}:
        abort(400, "Unknown decision.")
    checked_form()
    back = redirect(url_for("admin.payment_detail", payment_id=row.id))
    try:
        payments.release_held(row, actor=actor(), provision=decision == "provision")
    except payments.PaymentError as err:
        db.session.rollback()
        flash(_said(err), "error")
        return back
    db.session.commit()
    flash(
        "Payment released: its subscription is being made."
        if decision == "provision"
        else "Payment rejected: marked failed, nothing provisioned.",
        "ok",
    )
    return back


@bp.post("/provisioning/payments/unmatched/<int:unmatched_id>/dismiss")
@admin_required
def unmatched_dismiss(unmatched_id: int) -> Any:
    checked_form()
    try:
        row = unmatched.dismiss(unmatched_id, actor=actor())
    except payments.PaymentError as err:
        db.session.rollback()
        flash(_said(err), "error")
        return redirect(url_for("admin.payments", **_payment_filters()))
    if row is None:
        abort(404, "No such callback.")
    db.session.commit()
    flash(f"Callback {row.checkout_request_id} dismissed; the audit log keeps what it said.", "ok")
    return redirect(url_for("admin.payments", **_payment_filters()))
