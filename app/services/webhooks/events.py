"""Events and their fan-out: one delivery (and one ledger job) per subscribed endpoint, all in
the caller's transaction, so an accepted event is never half fanned out."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, insert, select

from app.db.statements import InsertNew, Written, add_as_loaded, core_execute, insert_once
from app.extensions import db
from app.models import Event, WebhookDelivery, WebhookEndpoint
from app.models.base import new_id, utcnow
from app.services import jobs
from app.services.webhooks import delivery


class PayloadTooLarge(ValueError):
    pass


def timestamp(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body_for(event_type: str, created_at: datetime, data: Any) -> str:
    """The JSON every endpoint receives, and the exact text that is signed."""
    return json.dumps(
        {"type": event_type, "timestamp": timestamp(created_at), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def find_by_client_id(tenant_id: str, client_id: str) -> Event | None:
    return db.session.scalar(select(Event).where(Event.tenant_id == tenant_id, Event.client_id == client_id))


def get(event_id: str, tenant_id: str | None) -> Event | None:
    event = db.session.get(Event, event_id)
    if event is None or (tenant_id is not None and event.tenant_id != tenant_id):
        return None
    return event


def create(tenant_id: str, event_type: str, data: Any, *, client_id: str | None = None) -> tuple[Event, bool]:
    """Record an event and fan it out (caller's transaction): `create_many` of one row. A
    `client_id` the tenant already used returns the first event and False, with no second
    fan-out, even under a race. Raises PayloadTooLarge."""
    written = create_many([new_row(tenant_id, event_type, data, client_id=client_id)])[0]
    if isinstance(written.value, Event):
        return written.value, False
    return add_as_loaded(Event, written.value), True


def new_row(tenant_id: str, event_type: str, data: Any, *, client_id: str | None = None) -> dict[str, Any]:
    """An event's row (raises PayloadTooLarge)."""
    now = utcnow()
    body = body_for(event_type, now, data)
    limit = current_app.config["WEBHOOK_MAX_PAYLOAD_BYTES"]
    envelope = len(body_for(event_type, now, None)) - len("null")  # not the tenant's bytes
    if len(body.encode()) - envelope > limit:
        raise PayloadTooLarge(f"event payloads are limited to {limit} bytes of JSON")
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "client_id": client_id,
        "type": event_type,
        "body": body,
        "created_at": now,
    }


#: Returns the id of each event inserted; nothing for one whose client id the tenant used.
_INSERT_NEW_EVENT = InsertNew(Event, index_elements=["tenant_id", "client_id"])
_INSERT_DELIVERY = insert(WebhookDelivery)
_SUBSCRIBERS = select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
    WebhookEndpoint.tenant_id == bindparam("tenant"),
    WebhookEndpoint.enabled.is_(True),
    WebhookEndpoint.deleted_at.is_(None),
)


#: Opsdeck's own events about the service, not about a tenant's work, as the services that send
#: them declare them (`service_event`): only an endpoint that names them receives them, not one
#: that takes every type.
SERVICE_EVENTS: set[str] = set()


def service_event(event_type: str) -> str:
    """Declare `event_type` one of Opsdeck's own events (SERVICE_EVENTS); returns it."""
    SERVICE_EVENTS.add(event_type)
    return event_type


def receives(event_types: list[str] | None, event_type: str) -> bool:
    """Whether an endpoint subscribed to `event_types` (None: every type) receives `event_type`."""
    if event_types is None:
        return event_type not in SERVICE_EVENTS
    return event_type in event_types


def subscribers(tenant_id: str, event_type: str) -> list[str]:
    """Ids of the tenant's endpoints that receive `event_type`."""
    return [id_ for id_, types in _subscriptions(tenant_id) if receives(types, event_type)]


def _subscriptions(tenant_id: str) -> list[tuple[str, list[str] | None]]:
    """(endpoint id, its event types; None: every type) of each of the tenant's live
    endpoints. A Core read: nothing the caller added is flushed for it."""
    rows = core_execute(_SUBSCRIBERS, {"tenant": tenant_id}).all()
    return [(row.id, row.event_types) for row in rows]


def fan_out(event: Event) -> int:
    """One delivery, and its ledger job, per subscribed endpoint (caller's transaction): the
    jobs in one INSERT, the deliveries in another. Returns how many."""
    job_rows, rows = fan_out_rows(event.id, event.tenant_id, event.created_at, subscribers(event.tenant_id, event.type))
    if rows:
        jobs.submit_many(job_rows)
        core_execute(_INSERT_DELIVERY, rows)
    return len(rows)


def create_many(rows: list[dict[str, Any]]) -> list[Written[Event]]:
    """Record events (rows from `new_row`, of one tenant or several) in one INSERT and fan each
    new one out (caller's transaction): the deliveries' jobs in one INSERT, the deliveries in
    another. An event whose client id its tenant used already (before, or for an earlier row
    of this call) is not inserted nor fanned out: its answer is the first event, replayed.
    Answers are in the rows' order."""
    answers, inserted = insert_once(_INSERT_NEW_EVENT, rows, "client_id", _holding_client_ids)
    subscriptions = {tenant: _subscriptions(tenant) for tenant in {row["tenant_id"] for row in inserted}}
    job_rows, delivery_rows = [], []
    for row in inserted:
        tenant_id = row["tenant_id"]
        endpoint_ids = [id_ for id_, types in subscriptions[tenant_id] if receives(types, row["type"])]
        more_jobs, more_deliveries = fan_out_rows(row["id"], tenant_id, row["created_at"], endpoint_ids)
        job_rows += more_jobs
        delivery_rows += more_deliveries
    if delivery_rows:
        jobs.submit_many(job_rows)
        core_execute(_INSERT_DELIVERY, delivery_rows)
    return answers


def _holding_client_ids(tenant_id: str | None, client_ids: list[str]) -> Iterable[Event]:
    return db.session.scalars(select(Event).where(Event.tenant_id == tenant_id, Event.client_id.in_(client_ids)))


def fan_out_rows(
    event_id: str, tenant_id: str, created_at: datetime, endpoint_ids: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ledger jobs' rows and the deliveries' rows of an event's fan-out to these endpoints."""
    job_rows, rows = [], []
    for endpoint_id in endpoint_ids:
        delivery_id = new_id()
        job, columns = delivery.new_round(delivery_id, tenant_id)
        job_rows.append(job)
        rows.append(
            {
                "id": delivery_id,
                "tenant_id": tenant_id,
                "event_id": event_id,
                "endpoint_id": endpoint_id,
                "created_at": created_at,
                **columns,
            }
        )
    return job_rows, rows


def emit(tenant_id: str | None, event_type: str, data: dict[str, Any]) -> Event | None:
    """What other families call (`scan.completed`, `payment.processed`, …): the event goes
    through the same fan-out, in the caller's transaction. Nothing when the webhooks family
    is switched off or the work has no tenant."""
    if tenant_id is None or "webhooks" in current_app.config.get("OPSDECK_DISABLED_FAMILIES", []):
        return None
    event, _ = create(tenant_id, event_type, data)
    return event


def deliveries_of(event_id: str) -> list[WebhookDelivery]:
    return list(
        db.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event_id == event_id).order_by(WebhookDelivery.created_at)
        )
    )
