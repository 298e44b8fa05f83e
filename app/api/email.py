"""/api/v1/emails: queue one mail or a list, read them."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from typing import Any

from flask import Response, current_app, g, jsonify, request, url_for
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema
from sqlalchemy import select

from app.api import bp, family
from app.api.errors import ApiProblem, validation_failed
from app.api.openapi import CURSOR, doc
from app.api.validation import Boolean, Pattern
from app.api.writes import json_value, write
from app.extensions import db, queue
from app.models import Email
from app.models.base import utcnow
from app.models.email import EMAIL_STATES
from app.services import pagination
from app.services.email import batches, mails

#: The most mails one request may queue.
MAX_PER_REQUEST = 1000
#: Extra headers a tenant may set: Reply-To and its own X- headers.
HEADER_NAME = re.compile(r"Reply-To|X-[A-Za-z0-9-]{1,70}", re.IGNORECASE)
ONE_LINE = Pattern(r"^[^\r\n]*$", error="Must be one line.")


class EmailSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(dump_only=True)
    to = fields.Email(required=True, validate=validate.Length(max=254))
    template = fields.String(validate=validate.Length(min=1, max=100), allow_none=True)
    subject = fields.String(validate=validate.Length(min=1, max=998), allow_none=True)
    text = fields.String(validate=validate.Length(min=1, max=1_000_000), allow_none=True)
    html = fields.String(validate=validate.Length(max=2_000_000), load_only=True)
    context = fields.Dict(keys=fields.String(), load_default=None, load_only=True)
    digest_key = fields.String(validate=validate.Length(min=1, max=200), load_default=None, allow_none=True)
    critical = Boolean(load_default=False, load_only=True)
    send_after = fields.AwareDateTime(default_timezone=UTC, load_default=None, allow_none=True, load_only=True)
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(validate=(validate.Length(max=998), ONE_LINE)),
        load_default=None,
        allow_none=True,
        load_only=True,
    )
    status = fields.String(dump_only=True)
    attempts = fields.Integer(dump_only=True)
    next_attempt_at = fields.DateTime(dump_only=True)
    last_error = fields.String(dump_only=True, allow_none=True)
    message_id = fields.String(dump_only=True)
    batch_id = fields.String(dump_only=True, allow_none=True)
    digest_id = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    sent_at = fields.DateTime(dump_only=True, allow_none=True)

    @validates("to")
    def _ascii_address(self, value: str, **_: Any) -> None:
        if not value.isascii():
            raise ValidationError("Internationalised addresses are not supported; use the ASCII (punycode) form.")

    @validates("send_after")
    def _not_too_late(self, value: Any, **_: Any) -> None:
        if value is not None and value > utcnow() + timedelta(days=366):
            raise ValidationError("At most a year ahead.")

    @validates("headers")
    def _headers(self, value: dict[str, str] | None, **_: Any) -> None:
        for name in value or {}:
            if not HEADER_NAME.fullmatch(name):
                raise ValidationError(f"Header {name!r} is not allowed (Reply-To or X-… only).")

    @validates_schema
    def _content(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("template") is None and not (data.get("subject") and data.get("text")):
            raise ValidationError("Give a template, or a subject and a text.", field_name="template")


class EmailListArgs(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(EMAIL_STATES))
    to = fields.String(load_default=None)
    cursor = fields.String(load_default=None, metadata=CURSOR)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


email_schema = EmailSchema()


def _mails_from_body() -> tuple[list[dict[str, Any]], bool]:
    data = json_value()
    if isinstance(data, dict):
        return [email_schema.load(data)], False
    if not isinstance(data, list):
        raise ApiProblem(400, "Malformed JSON", "Send one mail object or a list of them.", type="malformed-json")
    if not 1 <= len(data) <= MAX_PER_REQUEST:
        raise validation_failed({"_schema": [f"Send 1 to {MAX_PER_REQUEST} mails per request."]})
    return email_schema.load(data, many=True), True


def _kick(queued_now: int) -> None:
    """Queue a flush now when a batch's worth of mail is due (the scheduler checks every
    EMAIL_DELAY anyway): counted in Redis across requests."""
    if queued_now <= 0:
        return
    size = current_app.config["EMAIL_BATCH_SIZE"]
    try:
        count = int(queue.redis.incrby("opsdeck:email:due-since-kick", queued_now))
    except Exception:
        return
    if count >= size:
        queue.redis.set("opsdeck:email:due-since-kick", 0)
        batches.submit_flush()


@bp.post("/emails")
@doc(status=202, body=EmailSchema, response=EmailSchema, batch=MAX_PER_REQUEST)
@family("email")
@write
def create_emails() -> Response:
    """Queue one mail, or a list of up to 1,000"""
    items, many = _mails_from_body()
    try:
        rows = mails.submit(g.tenant_id, [mails.NewMail(**item) for item in items])
    except mails.EmailInputError as err:
        raise validation_failed(err.messages) from None
    db.session.flush()  # the rows' column defaults (attempts) are in the answer
    now = utcnow()
    _kick(sum(1 for r in rows if r.status == "queued" and r.next_attempt_at <= now))
    if many:
        response = jsonify({"data": email_schema.dump(rows, many=True)})
    else:
        response = jsonify(email_schema.dump(rows[0]))
        response.headers["Location"] = url_for("api.get_email", email_id=rows[0].id)
    response.status_code = 202
    return response


@bp.get("/emails")
@doc(response=EmailSchema, many=True, query=EmailListArgs, problems=(422,))
@family("email")
def list_emails() -> Response:
    """List mails, newest first (filters: status, to)"""
    args = EmailListArgs().load(request.args.to_dict())
    query = select(Email).where(Email.tenant_id == g.tenant_id)
    if args["status"]:
        query = query.where(Email.status == args["status"])
    if args["to"]:
        query = query.where(Email.to == mails.normalise(args["to"]))
    try:
        page = pagination.newest_first(query, Email, cursor=args["cursor"], limit=args["limit"])
    except pagination.BadCursor as err:
        raise validation_failed({"cursor": [str(err)]}) from None
    return jsonify({"data": email_schema.dump(page.items, many=True), "next_cursor": page.next_cursor})


@bp.get("/emails/<email_id>")
@doc(response=EmailSchema, problems=(404,))
@family("email")
def get_email(email_id: str) -> Response:
    """Read a mail: status, attempts, last error, Message-ID, batch"""
    row = mails.get(email_id, g.tenant_id)
    if row is None:
        raise ApiProblem(404, "Not found", "No such email.", type="not-found")
    return jsonify(email_schema.dump(row))
