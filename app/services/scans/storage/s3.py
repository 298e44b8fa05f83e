"""Objects in an S3-compatible store (`s3://bucket/prefix`: AWS S3, MinIO, Ceph RGW, R2) through
boto3. An upload is spooled (in memory up to SPOOL_BYTES, then a temporary file) while it is
received and hashed, and sent when it is taken (`upload_fileobj`: one PUT, or a multipart upload
in MULTIPART_BYTES parts); a refused or over-size upload never reaches the store. Reads stream
the object's body; a quarantine move is a server-side copy, then a delete.

One client per process and settings: boto3's clients are thread-safe (its sessions are not, so
each client is made under a lock), and a forked child makes its own. Every call has a timeout
and retries on botocore's standard policy (3 attempts with backoff on throttling and 5xx)."""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from app.services.scans.storage.base import Entry, StorageError, check_key

#: Bytes of an upload held in memory before its spool moves to a temporary file.
SPOOL_BYTES = 4 * 1024 * 1024
#: Above this an upload is sent as a multipart upload, in parts of this size.
MULTIPART_BYTES = 16 * 1024 * 1024
#: Bytes a reader asks the body for at a time.
READ_BYTES = 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}

_clients: dict[tuple[str, str, str, str], Any] = {}
_lock = threading.Lock()


def _forget() -> None:
    """A forked child starts without its parent's clients (and its lock, had a thread held it)."""
    global _lock
    _lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget)


def client(endpoint: str, region: str, key_id: str, secret: str) -> Any:
    """The process's client for these settings (empty key_id: boto3's credential chain)."""
    settings = (endpoint, region, key_id, secret)
    found = _clients.get(settings)
    if found is not None:
        return found
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    with _lock:
        if settings not in _clients:
            config = Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"mode": "standard", "max_attempts": 3},
                max_pool_connections=64,
                # A private endpoint (MinIO, RGW) rarely has a DNS name per bucket.
                s3={"addressing_style": "path" if endpoint else "auto"},
            )
            credentials = {"aws_access_key_id": key_id, "aws_secret_access_key": secret} if key_id else {}
            _clients[settings] = boto3.session.Session().client(
                "s3", endpoint_url=endpoint or None, region_name=region, config=config, **credentials
            )
        return _clients[settings]


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """botocore's errors as ours: a missing object is FileNotFoundError, the rest StorageError."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        yield
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND:
            raise FileNotFoundError(f"{what}: no such object") from None
        raise StorageError(f"{what}: {code or err}") from err
    except BotoCoreError as err:
        raise StorageError(f"{what}: {err}") from err


class ObjectReader(io.RawIOBase):
    """An object's body read as a stream, in the pieces the caller asks for."""

    def __init__(self, body: Any, size: int, what: str) -> None:
        super().__init__()
        self.body, self.size, self.what = body, size, what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _errors(self.what):
            data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


class S3Store:
    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def begin(self, key: str) -> BinaryIO:
        check_key(key)
        return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # type: ignore[return-value]

    def commit(self, key: str, sink: BinaryIO) -> None:
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

        sink.seek(0)
        transfer = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES)
        with _errors(f"{self} {key}"):
            self.s3.upload_fileobj(sink, self.bucket, self.name(key), Config=transfer)

    def discard(self, key: str, sink: BinaryIO) -> None:
        sink.close()

    def open(self, key: str) -> BinaryIO:
        what = f"{self} {key}"
        with _errors(what):
            found = self.s3.get_object(Bucket=self.bucket, Key=self.name(key))
        return io.BufferedReader(ObjectReader(found["Body"], found["ContentLength"], what), READ_BYTES)

    def exists(self, key: str) -> bool:
        try:
            self._size(key)
        except FileNotFoundError:
            return False
        return True

    def _size(self, key: str) -> int:
        with _errors(f"{self} {key}"):
            return int(self.s3.head_object(Bucket=self.bucket, Key=self.name(key))["ContentLength"])

    def delete(self, key: str) -> int:
        try:
            size = self._size(key)
        except FileNotFoundError:
            return 0
        with _errors(f"{self} {key}"):
            self.s3.delete_object(Bucket=self.bucket, Key=self.name(key))
        return size

    def move(self, key: str, target: S3Store) -> None:
        """A server-side copy (the bytes do not pass through this process), then a delete."""
        source = {"Bucket": self.bucket, "Key": self.name(key)}
        try:
            with _errors(f"{self} {key}"):
                target.s3.copy_object(CopySource=source, Bucket=target.bucket, Key=target.name(key))
        except FileNotFoundError:
            if target.exists(key):  # a retried move
                return
            raise
        with _errors(f"{self} {key}"):
            self.s3.delete_object(**source)

    def listing(self) -> Iterator[Entry]:
        with _errors(str(self)):
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    yield Entry(item["Key"][len(self.prefix) :], int(item["Size"]), item["LastModified"].timestamp())
