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


#: RFC 5322: lines SHOULD stay within 78 characters and MUST within 998.
FOLD_AT, LINE_LIMIT = 78, 998
#: Headers whose value is free text, which may be sent as encoded words (RFC 2047); the
#: others (addresses, URLs) may only be folded at their whitespace.
UNSTRUCTURED = ("Subject", "X-")


def _header(name: str, value: str) -> str:
    """`value` as the header's (folded) lines after "name: ". ASCII stays as it is while short,
    and addresses and URLs while within the hard limit (a fold before `<https://…>` would
    reach some readers as a leading space); longer, it is folded at whitespace; free text that
    is not ASCII, or still has a line past the limit, goes as UTF-8 encoded words."""
    free_text = name.startswith(UNSTRUCTURED)
    if value.isascii():
        line = len(name) + 2 + len(value)
        if line <= FOLD_AT or (not free_text and line <= LINE_LIMIT):
            return value
        folded = Header(value, "us-ascii", header_name=name).encode(linesep="\r\n", maxlinelen=FOLD_AT)
        if not free_text or max(map(len, folded.split("\r\n"))) + len(name) + 2 <= LINE_LIMIT:
            return folded
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n", maxlinelen=FOLD_AT)


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
    head = "".join(f"{name}: {_header(name, value)}\r\n" for name, value in headers) + "MIME-Version: 1.0\r\n"
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
