"""The SMTP side of a batch: one connection to the relay (STARTTLS / SSL / auth, certificates
verified) and one mail transaction per mail on it.

`transmit` is `smtplib.SMTP.sendmail` for one recipient without the per-mail work a batch can
do ahead: the envelope addresses were validated (ASCII, one line) at submit and are sent as
given, and the body is dot-stuffed by `wire` in the render thread. It raises what `sendmail`
raises, so callers handle refusals the same way.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl

from flask import current_app

_LEADING_DOT = re.compile(rb"(?m)^\.")


def connect() -> smtplib.SMTP:
    config = current_app.config
    security, timeout = config["SMTP_SECURITY"], config["SMTP_TIMEOUT"]
    host, port = config["SMTP_HOST"], config["SMTP_PORT"]
    smtp: smtplib.SMTP
    # Certificates are verified (smtplib's own default context does not), against SMTP_CA_FILE
    # when set, else the system's CAs.
    context = ssl.create_default_context(cafile=config["SMTP_CA_FILE"] or None) if security != "none" else None
    if security == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if security == "starttls":
            smtp.starttls(context=context)
        if config["SMTP_USERNAME"]:
            smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        smtp.ehlo_or_helo_if_needed()
    except BaseException:
        smtp.close()
        raise
    return smtp


def wire(data: bytes) -> bytes:
    """A message's DATA as sent: lines starting with "." doubled, ended by CRLF "." CRLF
    (what `SMTP.data` does to CRLF-terminated bytes)."""
    stuffed = _LEADING_DOT.sub(b"..", data)
    return stuffed + (b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n")


def transmit(smtp: smtplib.SMTP, sender: str, to: str, data: bytes, wired: bytes) -> None:
    """Send one mail; returns when the relay accepted it (250), raises as `sendmail` does."""
    size = f" SIZE={len(data)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    code, reply = smtp.docmd("MAIL", f"FROM:<{sender}>{size}")
    if code != 250:
        _abort(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    code, reply = smtp.docmd("RCPT", f"TO:<{to}>")
    if code not in (250, 251):
        _abort(smtp, code)
        raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
    code, reply = smtp.docmd("DATA")
    if code != 354:
        _abort(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    smtp.send(wired)
    code, reply = smtp.getreply()
    if code != 250:
        _abort(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _abort(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal: 421 means the relay is closing; otherwise reset the transaction."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()
