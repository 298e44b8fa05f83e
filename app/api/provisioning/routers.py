"""/api/v1/routers and /api/v1/plans."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, url_for

from app.api import bp, family
from app.api.errors import ApiProblem
from app.api.openapi import doc
from app.api.provisioning.schemas import PlanSchema, RouterSchema, default_profile
from app.api.writes import json_body, write
from app.models.base import utcnow
from app.models.provisioning import Plan, Router
from app.services.provisioning import routers

router_schema, plan_schema = RouterSchema(), PlanSchema()


def actor() -> str:
    return f"key:{g.api_key_id}"


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, "Not found", f"No such {what}.", type="not-found")


def own(model: Any, row_id: str | None, what: str) -> Any:
    row = routers.owned(model, row_id or "", g.tenant_id)
    if row is None:
        raise not_found(what)
    return row


def created(body: dict[str, Any], location: str) -> Response:
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


# -- routers ----------------------------------------------------------------------------
@bp.post("/routers")
@doc(status=201, body=RouterSchema, response=RouterSchema, problems=(400, 415, 422))
@family("provisioning")
@write
def create_router() -> Response:
    """Add a MikroTik router (the password is stored encrypted and never returned)"""
    row = routers.create_router(g.tenant_id, router_schema.load(json_body()), actor=actor())
    return created(router_schema.dump(row), url_for("api.get_router", router_id=row.id))


@bp.get("/routers")
@doc(response=RouterSchema, many=True)
@family("provisioning")
def list_routers() -> Response:
    """List routers with their last check"""
    return jsonify({"data": router_schema.dump(routers.routers_of(g.tenant_id), many=True), "next_cursor": None})


@bp.get("/routers/<router_id>")
@doc(response=RouterSchema, problems=(404,))
@family("provisioning")
def get_router(router_id: str) -> Response:
    """Read a router: status, version, uptime, CPU load, free memory, last error"""
    return jsonify(router_schema.dump(own(Router, router_id, "router")))


@bp.patch("/routers/<router_id>")
@doc(body=RouterSchema, response=RouterSchema, problems=(400, 404, 415, 422))
@family("provisioning")
@write
def update_router(router_id: str) -> Response:
    """Change a router (partial)"""
    row = own(Router, router_id, "router")
    routers.update_router(row, router_schema.load(json_body(), partial=True), actor=actor())
    return jsonify(router_schema.dump(row))


@bp.delete("/routers/<router_id>")
@doc(status=204, problems=(404,))
@family("provisioning")
@write
def delete_router(router_id: str) -> Response:
    """Remove a router (its history stays; no more checks or provisioning)"""
    routers.delete_router(own(Router, router_id, "router"), actor=actor())
    return Response(status=204)


# -- plans ------------------------------------------------------------------------------
@bp.post("/plans")
@doc(status=201, body=PlanSchema, response=PlanSchema, problems=(400, 415, 422))
@family("provisioning")
@write
def create_plan() -> Response:
    """Add a plan: price, duration, rate limit, uptime and data limits, shared users, profile"""
    row = routers.create_plan(g.tenant_id, plan_schema.load(json_body()), actor=actor())
    return created(plan_schema.dump(row), url_for("api.get_plan", plan_id=row.id))


@bp.get("/plans")
@doc(response=PlanSchema, many=True)
@family("provisioning")
def list_plans() -> Response:
    """List plans"""
    return jsonify({"data": plan_schema.dump(routers.plans_of(g.tenant_id), many=True), "next_cursor": None})


@bp.get("/plans/<plan_id>")
@doc(response=PlanSchema, problems=(404,))
@family("provisioning")
def get_plan(plan_id: str) -> Response:
    """Read a plan"""
    return jsonify(plan_schema.dump(own(Plan, plan_id, "plan")))


@bp.patch("/plans/<plan_id>")
@doc(body=PlanSchema, response=PlanSchema, problems=(400, 404, 415, 422))
@family("provisioning")
@write
def update_plan(plan_id: str) -> Response:
    """Change a plan (partial; subscriptions already made keep their expiry)"""
    row = own(Plan, plan_id, "plan")
    changes = plan_schema.load(json_body(), partial=True)
    if "profile" in changes and changes["profile"] is None:  # null: back to the default
        changes["profile"] = default_profile(changes.get("name", row.name))
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    return jsonify(plan_schema.dump(row))
