"""A mail's MIME bytes, built once per send. Written directly (headers are validated one-line
values, encoded words when not ASCII; bodies quoted-printable UTF-8) rather than through the
stdlib's EmailMessage, whose policy machinery costs many times more per mail."""

from __future__ import annotations

import binascii
import functools
import uuid
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

from flask import current_app

from app.models import Email
from app.services.email import mails, render


@dataclass(frozen=True)
class Composed:
    headers: list[tuple[str, str]]
    text: str
    html: str | None
    data: bytes


def _qp(body: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends (binascii is C; readable in "show original")."""
    lf = body.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(lf.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _part_headers(subtype: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    ).encode()


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode(linesep="\r\n")


@functools.lru_cache(maxsize=8)
def _sender(email_from: str) -> tuple[str, str]:
    """EMAIL_FROM as (From header, envelope address), parsed once per value."""
    name, address = parseaddr(email_from)
    return formataddr((name, address), charset="utf-8"), address


def envelope_from() -> str:
    return _sender(current_app.config["EMAIL_FROM"])[1]


def compose(row: Email) -> Composed:
    config = current_app.config
    unsubscribe = mails.unsubscribe_url(row.tenant_id, row.to)
    shown = render.render(
        row.template, row.context, subject=row.subject, text=row.text, html=row.html, unsubscribe_url=unsubscribe
    )
    headers = [
        ("From", _sender(config["EMAIL_FROM"])[0]),
        ("To", row.to),
        ("Subject", shown.subject),
        ("Date", format_datetime(row.created_at)),
        ("Message-ID", row.message_id),
        ("List-Unsubscribe", f"<{unsubscribe}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        *sorted((row.headers or {}).items()),
    ]
    head = "".join(f"{name}: {_header(value)}\r\n" for name, value in headers) + "MIME-Version: 1.0\r\n"
    if shown.html:
        boundary = f"=_opsdeck_{uuid.uuid4().hex}"
        data = b"".join(
            (
                f'{head}Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
                f"--{boundary}\r\n".encode(),
                _part_headers("plain"),
                _qp(shown.text),
                b"\r\n",
                f"--{boundary}\r\n".encode(),
                _part_headers("html"),
                _qp(shown.html),
                b"\r\n",
                f"--{boundary}--\r\n".encode(),
            )
        )
    else:
        data = head.encode() + _part_headers("plain") + _qp(shown.text)
    return Composed(headers, shown.text, shown.html, data)
