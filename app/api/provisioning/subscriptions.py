"""/api/v1/subscriptions (made by hand, extended, expired, provisioned again) and /vouchers."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request, url_for
from sqlalchemy import select

from app.api import bp, family
from app.api.errors import ApiProblem, validation_failed
from app.api.openapi import doc
from app.api.provisioning.routers import actor, created, own
from app.api.provisioning.schemas import (
    ExtendSchema,
    SubscriptionListArgs,
    SubscriptionSchema,
    VoucherBatchSchema,
    VoucherSchema,
)
from app.api.writes import json_body, write
from app.models.provisioning import Plan, Router, Subscription
from app.services import pagination
from app.services.provisioning import payments, subscriptions, vouchers

subscription_schema = SubscriptionSchema()


def dump(row: Subscription) -> dict[str, Any]:
    body = subscription_schema.dump(row)
    body["password"] = subscriptions.password_of(row)
    g.sealed_response = True  # a write's stored answer keeps the password encrypted at rest
    return body


def _own(subscription_id: str) -> Subscription:
    row = subscriptions.get(subscription_id, g.tenant_id)
    if row is None:
        raise ApiProblem(404, "Not found", "No such subscription.", type="not-found")
    return row


@bp.post("/subscriptions")
@doc(status=201, body=SubscriptionSchema, response=SubscriptionSchema, problems=(400, 404, 409, 415, 422))
@family("provisioning")
@write
def create_subscription() -> Response:
    """Provision without a payment (manual): a hotspot user for the plan's duration"""
    data = subscription_schema.load(json_body())
    plan, router = own(Plan, data["plan_id"], "plan"), own(Router, data["router_id"], "router")
    subscriber_id = payments.subscriber_for(g.tenant_id, data["phone"], data["mac"]).id if data["phone"] else None
    if data["username"] and subscriptions.username_taken(router.id, data["username"]):
        raise ApiProblem(409, "Conflict", "That username is already used on this router.", type="username-taken")
    row = subscriptions.create(
        g.tenant_id,
        plan,
        router,
        source="manual",
        subscriber_id=subscriber_id,
        username=data["username"],
        password=data["password"],
        mac=data["mac"],
    )
    return created(dump(row), url_for("api.get_subscription", subscription_id=row.id))


@bp.get("/subscriptions")
@doc(response=SubscriptionSchema, many=True, query=SubscriptionListArgs, problems=(422,))
@family("provisioning")
def list_subscriptions() -> Response:
    """List subscriptions, newest first (filter: status)"""
    args = SubscriptionListArgs().load(request.args.to_dict())
    query = select(Subscription).where(Subscription.tenant_id == g.tenant_id)
    if args["status"]:
        query = query.where(Subscription.status == args["status"])
    try:
        page = pagination.newest_first(query, Subscription, cursor=args["cursor"], limit=args["limit"])
    except pagination.BadCursor as err:
        raise validation_failed({"cursor": [str(err)]}) from None
    return jsonify({"data": [dump(r) for r in page.items], "next_cursor": page.next_cursor})


@bp.get("/subscriptions/<subscription_id>")
@doc(response=SubscriptionSchema, problems=(404,))
@family("provisioning")
def get_subscription(subscription_id: str) -> Response:
    """Read a subscription with the customer's hotspot credentials"""
    return jsonify(dump(_own(subscription_id)))


@bp.post("/subscriptions/<subscription_id>/<action>")
@doc(status=202, body=ExtendSchema, response=SubscriptionSchema, problems=(404, 409, 415, 422))
@family("provisioning")
@write
def subscription_action(subscription_id: str, action: str) -> Response:
    """extend {duration}, expire (remove the user now) or reprovision (push the user again)"""
    row = _own(subscription_id)
    try:
        if action == "extend":
            subscriptions.extend(row, ExtendSchema().load(json_body())["duration"], actor=actor())
        elif action == "expire":
            subscriptions.expire_now(row, actor=actor())
        elif action == "reprovision":
            subscriptions.reprovision(row, actor=actor())
        else:
            raise ApiProblem(
                404, "Not found", f"No action {action!r}: extend, expire or reprovision.", type="not-found"
            )
    except subscriptions.SubscriptionError as err:
        raise ApiProblem(409, "Conflict", str(err), type="subscription-state") from None
    response = jsonify(dump(row))
    response.status_code = 202
    return response


@bp.post("/vouchers")
@doc(status=201, body=VoucherSchema, response=VoucherBatchSchema, problems=(400, 404, 415, 422))
@family("provisioning")
@write
def create_vouchers() -> Response:
    """Generate N vouchers (subscriptions with generated credentials) for a plan on a router"""
    data = VoucherSchema().load(json_body())
    plan, router = own(Plan, data.pop("plan_id"), "plan"), own(Router, data.pop("router_id"), "router")
    try:
        rows = vouchers.generate(g.tenant_id, plan, router, actor=actor(), **data)
    except subscriptions.SubscriptionError as err:
        raise validation_failed({"plan_id": [str(err)]}) from None
    response = jsonify({"data": [dump(r) for r in rows]})
    response.status_code = 201
    return response
