"""One mail transaction at a time against a real SMTP server (aiosmtpd): the DATA Opsdeck
writes itself (dot-stuffed ahead of the send), the relay's refusals at MAIL, RCPT and the end of
DATA, a relay that closes with 421, and a database that fails while results are recorded. Each
runs against a relay that offers PIPELINING (envelope commands in one write) and one that does
not (a command at a time)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models import Email, Suppression
from app.services.email import batches, mails, outcomes, relay
from tests.fakes.smtp_sink import SmtpSink
from tests.helpers import fresh

SENDER = "opsdeck@localhost"  # the envelope sender of the default EMAIL_FROM


@pytest.fixture(params=[True, False], ids=["pipelining", "no-pipelining"])
def sink(request) -> Iterator[SmtpSink]:
    server = SmtpSink(pipelining=request.param).start()
    yield server
    server.close()


@pytest.fixture
def app_config(sink):
    return {"SMTP_PORT": sink.port, "EMAIL_RATE_PER_MINUTE": 0, "EMAIL_DELAY": 0, "EMAIL_RETRY_SCHEDULE": [1, 2]}


def queue(tenant_id: str, *addresses: str, body: str = "Hello") -> list[str]:
    """One submit per mail, so each is due a little later than the one before: a batch sends
    them in this order."""
    ids = [mails.submit(tenant_id, [mails.NewMail(to=a, subject="Hi", text=body)])[0].id for a in addresses]
    db.session.commit()
    return ids


def flush() -> list[outcomes.BatchResult]:
    db.session.rollback()
    return batches.flush("test-worker", budget=30)


@pytest.mark.parametrize("ending", [b"\r\n", b""], ids=["crlf-ended", "unended"])
def test_lines_starting_with_a_dot_arrive_as_written(app, sink, ending):
    data = b"Subject: dots\r\n\r\n.\r\n..two\r\n.three\r\nmiddle . dot\r\n." + ending
    smtp = relay.connect()
    try:
        relay.transmit(smtp, SENDER, "ana@example.com", data, relay.wire(data))
        relay.transmit(
            smtp,
            SENDER,
            "ben@example.com",
            b"Subject: next\r\n\r\nstill in step\r\n",
            relay.wire(b"Subject: next\r\n\r\nstill in step\r\n"),
        )
    finally:
        smtp.quit()
    first, second = sink.received
    assert first.data == data if ending else first.data == data + b"\r\n"  # the line end DATA needs
    assert second.rcpt_tos == ["ben@example.com"] and second.data == b"Subject: next\r\n\r\nstill in step\r\n"


def test_envelope_commands_share_one_write_only_when_the_relay_offers_pipelining(app, sink, capsys):
    smtp = relay.connect()
    try:
        smtp.set_debuglevel(1)  # smtplib prints each write ("send: ...") to stderr
        relay.transmit(
            smtp,
            SENDER,
            "ana@example.com",
            b"Subject: hi\r\n\r\nhello\r\n",
            relay.wire(b"Subject: hi\r\n\r\nhello\r\n"),
        )
        smtp.set_debuglevel(0)
    finally:
        smtp.quit()
    writes = [line for line in capsys.readouterr().err.splitlines() if "send: " in line]
    envelope = [w for w in writes if "MAIL FROM" in w or "RCPT TO" in w or "DATA" in w]
    if sink.pipelining:
        assert len(envelope) == 1 and all(cmd in envelope[0] for cmd in ("MAIL FROM", "RCPT TO", "DATA"))
    else:
        assert len(envelope) == 3
    assert sink.received[0].rcpt_tos == ["ana@example.com"]


def test_an_envelope_address_with_a_line_break_is_refused_before_anything_is_sent(app, sink):
    smtp = relay.connect()
    try:
        with pytest.raises(ValueError, match="line break|newline"):
            relay.transmit(smtp, SENDER, "ana@example.com\r\nRCPT TO:<eve@example.com>", b"x\r\n", b"x\r\n.\r\n")
        relay.transmit(
            smtp, SENDER, "ben@example.com", b"Subject: ok\r\n\r\nok\r\n", relay.wire(b"Subject: ok\r\n\r\nok\r\n")
        )
    finally:
        smtp.quit()
    assert [r.rcpt_tos for r in sink.received] == [["ben@example.com"]]


@pytest.mark.parametrize("at", ["MAIL", "RCPT"])
def test_a_refusal_before_data_sends_no_content_and_the_session_goes_on(app, sink, at):
    sink.script(SENDER if at == "MAIL" else "ana@example.com", "450 4.2.0 Busy", at=at)
    smtp = relay.connect()
    try:
        refused = smtplib.SMTPSenderRefused if at == "MAIL" else smtplib.SMTPRecipientsRefused
        with pytest.raises(refused):
            relay.transmit(smtp, SENDER, "ana@example.com", b"Subject: a\r\n\r\na\r\n", b"Subject: a\r\n\r\na\r\n.\r\n")
        relay.transmit(smtp, SENDER, "ben@example.com", b"Subject: b\r\n\r\nb\r\n", b"Subject: b\r\n\r\nb\r\n.\r\n")
    finally:
        smtp.quit()
    assert [(r.rcpt_tos, r.data) for r in sink.received] == [(["ben@example.com"], b"Subject: b\r\n\r\nb\r\n")]


def test_a_mail_body_with_dot_lines_goes_through_a_batch_intact(app, tenant, sink):
    (email_id,) = queue(tenant.tenant_id, "ana@example.com", body=".\n..two\n.three")
    flush()
    assert fresh(Email, email_id).status == "sent"
    assert sink.received[0].message.get_content().replace("\r\n", "\n") == ".\n..two\n.three\n"


def test_a_5xx_at_the_end_of_data_fails_that_mail_alone_and_suppresses_nothing(app, tenant, sink):
    sink.script("spam@example.com", "554 5.7.1 Message rejected as spam", at="DATA")
    ids = queue(tenant.tenant_id, "a@example.com", "spam@example.com", "c@example.com")
    (result,) = flush()
    assert [fresh(Email, i).status for i in ids] == ["sent", "failed", "sent"]
    assert "554" in fresh(Email, ids[1]).last_error and result.failed == 1
    assert sink.sessions == 1 and sorted(r.rcpt_tos[0] for r in sink.received) == ["a@example.com", "c@example.com"]
    assert db.session.query(Suppression).count() == 0  # the message was refused, not the address


def test_a_4xx_at_the_end_of_data_is_retried(app, tenant, sink):
    sink.script("busy@example.com", "451 4.3.0 Try later", at="DATA")
    (email_id,) = queue(tenant.tenant_id, "busy@example.com")
    flush()
    row = fresh(Email, email_id)
    assert row.status == "retrying" and "451" in row.last_error and sink.received == []


@pytest.mark.parametrize(
    ("answer", "status"), [("452 4.3.1 Out of storage", "retrying"), ("552 5.3.4 Message too big", "failed")]
)
def test_a_mail_refused_at_mail_from_is_retried_or_failed_alone_and_nothing_suppressed(
    app, tenant, sink, answer, status
):
    sink.script(SENDER, answer, at="MAIL")
    first, second = queue(tenant.tenant_id, "ana@example.com", "ben@example.com")
    flush()
    assert fresh(Email, first).status == status and answer[:3] in fresh(Email, first).last_error
    assert fresh(Email, second).status == "sent"  # the transaction was reset; the session goes on
    assert db.session.query(Suppression).count() == 0


def test_a_sender_the_relay_refuses_outright_retries_the_whole_batch(app, tenant, sink):
    """A 5xx to our own sender (authentication, policy) would refuse every mail: no mail is
    failed for it, none is suppressed, the batch is retried like a connection error."""
    sink.script(SENDER, "550 5.7.1 Sender not allowed", at="MAIL")
    ids = queue(tenant.tenant_id, "ana@example.com", "ben@example.com")
    (result,) = flush()
    assert [fresh(Email, i).status for i in ids] == ["retrying", "retrying"] and "550" in result.error
    assert sink.received == [] and db.session.query(Suppression).count() == 0


def test_a_421_closes_the_session_and_the_rest_of_the_batch_is_retried(app, tenant, sink):
    sink.script("b@example.com", "421 4.3.2 Shutting down")
    ids = queue(tenant.tenant_id, "a@example.com", "b@example.com", "c@example.com")
    (result,) = flush()
    statuses = {i: fresh(Email, i).status for i in ids}
    sent = [r.rcpt_tos[0] for r in sink.received]
    assert "b@example.com" not in sent and statuses[ids[1]] == "retrying" and "421" in result.error
    assert all(
        statuses[i] == ("sent" if to in sent else "retrying")
        for i, to in zip(ids, ["a@example.com", "b@example.com", "c@example.com"], strict=True)
    )
    assert db.session.query(Suppression).count() == 0


def test_a_database_error_while_recording_stops_the_batch_and_marks_nothing_failed(app, tenant, sink, monkeypatch):
    ids = queue(tenant.tenant_id, *(f"u{i}@example.com" for i in range(30)))
    monkeypatch.setattr(outcomes, "_RECORD", text("UPDATE no_such_table SET status = :new_status"))
    with pytest.raises(Exception, match="no_such_table"):
        flush()
    monkeypatch.undo()
    rows = [fresh(Email, i) for i in ids]
    # The first chunk's error stops the sends before the next chunk is handed over: the mails
    # stay leased ("sending", claimed again with the same Message-ID when the lease lapses).
    assert {r.status for r in rows} == {"sending"} and all(r.lease_expires_at for r in rows)
    assert len(sink.received) <= outcomes.RECORD_EVERY + 1
