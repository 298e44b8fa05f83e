"""What every storage backend shares: the key format, an upload being received (`Incoming`),
what a stored file is (`Stored`), what the backends raise, and the interface they implement."""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

#: Bytes of an upload kept in memory as it is received, for the pre-checks (libmagic).
HEAD_BYTES = 64 * 1024
_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{32}")


def is_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def check_key(key: str) -> str:
    if not is_key(key):
        raise ValueError(f"bad storage key {key!r}")
    return key


def new_key() -> str:
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Entry:
    """A stored file as a listing sees it: its key, size, and last change (Unix time)."""

    key: str
    size: int
    modified: float


class StorageError(OSError):
    """The store did not answer or refused (not: the file is missing, a FileNotFoundError)."""


class OverLimit(Exception):
    """An upload passed its byte limit while being written; its file is already deleted. Not a
    ValueError on purpose: werkzeug's form parser would take that for a malformed body."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"over {limit} bytes")
        self.limit = limit


class Store(Protocol):
    """One location (kept files or quarantine) of one backend."""

    def begin(self, key: str) -> BinaryIO:
        """A new, empty, writable (and seekable) file that will become `key`."""

    def commit(self, key: str, sink: BinaryIO) -> None:
        """Make what was written to `sink` the stored file `key` (raises StorageError)."""

    def discard(self, key: str, sink: BinaryIO) -> None:
        """Forget an upload that is not taken: nothing of it stays stored."""

    def open(self, key: str) -> BinaryIO:
        """The stored file, for reading from its start (raises FileNotFoundError)."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> int:
        """Remove a file; its size in bytes (0 when it was already gone)."""

    def move(self, key: str, target: Any) -> None:
        """Move a file to `target`, a store of the same backend; done already is fine."""

    def listing(self) -> Iterator[Entry]:
        """Every stored object whose name looks like a key or not, with its size and age."""


class Incoming(io.RawIOBase):
    """An upload being received into a store under a new random key, hashed and counted as it
    is written, its first HEAD_BYTES kept for the pre-checks. Whoever writes it (`receive`, or
    werkzeug's multipart parser through the API's request class) never has to copy it again.
    `take()` stores it for good; closed or collected without `take()`, nothing of it stays."""

    def __init__(self, store: Store, limit: int) -> None:
        super().__init__()
        self.store, self.key, self.limit, self.size = store, new_key(), limit, 0
        self.head = b""
        self._digest = hashlib.sha256()
        self._taken = False
        self._sink: BinaryIO | None = None  # until it exists: never discard what we did not create
        self._sink = store.begin(self.key)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        assert self._sink is not None
        return self._sink.seek(offset, whence)

    def write(self, data: Any) -> int:
        assert self._sink is not None
        view = memoryview(data).cast("B")
        if self.size + view.nbytes > self.limit:
            self.close()
            raise OverLimit(self.limit)
        if self.size < HEAD_BYTES:
            self.head += view[: HEAD_BYTES - self.size].tobytes()
        self.size += view.nbytes
        self._digest.update(view)
        written = 0
        while written < view.nbytes:  # a short write is only possible for a regular file near ENOSPC
            written += self._sink.write(view[written:]) or 0
        return written

    def sha256(self) -> str:
        """The hex SHA-256 of what was written so far (no second pass over the bytes)."""
        return self._digest.copy().hexdigest()

    def take(self) -> Stored:
        """Store the upload for good (raises StorageError); the caller owns the file from now on."""
        assert self._sink is not None
        self.store.commit(self.key, self._sink)
        self._taken = True
        return Stored(self.key, self.size, self._digest.hexdigest())

    def close(self) -> None:
        if not self.closed and self._sink is not None:
            if self._taken:
                self._sink.close()
            else:
                self.store.discard(self.key, self._sink)
        super().close()
