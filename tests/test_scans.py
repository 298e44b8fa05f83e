"""Uploads through the signed API, pre-checks, and verdicts from a real clamd (the session's,
or one of the test's own when it must be stopped, limited or given new signatures)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select

from app.extensions import db
from app.models import Event, Job, Scan
from app.services.jobs import ledger
from app.services.scans import clamav, signatures, verdicts
from tests.fakes.clamav import EICAR, ClamdServer
from tests.helpers import fresh, run_scan_job, scanned, upload
from tests.samples import ELF, MACHO, PDF, PE, PNG, SCRIPT, eicar_zip, encrypted_zip, nested_eicar_zip, zipped

pytestmark = pytest.mark.both_storages


@pytest.fixture
def own_clamd() -> Iterator[ClamdServer]:
    server = ClamdServer().start()
    yield server
    server.close()


def test_a_clean_text_file_is_clean_with_the_clamd_version_and_can_be_downloaded(app, api):
    created = upload(api, "notes.txt", b"hello, world\n")
    assert created["status"] == "pending" and created["size"] == 13 and len(created["sha256"]) == 64
    scan = scanned(api, "notes.txt", b"hello, world\n")
    assert scan["status"] == "clean" and scan["signature"] is None
    assert scan["engine_version"] and scan["db_version"] == 1 and scan["db_date"]
    assert scan["attempts"] == 1 and scan["verdict_at"] and scan["rescanned_at"] is None  # a first scan
    download = api.get(f"/api/v1/scans/{scan['id']}/file")
    assert download.status_code == 200 and download.data == b"hello, world\n"
    assert download.headers["Content-Disposition"].startswith("attachment")
    event = db.session.scalar(select(Event).where(Event.type == "scan.completed"))
    assert event is not None and '"status":"clean"' in event.body


def test_a_pdf_and_a_multi_chunk_file_are_clean(app, api):
    assert scanned(api, "contract.pdf", PDF)["status"] == "clean"
    big = (b"0123456789abcdef" * 65536) * 5  # 5 MiB: several INSTREAM chunks
    scan = scanned(api, "ledger.csv", big)
    assert scan["status"] == "clean" and scan["size"] == len(big)


@pytest.mark.parametrize(
    ("name", "content", "signature"),
    [
        ("readme.txt", EICAR, "Opsdeck.Test.EICAR"),
        ("archive.zip", eicar_zip(), "Opsdeck.Test.EICAR"),
        ("nested.zip", nested_eicar_zip(), "Opsdeck.Test.EICAR"),
        ("secret.zip", encrypted_zip("report.txt", b"quarterly numbers"), "Heuristics.Encrypted"),
    ],
)
def test_infected_files_are_quarantined_and_never_served(app, api, scan_storage, name, content, signature):
    scan = scanned(api, name, content)
    assert scan["status"] == "infected" and signature in scan["signature"]
    assert scan["location"] == "quarantine"
    row = fresh(Scan, scan["id"])
    assert scan_storage.keys("files") == []
    assert scan_storage.keys("quarantine") == [row.storage_key]
    assert api.get(f"/api/v1/scans/{scan['id']}/file").status_code == 409


def test_a_zip_renamed_jpg_is_rejected_at_once_and_nothing_is_kept(app, api, scan_storage):
    response = api.upload("/api/v1/scans", "holiday.jpg", eicar_zip())
    problem = response.get_json()
    assert response.status_code == 422 and "application/zip" in problem["detail"] and ".jpg" in problem["detail"]
    row = fresh(Scan, problem["scan_id"])
    assert row.status == "rejected" and row.storage_key is None and row.job_id is None
    assert scan_storage.keys("files") == []
    assert api.get(f"/api/v1/scans/{row.id}").get_json()["status"] == "rejected"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("x.jpg.php", b"<?php echo 1;", "not accepted"),
        ("report.txt%00.jpg", b"hello", "NUL"),
        ("report.txt.", b"hello", "ends in a dot"),
        ("report.txt ", b"hello", "ends in a dot or a space"),
        ("noextension", b"hello", "no extension"),
        ("setup.txt", PE, "Windows executable"),
        ("tool.txt", ELF, "ELF"),
        ("app.txt", MACHO, "Mach-O"),
        ("install.txt", SCRIPT, "script"),
        ("scan.pdf", PNG, "does not match the .pdf extension"),
        ("empty.txt", b"", "does not match"),
    ],
)
def test_each_pre_check_refuses_with_its_reason(app, api, name, content, reason):
    response = api.upload("/api/v1/scans", name, content)
    assert response.status_code == 422, response.get_json()
    assert reason in response.get_json()["detail"]
    assert db.session.scalar(select(Job).where(Job.type == "scans.scan")) is None


def test_a_traversal_name_is_only_display_text(app, api, scan_storage, tmp_path):
    refused = api.upload("/api/v1/scans", "../../etc/passwd", b"root:x:0:0")
    assert refused.status_code == 422 and fresh(Scan, refused.get_json()["scan_id"]).display_name == "passwd"
    created = upload(api, "../../../evil.txt", b"harmless")
    row = fresh(Scan, created["id"])
    assert row.display_name == "evil.txt" and created["name"] == "evil.txt"
    assert (
        scan_storage.keys("files") == [row.storage_key] and scan_storage.read("files", row.storage_key) == b"harmless"
    )
    assert not list(tmp_path.parent.rglob("evil.txt"))


@pytest.mark.parametrize("app_config", [{"SCAN_MAX_BYTES": 1000}])
def test_over_size_is_413_before_any_scan(app, api, scan_storage):
    response = api.upload("/api/v1/scans", "big.txt", b"a" * 1001)
    assert response.status_code == 413 and "1,000 bytes" in response.get_json()["detail"]
    huge = api.upload("/api/v1/scans", "huge.txt", b"a" * 200_000)  # refused on Content-Length, unread
    assert huge.status_code == 413
    assert db.session.scalar(select(Scan)) is None and scan_storage.keys("files") == []
    assert upload(api, "fits.txt", b"a" * 1000)["size"] == 1000


@pytest.mark.parametrize("app_config", [{"SCAN_RETRY_SCHEDULE": [1, 1]}])
def test_with_clamd_stopped_a_scan_retries_then_ends_in_error_never_clean(app, api, own_clamd):
    app.config["CLAMD_URL"] = own_clamd.url
    own_clamd.stop()
    created = upload(api, "notes.txt", b"hello")
    job_id = fresh(Scan, created["id"]).job_id
    outcomes = [run_scan_job(job_id) for _ in range(3)]
    assert [type(o.retry).__name__ for o in outcomes] == ["RetryIn", "RetryIn", "GiveUp"]
    scan = api.get(f"/api/v1/scans/{created['id']}").get_json()
    assert scan["status"] == "error" and "unavailable" in scan["last_error"] and scan["attempts"] == 3
    assert fresh(Job, job_id).status == "dead"
    assert api.get(f"/api/v1/scans/{created['id']}/file").status_code == 409


@pytest.mark.parametrize("app_config", [{"SCAN_RETRY_SCHEDULE": [1], "CLAMD_FDPASS": False}])
def test_clamd_size_limit_reply_is_an_error_not_a_verdict(app, api):
    small = ClamdServer(stream_max_bytes=1024 * 1024).start()
    try:
        app.config["CLAMD_URL"] = small.url
        created = upload(api, "big.txt", b"x" * (3 * 1024 * 1024))
        job_id = fresh(Scan, created["id"]).job_id
        first = run_scan_job(job_id)
        assert isinstance(first.retry, ledger.RetryIn) and "size_limit" in str(first.retry)
        run_scan_job(job_id)
        assert fresh(Scan, created["id"]).status == "error"
    finally:
        small.close()


def test_new_signatures_rescan_recent_clean_files(app, api, own_clamd):
    app.config["CLAMD_URL"] = own_clamd.url
    later_bad = b"this file was thought harmless\n"
    suspect = scanned(api, "suspect.txt", later_bad)
    innocent = scanned(api, "innocent.txt", b"still harmless\n")
    assert suspect["status"] == innocent["status"] == "clean"
    assert signatures.check()["new"] is True  # the first version seen: nothing was scanned with an older one
    (first,) = db.session.scalars(select(Job).where(Job.type == "scans.rescan")).all()
    assert run_scan_job(first.id) == {"queued": 0, "db_version": own_clamd.version}

    new_version = own_clamd.update_signatures({"Opsdeck.Test.Later": later_bad})
    assert signatures.check()["new"] is True
    assert signatures.check() == {"version": clamav.client(own_clamd.url, 5).version().text}  # once only
    rescan_job = db.session.scalar(select(Job).where(Job.type == "scans.rescan", Job.status == "pending"))
    assert run_scan_job(rescan_job.id) == {"queued": 2, "db_version": new_version}
    for job in db.session.scalars(select(Job).where(Job.type == "scans.scan", Job.status == "pending")).all():
        assert job.priority == "low"
        run_scan_job(job.id)
    assert fresh(Scan, suspect["id"]).status == "infected" and fresh(Scan, suspect["id"]).location == "quarantine"
    kept = fresh(Scan, innocent["id"])
    assert kept.status == "clean" and kept.db_version == new_version and kept.rescanned_at is not None
    completed = db.session.scalars(select(Event).where(Event.type == "scan.completed")).all()
    assert len(completed) == 3  # two first verdicts, and the verdict that changed


def test_a_scan_is_only_the_owners_and_a_second_run_changes_nothing(app, api, other_api):
    scan = scanned(api, "notes.txt", b"hello")
    assert other_api.get(f"/api/v1/scans/{scan['id']}").status_code == 404
    assert other_api.get(f"/api/v1/scans/{scan['id']}/file").status_code == 404
    job = ledger.ClaimedJob(
        id=fresh(Scan, scan["id"]).job_id,
        type="scans.scan",
        tenant_id=None,
        payload={"scan_id": scan["id"]},
        attempts=2,
        max_attempts=5,
    )
    assert verdicts.run(scan["id"], job).result == {"skipped": "scan already clean"}
    listed = api.get("/api/v1/scans?status=clean").get_json()["data"]
    assert [s["id"] for s in listed] == [scan["id"]]


def test_a_scan_deleted_while_clamd_reads_it_is_skipped_and_leaves_nothing(app, api, monkeypatch):
    # Retention (or an operator) removes the row while the worker holds no transaction: the
    # verdict's UPDATE finds nothing, and no event is recorded for a scan that is gone.
    created = upload(api, "gone.txt", b"soon deleted\n")
    job_id = fresh(Scan, created["id"]).job_id
    real_client = clamav.client

    def client_that_deletes(*args, **kwargs):
        real = real_client(*args, **kwargs)
        scan = real.scan

        def scan_then_delete(file):
            verdict = scan(file)
            db.session.execute(delete(Scan).where(Scan.id == created["id"]))
            db.session.commit()
            return verdict

        real.scan = scan_then_delete
        return real

    monkeypatch.setattr(clamav, "client", client_that_deletes)
    assert run_scan_job(job_id).result == {"skipped": "scan deleted while scanning"}
    assert fresh(Scan, created["id"]) is None
    assert db.session.scalar(select(Event).where(Event.type == "scan.completed")) is None


def test_an_idempotent_upload_is_stored_once(app, api, scan_storage):
    first = api.upload("/api/v1/scans", "a.txt", b"same", headers={"Idempotency-Key": "up-1"})
    again = api.upload("/api/v1/scans", "a.txt", b"same", headers={"Idempotency-Key": "up-1"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json()["id"] == first.get_json()["id"]
    assert len(scan_storage.keys("files")) == 1


def test_an_upload_reusing_its_key_with_other_bytes_is_refused(app, api, scan_storage):
    # The key compares the file by the hash storage took as it wrote it, not by the envelope.
    assert api.upload("/api/v1/scans", "a.txt", b"first", headers={"Idempotency-Key": "up-2"}).status_code == 202
    other = api.upload("/api/v1/scans", "a.txt", b"other", headers={"Idempotency-Key": "up-2"})
    assert other.status_code == 422 and other.get_json()["type"].endswith("idempotency-key-reused")
    assert len(scan_storage.keys("files")) == 1


def test_version_replies_are_parsed():
    assert clamav.parse_version("ClamAV 1.4.6/27480/Tue Dec  1 09:24:02 2026") == clamav.Version(
        "1.4.6", 27480, "Tue Dec  1 09:24:02 2026"
    )
    assert clamav.parse_version("ClamAV 1.4.6") == clamav.Version("1.4.6", None, None)
    with pytest.raises(clamav.ClamdError):
        clamav.parse_version("hello")
    assert clamav.parse_reply("stream: OK") == clamav.Verdict(False)
    assert clamav.parse_reply("stream: Eicar-Test-Signature FOUND") == clamav.Verdict(True, "Eicar-Test-Signature")
    for odd in ("", "stream: OK FOUND?", "INSTREAM size limit exceeded. ERROR", "stream: ok"):
        with pytest.raises(clamav.ClamdError):
            clamav.parse_reply(odd)


def test_nested_zip_content_is_still_a_zip(app, api):
    scan = scanned(api, "bundle.zip", zipped("a.txt", b"fine"))
    assert scan["status"] == "clean"


def test_a_scan_whose_worker_died_after_quarantining_ends_infected(app, api):
    """The worker moved the infected file to quarantine, then died before recording the verdict:
    the retry scans it where it is and records `infected`, not `file missing`."""
    from app.services.scans import storage

    created = upload(api, "readme.txt", EICAR)
    row = fresh(Scan, created["id"])
    storage.move(row.storage_key, "files", "quarantine")
    run_scan_job(row.job_id)  # the attempt after the lease expired
    row = fresh(Scan, created["id"])
    assert (row.status, row.location) == ("infected", "quarantine"), (row.status, row.location, row.last_error)
