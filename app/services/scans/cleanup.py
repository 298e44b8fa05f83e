"""Files whose rows are gone. Retention deletes scan rows and, in the same transaction, writes a
tombstone per file; `sweep_tombstones` deletes those files after the commit, then their
tombstones. `sweep_orphans` proves nothing is left behind: a stored file that no scan row and
no tombstone names, older than the grace an upload needs to commit its row, is deleted. Both
work on either backend (a directory, or a bucket's objects listed by prefix)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from sqlalchemy import delete, insert, literal, select

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.scans import FileTombstone, Scan
from app.services.scans import storage

#: Seconds a stored file may exist without its row (an upload commits its row after writing).
ORPHAN_GRACE_SECONDS = 3600
_BATCH = 500


def entomb(conn: Any, scan_ids: Any) -> None:
    """Retention's hook, run just before a batch of scan rows is deleted (same transaction)."""
    conn.execute(
        insert(FileTombstone).from_select(
            ["location", "storage_key", "created_at"],
            select(Scan.location, Scan.storage_key, literal(utcnow(), UTCDateTime())).where(
                Scan.id.in_(scan_ids), Scan.storage_key.is_not(None)
            ),
        )
    )


def sweep_tombstones() -> tuple[int, int]:
    """Delete every tombstoned file, then its tombstone. Returns (files, bytes)."""
    files = freed = 0
    while True:
        rows = db.session.execute(
            select(FileTombstone.id, FileTombstone.location, FileTombstone.storage_key)
            .order_by(FileTombstone.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return files, freed
        for row in rows:
            if storage.is_key(row.storage_key):  # anything else is not a file this code wrote
                freed += storage.delete(row.location, row.storage_key)
            files += 1
        db.session.execute(delete(FileTombstone).where(FileTombstone.id.in_([r.id for r in rows])))
        db.session.commit()


def sweep_orphans(grace_seconds: float = ORPHAN_GRACE_SECONDS) -> tuple[int, int]:
    """Delete stored files older than the grace (by their mtime, or an object's LastModified)
    that no scan row or tombstone names. Returns (files, bytes)."""
    cutoff = time.time() - grace_seconds
    files = freed = 0
    for location in ("files", "quarantine"):
        # A name this code never writes is left to a human.
        candidates = (e.key for e in storage.listing(location) if e.modified < cutoff and storage.is_key(e.key))
        while keys := list(itertools.islice(candidates, _BATCH)):
            named = set(db.session.scalars(select(Scan.storage_key).where(Scan.storage_key.in_(keys))))
            named |= set(
                db.session.scalars(select(FileTombstone.storage_key).where(FileTombstone.storage_key.in_(keys)))
            )
            db.session.rollback()
            for key in keys:
                if key not in named:
                    freed += storage.delete(location, key)
                    files += 1
    return files, freed
