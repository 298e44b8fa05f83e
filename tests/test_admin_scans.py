"""Admin pages of the scans family: uploads with verdicts and filters, signature freshness, the
quarantine (delete; release by an admin with a reason, audited); viewers read only."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Scan
from app.services.scans import signatures
from tests.fakes.clamav import EICAR
from tests.helpers import fresh, post, scanned

pytestmark = pytest.mark.both_storages


def test_pages_list_verdicts_with_filters_and_show_signature_freshness(app, api, other_api, admin):
    clean = scanned(api, "notes.txt", b"hello")
    infected = scanned(api, "readme.txt", EICAR)
    foreign = scanned(other_api, "theirs.txt", b"other tenant")
    rejected = api.upload("/api/v1/scans", "x.jpg.php", b"<?php").get_json()
    signatures.check()

    page = admin.get("/admin/scans")
    assert page.status_code == 200 and 'href="/admin/scans"' in page.text
    for scan_id in (clean["id"], infected["id"], foreign["id"], rejected["scan_id"]):
        assert scan_id[:8] in page.text
    assert "Opsdeck.Test.EICAR" in page.text and "not accepted" in page.text
    assert "signature DB 1 of" in page.text and "ClamAV " in page.text
    only_infected = admin.get("/admin/scans?status=infected").text
    assert infected["id"][:8] in only_infected and clean["id"][:8] not in only_infected
    tenant_id = fresh(Scan, foreign["id"]).tenant_id
    only_theirs = admin.get(f"/admin/scans?tenant={tenant_id}&since=24h").text
    assert foreign["id"][:8] in only_theirs and clean["id"][:8] not in only_theirs
    quarantine = admin.get("/admin/scans/quarantine").text
    assert infected["id"][:8] in quarantine and clean["id"][:8] not in quarantine
    detail = admin.get(f"/admin/scans/{infected['id']}").text
    assert "Opsdeck.Test.EICAR" in detail and "in quarantine" in detail and "Release" in detail
    assert admin.get("/admin/scans/nope").status_code == 404
    assert "unknown verdict" in admin.get("/admin/scans?status=bogus").text


def test_release_needs_an_admin_and_a_reason_and_is_audited(app, api, admin, viewer, scan_storage):
    infected = scanned(api, "readme.txt", EICAR)
    url = f"/admin/scans/{infected['id']}/release"
    assert post(viewer, url, {"reason": "false positive"}).status_code == 403
    refused = post(admin, url, {"reason": "  "})
    assert refused.status_code == 302 and fresh(Scan, infected["id"]).location == "quarantine"
    assert "Say why" in admin.get(refused.headers["Location"]).text

    assert post(admin, url, {"reason": "vendor confirmed a false positive"}).status_code == 302
    row = fresh(Scan, infected["id"])
    assert row.status == "infected" and row.location == "files" and row.released_by == "user:admin@example.com"
    assert scan_storage.keys("quarantine") == [] and scan_storage.read("files", row.storage_key) == EICAR
    assert api.get(f"/api/v1/scans/{row.id}/file").data == EICAR  # released: servable
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "scan.released"))
    assert entry.target == row.id and entry.details["reason"] == "vendor confirmed a false positive"


def test_deleting_a_quarantined_file_removes_it_and_is_audited(app, api, admin, viewer, scan_storage):
    infected = scanned(api, "readme.txt", EICAR)
    url = f"/admin/scans/{infected['id']}/delete"
    assert post(viewer, url).status_code == 403 and len(scan_storage.keys("quarantine")) == 1
    assert post(admin, url).status_code == 302
    row = fresh(Scan, infected["id"])
    assert row.location == "none" and row.storage_key is None and row.status == "infected"
    assert scan_storage.keys("quarantine") == []
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "scan.quarantine_deleted"))
    assert entry.details["bytes"] == len(EICAR)
    again = post(admin, url)
    assert "Only a file in quarantine" in admin.get(again.headers["Location"]).text
