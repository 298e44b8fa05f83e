"""/api/v1/payments, and the M-Pesa STK callback Safaricom calls (no signature: the per-tenant
token in its URL, an optional network allowlist)."""

from __future__ import annotations

from flask import Response, current_app, g, jsonify, request, url_for
from sqlalchemy import select

from app import live
from app.api import bp, family
from app.api.errors import ApiProblem, validation_failed
from app.api.openapi import doc
from app.api.provisioning.routers import created, own
from app.api.provisioning.schemas import CallbackUrlSchema, PaymentListArgs, PaymentSchema
from app.api.writes import json_body, write
from app.extensions import db
from app.models.provisioning import Payment, Plan, Router
from app.services import pagination
from app.services.provisioning import mpesa, payments

payment_schema = PaymentSchema()
CALLBACK_ENDPOINT = "api.mpesa_callback"


@bp.post("/payments")
@doc(status=201, also=(200,), body=PaymentSchema, response=PaymentSchema, problems=(400, 404, 415, 422))
@family("provisioning")
@write
def create_payment() -> Response:
    """Register the STK push the platform started (the same CheckoutRequestID returns the first)"""
    data = payment_schema.load(json_body())
    plan, router = own(Plan, data["plan_id"], "plan"), own(Router, data["router_id"], "router")
    if not plan.active:
        raise validation_failed({"plan_id": ["This plan is not on sale."]})
    row, new = payments.register_expected(
        g.tenant_id,
        checkout_request_id=data["checkout_request_id"],
        plan=plan,
        router=router,
        phone=data["phone"],
        mac=data["mac"],
    )
    if not new:
        return jsonify(payment_schema.dump(row))
    return created(payment_schema.dump(row), url_for("api.get_payment", payment_id=row.id))


@bp.get("/payments")
@doc(response=PaymentSchema, many=True, query=PaymentListArgs, problems=(422,))
@family("provisioning")
def list_payments() -> Response:
    """List payments, newest first (filter: status)"""
    args = PaymentListArgs().load(request.args.to_dict())
    query = select(Payment).where(Payment.tenant_id == g.tenant_id)
    if args["status"]:
        query = query.where(Payment.status == args["status"])
    try:
        page = pagination.newest_first(query, Payment, cursor=args["cursor"], limit=args["limit"])
    except pagination.BadCursor as err:
        raise validation_failed({"cursor": [str(err)]}) from None
    return jsonify({"data": payment_schema.dump(page.items, many=True), "next_cursor": page.next_cursor})


@bp.get("/payments/<payment_id>")
@doc(response=PaymentSchema, problems=(404,))
@family("provisioning")
def get_payment(payment_id: str) -> Response:
    """Read a payment: status, M-Pesa result, receipt, its subscription"""
    row = payments.get(payment_id, g.tenant_id)
    if row is None:
        raise ApiProblem(404, "Not found", "No such payment.", type="not-found")
    return jsonify(payment_schema.dump(row))


@bp.get("/payments/mpesa/callback-url")
@doc(response=CallbackUrlSchema)
@family("provisioning")
def mpesa_callback_url() -> Response:
    """The CallBackURL to give Daraja with each STK push (carries this tenant's token)"""
    token = mpesa.token_for(g.tenant_id)
    db.session.commit()
    base = current_app.config["OPSDECK_PUBLIC_URL"]
    return jsonify({"url": base + url_for(CALLBACK_ENDPOINT, token=token)})


@bp.post("/payments/mpesa/callback/<token>")
@doc(problems=(403, 404, 413))
@family("provisioning")
def mpesa_callback(token: str) -> Response:
    """Daraja's STK callback (no signature: the token; answered with Daraja's acknowledgement)"""
    address = mpesa.client_address(request.remote_addr, request.headers.get("X-Forwarded-For"))
    if not mpesa.allowed(address):
        raise ApiProblem(403, "Forbidden", "Callbacks are not accepted from this address.", type="forbidden")
    tenant_id = mpesa.tenant_for(token)
    if tenant_id is None:
        raise ApiProblem(404, "Not found", "No such callback.", type="not-found")
    handled = payments.handle_callback(tenant_id, request.get_data(cache=False))
    for event_type, data in handled.live:
        live.publish_after_commit(event_type, subject=data["id"], data=data, tenant_id=tenant_id)
    db.session.commit()
    return jsonify(mpesa.ACK)
