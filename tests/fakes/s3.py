"""An S3-compatible store for the tests: moto's standalone server (`moto_server`, the S3 REST
protocol over HTTP) in a process of its own on a free loopback port, and what the tests ask of
either scan storage backend (`ScanStorage`: settings, the keys stored at a location, reading
and writing a stored file)."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.processes import BIN, _port_open, free_port, wait_until

ACCESS_KEY, SECRET_KEY, REGION = "opsdeck-test", "opsdeck-test-secret", "us-east-1"


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        exe = BIN / "moto_server"
        if not exe.exists():
            raise RuntimeError("moto_server is not installed (moto[server] is in requirements-dev.txt)")
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: _port_open(self.port), 20, what="moto_server")
        return self

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self) -> str:
        name = f"opsdeck-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@dataclass
class ScanStorage:
    """One test's scan storage on one backend: `file` (two directories) or `s3` (a fresh
    bucket with a prefix per location)."""

    backend: str
    root: Path
    server: MotoServer | None = None
    bucket: str = ""
    settings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, backend: str, root: Path, server: MotoServer | None = None) -> ScanStorage:
        if backend == "file":
            return cls(
                backend,
                root,
                settings={
                    "SCAN_STORAGE_URL": (root / "files").as_uri(),
                    "SCAN_QUARANTINE_URL": (root / "quarantine").as_uri(),
                },
            )
        assert server is not None
        bucket = server.new_bucket()
        return cls(
            backend,
            root,
            server,
            bucket,
            {
                "SCAN_STORAGE_URL": f"s3://{bucket}/files/",
                "SCAN_QUARANTINE_URL": f"s3://{bucket}/quarantine/",
                "S3_ENDPOINT_URL": server.url,
                "S3_REGION": REGION,
                "S3_ACCESS_KEY_ID": ACCESS_KEY,
                "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            },
        )

    def keys(self, location: str) -> list[str]:
        """Every name stored at `files` or `quarantine`, relative to it, sorted."""
        if self.backend == "file":
            base = self.root / location
            return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
        assert self.server is not None
        listed = self.server.client().list_objects_v2(Bucket=self.bucket, Prefix=f"{location}/")
        return sorted(item["Key"][len(location) + 1 :] for item in listed.get("Contents", ()))

    def read(self, location: str, key: str) -> bytes:
        if self.backend == "file":
            return (self.root / location / key).read_bytes()
        assert self.server is not None
        return self.server.client().get_object(Bucket=self.bucket, Key=f"{location}/{key}")["Body"].read()

    def put(self, location: str, key: str, data: bytes) -> None:
        """Store a file as something other than Opsdeck would (a human, another program)."""
        if self.backend == "file":
            path = self.root / location / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        assert self.server is not None
        self.server.client().put_object(Bucket=self.bucket, Key=f"{location}/{key}", Body=data)

    def pending_uploads(self) -> list[str]:
        """Multipart uploads begun and neither completed nor aborted (S3)."""
        if self.backend == "file" or self.server is None:
            return []
        listed = self.server.client().list_multipart_uploads(Bucket=self.bucket)
        return [item["Key"] for item in listed.get("Uploads", ())]
