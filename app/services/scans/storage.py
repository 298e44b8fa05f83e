"""Where uploaded files live: under SCAN_STORAGE_DIR (kept) or SCAN_QUARANTINE_DIR (infected),
each under a random name in a two-character shard folder, owner-only permissions. Neither
folder is served: files leave only through the API's checked download."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


def is_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def path_of(location: str, key: str) -> Path:
    if not is_key(key):
        raise ValueError(f"bad storage key {key!r}")
    return root(location) / key


def new_key() -> str:
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


def save(source: BinaryIO, limit: int) -> Stored | None:
    """Copy an upload into SCAN_STORAGE_DIR under a new random name, hashing as it goes.
    None (and nothing left behind) when it is longer than `limit` bytes."""
    key = new_key()
    target = path_of("files", key)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _TooLarge
                digest.update(chunk)
                out.write(chunk)
    except _TooLarge:
        target.unlink(missing_ok=True)
        return None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Stored(key, size, digest.hexdigest())


class _TooLarge(Exception):
    pass


def open_file(location: str, key: str) -> BinaryIO:
    return open(path_of(location, key), "rb")


def move(key: str, source: str, target: str) -> None:
    """Move a file between the kept folder and quarantine (a rename on one filesystem). A
    file already at the target (a retried move) is fine."""
    destination = path_of(target, key)
    origin = path_of(source, key)
    if not origin.exists() and destination.exists():
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
