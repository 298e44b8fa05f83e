"""/api/v1/events, /api/v1/webhook-endpoints, /api/v1/webhook-deliveries."""

from __future__ import annotations

import functools
import json
from datetime import UTC
from typing import Any

from flask import Response, current_app, g, jsonify, request, url_for
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import select

from app.api import batches, bp, family
from app.api.errors import ApiProblem, validation_failed
from app.api.grouped import Pending, grouped_write
from app.api.openapi import ANY_JSON, CURSOR, doc
from app.api.validation import Boolean, Pattern
from app.api.writes import json_body, write
from app.db.statements import Written
from app.models import Event, WebhookDelivery, WebhookEndpoint
from app.services import pagination
from app.services.webhooks import delivery, endpoints, events

EVENT_TYPE = Pattern(r"^[A-Za-z0-9_.\-]{1,200}$", error="Use letters, digits, '.', '_' or '-' (up to 200).")


class EndpointSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(dump_only=True)
    url = fields.String(required=True, validate=validate.Length(min=8, max=2000))
    description = fields.String(load_default="", validate=validate.Length(max=500))
    event_types = fields.List(
        fields.String(validate=EVENT_TYPE), load_default=None, allow_none=True, validate=validate.Length(min=1, max=100)
    )
    rate_limit_per_second = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1, max=10_000)
    )
    enabled = Boolean(load_default=True)
    disabled_reason = fields.String(dump_only=True, allow_none=True)
    last_success_at = fields.DateTime(dump_only=True, allow_none=True)
    failing_since = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class EventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    #: In: the platform's own event id (dedupe key). Out: Opsdeck's id; the platform's is client_id.
    id = fields.String(validate=validate.Length(min=1, max=255))
    client_id = fields.String(dump_only=True, allow_none=True)
    type = fields.String(
        required=True,
        validate=[EVENT_TYPE, validate.NoneOf(events.SERVICE_EVENTS, error="{input} is one of Opsdeck's own events.")],
    )
    payload = fields.Raw(required=True, metadata={"json_schema": ANY_JSON})
    created_at = fields.DateTime(dump_only=True)


class AttemptSchema(Schema):
    attempted_at = fields.DateTime()
    duration_ms = fields.Integer()
    status_code = fields.Integer(allow_none=True)
    response_body = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    succeeded = fields.Boolean()


class DeliverySchema(Schema):
    id = fields.String()
    event_id = fields.String()
    endpoint_id = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)
    #: Every attempt, in the answer for one delivery.
    attempt_log = fields.List(fields.Nested(AttemptSchema))


class RecoverSchema(Schema):
    since = fields.AwareDateTime(required=True, default_timezone=UTC)
    until = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=UTC)


class ListArgs(Schema):
    status = fields.String(
        load_default=None, validate=validate.OneOf(("pending", "retrying", "succeeded", "dead", "cancelled"))
    )
    cursor = fields.String(load_default=None, metadata=CURSOR)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


endpoint_schema, event_schema, delivery_schema = EndpointSchema(), EventSchema(), DeliverySchema()


def _actor() -> str:
    return f"key:{g.api_key_id}"


def _not_found(what: str) -> ApiProblem:
    return ApiProblem(404, "Not found", f"No such {what}.", type="not-found")


def _endpoint(endpoint_id: str) -> WebhookEndpoint:
    found = endpoints.get(endpoint_id, g.tenant_id)
    if found is None:
        raise _not_found("webhook endpoint")
    return found


def _dump_event(event: Event | dict[str, Any], payload: Any, *, with_deliveries: bool = False) -> dict[str, Any]:
    body = event_schema.dump(event)
    body["payload"] = payload
    if with_deliveries:
        body["deliveries"] = delivery_schema.dump(events.deliveries_of(body["id"]), many=True)
    return body


# -- events ------------------------------------------------------------------
@bp.post("/events")
@doc(status=202, also=(200,), body=EventSchema, response=EventSchema)
@family("webhooks")
@grouped_write
def create_event() -> Pending:
    """Accept an event and fan it out (200 with the first event for a known client id)"""
    limit = current_app.config["WEBHOOK_MAX_PAYLOAD_BYTES"]
    if len(request.get_data(cache=True)) > limit + 64 * 1024:
        raise ApiProblem(413, "Payload too large", f"Event payloads are limited to {limit} bytes.", type="too-large")
    data = event_schema.load(json_body())
    try:
        row = _event_row(data)
    except events.PayloadTooLarge as err:
        raise ApiProblem(413, "Payload too large", str(err), type="too-large") from None
    return Pending(events.create_many, [row], functools.partial(_answer_event, data["payload"]))


