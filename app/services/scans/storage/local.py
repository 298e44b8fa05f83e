"""Files in a local directory (`file:///path`): each under its key, a two-character shard folder
and a random name, owner-only permissions. An upload is written straight into its final name
(no copy when it is taken); a quarantine move is a rename."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.services.scans.storage.base import Entry, check_key


class FileStore:
    def __init__(self, directory: str) -> None:
        self.root = Path(directory)

    def __str__(self) -> str:
        return self.root.as_uri()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def begin(self, key: str) -> BinaryIO:
        path = self.path(key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return open(path, "xb", buffering=0, opener=_owner_only)  # the Incoming closes it

    def commit(self, key: str, sink: BinaryIO) -> None:
        """Nothing to do: the upload was written where it stays."""

    def discard(self, key: str, sink: BinaryIO) -> None:
        sink.close()
        self.path(key).unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> int:
        target = self.path(key)
        try:
            size = target.stat().st_size
            target.unlink()
        except FileNotFoundError:
            return 0
        return size

    def move(self, key: str, target: FileStore) -> None:
        """A rename when both directories are on one filesystem (else shutil copies)."""
        origin, destination = self.path(key), target.path(key)
        if not origin.exists() and destination.exists():  # a retried move
            return
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.move(origin, destination)

    def listing(self) -> Iterator[Entry]:
        if not self.root.exists():
            return
        for path in self.root.glob("*/*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file():
                yield Entry(f"{path.parent.name}/{path.name}", stat.st_size, stat.st_mtime)


def _owner_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
