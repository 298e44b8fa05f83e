"""Talking to clamd over its socket protocol: PING, VERSION, INSTREAM and, on a unix socket,
FILDES. One connection per command, each with a timeout.

Written here rather than taken from the `clamd` package (last released 2014), which sends 1 KiB
chunks with `send()` (partial writes are lost), connects without a timeout and over IPv4 only,
and lets an oversize stream surface as a raw `ConnectionResetError`. Here each chunk is
`CHUNK_BYTES` long and sent whole (its length prefix, then the bytes with `sendfile`, no copy
through Python), a TCP address may be a name, IPv4 or IPv6, and every failure is a
`ClamdError` with a `kind` the caller can act on. Only clamd's exact `stream: OK` (or
`fd[N]: OK`) reply is clean.

On a unix socket the file is not streamed at all by default: FILDES hands clamd the open file
descriptor (SCM_RIGHTS, as `clamdscan --fdpass` does), and clamd scans it in place instead of
copying the stream into a temporary file first (docs/scans.md has the measurements). The
descriptor carries the read permission, so clamd need not be able to open our files.
CLAMD_FDPASS=0 streams instead. A file in an object store (no descriptor on this machine) is
read from its body and sent through INSTREAM in the same CHUNK_BYTES pieces.
"""

from __future__ import annotations

import array
import os
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

from app.telemetry import tracing

#: Bytes per INSTREAM chunk (must stay below clamd's StreamMaxLength).
CHUNK_BYTES = 1024 * 1024
_END = struct.pack("!L", 0)
_CLEAN = re.compile(r"(?:stream|fd\[[0-9]+\]): OK")
_FOUND = re.compile(r"(?:stream|fd\[[0-9]+\]): (?P<name>.+) FOUND")
_VERSION = re.compile(r"^ClamAV (?P<engine>[^/]+)(?:/(?P<db>\d+)/(?P<date>.+))?$")


class ClamdError(Exception):
    """clamd gave no verdict. `kind`: unavailable (cannot connect), timeout, size_limit
    (the stream exceeds StreamMaxLength), protocol (an answer that is neither OK nor FOUND)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Verdict:
    infected: bool
    signature: str | None = None


@dataclass(frozen=True)
class Version:
    engine: str
    db_version: int | None
    db_date: str | None

    @property
    def text(self) -> str:
        return f"ClamAV {self.engine}" + (f"/{self.db_version}/{self.db_date}" if self.db_version else "")


def parse_version(reply: str) -> Version:
    """`ClamAV 1.4.6/27480/Tue Dec  1 09:24:02 2026` (or just `ClamAV 1.4.6` without a CVD)."""
    match = _VERSION.match(reply.strip())
    if match is None:
        raise ClamdError("protocol", f"unexpected VERSION reply {reply[:100]!r}")
    db = match.group("db")
    return Version(match.group("engine"), int(db) if db else None, match.group("date"))


def parse_reply(reply: str) -> Verdict:
    if _CLEAN.fullmatch(reply):
        return Verdict(False)
    found = _FOUND.fullmatch(reply)
    if found is not None:
        return Verdict(True, found.group("name"))
    if "size limit exceeded" in reply:
        raise ClamdError("size_limit", f"clamd: {reply}")
    raise ClamdError("protocol", f"clamd: {reply[:300] or 'empty reply'}")


class Clamd:
    """A clamd reached at one address; every call opens a connection of its own."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def _open(self) -> socket.socket:  # pragma: no cover - defined by the subclasses
        raise NotImplementedError

    def _connect(self) -> socket.socket:
        try:
            return self._open()
        except TimeoutError as err:
            raise ClamdError("timeout", f"clamd at {self}: connect timed out") from err
        except OSError as err:
            raise ClamdError("unavailable", f"clamd at {self}: {err.strerror or err}") from err

    def _command(self, command: str) -> str:
        with self._connect() as sock:
            sock.sendall(f"z{command}\0".encode())
            return _reply(sock)

    def ping(self) -> str:
        return self._command("PING")

    def version(self) -> Version:
        return parse_version(self._command("VERSION"))

    @tracing.traced("clamd SCAN")
    def scan(self, file: BinaryIO) -> Verdict:
        """clamd's verdict on an open file from its start: a file of this machine is handed over
        as `scan_file` does, any other stream (an object store's body) is sent through INSTREAM."""
        try:
            descriptor = file.fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation: not a file of this machine
            return self.instream(file)
        return self.scan_file(file, os.fstat(descriptor).st_size)

    def scan_file(self, file: BinaryIO, size: int) -> Verdict:
        """clamd's verdict on `size` bytes of an open file."""
        return self.instream_file(file, size)

    def instream(self, stream: BinaryIO) -> Verdict:
        """Read a stream to its end in CHUNK_BYTES pieces, each sent whole through INSTREAM, and
        return clamd's verdict. An error reading the stream is the caller's (not a ClamdError)."""

        def send(sock: socket.socket) -> None:
            while chunk := stream.read(CHUNK_BYTES):
                sock.sendall(struct.pack("!L", len(chunk)))
                sock.sendall(chunk)

        return self._instream(send)

    def instream_file(self, file: BinaryIO, size: int) -> Verdict:
        """Stream `size` bytes of an open file through INSTREAM and return clamd's verdict."""

        def send(sock: socket.socket) -> None:
            offset = 0
            while offset < size:
                count = min(CHUNK_BYTES, size - offset)
                sock.sendall(struct.pack("!L", count))
                sent = sock.sendfile(file, offset, count)
                if sent != count:
                    raise ClamdError("protocol", f"file shrank while scanning ({offset + sent} of {size} bytes)")
                offset += count

        return self._instream(send)

    def _instream(self, send: Callable[[socket.socket], None]) -> Verdict:
        """One INSTREAM command: `send` writes the length-prefixed chunks, then the end mark."""
        with self._connect() as sock:
            try:
                sock.sendall(b"zINSTREAM\0")
                send(sock)
                sock.sendall(_END)
            except TimeoutError as err:
                raise ClamdError("timeout", "clamd stopped reading the stream in time") from err
            except (BrokenPipeError, ConnectionResetError) as err:
                return _closed_early(sock, err)
            return parse_reply(_reply(sock))


