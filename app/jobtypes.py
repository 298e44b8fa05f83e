"""The registry of job types: the one place that says which types exist, their payload
schema, family, queue and default attempts. Families declare theirs in `app/services/<area>.py`;
the actors that run them live in `workers/<area>.py` with their retry and time policies.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field

from marshmallow import Schema

#: Service modules that declare job types; imported once by load().
_DECLARING_MODULES = (
    "app.services.system",
    "app.services.webhooks.delivery",
    "app.services.email.batches",
    "app.services.retention",
    "app.services.scans.verdicts",
    "app.services.scans.signatures",
    "app.services.provisioning.payments",
    "app.services.provisioning.subscriptions",
    "app.services.provisioning.routers",
)

#: Queue names: one per family; priorities high and low get their own queue next to it.
QUEUES = ("default", "email", "webhooks", "scans", "payments", "provisioning", "routers", "maintenance")


@dataclass(frozen=True)
class JobType:
    name: str
    family: str
    queue: str
    payload: type[Schema]
    max_attempts: int = 3
    #: Tenants may submit it through `POST /api/v1/jobs`. Internal types (bulk actions, a
    #: family's own steps) are created only by Opsdeck's services.
    public: bool = False
    #: Dramatiq actor name (derived from the type name).
    actor_name: str = field(default="")

    @functools.cached_property
    def payload_schema(self) -> Schema:
        """One instance of `payload`, reused (making one per job cost five times its load)."""
        return self.payload()

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"unknown queue {self.queue!r}")
        if not self.actor_name:
            object.__setattr__(self, "actor_name", self.name.replace(".", "_"))


_registry: dict[str, JobType] = {}
_loaded = False


def register(job_type: JobType) -> JobType:
    existing = _registry.get(job_type.name)
    if existing is not None and existing != job_type:
        raise ValueError(f"job type {job_type.name!r} registered twice")
    _registry[job_type.name] = job_type
    return job_type


def load() -> dict[str, JobType]:
    """Import every declaring module (once) and return the registry."""
    global _loaded
    if not _loaded:
        for module in _DECLARING_MODULES:
            importlib.import_module(module)
        _loaded = True
    return _registry


def get(name: str) -> JobType | None:
    return load().get(name)


def queue_name(queue: str, priority: str) -> str:
    """The Redis queue for a family queue at a priority: `email`, `email_high`, `email_low`.

    Dramatiq's message priority only reorders messages a worker has already prefetched, so
    priorities are separate queues consumed by separate worker groups.
    """
    return queue if priority == "normal" else f"{queue}_{priority}"


def all_queue_names() -> list[str]:
    return [queue_name(q, p) for q in QUEUES for p in ("high", "normal", "low")]
