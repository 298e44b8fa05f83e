"""Scan storage on both backends (a directory, a bucket on moto's S3 server): uploads stream in
and stop at the size limit leaving nothing, quarantine moves between locations, downloads
stream, an unreachable store is a retry and not a verdict, and bad settings refuse to start."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys

import pytest

from app.config import Config, ConfigError
from app.models import Scan
from app.services.jobs import ledger
from app.services.scans import storage
from tests.fakes.processes import ROOT, free_port
from tests.helpers import fresh, run_scan_job, scanned, upload

pytestmark = pytest.mark.both_storages


@pytest.mark.parametrize("app_config", [{"SCAN_MAX_BYTES": 6 * 1024 * 1024}])
def test_an_upload_over_the_limit_stops_while_streaming_and_leaves_nothing(app, api, scan_storage):
    # Past the spool's memory (4 MiB) and within the envelope's slack: refused by the parser's
    # count, not by Content-Length.
    big = os.urandom(6 * 1024 * 1024 + 1000)
    response = api.upload("/api/v1/scans", "big.txt", big)
    assert response.status_code == 413 and "6,291,456 bytes" in response.get_json()["detail"]
    assert storage.save(io.BytesIO(big), 6 * 1024 * 1024) is None
    assert scan_storage.keys("files") == [] and scan_storage.pending_uploads() == []
    assert upload(api, "fits.txt", b"a" * 1000)["size"] == 1000


def test_a_refused_upload_never_reaches_the_store(app, api, scan_storage):
    assert api.upload("/api/v1/scans", "x.jpg.php", b"<?php echo 1;").status_code == 422
    assert scan_storage.keys("files") == []


def test_quarantine_moves_a_file_between_locations_and_a_retried_move_is_fine(app, scan_storage):
    stored = storage.save(io.BytesIO(b"moved about"), 1000)
    assert stored is not None and scan_storage.keys("files") == [stored.key]
    storage.move(stored.key, "files", "quarantine")
    assert scan_storage.keys("files") == [] and scan_storage.keys("quarantine") == [stored.key]
    assert scan_storage.read("quarantine", stored.key) == b"moved about"
    storage.move(stored.key, "files", "quarantine")  # the worker died after the move: its retry moves again
    assert scan_storage.keys("quarantine") == [stored.key]
    storage.move(stored.key, "quarantine", "files")
    assert scan_storage.keys("files") == [stored.key] and scan_storage.keys("quarantine") == []
    with pytest.raises(FileNotFoundError):
        storage.move("ab/" + "0" * 32, "files", "quarantine")
    assert storage.delete("files", stored.key) == len(b"moved about") and storage.delete("files", stored.key) == 0


class Counted(io.RawIOBase):
    """A stored file that counts what was read from it."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.taken = inner, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        count = self.inner.readinto(buffer)
        self.taken += count
        return count

    def close(self):
        self.inner.close()
        super().close()


def test_a_download_streams_in_pieces(app, api, monkeypatch):
    scan = scanned(api, "ledger.csv", (b"0123456789abcdef" * 65536) * 3)
    assert scan["status"] == "clean"
    opened = []
    real_open = storage.open_file
    monkeypatch.setattr(storage, "open_file", lambda *args: opened.append(Counted(real_open(*args))) or opened[-1])
    response = api.get(f"/api/v1/scans/{scan['id']}/file")
    assert response.status_code == 200 and int(response.headers["Content-Length"]) == scan["size"]
    pieces = iter(response.response)
    first = next(pieces)
    assert 0 < opened[0].taken <= 1024 * 1024  # the first piece goes out before the rest is read
    assert len(first) + sum(map(len, pieces)) == scan["size"] == opened[0].taken
    response.close()
    assert opened[0].closed


@pytest.mark.parametrize("scan_storage", ["s3"], indirect=True)  # a directory always answers
@pytest.mark.parametrize("app_config", [{"SCAN_RETRY_SCHEDULE": [1]}])
def test_a_store_that_does_not_answer_is_a_retry_not_a_verdict(app, api, scan_storage):
    created = upload(api, "notes.txt", b"hello")
    app.config["S3_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    first = run_scan_job(fresh(Scan, created["id"]).job_id)
    assert isinstance(first.retry, ledger.RetryIn) and "storage:" in str(first.retry)
    assert fresh(Scan, created["id"]).status == "pending"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SCAN_STORAGE_URL", "/srv/opsdeck/files", "file:///absolute/path or s3://"),
        ("SCAN_STORAGE_URL", "file://srv/files", "absolute path"),
        ("SCAN_STORAGE_URL", "ftp://files.example/up", "file:///absolute/path or s3://"),
        ("SCAN_STORAGE_URL", "s3://Uploads_2026/files", "not a bucket name"),
        ("SCAN_STORAGE_URL", "s3://ab/files", "not a bucket name"),
        ("SCAN_QUARANTINE_URL", "s3://opsdeck-uploads/quarantine", "same kind of URL as SCAN_STORAGE_URL (file://)"),
        ("SCAN_QUARANTINE_URL", "file:///var/lib/opsdeck/files/quarantine", "inside"),
        ("S3_ENDPOINT_URL", "minio:9000", "http:// or https://"),
    ],
)
def test_bad_storage_settings_refuse_to_start_naming_the_variable(name, value, says):
    environ = {"SCAN_STORAGE_URL": "file:///var/lib/opsdeck/files", name: value}
    with pytest.raises(ConfigError, match=rf"^{name}=") as refused:
        Config(environ)
    assert says in str(refused.value)


def test_storage_settings_are_read_and_normalised():
    config = Config(
        {"SCAN_STORAGE_URL": "s3://opsdeck-uploads/files", "SCAN_QUARANTINE_URL": "s3://opsdeck-uploads/q/"}
    )
    assert (config.SCAN_STORAGE_URL, config.SCAN_QUARANTINE_URL) == (
        "s3://opsdeck-uploads/files/",
        "s3://opsdeck-uploads/q/",
    )
    default = Config({})
    assert default.SCAN_STORAGE_URL.startswith("file:///") and default.SCAN_STORAGE_URL.endswith("/var/files")


def test_a_process_with_a_bad_storage_url_does_not_start():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCAN_", "S3_"))}
    done = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env={**env, "SCAN_STORAGE_URL": "var/files"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "SCAN_STORAGE_URL='var/files'" in done.stderr


@pytest.mark.parametrize("scan_storage", ["file"], indirect=True)
def test_local_files_are_the_owners_only(app, scan_storage, tmp_path):
    stored = storage.save(io.BytesIO(b"private"), 1000)
    assert stored is not None
    path = tmp_path / "files" / stored.key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
