"""The shapes of Opsdeck's JSON, as TypedDicts: what the typed calls return and take.

Times are ISO 8601 strings (UTC), amounts decimal strings, as the API sends them. A key the
server may add later is simply there at run time; these list what the client relies on.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

JobStatus = Literal["pending", "queued", "running", "succeeded", "retrying", "dead", "cancelled"]
ScanStatus = Literal["pending", "clean", "infected", "rejected", "error"]
Priority = Literal["high", "normal", "low"]


# -- jobs ------------------------------------------------------------------------------------
class Job(TypedDict):
    id: str
    type: str
    payload: dict[str, Any]
    priority: Priority
    idempotency_key: str | None
    queue: str
    status: JobStatus
    result: Any
    error: str | None
    attempts: int
    max_attempts: int | None
    next_attempt_at: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class SubmittedJob(Job):
    #: True when the answer is an earlier submission's (same Idempotency-Key or idempotency_key).
    replayed: bool


class _JobSpecType(TypedDict):
    type: str


class JobSpec(_JobSpecType, total=False):
    """One job of `jobs.submit_many`."""

    payload: dict[str, Any]
    priority: Priority
    delay_seconds: float
    max_attempts: int | None
    #: The platform's own key for the job, unique per tenant, kept as long as the job.
    idempotency_key: str | None


# -- events and webhooks -----------------------------------------------------------------------
class Event(TypedDict):
    id: str
    #: The platform's own id for the event, when it gave one.
    client_id: str | None
    type: str
    payload: Any
    created_at: str


class PublishedEvent(Event):
    #: True when an event with the same platform id (or Idempotency-Key) was accepted before.
    replayed: bool


class _EventSpecType(TypedDict):
    type: str
    payload: Any


class EventSpec(_EventSpecType, total=False):
    """One event of `events.publish_many`; `id` is the platform's own id (its dedupe key)."""

    id: str


class DeliveryAttempt(TypedDict):
    attempted_at: str
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    succeeded: bool


class Delivery(TypedDict):
    id: str
    event_id: str
    endpoint_id: str
    status: Literal["pending", "retrying", "succeeded", "dead", "cancelled"]
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


class DeliveryWithAttempts(Delivery):
    attempt_log: list[DeliveryAttempt]


class EventWithDeliveries(Event):
    deliveries: list[Delivery]


class WebhookEndpoint(TypedDict):
    id: str
    url: str
    description: str
    event_types: list[str] | None
    rate_limit_per_second: int | None
    enabled: bool
    disabled_reason: str | None
    last_success_at: str | None
    failing_since: str | None
    created_at: str
    updated_at: str


class CreatedWebhookEndpoint(WebhookEndpoint):
    #: The signing secret (`whsec_…`): shown in this answer only.
    secret: str


class RotatedWebhookEndpoint(CreatedWebhookEndpoint):
    #: Until then the old secret signs too (two signatures per delivery).
    previous_secret_expires_at: str


class WebhookEndpointChanges(TypedDict, total=False):
    url: str
    description: str
    event_types: list[str] | None
    rate_limit_per_second: int | None
    enabled: bool


# -- emails ------------------------------------------------------------------------------------
class Email(TypedDict):
    id: str
    to: str
    template: str | None
    subject: str | None
    text: str | None
    digest_key: str | None
    status: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    message_id: str
    batch_id: str | None
    digest_id: str | None
    created_at: str
    sent_at: str | None


class _EmailSpecTo(TypedDict):
    to: str


class EmailSpec(_EmailSpecTo, total=False):
    """One mail: a `template` (with `context`), or a `subject` and a `text`."""

    template: str | None
    subject: str | None
    text: str | None
    html: str
    context: dict[str, Any] | None
    digest_key: str | None
    critical: bool
    send_after: str | None
    headers: dict[str, str] | None


# -- scans -------------------------------------------------------------------------------------
class Scan(TypedDict):
    id: str
    status: ScanStatus
    name: str
    extension: str
    content_type: str | None
    size: int
    sha256: str
    reject_reason: str | None
    #: The virus found, when infected.
    signature: str | None
    engine_version: str | None
    db_version: int | None
    db_date: str | None
    location: Literal["files", "quarantine", "none"]
    attempts: int
    last_error: str | None
    created_at: str
    verdict_at: str | None
    rescanned_at: str | None
    released_at: str | None


# -- provisioning ------------------------------------------------------------------------------
class Router(TypedDict):
    id: str
    name: str
    host: str
    port: int
    tls: bool
    tls_verify: bool
    username: str
    hotspot_server: str
    status: str
    version: str | None
    uptime: str | None
    cpu_load: int | None
    free_memory: int | None
    board_name: str | None
    checked_at: str | None
    last_error: str | None
    created_at: str


class RouterChanges(TypedDict, total=False):
    name: str
    host: str
    port: int | None
    tls: bool
    tls_verify: bool
    username: str
    password: str
    hotspot_server: str


class Plan(TypedDict):
    id: str
    name: str
    price: str
    currency: str
    duration_seconds: int
    rate_limit: str | None
    uptime_limit: str | None
    data_limit_bytes: int | None
    shared_users: int
    profile: str
    active: bool
    created_at: str


class PlanChanges(TypedDict, total=False):
    name: str
    price: str
    currency: str
    #: "30d", "12h", "90m" or seconds.
    duration: str | int
    rate_limit: str | None
    uptime_limit: str | None
    data_limit_bytes: int | None
    shared_users: int
    profile: str
    active: bool


class Payment(TypedDict):
    id: str
    checkout_request_id: str
    plan_id: str
    router_id: str
    phone: str
    mac: str | None
    status: str
    amount_expected: str
    amount_paid: str | None
    receipt_number: str | None
    transaction_date: str | None
    result_code: int | None
    result_desc: str | None
    merchant_request_id: str | None
    subscription_id: str | None
    callbacks: int
    callback_at: str | None
    created_at: str


class Subscription(TypedDict):
    id: str
    plan_id: str
    router_id: str
    mac: str | None
    #: The customer's hotspot login.
    username: str
    password: str
    subscriber_id: str | None
    payment_id: str | None
    source: str
    status: str
    starts_at: str
    expires_at: str
    provisioned_at: str | None
    expired_at: str | None
    attempts: int
    last_error: str | None
    created_at: str
