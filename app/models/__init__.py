"""SQLAlchemy models, one module per area; importing this package registers them all."""

from app.models.audit import AuditEntry
from app.models.idempotency import IdempotencyRecord, SeenSignature
from app.models.jobs import Job, JobStatus
from app.models.scheduler import SchedulerTick
from app.models.stats import JobStat
from app.models.tenants import ApiKey, Tenant
from app.models.users import User

__all__ = [
    "ApiKey",
    "AuditEntry",
    "IdempotencyRecord",
    "Job",
    "JobStat",
    "JobStatus",
    "SchedulerTick",
    "SeenSignature",
    "Tenant",
    "User",
]
