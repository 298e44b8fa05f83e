"""One scan of one stored file through clamd, and what its verdict changes: clean stays
available, infected moves to quarantine, no verdict retries and ends as `error`. Nothing is
marked clean without clamd's `stream: OK`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from flask import current_app
from marshmallow import Schema, fields
from sqlalchemy import bindparam, func, select, update

from app.db.postgres import single_statement
from app.db.statements import core_execute
from app.extensions import db
from app.jobtypes import JobType, register
from app.models import Job
from app.models.base import utcnow
from app.models.scans import Scan
from app.services import jobs
from app.services.jobs import ledger
from app.services.scans import clamav, storage
from app.services.webhooks import events
from app.telemetry import metrics


class ScanPayload(Schema):
    scan_id = fields.String(required=True)
    #: Set on a rescan: the signature DB version that prompted it.
    rescan_db_version = fields.Integer(load_default=None, allow_none=True)


SCAN = register(JobType("scans.scan", family="scans", queue="scans", payload=ScanPayload))

log = logging.getLogger(__name__)


def max_attempts() -> int:
    return min(current_app.config["JOB_MAX_ATTEMPTS_LIMIT"], len(current_app.config["SCAN_RETRY_SCHEDULE"]) + 1)


def submit(scan_id: str, tenant_id: str, *, rescan_db_version: int | None = None) -> Job:
    """Queue a scan of a row's file (caller's transaction); rescans go at low priority. Returns
    the job."""
    payload: dict[str, Any] = {"scan_id": scan_id}
    if rescan_db_version is not None:
        payload["rescan_db_version"] = rescan_db_version
    return jobs.submit(
        SCAN.name,
        payload,
        tenant_id=tenant_id,
        max_attempts=max_attempts(),
        priority="low" if rescan_db_version is not None else "normal",
    )


def schedule(row: Scan, *, rescan_db_version: int | None = None) -> None:
    """Queue a scan of the row's file (caller's transaction); a first scan's job is the row's."""
    job = submit(row.id, row.tenant_id, rescan_db_version=rescan_db_version)
    if rescan_db_version is None:
        row.job_id = job.id


@dataclass
class Outcome:
    """What a run came to; the actor publishes `live` events and raises `retry` when set."""

    result: dict[str, Any] = field(default_factory=dict)
    retry: Exception | None = None
    live: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tenant_id: str | None = None


def summary(row: Any) -> dict[str, Any]:
    """What `scan.completed` carries (and the live feed shows), from a Scan or a row with the
    same names."""
    return {
        "id": row.id,
        "status": row.status,
        "name": row.display_name,
        "sha256": row.sha256,
        "size": row.size,
        "signature": row.signature,
        "engine_version": row.engine_version,
        "db_version": row.db_version,
        "error": row.last_error if row.status == "error" else None,
    }


#: What a run reads before the scan: one statement, outside any transaction (none is held,
#: and on SQLite no lock, while clamd reads the file).
_READ = select(Scan.status, Scan.job_id, Scan.storage_key, Scan.tenant_id, Scan.location).where(
    Scan.id == bindparam("scan_id")
)
#: The verdict in one statement, returning what `scan.completed` carries (`summary`).
_VERDICT = (
    update(Scan)
    .where(Scan.id == bindparam("scan_id"))
    .values(
        status=bindparam("new_status"),
        location=bindparam("new_location"),
        signature=bindparam("new_signature"),
        engine_version=bindparam("engine"),
        db_version=bindparam("db"),
        db_date=bindparam("db_day"),
        verdict_at=bindparam("now"),
        updated_at=bindparam("now"),
        attempts=Scan.attempts + 1,
        last_error=None,
        rescanned_at=func.coalesce(bindparam("rescanned", type_=Scan.rescanned_at.type), Scan.rescanned_at),
    )
    .returning(
        Scan.id,
        Scan.status,
        Scan.display_name,
        Scan.sha256,
        Scan.size,
        Scan.signature,
        Scan.engine_version,
        Scan.db_version,
        Scan.last_error,
    )
)


def run(scan_id: str, job: ledger.ClaimedJob) -> Outcome:
    """Scan the file once (the current attempt of `job`) and record the verdict: a read, the
    scan, then one transaction with the verdict's UPDATE and its `scan.completed` event."""
    with single_statement(db.engine) as conn:
        found = conn.execute(_READ, {"scan_id": scan_id}).first()
    rescan = job.payload.get("rescan_db_version")
    if found is None:
        return Outcome({"skipped": "no such scan"})
    if rescan is None and (found.status != "pending" or found.job_id != job.id):
        return Outcome({"skipped": f"scan already {found.status}"})
    if rescan is not None and (found.status != "clean" or found.location != "files"):
        return Outcome({"skipped": f"not rescanned: the scan is {found.status} in {found.location}"})
    key, tenant_id = found.storage_key or "", found.tenant_id

    config = current_app.config
    try:
        client = clamav.client(config["CLAMD_URL"], config["CLAMD_TIMEOUT"], config["CLAMD_FDPASS"])
        version = client.version()
        where, file = _open_where_it_is(key, rescan)
        with file:
            verdict = client.scan(file)
        if verdict.infected or where == "quarantine":  # before the row says so: a retry finds it where it went
            storage.move(key, where, "quarantine" if verdict.infected else "files")
    except clamav.ClamdError as err:
        return _no_verdict(scan_id, job, f"{err.kind}: {err}", rescan)
    except storage.StorageError as err:
        return _no_verdict(scan_id, job, f"storage: {err}", rescan)
    except (FileNotFoundError, ValueError) as err:
        return _no_verdict(scan_id, job, f"file missing: {err}", rescan, final=True)

    now = utcnow()
    row = core_execute(
        _VERDICT,
        {
            "scan_id": scan_id,
            "new_status": "infected" if verdict.infected else "clean",
            "new_location": "quarantine" if verdict.infected else "files",
            "new_signature": verdict.signature,
            "engine": version.engine,
            "db": version.db_version,
            "db_day": version.db_date,
            "now": now,
            "rescanned": now if rescan is not None else None,
        },
    ).first()
    if row is None:
        db.session.rollback()
        return Outcome({"skipped": "scan deleted while scanning"})
    outcome = Outcome(
        {"status": row.status, "signature": row.signature, "db_version": row.db_version}, tenant_id=tenant_id
    )
    if rescan is None or row.status != found.status:
        events.emit(tenant_id, "scan.completed", summary(row))
    if verdict.infected:
        outcome.live.append(("scan.infected", {**summary(row), "rescan": rescan is not None}))
    db.session.commit()
    metrics.scan_verdict(row.status, row.size or 0)
    return outcome


