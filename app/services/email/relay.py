"""The SMTP side of a batch: one connection to the relay (STARTTLS / SSL / auth, certificates
verified) and one mail transaction per mail on it.

`transmit` is `smtplib.SMTP.sendmail` for one recipient without the per-mail work a batch can
do ahead: the envelope addresses were validated (ASCII, one line) at submit and are sent as
given, and the body is dot-stuffed by `wire` in the render thread. Where the relay offers
PIPELINING, a mail's envelope commands share one write. It raises what `sendmail` raises, so
callers handle refusals the same way.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl

from flask import current_app

_LEADING_DOT = re.compile(rb"(?m)^\.")
#: The replies that let a mail transaction go on: MAIL, RCPT, DATA.
_EXPECTED = ((250,), (250, 251), (354,))


def _open(timeout: float) -> tuple[smtplib.SMTP, ssl.SSLContext | None]:
    """A connection to the relay whose greeting was read (TLS first for SMTP_SECURITY=ssl), and
    the TLS context a STARTTLS must use."""
    config = current_app.config
    security, host, port = config["SMTP_SECURITY"], config["SMTP_HOST"], config["SMTP_PORT"]
    if security not in ("none", "starttls", "ssl"):  # Config refuses others; never log in in the clear by mistake
        raise ValueError(f"SMTP_SECURITY {security!r} is not none, starttls or ssl")
    # Certificates are verified (smtplib's own default context does not), against SMTP_CA_FILE
    # when set, else the system's CAs.
    context = ssl.create_default_context(cafile=config["SMTP_CA_FILE"] or None) if security != "none" else None
    if security == "ssl":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context), context
    return smtplib.SMTP(host, port, timeout=timeout), context


def span_attributes(mails: int) -> dict[str, str | int]:
    """What the span of an SMTP session to the relay shows."""
    config = current_app.config
    return {
        "server.address": config["SMTP_HOST"],
        "server.port": config["SMTP_PORT"],
        "opsdeck.email.batch_size": mails,
    }


def connect() -> smtplib.SMTP:
    config = current_app.config
    smtp, context = _open(config["SMTP_TIMEOUT"])
    try:
        if config["SMTP_SECURITY"] == "starttls":
            smtp.starttls(context=context)
        if config["SMTP_USERNAME"]:
            smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        smtp.ehlo_or_helo_if_needed()
    except BaseException:
        smtp.close()
        raise
    return smtp


def greet(timeout: float) -> None:
    """Connect, read the relay's 220 greeting and say QUIT: whether the relay answers, for
    /readyz. No EHLO, STARTTLS or login, so a probe every few seconds costs the relay no session.
    Raises OSError or smtplib.SMTPException (a greeting other than 220 is SMTPConnectError)."""
    smtp, _ = _open(timeout)
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()  # it greeted: that was the question


def wire(data: bytes) -> bytes:
    """A message's DATA as sent: lines starting with "." doubled, ended by CRLF "." CRLF
    (what `SMTP.data` does to CRLF-terminated bytes)."""
    stuffed = _LEADING_DOT.sub(b"..", data)
    return stuffed + (b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n")


def transmit(smtp: smtplib.SMTP, sender: str, to: str, data: bytes, wired: bytes) -> None:
    """Send one mail; returns when the relay accepted it (250), raises as `sendmail` does.

    When the relay offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go in one write and their
    replies are read together: two round trips a mail instead of four. The content still waits
    for DATA's 354."""
    if any(brk in sender or brk in to for brk in "\r\n"):  # what putcmd refuses, before anything is sent
        raise ValueError(f"an envelope address contains a line break: {sender!r} -> {to!r}")
    size = f" SIZE={len(data)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    commands = (("MAIL", f"FROM:<{sender}>{size}"), ("RCPT", f"TO:<{to}>"), ("DATA", ""))
    if smtp.does_esmtp and smtp.has_extn("pipelining"):
        smtp.send("".join(f"{command} {args}".rstrip() + "\r\n" for command, args in commands))
        replies = _replies(smtp, len(commands))
    else:
        replies = []
        for (command, args), expected in zip(commands, _EXPECTED, strict=True):
            replies.append(smtp.docmd(command, args))
            if replies[-1][0] not in expected:
                break
    _check(smtp, sender, to, replies)
    smtp.send(wired)
    code, reply = smtp.getreply()
    if code != 250:
        _abort(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _replies(smtp: smtplib.SMTP, count: int) -> list[tuple[int, bytes]]:
    """Up to `count` pipelined replies, in order; none read after a 421 (the relay is closing)."""
    replies: list[tuple[int, bytes]] = []
    while len(replies) < count:
        replies.append(smtp.getreply())
        if replies[-1][0] == 421:
            break
    return replies


def _check(smtp: smtplib.SMTP, sender: str, to: str, replies: list[tuple[int, bytes]]) -> None:
    """Raise for the first refusal among the MAIL, RCPT and DATA replies (as `sendmail` would),
    leaving the session ready for the next mail."""
    failed = next((i for i, (code, _) in enumerate(replies) if code not in _EXPECTED[i]), None)
    if failed is None:  # (replies stop short only after a refusal)
        return
    code, reply = replies[failed]
    if len(replies) == len(_EXPECTED) and replies[-1][0] == 354:
        # DATA accepted after a refusal (RFC 2920 says a relay must not): end the empty message.
        smtp.send(b".\r\n")
        smtp.getreply()
    _abort(smtp, code)
    if failed == 0:
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    if failed == 1:
        raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
    raise smtplib.SMTPDataError(code, reply)


def _abort(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal: 421 means the relay is closing; otherwise reset the transaction."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()
