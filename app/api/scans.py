"""/api/v1/scans: upload a file for scanning, read verdicts, download clean files."""

from __future__ import annotations

from typing import IO, Any, cast

from flask import Request, Response, current_app, g, jsonify, request, send_file, url_for
from marshmallow import Schema, fields, validate

from app.api import bp, family
from app.api.errors import ApiProblem, validation_failed
from app.api.openapi import CURSOR, doc
from app.api.writes import write
from app.models.scans import LOCATIONS, SCAN_STATES, Scan
from app.services import pagination
from app.services.scans import storage, uploads

#: Bytes a multipart envelope may add around the file before the request counts as too large.
MULTIPART_SLACK = 64 * 1024
#: Bytes an upload's body is read in.
BODY_PIECE = 1024 * 1024


class ScanSchema(Schema):
    id = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(SCAN_STATES)})
    name = fields.String(attribute="display_name", dump_only=True)
    extension = fields.String(dump_only=True)
    content_type = fields.String(dump_only=True, allow_none=True)
    size = fields.Integer(dump_only=True)
    sha256 = fields.String(dump_only=True)
    reject_reason = fields.String(dump_only=True, allow_none=True)
    signature = fields.String(dump_only=True, allow_none=True)
    engine_version = fields.String(dump_only=True, allow_none=True)
    db_version = fields.Integer(dump_only=True, allow_none=True)
    db_date = fields.String(dump_only=True, allow_none=True)
    location = fields.String(dump_only=True, metadata={"enum": list(LOCATIONS)})
    attempts = fields.Integer(dump_only=True)
    last_error = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    verdict_at = fields.DateTime(dump_only=True, allow_none=True)
    rescanned_at = fields.DateTime(dump_only=True, allow_none=True)
    released_at = fields.DateTime(dump_only=True, allow_none=True)


class ScanListArgs(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(SCAN_STATES))
    cursor = fields.String(load_default=None, metadata=CURSOR)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


scan_schema = ScanSchema()


def upload_limit() -> int:
    """The largest request body the upload route reads (checked before authentication)."""
    return current_app.config["SCAN_MAX_BYTES"] + MULTIPART_SLACK


def too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413, "File too large", f"Files are limited to {limit:,} bytes ({limit / 1048576:g} MiB).", type="file-too-large"
    )


class UploadRequest(Request):
    """The app's request class. The first file part of an authenticated upload to this route is
    written by werkzeug's multipart parser straight into scan storage (hashed, size-checked,
    owner-only; on S3 its spool), instead of into a temporary file that would be copied again. Unless
    `uploads.accept` takes it, the file is deleted when the request ends (a rejected, replayed,
    over-size or malformed upload keeps nothing)."""

    _incoming: storage.Incoming | None = None

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        # werkzeug reads a body 64 KiB at a time; an upload, read whole for its signature anyway,
        # costs a third of the CPU read 1 MiB at a time.
        if (
            self.endpoint == "api.create_scan"
            and cache
            and not parse_form_data
            and self.content_length
            and getattr(self, "_cached_data", None) is None
        ):
            pieces, remaining = [], self.content_length
            while remaining > 0 and (piece := self.stream.read(min(BODY_PIECE, remaining))):
                pieces.append(piece)
                remaining -= len(piece)
            self._cached_data = b"".join(pieces)
        return super().get_data(cache, as_text, parse_form_data)  # type: ignore[call-overload]  # overloads take as_text only as a literal

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        # Only after the signature was checked (g.tenant_id): nobody else's bytes reach storage.
        if self.endpoint != "api.create_scan" or "tenant_id" not in g or self._incoming is not None:
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)
        self._incoming = storage.incoming(current_app.config["SCAN_MAX_BYTES"])
        return cast("IO[bytes]", self._incoming)  # a raw binary stream werkzeug writes and seeks

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except storage.OverLimit as err:
            raise too_large(err.limit) from None

    def close(self) -> None:
        super().close()
        if self._incoming is not None:
            self._incoming.close()


@bp.post("/scans")
@doc(status=202, upload="file", response=ScanSchema, problems=(400, 413, 422))
@family("scans")
@write
def create_scan() -> Response:
    """Upload a file (multipart field `file`) to be pre-checked and scanned"""
    upload = request.files.get("file")
    if upload is None:
        raise validation_failed({"file": ["Send the file as multipart/form-data field 'file'."]})
    try:
        row = uploads.accept(g.tenant_id, upload.filename, upload.stream)
    except uploads.TooLarge as err:
        raise too_large(err.limit) from None
    if row.status == "rejected":  # answered, not raised: the record of the refusal is kept
        return ApiProblem(
            422,
            "File rejected",
            row.reject_reason,
            type="file-rejected",
            extra={"scan_id": row.id, "sha256": row.sha256, "size": row.size},
        ).response()
    response = jsonify(scan_schema.dump(row))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_scan", scan_id=row.id)
    return response


@bp.get("/scans")
@doc(response=ScanSchema, many=True, query=ScanListArgs, problems=(422,))
@family("scans")
def list_scans() -> Response:
    """List scans, newest first (filter: status)"""
    args = ScanListArgs().load(request.args.to_dict())
    try:
        page = uploads.listing(tenant_id=g.tenant_id, status=args["status"], cursor=args["cursor"], limit=args["limit"])
    except pagination.BadCursor as err:
        raise validation_failed({"cursor": [str(err)]}) from None
    return jsonify({"data": scan_schema.dump(page.items, many=True), "next_cursor": page.next_cursor})


def _own(scan_id: str) -> Scan:
    row = uploads.get(scan_id, g.tenant_id)
    if row is None:
        raise ApiProblem(404, "Not found", "No such scan.", type="not-found")
    return row


@bp.get("/scans/<scan_id>")
@doc(response=ScanSchema, problems=(404,))
@family("scans")
def get_scan(scan_id: str) -> Response:
    """Read a scan: status, signature found, engine and signature DB version, times"""
    return jsonify(scan_schema.dump(_own(scan_id)))


@bp.get("/scans/<scan_id>/file")
@doc(binary=True, problems=(404, 409))
@family("scans")
def get_scan_file(scan_id: str) -> Response:
    """Download the file: only once clamd has found it clean (409 before and otherwise)"""
    row = _own(scan_id)
    if not row.servable or row.storage_key is None:
        raise ApiProblem(
            409, "Not available", f"The file is not available: the scan is {row.status}.", type="file-not-available"
        )
    try:
        file = storage.open_file("files", row.storage_key)
    except FileNotFoundError:
        raise ApiProblem(409, "Not available", "The file is no longer stored.", type="file-not-available") from None
    # Sent in pieces as it is read (a local file, or an object's body), never read whole.
    response = send_file(
        file,
        mimetype=row.content_type or "application/octet-stream",
        as_attachment=True,
        download_name=row.display_name,
        etag=row.sha256,
        conditional=False,
    )
    response.content_length = row.size  # an object store's body has no size werkzeug can read
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
