"""/api/v1/jobs: submit, list, read, cancel, retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, g, jsonify, request, url_for
from marshmallow import EXCLUDE, Schema, fields, validate

from app import jobtypes
from app.api import batches, bp
from app.api.errors import ApiProblem, validation_failed
from app.api.grouped import Pending, grouped_write
from app.api.openapi import CURSOR, doc
from app.api.validation import Float
from app.api.writes import json_body, write
from app.db.statements import Written, full_row
from app.models import Job
from app.models.jobs import PRIORITIES, JobStatus
from app.services import jobs


class JobSchema(Schema):
    """A job: loaded from a submission, dumped in every response."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String(dump_only=True)
    type = fields.String(required=True, validate=validate.Length(min=1, max=100), metadata={"example": "system.echo"})
    payload = fields.Dict(load_default=dict, metadata={"example": {"message": "hello"}})
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    delay_seconds = Float(load_only=True, load_default=0, validate=validate.Range(min=0, max=30 * 86400))
    max_attempts = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1))
    idempotency_key = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=255),
        metadata={
            "description": "The platform's own key for the job, unique per tenant: a job submitted "
            "again with it is answered with the first (while the first is kept)."
        },
    )
    queue = fields.String(dump_only=True)
    status = fields.String(dump_only=True)
    result = fields.Raw(dump_only=True, allow_none=True)
    error = fields.String(dump_only=True, allow_none=True)
    attempts = fields.Integer(dump_only=True)
    next_attempt_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    started_at = fields.DateTime(dump_only=True, allow_none=True)
    finished_at = fields.DateTime(dump_only=True, allow_none=True)


class JobListArgs(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf([s.value for s in JobStatus]))
    type = fields.String(load_default=None)
    text = fields.String(
        load_default=None,
        validate=validate.Length(min=jobs.TEXT_MIN, max=200),
        metadata={"description": "text in the payload (as JSON) or the last error, any case"},
    )
    cursor = fields.String(load_default=None, metadata=CURSOR)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


job_schema = JobSchema()


def _load_job(job_id: str) -> Job:
    job = jobs.get_for_tenant(job_id, g.tenant_id)
    if job is None:
        raise ApiProblem(404, "Not found", "No such job.", type="not-found")
    return job


def _dump(job: Job, status: int) -> Response:
    return _answer(job_schema.dump(job), status)


def _answer(dumped: dict[str, Any], status: int) -> Response:
    response = jsonify(dumped)
    response.status_code = status
    response.headers["Location"] = url_for("api.get_job", job_id=dumped["id"])
    return response


class JobBatchSchema(Schema):
    jobs = fields.List(
        fields.Nested(JobSchema), required=True, metadata={"description": "1 to API_BATCH_MAX_ITEMS jobs"}
    )


class SubmittedJobSchema(JobSchema):
    replayed = fields.Boolean(dump_only=True, metadata={"description": "its idempotency_key named a job already"})


class JobBatchAnswerSchema(Schema):
    data = fields.List(fields.Nested(SubmittedJobSchema), dump_only=True)


def _row(data: dict[str, Any]) -> dict[str, Any]:
    """A validated submission's job row (raises jobs.JobInputError)."""
    return jobs.new_row(
        data["type"],
        data["payload"],
        tenant_id=g.tenant_id,
        priority=data["priority"],
        delay_seconds=data["delay_seconds"],
        max_attempts=data["max_attempts"],
        idempotency_key=data["idempotency_key"],
        public_only=True,
    )


@bp.post("/jobs")
@doc(status=202, also=(200,), body=JobSchema, response=JobSchema, problems=(400, 413, 415, 422))
@grouped_write
def create_job() -> Pending:
    """Submit a job (200 with the first job for a known idempotency_key)"""
    data = job_schema.load(json_body())
    try:
        row = _row(data)
    except jobs.JobInputError as err:
        raise validation_failed(err.messages) from None
    return Pending(jobs.submit_many, [row], _answer_one)


def _answer_one(written: list[Written[Job]]) -> Response:
    return _answer(_dump_written(written[0]), 200 if written[0].replayed else 202)


@bp.post("/jobs/batch")
@doc(status=202, body=JobBatchSchema, response=JobBatchAnswerSchema, problems=(400, 413, 415, 422))
@grouped_write
def create_jobs() -> Pending:
    """Submit 1 to API_BATCH_MAX_ITEMS jobs in one transaction"""
    _, rows = batches.load_each("jobs", job_schema, _row, (jobs.JobInputError,))
    return Pending(jobs.submit_many, rows, _answer_many)


def _answer_many(written: list[Written[Job]]) -> Response:
    return batches.answer([_dump_written(w) for w in written], [w.replayed for w in written])


def _dump_written(written: Written[Job]) -> dict[str, Any]:
    """A job from `jobs.submit_many`: its row as inserted, or the job that held its key."""
    return job_schema.dump(full_row(Job, written.value) if isinstance(written.value, dict) else written.value)


@bp.get("/jobs")
@doc(response=JobSchema, many=True, query=JobListArgs, problems=(422,))
def list_jobs() -> Response:
    """List jobs, newest first (cursor pagination)"""
    args = JobListArgs().load(request.args.to_dict())
    try:
        flt = jobs.JobFilter(tenant_id=g.tenant_id, status=args["status"], job_type=args["type"], text=args["text"])
        page = jobs.list_jobs(flt, cursor=args["cursor"], limit=args["limit"])
    except jobs.JobInputError as err:
        raise validation_failed(err.messages) from None
    return jsonify({"data": job_schema.dump(page.items, many=True), "next_cursor": page.next_cursor})


@bp.get("/jobs/<item:job_id>")
@doc(response=JobSchema, problems=(404,))
def get_job(job_id: str) -> Response:
    """Read a job"""
    return jsonify(job_schema.dump(_load_job(job_id)))


def _transition(job_id: str, action: Callable[..., Job], status: int) -> Response:
    job = _load_job(job_id)
    job_type = jobtypes.get(job.type)
    if job_type is None or not job_type.public:
        raise ApiProblem(
            409, "Conflict", f"{job.type} jobs are managed by Opsdeck; use their own API.", type="job-managed"
        )
    try:
        action(job, actor=f"key:{g.api_key_id}")
    except jobs.JobStateError as err:
        raise ApiProblem(409, "Conflict", str(err), type="job-state") from None
    return _dump(job, status)


@bp.post("/jobs/<job_id>/cancel")
@doc(response=JobSchema, problems=(404, 409))
@write
def cancel_job(job_id: str) -> Response:
    """Cancel a job that has not started"""
    return _transition(job_id, jobs.cancel, 200)


@bp.post("/jobs/<job_id>/retry")
@doc(status=202, response=JobSchema, problems=(404, 409))
@write
def retry_job(job_id: str) -> Response:
    """Run a dead or cancelled job again"""
    return _transition(job_id, jobs.retry, 202)
