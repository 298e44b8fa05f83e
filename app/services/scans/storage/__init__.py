"""Where uploaded files live: SCAN_STORAGE_URL (kept) or SCAN_QUARANTINE_URL (infected), each a
local directory (`file://`, local.py) or a bucket and prefix of an S3-compatible store (`s3://`,
s3.py), every file under a random key. Neither location is served: files leave only through
the API's checked download. Everything else calls the functions here, by location name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, BinaryIO

from flask import current_app

from app.config.readers import storage_location
from app.services.scans.storage import s3
from app.services.scans.storage.base import (
    HEAD_BYTES,
    Entry,
    Incoming,
    OverLimit,
    StorageError,
    Store,
    Stored,
    is_key,
    new_key,
)
from app.services.scans.storage.local import FileStore

__all__ = [
    "HEAD_BYTES",
    "Entry",
    "Incoming",
    "OverLimit",
    "StorageError",
    "Stored",
    "delete",
    "exists",
    "incoming",
    "is_key",
    "listing",
    "move",
    "new_key",
    "open_file",
    "receive",
    "save",
    "store",
]

LOCATIONS = {"files": "SCAN_STORAGE_URL", "quarantine": "SCAN_QUARANTINE_URL"}
_COPY_CHUNK = 1024 * 1024


def store(location: str) -> Store:
    """The store behind `files` or `quarantine`, as the app's settings say."""
    config = current_app.config
    where = storage_location(config[LOCATIONS[location]])
    if where.scheme == "file":
        return FileStore(where.where)
    client = s3.client(
        config["S3_ENDPOINT_URL"], config["S3_REGION"], config["S3_ACCESS_KEY_ID"], config["S3_SECRET_ACCESS_KEY"]
    )
    return s3.S3Store(client, where.where, where.prefix)


def incoming(limit: int) -> Incoming:
    """A new upload into the kept files (see Incoming)."""
    return Incoming(store("files"), limit)


def receive(source: IO[bytes], limit: int) -> Incoming | None:
    """An upload received whole but not yet stored for good (`take()` it, or close it to keep
    nothing). An `Incoming` (written while the request was parsed) is used as it is, with no
    copy. None (and nothing left behind) when it is longer than `limit` bytes."""
    if isinstance(source, Incoming):
        if source.size > limit:
            source.close()
            return None
        return source
    target = incoming(limit)
    try:
        while chunk := source.read(_COPY_CHUNK):
            target.write(chunk)
    except OverLimit:
        return None
    except BaseException:
        target.close()
        raise
    return target


def save(source: IO[bytes], limit: int) -> Stored | None:
    """Store an upload for good under a new random key, hashing as it goes; None (and nothing
    left behind) when it is longer than `limit` bytes."""
    received = receive(source, limit)
    if received is None:
        return None
    with received:
        return received.take()


def open_file(location: str, key: str) -> BinaryIO:
    """A stored file, read from its start: a real file (`fileno()`) on the file backend, a
    stream of the object's body on S3. Raises FileNotFoundError, ValueError (a bad key)."""
    return store(location).open(key)


def exists(location: str, key: str) -> bool:
    return is_key(key) and store(location).exists(key)


def move(key: str, source: str, target: str) -> None:
    """Move a file between the kept files and quarantine. A file already at the target (a
    retried move) is fine."""
    if source != target:
        store(source).move(key, store(target))


def delete(location: str, key: str) -> int:
    """Remove a file; its size in bytes (0 when it was already gone)."""
    return store(location).delete(key)


def listing(location: str) -> Iterator[Entry]:
    """Every object stored at the location (whether its name is a key or not)."""
    return store(location).listing()
