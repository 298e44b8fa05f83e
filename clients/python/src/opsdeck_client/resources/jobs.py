"""client.jobs: submit (one or many), read, list, cancel, retry, wait."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from opsdeck_client.client import encode_json, segment
from opsdeck_client.pagination import Pager
from opsdeck_client.resources.base import Resource, fields, poll
from opsdeck_client.types import Job, JobSpec, JobStatus, Priority, SubmittedJob

#: A job in one of these states changes no more (unless retried).
FINISHED: frozenset[str] = frozenset({"succeeded", "dead", "cancelled"})
#: What one bulk call may carry: the server's API_BATCH_MAX_ITEMS, and a size in bytes under
#: its API_BATCH_MAX_BYTES (5 MiB by default) with room for the envelope.
BATCH_ITEMS = 1000
BATCH_BYTES = 4 << 20


class Jobs(Resource):
    def submit(
        self,
        type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        priority: Priority | None = None,
        delay_seconds: float | None = None,
        max_attempts: int | None = None,
        job_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> SubmittedJob:
        """Submit a job; `replayed` is True when the answer is an earlier submission's.

        `idempotency_key` is the request's Idempotency-Key (kept by the server 48 h; one is
        generated when not given). `job_key` is the job's own `idempotency_key` field, unique
        per tenant and kept as long as the job."""
        body = fields(
            type=type,
            payload=dict(payload or {}),
            priority=priority,
            delay_seconds=delay_seconds,
            max_attempts=max_attempts,
            idempotency_key=job_key,
        )
        answer = self._call("POST", "/jobs", body, idempotency_key=idempotency_key)
        # 200 (not 202) is the first job of a known job_key; the header marks a request replay.
        return cast(SubmittedJob, {**answer.json(), "replayed": answer.replayed or answer.status == 200})

    def submit_many(
        self, jobs: Iterable[JobSpec], *, batch_size: int = BATCH_ITEMS, batch_bytes: int = BATCH_BYTES
    ) -> list[SubmittedJob]:
        """Submit jobs through POST /jobs/batch, at most `batch_size` jobs and about
        `batch_bytes` of JSON a call; the answers in order, each with `replayed`. Give each
        job an `idempotency_key` to make the whole list safe to submit again after a failure
        (a call that failed part-way leaves the earlier calls' jobs in)."""
        return cast(list[SubmittedJob], batched(self, "/jobs/batch", "jobs", jobs, batch_size, batch_bytes))

    def get(self, job_id: str) -> Job:
        return cast(Job, self._json("GET", f"/jobs/{segment(job_id)}"))

    def list(
        self, *, status: JobStatus | None = None, type: str | None = None, page_size: int | None = None
    ) -> Pager[Job]:
        """The tenant's jobs, newest first, `page_size` (1–200, default 50) a request."""
        return self._pager("/jobs", page_size, status=status, type=type)

    def cancel(self, job_id: str, *, idempotency_key: str | None = None) -> Job:
        """Cancel a job that has not started (ConflictError when running or finished)."""
        return cast(Job, self._json("POST", f"/jobs/{segment(job_id)}/cancel", idempotency_key=idempotency_key))

    def retry(self, job_id: str, *, idempotency_key: str | None = None) -> Job:
        """Run a dead or cancelled job again (ConflictError otherwise)."""
        return cast(Job, self._json("POST", f"/jobs/{segment(job_id)}/retry", idempotency_key=idempotency_key))

    def wait(self, job_id: str, *, timeout: float = 60, interval: float = 0.5) -> Job:
        """The job once it is succeeded, dead or cancelled (check `status`); TimeoutError
        after `timeout` seconds. A retrying job is waited for: it is not finished yet."""
        return poll(lambda: self.get(job_id), lambda job: job["status"] in FINISHED, timeout, interval, f"job {job_id}")


def batched(
    resource: Resource, path: str, field: str, items: Iterable[Any], size: int, max_bytes: int
) -> list[dict[str, Any]]:
    """Send `items` in bulk calls of at most `size` items and about `max_bytes`; the answers'
    `data` in order. An item larger than `max_bytes` goes alone (and may be a 413)."""
    answers: list[dict[str, Any]] = []
    batch: list[Any] = []
    used = 0
    for item in items:
        length = len(encode_json(item)) + 1  # and its comma
        if batch and (len(batch) == size or used + length > max_bytes):
            answers += resource._json("POST", path, {field: batch})["data"]
            batch, used = [], 0
        batch.append(item)
        used += length
    if batch:
        answers += resource._json("POST", path, {field: batch})["data"]
    return answers