def _answer_event(payload: Any, written: list[Written[Event]]) -> Response:
    accepted = written[0]
    body = _dump_event(accepted.value, _payload_of(accepted, payload))
    response = jsonify(body)
    response.status_code = 200 if accepted.replayed else 202
    response.headers["Location"] = url_for("api.get_event", event_id=body["id"])
    return response


class EventBatchSchema(Schema):
    events = fields.List(
        fields.Nested(EventSchema), required=True, metadata={"description": "1 to API_BATCH_MAX_ITEMS events"}
    )


class AcceptedEventSchema(EventSchema):
    replayed = fields.Boolean(dump_only=True, metadata={"description": "its id named an event already"})


class EventBatchAnswerSchema(Schema):
    data = fields.List(fields.Nested(AcceptedEventSchema), dump_only=True)


def _event_row(data: dict[str, Any]) -> dict[str, Any]:
    return events.new_row(g.tenant_id, data["type"], data["payload"], client_id=data.get("id"))


@bp.post("/events/batch")
@doc(status=202, body=EventBatchSchema, response=EventBatchAnswerSchema, problems=(400, 413, 415, 422))
@family("webhooks")
@grouped_write
def create_events() -> Pending:
    """Accept 1 to API_BATCH_MAX_ITEMS events in one transaction and fan each out"""
    loaded, rows = batches.load_each("events", event_schema, _event_row, (events.PayloadTooLarge,))
    payloads = [data["payload"] for data in loaded]
    return Pending(events.create_many, rows, functools.partial(_answer_events, payloads))


def _answer_events(payloads: list[Any], written: list[Written[Event]]) -> Response:
    dumped = [_dump_event(a.value, _payload_of(a, payload)) for a, payload in zip(written, payloads, strict=True)]
    return batches.answer(dumped, [a.replayed for a in written])


def _payload_of(accepted: Written[Event], payload: Any) -> Any:
    """The payload of what answers a row: the one sent, when the row is new; else that of the
    event that held its id (committed, or a row written just before it)."""
    if not accepted.replayed:
        return payload
    value = accepted.value
    return value.payload if isinstance(value, Event) else json.loads(value["body"])["data"]


@bp.get("/events/<item:event_id>")
@doc(response=EventSchema, problems=(404,))
@family("webhooks")
def get_event(event_id: str) -> Response:
    """Read an event (by Opsdeck id or client id) with its deliveries"""
    event = events.get(event_id, g.tenant_id) or events.find_by_client_id(g.tenant_id, event_id)
    if event is None:
        raise _not_found("event")
    return jsonify(_dump_event(event, event.payload, with_deliveries=True))


# -- endpoints -----------------------------------------------------------------
@bp.post("/webhook-endpoints")
@doc(status=201, body=EndpointSchema, response=EndpointSchema, problems=(400, 415, 422))
@family("webhooks")
@write
def create_endpoint() -> Response:
    """Create an endpoint; the answer carries its signing secret, once"""
    data = endpoint_schema.load(json_body())
    try:
        created = endpoints.create(g.tenant_id, actor=_actor(), **data)
    except endpoints.EndpointError as err:
        raise validation_failed(err.messages) from None
    body = endpoint_schema.dump(created.endpoint)
    body["secret"] = created.secret  # the only time it is shown
    g.sealed_response = True  # an Idempotency-Key replay keeps it encrypted at rest
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_endpoint", endpoint_id=created.endpoint.id)
    return response


@bp.get("/webhook-endpoints")
@doc(response=EndpointSchema, many=True)
@family("webhooks")
def list_endpoints() -> Response:
    """List endpoints"""
    return jsonify({"data": endpoint_schema.dump(endpoints.list_for(g.tenant_id), many=True)})


@bp.get("/webhook-endpoints/<endpoint_id>")
@doc(response=EndpointSchema, problems=(404,))
@family("webhooks")
def get_endpoint(endpoint_id: str) -> Response:
    """Read an endpoint"""
    return jsonify(endpoint_schema.dump(_endpoint(endpoint_id)))