def _open_where_it_is(key: str, rescan: int | None) -> tuple[str, BinaryIO]:
    """The file to scan, and where it is: in the kept files, or in quarantine when a worker
    died between moving it there and recording the verdict (the retry scans it where it is)."""
    try:
        return "files", storage.open_file("files", key)
    except FileNotFoundError:
        if rescan is not None:
            raise
        return "quarantine", storage.open_file("quarantine", key)


def _no_verdict(
    scan_id: str, job: ledger.ClaimedJob, error: str, rescan: int | None, *, final: bool = False
) -> Outcome:
    """clamd gave no verdict: retry on SCAN_RETRY_SCHEDULE; after the last attempt a first scan
    becomes `error` (a rescan leaves the earlier clean verdict as it was)."""
    row = db.session.get(Scan, scan_id)
    if row is None:
        return Outcome({"skipped": "scan deleted while scanning"})
    now = utcnow()
    row.attempts, row.last_error, row.updated_at = row.attempts + 1, error, now
    outcome = Outcome(tenant_id=row.tenant_id)
    if final or job.attempts >= job.max_attempts:
        if rescan is None:
            row.status, row.verdict_at = "error", now
            events.emit(row.tenant_id, "scan.completed", summary(row))
            outcome.live.append(("scan.error", summary(row)))
            metrics.scan_verdict("error")
        outcome.retry = ledger.GiveUp(error)
    else:
        delay = ledger.retry_delay(job.attempts, {"retry_schedule": current_app.config["SCAN_RETRY_SCHEDULE"]})
        outcome.retry = ledger.RetryIn(delay, error)
    db.session.commit()
    log.warning("scan %s: no verdict (attempt %s of %s): %s", scan_id, job.attempts, job.max_attempts, error)
    return outcome


def scan_again(row: Scan) -> None:
    """An operator asks for another try at a scan that ended in `error` (caller's transaction)."""
    if row.status != "error" or row.location != "files":
        raise ValueError(f"only a scan in error with its file kept can be scanned again (this one is {row.status})")
    row.status, row.last_error, row.verdict_at, row.updated_at = "pending", None, None, utcnow()
    schedule(row)
