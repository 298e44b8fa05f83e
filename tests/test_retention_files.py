"""Retention of scans and their files: rows go first, their files after the commit through
tombstones; a run that dies between the two leaves tombstones the next run finishes; the orphan
sweep deletes stored files nothing names, and nothing younger than an upload's grace."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import FileTombstone, Scan
from app.models.base import utcnow
from app.services import retention
from app.services.scans import cleanup, storage
from tests.fakes.clamav import EICAR
from tests.helpers import files_in, fresh, scanned


def age(scan_id: str, days: float) -> None:
    db.session.execute(update(Scan).where(Scan.id == scan_id).values(created_at=utcnow() - timedelta(days=days)))
    db.session.commit()


def test_old_scans_go_with_their_files_and_the_run_counts_the_bytes(app, api):
    old_clean = scanned(api, "old.txt", b"old clean file")
    new_clean = scanned(api, "new.txt", b"new clean file")
    old_infected = scanned(api, "old-bad.txt", EICAR)
    new_infected = scanned(api, "new-bad.txt", EICAR)
    age(old_clean["id"], 91)
    age(old_infected["id"], 31)
    age(new_infected["id"], 29)

    dry = retention.run(dry_run=True, triggered_by="test")
    assert dry.counts["scans"] == 1 and dry.counts["scans_quarantined"] == 1
    assert len(files_in(app.config["SCAN_STORAGE_DIR"])) == 2

    record = retention.run(triggered_by="test", kinds=["scans", "scans_quarantined"])
    assert record.status == "completed", record.error
    assert record.counts["scans"] == 1 and record.counts["scans_quarantined"] == 1
    assert record.bytes_deleted == len(b"old clean file") + len(EICAR)
    assert {s.id for s in db.session.scalars(select(Scan))} == {new_clean["id"], new_infected["id"]}
    kept = {
        Path(p).name for p in files_in(app.config["SCAN_STORAGE_DIR"]) + files_in(app.config["SCAN_QUARANTINE_DIR"])
    }
    assert kept == {fresh(Scan, new_clean["id"]).storage_key[3:], fresh(Scan, new_infected["id"]).storage_key[3:]}
    assert db.session.scalar(select(func.count()).select_from(FileTombstone)) == 0


def test_a_run_that_dies_after_the_rows_commit_leaves_tombstones_the_next_run_finishes(app, api, monkeypatch):
    scan = scanned(api, "old.txt", b"old clean file")
    age(scan["id"], 91)
    key = fresh(Scan, scan["id"]).storage_key

    def crash() -> tuple[int, int]:
        raise RuntimeError("machine lost")

    monkeypatch.setattr(cleanup, "sweep_tombstones", crash)  # the process dies between commit and unlink
    failed = retention.run(triggered_by="test", kinds=["scans"])
    assert failed.status == "failed" and "machine lost" in failed.error
    assert fresh(Scan, scan["id"]) is None  # the row is gone…
    assert (Path(app.config["SCAN_STORAGE_DIR"]) / key).exists()  # …its file is not, but it is tombstoned
    assert db.session.scalar(select(FileTombstone.storage_key)) == key

    monkeypatch.undo()
    record = retention.run(triggered_by="test", kinds=["scans"])
    assert record.status == "completed" and record.bytes_deleted == len(b"old clean file")
    assert files_in(app.config["SCAN_STORAGE_DIR"]) == []
    assert db.session.scalar(select(func.count()).select_from(FileTombstone)) == 0


def test_the_orphan_sweep_deletes_only_old_files_nothing_names(app, api):
    named = scanned(api, "kept.txt", b"a file with its row")
    orphan = storage.save(io.BytesIO(b"written, then the upload died"), 1000)  # no row was ever committed
    young = storage.save(io.BytesIO(b"an upload still committing"), 1000)
    strange = Path(app.config["SCAN_STORAGE_DIR"]) / "zz" / "not-ours"
    strange.parent.mkdir()
    strange.write_bytes(b"put here by a human")
    hour_ago = time.time() - 2 * cleanup.ORPHAN_GRACE_SECONDS
    for key in (orphan.key, fresh(Scan, named["id"]).storage_key):
        os.utime(Path(app.config["SCAN_STORAGE_DIR"]) / key, (hour_ago, hour_ago))
    os.utime(strange, (hour_ago, hour_ago))

    assert cleanup.sweep_orphans() == (1, len(b"written, then the upload died"))
    left = {p.name for p in files_in(app.config["SCAN_STORAGE_DIR"])}
    assert left == {fresh(Scan, named["id"]).storage_key[3:], young.key[3:], "not-ours"}


@pytest.mark.parametrize("kind", ["scans", "scans_quarantined"])
def test_held_tenants_keep_their_scans_and_files(app, api, tenant, kind):
    scan = scanned(api, "old.txt", EICAR if kind == "scans_quarantined" else b"old clean file")
    age(scan["id"], 400)
    retention.hold(tenant.tenant_id, reason="litigation", actor="test")
    record = retention.run(triggered_by="test", kinds=[kind])
    assert record.counts[kind] == 0 and record.held[kind] == 1
    assert fresh(Scan, scan["id"]) is not None and fresh(Scan, scan["id"]).storage_key is not None


def test_one_held_scan_keeps_its_file_while_its_neighbours_go(app, api, tenant):
    held = scanned(api, "evidence.txt", b"dispute evidence")
    other = scanned(api, "other.txt", b"not evidence")
    age(held["id"], 200)
    age(other["id"], 200)
    retention.hold(tenant.tenant_id, reason="dispute 42", actor="test", scan_id=held["id"])
    record = retention.run(triggered_by="test", kinds=["scans"])
    assert record.counts["scans"] == 1 and record.held["scans"] == 1
    assert fresh(Scan, other["id"]) is None and fresh(Scan, held["id"]).storage_key is not None
    assert [p.name for p in files_in(app.config["SCAN_STORAGE_DIR"])] == [fresh(Scan, held["id"]).storage_key[3:]]
    with pytest.raises(retention.RetentionError):
        retention.hold(tenant.tenant_id, reason="x", actor="test", scan_id=held["id"], event_id="e")
