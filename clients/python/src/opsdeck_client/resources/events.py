"""client.events, client.webhook_endpoints, client.webhook_deliveries."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, cast

from opsdeck_client.client import segment
from opsdeck_client.pagination import Pager
from opsdeck_client.resources.base import Resource, fields
from opsdeck_client.resources.jobs import BATCH_BYTES, BATCH_ITEMS, batched
from opsdeck_client.types import (
    CreatedWebhookEndpoint,
    Delivery,
    DeliveryWithAttempts,
    EventSpec,
    EventWithDeliveries,
    PublishedEvent,
    RotatedWebhookEndpoint,
    WebhookEndpoint,
    WebhookEndpointChanges,
)

DeliveryStatus = Literal["pending", "retrying", "succeeded", "dead", "cancelled"]


class Events(Resource):
    def publish(
        self, type: str, payload: Any, *, id: str | None = None, idempotency_key: str | None = None
    ) -> PublishedEvent:
        """Publish an event; Opsdeck delivers it to every endpoint subscribed to its type.

        `id` is the platform's own id for it (its dedupe key, kept with the event): an event
        published again with it is answered with the first, `replayed` True."""
        answer = self._call(
            "POST", "/events", fields(type=type, payload=payload, id=id), idempotency_key=idempotency_key
        )
        return cast(PublishedEvent, {**answer.json(), "replayed": answer.replayed or answer.status == 200})

    def publish_many(
        self, events: Iterable[EventSpec], *, batch_size: int = BATCH_ITEMS, batch_bytes: int = BATCH_BYTES
    ) -> list[PublishedEvent]:
        """Publish events through POST /events/batch, split as `jobs.submit_many` splits;
        the answers in order. An event's own `id` makes it safe to publish again."""
        return cast(list[PublishedEvent], batched(self, "/events/batch", "events", events, batch_size, batch_bytes))

    def get(self, event_id: str) -> EventWithDeliveries:
        """An event (by Opsdeck's id or the platform's own) with its deliveries."""
        return cast(EventWithDeliveries, self._json("GET", f"/events/{segment(event_id)}"))


class WebhookEndpoints(Resource):
    def create(
        self,
        url: str,
        *,
        event_types: builtins.list[str] | None = None,
        description: str | None = None,
        rate_limit_per_second: int | None = None,
        enabled: bool | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedWebhookEndpoint:
        """Create an endpoint (every event type unless `event_types`). The answer carries its
        signing `secret` (`whsec_…`), this once: keep it to verify deliveries."""
        body = fields(
            url=url,
            event_types=event_types,
            description=description,
            rate_limit_per_second=rate_limit_per_second,
            enabled=enabled,
        )
        return cast(
            CreatedWebhookEndpoint, self._json("POST", "/webhook-endpoints", body, idempotency_key=idempotency_key)
        )

    def list(self) -> builtins.list[WebhookEndpoint]:
        return cast(builtins.list[WebhookEndpoint], self._json("GET", "/webhook-endpoints")["data"])

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        return cast(WebhookEndpoint, self._json("GET", f"/webhook-endpoints/{segment(endpoint_id)}"))

    def update(
        self, endpoint_id: str, changes: WebhookEndpointChanges, *, idempotency_key: str | None = None
    ) -> WebhookEndpoint:
        """Change the given fields only, e.g. `{"enabled": False}`."""
        path = f"/webhook-endpoints/{segment(endpoint_id)}"
        return cast(WebhookEndpoint, self._json("PATCH", path, changes, idempotency_key=idempotency_key))

    def delete(self, endpoint_id: str, *, idempotency_key: str | None = None) -> None:
        """Delete an endpoint (its deliveries' history stays)."""
        self._call("DELETE", f"/webhook-endpoints/{segment(endpoint_id)}", idempotency_key=idempotency_key)

    def rotate_secret(self, endpoint_id: str, *, idempotency_key: str | None = None) -> RotatedWebhookEndpoint:
        """A new signing secret; until `previous_secret_expires_at` deliveries carry two
        signatures, one per secret, so receivers can switch at their pace."""
        path = f"/webhook-endpoints/{segment(endpoint_id)}/rotate-secret"
        return cast(RotatedWebhookEndpoint, self._json("POST", path, idempotency_key=idempotency_key))

    def recover(
        self,
        endpoint_id: str,
        since: datetime | str,
        until: datetime | str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> int:
        """Send again every dead or cancelled delivery created in [since, until); how many."""
        path = f"/webhook-endpoints/{segment(endpoint_id)}/recover"
        answer = self._json("POST", path, fields(since=since, until=until), idempotency_key=idempotency_key)
        return int(answer["requeued"])

    def deliveries(
        self, endpoint_id: str, *, status: DeliveryStatus | None = None, page_size: int | None = None
    ) -> Pager[Delivery]:
        """An endpoint's deliveries, newest first."""
        return self._pager(f"/webhook-endpoints/{segment(endpoint_id)}/deliveries", page_size, status=status)


class WebhookDeliveries(Resource):
    def get(self, delivery_id: str) -> DeliveryWithAttempts:
        """A delivery with every attempt (status code, response body, error, duration)."""
        return cast(DeliveryWithAttempts, self._json("GET", f"/webhook-deliveries/{segment(delivery_id)}"))

    def retry(self, delivery_id: str, *, idempotency_key: str | None = None) -> Delivery:
        """Send a delivery again now (ConflictError when its endpoint is disabled or deleted)."""
        path = f"/webhook-deliveries/{segment(delivery_id)}/retry"
        return cast(Delivery, self._json("POST", path, idempotency_key=idempotency_key))