def _closed_early(sock: socket.socket, err: OSError) -> Verdict:
    # clamd closes the stream when it passes StreamMaxLength; its reply says so.
    reply = _late_reply(sock)
    if reply:
        return parse_reply(reply)
    raise ClamdError("unavailable", f"clamd closed the stream: {err}") from err


def _reply(sock: socket.socket) -> str:
    chunks = []
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                break
            chunks.append(data)
            if data.endswith(b"\0"):
                break
    except TimeoutError as err:
        raise ClamdError("timeout", "clamd did not answer in time") from err
    except OSError as err:
        raise ClamdError("unavailable", f"clamd connection lost: {err}") from err
    return b"".join(chunks).rstrip(b"\0").decode("utf-8", "replace").strip()


def _late_reply(sock: socket.socket) -> str:
    try:
        return _reply(sock)
    except ClamdError:
        return ""


class UnixClamd(Clamd):
    def __init__(self, path: str, timeout: float, fdpass: bool = True) -> None:
        super().__init__(timeout)
        self.path, self.fdpass = path, fdpass

    def __str__(self) -> str:
        return self.path

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        return sock

    def scan_file(self, file: BinaryIO, size: int) -> Verdict:
        return self.fildes(file) if self.fdpass else self.instream_file(file, size)

    def fildes(self, file: BinaryIO) -> Verdict:
        """Pass the open file to clamd (FILDES) and return its verdict."""
        with self._connect() as sock:
            try:
                sock.sendall(b"zFILDES\0")
                rights = array.array("i", [file.fileno()])
                sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            except TimeoutError as err:
                raise ClamdError("timeout", "clamd did not take the file in time") from err
            except OSError as err:
                raise ClamdError("unavailable", f"clamd connection lost: {err}") from err
            return parse_reply(_reply(sock))


class TcpClamd(Clamd):
    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(timeout)
        self.host, self.port = host, port

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _open(self) -> socket.socket:
        # Tries each address the name resolves to, IPv6 and IPv4 alike.
        return socket.create_connection((self.host, self.port), timeout=self.timeout)


def client(url: str, timeout: float, fdpass: bool = True) -> UnixClamd | TcpClamd:
    """`unix:///path/clamd.sock` or `tcp://host:3310` (over TCP the file is always streamed)."""
    parts = urlsplit(url)
    if parts.scheme == "unix" and parts.path:
        return UnixClamd(parts.path, timeout=timeout, fdpass=fdpass)
    if parts.scheme == "tcp" and parts.hostname:
        return TcpClamd(parts.hostname, parts.port or 3310, timeout=timeout)
    raise ValueError(f"CLAMD_URL must be unix:///path/to/clamd.sock or tcp://host:port, not {url!r}")
