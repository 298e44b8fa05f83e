"""Signature freshness and rescans. The scheduler asks clamd for its VERSION every
SCAN_SIGNATURE_CHECK_SECONDS; the first time a signature DB version is seen it is recorded
(once, whichever scheduler gets there first) and a `scans.rescan` job queues a low-priority
rescan of every clean file scanned with an older DB whose verdict is younger than
SCAN_RESCAN_DAYS."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

from flask import current_app
from marshmallow import Schema, fields
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db, queue
from app.jobtypes import JobType, register
from app.models.base import utcnow
from app.models.scans import Scan, SignatureVersion
from app.services import jobs
from app.services.scans import clamav, verdicts


class RescanPayload(Schema):
    db_version = fields.Integer(required=True)


RESCAN = register(JobType("scans.rescan", family="scans", queue="scans", payload=RescanPayload))

log = logging.getLogger(__name__)
#: clamd's last VERSION answer, for pages and /readyz (kept in Redis, refreshed by the checks).
_LATEST_KEY = "opsdeck:scans:clamd-version"
#: Rescans queued per transaction, and the time one rescan job spends queueing before it
#: hands the rest to a follow-up job.
RESCAN_BATCH = 500
RESCAN_BUDGET_SECONDS = 20.0


def check() -> dict[str, Any]:
    """Ask clamd for its version; a new signature DB version queues the rescans."""
    config = current_app.config
    try:
        version = clamav.client(config["CLAMD_URL"], config["CLAMD_TIMEOUT"]).version()
    except clamav.ClamdError as err:
        log.warning("clamd version check failed: %s", err)
        return {"error": str(err)}
    with contextlib.suppress(Exception):  # Redis down: pages show the last recorded version instead
        queue.redis.set(_LATEST_KEY, version.text, ex=24 * 3600)
    if version.db_version is None or _known(version.db_version):
        return {"version": version.text}
    db.session.add(
        SignatureVersion(
            db_version=version.db_version,
            engine_version=version.engine,
            db_date=version.db_date,
            first_seen_at=utcnow(),
        )
    )
    # Whatever was scanned with an older DB is rescanned (on a fresh install: nothing). The
    # scans' own versions decide, not the versions recorded here: the workers may have scanned
    # with a DB this check never saw.
    jobs.submit(RESCAN.name, {"db_version": version.db_version}, priority="low")
    try:
        db.session.commit()
    except IntegrityError:  # another scheduler recorded it first
        db.session.rollback()
        return {"version": version.text}
    log.info("clamd signature DB version %s (%s) recorded", version.db_version, version.db_date)
    return {"version": version.text, "new": True}


def _known(db_version: int) -> bool:
    found = db.session.get(SignatureVersion, db_version) is not None
    db.session.rollback()
    return found


def queue_rescans(db_version: int) -> dict[str, Any]:
    """Queue a scan job for each clean file scanned with an older DB version within
    SCAN_RESCAN_DAYS, RESCAN_BATCH per transaction. Rows are marked as they are queued, so a
    rerun of this job (or its follow-up) continues where it stopped."""
    cutoff = utcnow() - timedelta(days=current_app.config["SCAN_RESCAN_DAYS"])
    started, queued = time.monotonic(), 0
    while True:
        rows = db.session.scalars(
            select(Scan)
            .where(
                Scan.status == "clean",
                Scan.location == "files",
                Scan.verdict_at >= cutoff,
                (Scan.db_version.is_(None)) | (Scan.db_version < db_version),
                (Scan.rescan_db_version.is_(None)) | (Scan.rescan_db_version < db_version),
            )
            .order_by(Scan.verdict_at)
            .limit(RESCAN_BATCH)
        ).all()
        for row in rows:
            row.rescan_db_version = db_version
            verdicts.schedule(row, rescan_db_version=db_version)
        queued += len(rows)
        db.session.execute(
            update(SignatureVersion)
            .where(SignatureVersion.db_version == db_version)
            .values(rescans_queued=SignatureVersion.rescans_queued + len(rows))
        )
        db.session.commit()
        if len(rows) < RESCAN_BATCH:
            return {"queued": queued, "db_version": db_version}
        if time.monotonic() - started > RESCAN_BUDGET_SECONDS:
            jobs.submit(RESCAN.name, {"db_version": db_version}, priority="low")
            db.session.commit()
            return {"queued": queued, "db_version": db_version, "continued": True}


def freshness() -> dict[str, Any]:
    """What the admin pages show: clamd's current version (from the last check) and the newest
    signature DB version recorded, with when it was first seen."""
    try:
        latest = queue.redis.get(_LATEST_KEY)
    except Exception:
        latest = None
    newest = db.session.scalars(select(SignatureVersion).order_by(SignatureVersion.db_version.desc()).limit(1)).first()
    return {
        "clamd": latest.decode() if latest else None,
        "db_version": newest.db_version if newest else None,
        "db_date": newest.db_date if newest else None,
        "first_seen_at": newest.first_seen_at if newest else None,
        "rescans_queued": newest.rescans_queued if newest else 0,
    }
