"""Where uploaded files live: under SCAN_STORAGE_DIR (kept) or SCAN_QUARANTINE_DIR (infected),
each under a random name in a two-character shard folder, owner-only permissions. Neither
folder is served: files leave only through the API's checked download."""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from flask import current_app

_COPY_CHUNK = 1024 * 1024
_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{32}")


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


def root(location: str) -> Path:
    setting = {"files": "SCAN_STORAGE_DIR", "quarantine": "SCAN_QUARANTINE_DIR"}[location]
    return Path(current_app.config[setting])


def exists(location: str, key: str) -> bool:
    return is_key(key) and path_of(location, key).is_file()


def is_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def path_of(location: str, key: str) -> Path:
    if not is_key(key):
        raise ValueError(f"bad storage key {key!r}")
    return root(location) / key


def new_key() -> str:
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


class OverLimit(Exception):
    """An upload passed its byte limit while being written; its file is already deleted. Not a
    ValueError on purpose: werkzeug's form parser would take that for a malformed body."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"over {limit} bytes")
        self.limit = limit


class Incoming(io.FileIO):
    """A new file in SCAN_STORAGE_DIR under a new random name (owner-only), hashed and counted
    as it is written, readable back. Whoever writes it (`save`, or werkzeug's multipart parser
    through the API's request class) never has to copy it again. Closed or collected without
    `take()`, it is deleted: only a complete upload is handed on."""

    def __init__(self, limit: int) -> None:
        self.key, self.limit, self.size = new_key(), limit, 0
        self._digest = hashlib.sha256()
        self._path = path_of("files", self.key)
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._delete_on_close = False  # until the file is ours: never delete a name we did not create
        super().__init__(self._path, "x+", opener=_owner_only)
        self._delete_on_close = True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.size + view.nbytes > self.limit:
            self.close()
            raise OverLimit(self.limit)
        self.size += view.nbytes
        self._digest.update(view)
        written = 0
        while written < view.nbytes:  # a short write is only possible for a regular file near ENOSPC
            written += super().write(view[written:]) or 0
        return written

    def sha256(self) -> str:
        """The hex SHA-256 of what was written so far (no second pass over the bytes)."""
        return self._digest.copy().hexdigest()

    def take(self) -> Stored:
        """The caller owns the file from now on (closing no longer deletes it)."""
        self._delete_on_close = False
        return Stored(self.key, self.size, self._digest.hexdigest())

    def close(self) -> None:
        super().close()
        if self._delete_on_close:
            self._path.unlink(missing_ok=True)


def _owner_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def save(source: IO[bytes], limit: int) -> Stored | None:
    """Store an upload in SCAN_STORAGE_DIR under a new random name, hashing as it goes. An
    `Incoming` (already written while the request was parsed) is taken as it is, with no copy.
    None (and nothing left behind) when it is longer than `limit` bytes."""
    if isinstance(source, Incoming):
        if source.size > limit:
            source.close()
            return None
        return source.take()
    with Incoming(limit) as target:
        try:
            while chunk := source.read(_COPY_CHUNK):
                target.write(chunk)
        except OverLimit:
            return None
        return target.take()


def open_file(location: str, key: str) -> BinaryIO:
    return open(path_of(location, key), "rb")


def move(key: str, source: str, target: str) -> None:
    """Move a file between the kept folder and quarantine (a rename on one filesystem). A
    file already at the target (a retried move) is fine."""
    destination = path_of(target, key)
    origin = path_of(source, key)
    if source == target or (not origin.exists() and destination.exists()):
        return
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.move(origin, destination)


def delete(location: str, key: str) -> int:
    """Remove a file; its size in bytes (0 when it was already gone)."""
    target = path_of(location, key)
    try:
        size = target.stat().st_size
        target.unlink()
    except FileNotFoundError:
        return 0
    return size


def ensure_dirs() -> None:
    for location in ("files", "quarantine"):
        root(location).mkdir(mode=0o700, parents=True, exist_ok=True)
