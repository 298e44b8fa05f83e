"""client.scans: upload files to be scanned, read verdicts, download clean files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, cast

import requests

from opsdeck_client.client import segment
from opsdeck_client.errors import TransportError
from opsdeck_client.multipart import file_body
from opsdeck_client.pagination import Pager
from opsdeck_client.resources.base import Resource, poll
from opsdeck_client.types import Scan, ScanStatus

#: A scan in one of these states has its verdict.
FINISHED: frozenset[str] = frozenset({"clean", "infected", "rejected", "error"})
#: Bytes a download is written in.
CHUNK = 1 << 16

Source = str | os.PathLike[str] | bytes | IO[bytes]


class Scans(Resource):
    def upload(self, file: Source, *, filename: str | None = None, idempotency_key: str | None = None) -> Scan:
        """Upload a file to be pre-checked and scanned: a path, bytes or a binary file object.

        `filename` (the server checks its extension against the content) defaults to the
        path's or the file object's name; bytes need one. A file the pre-checks refuse is a
        ValidationError whose `problem` holds the record's `scan_id`. The whole file is read
        into memory first: it is signed before it is sent (uploads are 25 MiB at most)."""
        if isinstance(file, bytes):
            content, name = file, filename
        elif isinstance(file, str | os.PathLike):
            path = Path(file)
            content, name = path.read_bytes(), filename or path.name
        else:
            content = file.read()
            name = filename or os.path.basename(str(getattr(file, "name", "")))
        if not name:
            raise ValueError("give a filename: the server checks its extension")
        body, content_type = file_body("file", name, content)
        answer = self._client.request(
            "POST", "/api/v1/scans", body, content_type=content_type, idempotency_key=idempotency_key
        )
        return cast(Scan, answer.json())

    def get(self, scan_id: str) -> Scan:
        return cast(Scan, self._json("GET", f"/scans/{segment(scan_id)}"))

    def list(self, *, status: ScanStatus | None = None, page_size: int | None = None) -> Pager[Scan]:
        return self._pager("/scans", page_size, status=status)

    def wait(self, scan_id: str, *, timeout: float = 120, interval: float = 0.5) -> Scan:
        """The scan once it has a verdict (clean, infected, rejected or error); TimeoutError
        after `timeout` seconds."""
        return poll(lambda: self.get(scan_id), lambda s: s["status"] in FINISHED, timeout, interval, f"scan {scan_id}")

    def download(self, scan_id: str) -> bytes:
        """A clean file's bytes (ConflictError unless clamd found it clean)."""
        return self._call("GET", f"/scans/{segment(scan_id)}/file").content

    def download_to(self, scan_id: str, destination: str | os.PathLike[str] | IO[bytes]) -> int:
        """Stream a clean file to a path or a binary file object; the bytes written. A path
        is written whole or not at all: the download goes to a temporary file beside it,
        renamed into place once complete."""
        if not isinstance(destination, str | os.PathLike):
            return self._copy(scan_id, destination)
        target = Path(destination)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                written = self._copy(scan_id, out)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
        return written

    def _copy(self, scan_id: str, out: IO[bytes]) -> int:
        written = 0
        with self._client.stream("GET", f"/api/v1/scans/{segment(scan_id)}/file") as answer:
            try:
                for chunk in answer.iter_content(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
            except requests.RequestException as err:  # cut off part-way: a new download starts over
                raise TransportError(f"download of scan {scan_id} cut off after {written} bytes: {err}") from err
        return written
