"""SQLAlchemy models, one module per area; importing this package registers them all."""

from app.models.alerts import QueueAlert
from app.models.audit import AuditEntry
from app.models.email import Email, EmailBatch, Suppression
from app.models.idempotency import IdempotencyRecord
from app.models.jobs import Job, JobStatus
from app.models.provisioning import MpesaToken, Payment, Plan, Router, Subscriber, Subscription, UnmatchedCallback
from app.models.retention import LegalHold, RetentionPolicy, RetentionRun
from app.models.scans import FileTombstone, Scan, SignatureVersion
from app.models.scheduler import SchedulerTick, ScheduleState
from app.models.stats import JobStat
from app.models.tenants import ApiKey, Tenant
from app.models.users import User
from app.models.webhooks import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Email",
    "FileTombstone",
    "EmailBatch",
    "Suppression",
    "IdempotencyRecord",
    "Job",
    "JobStat",
    "JobStatus",
    "LegalHold",
    "MpesaToken",
    "Payment",
    "Plan",
    "Router",
    "Subscriber",
    "Subscription",
    "RetentionPolicy",
    "RetentionRun",
    "Scan",
    "ScheduleState",
    "SchedulerTick",
    "QueueAlert",
    "SignatureVersion",
    "Tenant",
    "UnmatchedCallback",
    "User",
    "Event",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
