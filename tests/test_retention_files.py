"""Retention of scans and their files: rows go first, their files after the commit through
tombstones; a run that dies between the two leaves tombstones the next run finishes; the orphan
sweep deletes stored files nothing names, and nothing younger than an upload's grace."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import FileTombstone, Scan
from app.models.base import utcnow
from app.services import retention
from app.services.scans import cleanup, storage
from tests.fakes.clamav import EICAR
from tests.helpers import fresh, scanned

pytestmark = pytest.mark.both_storages


def age(scan_id: str, days: float) -> None:
    db.session.execute(update(Scan).where(Scan.id == scan_id).values(created_at=utcnow() - timedelta(days=days)))
    db.session.commit()


def test_old_scans_go_with_their_files_and_the_run_counts_the_bytes(app, api, scan_storage):
    old_clean = scanned(api, "old.txt", b"old clean file")
    new_clean = scanned(api, "new.txt", b"new clean file")
    old_infected = scanned(api, "old-bad.txt", EICAR)
    new_infected = scanned(api, "new-bad.txt", EICAR)
    age(old_clean["id"], 91)
    age(old_infected["id"], 31)
    age(new_infected["id"], 29)

    dry = retention.run(dry_run=True, triggered_by="test")
    assert dry.counts["scans"] == 1 and dry.counts["scans_quarantined"] == 1
    assert len(scan_storage.keys("files")) == 2

    record = retention.run(triggered_by="test", kinds=["scans", "scans_quarantined"])
    assert record.status == "completed", record.error
    assert record.counts["scans"] == 1 and record.counts["scans_quarantined"] == 1
    assert record.bytes_deleted == len(b"old clean file") + len(EICAR)
    assert {s.id for s in db.session.scalars(select(Scan))} == {new_clean["id"], new_infected["id"]}
    assert scan_storage.keys("files") == [fresh(Scan, new_clean["id"]).storage_key]
    assert scan_storage.keys("quarantine") == [fresh(Scan, new_infected["id"]).storage_key]
    assert db.session.scalar(select(func.count()).select_from(FileTombstone)) == 0


def test_a_run_that_dies_after_the_rows_commit_leaves_tombstones_the_next_run_finishes(
    app, api, scan_storage, monkeypatch
):
    scan = scanned(api, "old.txt", b"old clean file")
    age(scan["id"], 91)
    key = fresh(Scan, scan["id"]).storage_key

    def crash() -> tuple[int, int]:
        raise RuntimeError("machine lost")

    monkeypatch.setattr(cleanup, "sweep_tombstones", crash)  # the process dies between commit and unlink
    failed = retention.run(triggered_by="test", kinds=["scans"])
    assert failed.status == "failed" and "machine lost" in failed.error
    assert fresh(Scan, scan["id"]) is None  # the row is gone…
    assert scan_storage.keys("files") == [key]  # …its file is not, but it is tombstoned
    assert db.session.scalar(select(FileTombstone.storage_key)) == key

    monkeypatch.undo()
    record = retention.run(triggered_by="test", kinds=["scans"])
    assert record.status == "completed" and record.bytes_deleted == len(b"old clean file")
    assert scan_storage.keys("files") == []
    assert db.session.scalar(select(func.count()).select_from(FileTombstone)) == 0


def test_the_orphan_sweep_deletes_only_old_files_nothing_names(app, api, scan_storage):
    named = scanned(api, "kept.txt", b"a file with its row")
    storage.save(io.BytesIO(b"written, then the upload died"), 1000)  # no row was ever committed
    gone_from_quarantine = "ab/" + "0" * 32
    lost = b"its row and its tombstone are gone"
    scan_storage.put("quarantine", gone_from_quarantine, lost)
    scan_storage.put("files", "zz/not-ours", b"put here by a human")
    time.sleep(2.1)  # the grace below is 1 s; a store's LastModified counts whole seconds
    young = storage.save(io.BytesIO(b"an upload still committing"), 1000)

    assert cleanup.sweep_orphans(grace_seconds=1) == (2, len(b"written, then the upload died") + len(lost))
    assert scan_storage.keys("files") == sorted([fresh(Scan, named["id"]).storage_key, young.key, "zz/not-ours"])
    assert scan_storage.keys("quarantine") == []


@pytest.mark.parametrize("kind", ["scans", "scans_quarantined"])
def test_held_tenants_keep_their_scans_and_files(app, api, tenant, kind):
    scan = scanned(api, "old.txt", EICAR if kind == "scans_quarantined" else b"old clean file")
    age(scan["id"], 400)
    retention.hold(tenant.tenant_id, reason="litigation", actor="test")
    record = retention.run(triggered_by="test", kinds=[kind])
    assert record.counts[kind] == 0 and record.held[kind] == 1
    assert fresh(Scan, scan["id"]) is not None and fresh(Scan, scan["id"]).storage_key is not None


def test_one_held_scan_keeps_its_file_while_its_neighbours_go(app, api, scan_storage, tenant):
    held = scanned(api, "evidence.txt", b"dispute evidence")
    other = scanned(api, "other.txt", b"not evidence")
    age(held["id"], 200)
    age(other["id"], 200)
    retention.hold(tenant.tenant_id, reason="dispute 42", actor="test", scan_id=held["id"])
    record = retention.run(triggered_by="test", kinds=["scans"])
    assert record.counts["scans"] == 1 and record.held["scans"] == 1
    assert fresh(Scan, other["id"]) is None and fresh(Scan, held["id"]).storage_key is not None
    assert scan_storage.keys("files") == [fresh(Scan, held["id"]).storage_key]
    with pytest.raises(retention.RetentionError):
        retention.hold(tenant.tenant_id, reason="x", actor="test", scan_id=held["id"], event_id="e")