@bp.patch("/webhook-endpoints/<endpoint_id>")
@doc(body=EndpointSchema, response=EndpointSchema, problems=(404, 415, 422))
@family("webhooks")
@write
def update_endpoint(endpoint_id: str) -> Response:
    """Change an endpoint (partial)"""
    endpoint = _endpoint(endpoint_id)
    changes = endpoint_schema.load(json_body(), partial=True)
    changes = {k: v for k, v in changes.items() if k in json_body()}  # defaults are not changes
    try:
        endpoints.update(endpoint, changes, actor=_actor())
    except endpoints.EndpointError as err:
        raise validation_failed(err.messages) from None
    return jsonify(endpoint_schema.dump(endpoint))


@bp.delete("/webhook-endpoints/<endpoint_id>")
@doc(status=204, problems=(404,))
@family("webhooks")
@write
def delete_endpoint(endpoint_id: str) -> Response:
    """Delete an endpoint (its history stays)"""
    endpoints.delete(_endpoint(endpoint_id), actor=_actor())
    return Response(status=204)


@bp.post("/webhook-endpoints/<endpoint_id>/rotate-secret")
@doc(response=EndpointSchema, problems=(404,))
@family("webhooks")
@write
def rotate_endpoint_secret(endpoint_id: str) -> Response:
    """Rotate the signing secret (the old one signs during the grace)"""
    endpoint = _endpoint(endpoint_id)
    secret = endpoints.rotate_secret(endpoint, actor=_actor())
    assert endpoint.previous_secret_expires_at is not None, "a rotation sets the grace's end"
    g.sealed_response = True
    return jsonify(
        {
            **endpoint_schema.dump(endpoint),
            "secret": secret,
            "previous_secret_expires_at": endpoint.previous_secret_expires_at.isoformat(),
        }
    )


@bp.get("/webhook-endpoints/<endpoint_id>/deliveries")
@doc(response=DeliverySchema, many=True, query=ListArgs, problems=(404, 422))
@family("webhooks")
def list_endpoint_deliveries(endpoint_id: str) -> Response:
    """List an endpoint's deliveries, newest first"""
    endpoint = _endpoint(endpoint_id)
    args = ListArgs().load(request.args.to_dict())
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if args["status"]:
        query = query.where(WebhookDelivery.status == args["status"])
    try:
        page = pagination.newest_first(query, WebhookDelivery, cursor=args["cursor"], limit=args["limit"])
    except pagination.BadCursor as err:
        raise validation_failed({"cursor": [str(err)]}) from None
    return jsonify({"data": delivery_schema.dump(page.items, many=True), "next_cursor": page.next_cursor})


@bp.post("/webhook-endpoints/<endpoint_id>/recover")
@doc(status=202, body=RecoverSchema, problems=(404, 409, 415, 422))
@family("webhooks")
@write
def recover_endpoint(endpoint_id: str) -> Response:
    """Send again every dead or cancelled delivery created in a window"""
    endpoint = _endpoint(endpoint_id)
    window = RecoverSchema().load(json_body())
    if not endpoint.enabled:
        raise ApiProblem(409, "Conflict", "Enable the endpoint before recovering its deliveries.", type="disabled")
    count = delivery.recover(endpoint, window["since"], window["until"], actor=_actor())
    response = jsonify({"requeued": count})
    response.status_code = 202
    return response


# -- deliveries ----------------------------------------------------------------
def _delivery(delivery_id: str) -> WebhookDelivery:
    found = delivery.get(delivery_id, g.tenant_id)
    if found is None:
        raise _not_found("webhook delivery")
    return found


@bp.get("/webhook-deliveries/<delivery_id>")
@doc(response=DeliverySchema, problems=(404,))
@family("webhooks")
def get_delivery(delivery_id: str) -> Response:
    """Read a delivery with every attempt"""
    row = _delivery(delivery_id)
    attempts = AttemptSchema().dump(delivery.attempts_of(row.id), many=True)
    return jsonify({**delivery_schema.dump(row), "attempt_log": attempts})


@bp.post("/webhook-deliveries/<delivery_id>/retry")
@doc(status=202, response=DeliverySchema, problems=(404, 409))
@family("webhooks")
@write
def retry_delivery(delivery_id: str) -> Response:
    """Send a delivery again now"""
    row = _delivery(delivery_id)
    endpoint = endpoints.get(row.endpoint_id, g.tenant_id)
    if endpoint is None or not endpoint.enabled:
        raise ApiProblem(409, "Conflict", "The endpoint is disabled or deleted.", type="disabled")
    delivery.resend(row, actor=_actor())
    response = jsonify(delivery_schema.dump(row))
    response.status_code = 202
    return response
