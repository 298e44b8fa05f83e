"""Batched sending: claim due mails (a row claim two flushes cannot both take), fold digests,
render once, send over one SMTP connection at the shared pace, record per-recipient results.

Sending once: a mail's Message-ID is fixed before its first attempt; a claim carries a lease.
A flush that dies leaves its mails to be claimed again when the lease lapses, with the same
Message-ID. Results are committed while the sends go on (`outcomes`), at most RECORD_EVERY
behind, so a crash between the relay's 250 and that commit can send those mails again (SMTP
has no dedupe); nothing can be lost.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import smtplib
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from flask import current_app
from marshmallow import Schema
from sqlalchemy import and_, exists, or_, select, update

from app.extensions import db, queue
from app.jobtypes import JobType, register
from app.models import Email, EmailBatch, Job
from app.models.base import new_id, utcnow
from app.services import jobs, ratelimit
from app.services.email import compose, mails, outcomes, relay, render
from app.telemetry import tracing

log = logging.getLogger(__name__)


class FlushPayload(Schema):
    pass


FLUSH = register(JobType("email.flush", family="email", queue="email", payload=FlushPayload, max_attempts=3))

#: A flush stops claiming new batches after this long (the next flush goes on).
FLUSH_BUDGET_SECONDS = 45.0
#: Redis key held while a flush is queued or running (one at a time, kicked at most once). Its
#: value names the flush job and when the guard was set ("<job id> <unix time>").
FLUSH_PENDING_KEY = "opsdeck:email:flush-pending"
FLUSH_PENDING_SECONDS = 60
#: A guard whose job is not in the database yet is trusted this long (its kick's transaction
#: may still be open); after that the job never committed, and the guard is taken over.
FLUSH_GUARD_GRACE_SECONDS = 5.0
PACE = "email-relay"
#: How many mails the render thread may be ahead of the sends.
COMPOSE_AHEAD = 2


# -- kicking a flush ------------------------------------------------------------------
def _due() -> Any:
    now = utcnow()
    return or_(
        and_(Email.status.in_(("queued", "retrying")), Email.next_attempt_at <= now),
        and_(Email.status == "sending", Email.lease_expires_at < now),
    )


def submit_flush() -> bool:
    """Queue an `email.flush` job in the caller's transaction, unless one is already pending.
    A guard left by a kick whose transaction rolled back, or by a flush that ended without
    clearing it, is taken over: due mail never waits for the guard to expire."""
    job_id = new_id()
    guard = f"{job_id} {time.time():.3f}"
    try:
        if not queue.redis.set(FLUSH_PENDING_KEY, guard, nx=True, ex=FLUSH_PENDING_SECONDS):
            if _guarded(queue.redis.get(FLUSH_PENDING_KEY)):
                return False
            queue.redis.set(FLUSH_PENDING_KEY, guard, ex=FLUSH_PENDING_SECONDS)
    except Exception:  # Redis down: queue one anyway (the outbox holds it); duplicates are harmless
        log.debug("flush guard unavailable", exc_info=True)
    jobs.submit(FLUSH.name, {}, priority="normal", job_id=job_id)
    return True


def _guarded(value: bytes | None) -> bool:
    """Whether the flush a guard names may still run: its job is unfinished, or too new to have
    committed. (Two kicks that both take over a stale guard queue two flushes: harmless, a row
    claim sends each mail once.)"""
    if value is None:
        return False  # expired meanwhile
    job_id, _, set_at = value.decode(errors="replace").partition(" ")
    try:
        age = time.time() - float(set_at)
    except ValueError:
        return True  # not ours to judge: it expires
    status = db.session.scalar(select(Job.status).where(Job.id == job_id))
    if status is None:
        return age < FLUSH_GUARD_GRACE_SECONDS
    return not jobs.is_finished(status)


def kick_if_due() -> dict[str, Any] | None:
    """The scheduler's check every EMAIL_DELAY: a flush when mail is due and none is pending."""
    if "email" in current_app.config.get("OPSDECK_DISABLED_FAMILIES", []):
        return None
    if not db.session.scalar(select(exists().where(_due()))):
        return None
    kicked = submit_flush()
    db.session.commit()
    return {"flush": kicked}


def flush_done() -> None:
    try:
        queue.redis.delete(FLUSH_PENDING_KEY)
    except Exception:
        log.debug("flush guard unavailable", exc_info=True)


# -- one flush --------------------------------------------------------------------------
def flush(
    worker: str, budget: float = FLUSH_BUDGET_SECONDS, on_batch: Callable[[outcomes.BatchResult], None] | None = None
) -> list[outcomes.BatchResult]:
    """Send batches until nothing is due or the budget is spent, EMAIL_DELAY apart; `on_batch`
    hears of each batch as soon as its rows are recorded."""
    config = current_app.config
    started, results = time.monotonic(), []
    while time.monotonic() - started < budget:
        result = send_batch(worker, config["EMAIL_BATCH_SIZE"])
        if result is None:
            break
        results.append(result)
        if on_batch is not None:
            on_batch(result)
        time.sleep(config["EMAIL_DELAY"])
    return results


def claim(batch_id: str, limit: int) -> list[Email]:
    """Take up to `limit` due mails for this batch (FOR UPDATE SKIP LOCKED on PostgreSQL; the
    single writer on SQLite), and fold mails sharing a digest window into one digest mail."""
    now = utcnow()
    lease = now + timedelta(seconds=current_app.config["EMAIL_LEASE_SECONDS"])
    due = select(Email.id).where(_due()).order_by(Email.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    ids = list(
        db.session.scalars(
            update(Email)
            .where(Email.id.in_(due.scalar_subquery()))
            .values(
                status="sending", batch_id=batch_id, lease_expires_at=lease, attempts=Email.attempts + 1, updated_at=now
            )
            .returning(Email.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not ids:
        db.session.commit()
        return []
    oldest_first = select(Email).where(Email.id.in_(ids)).order_by(Email.next_attempt_at, Email.created_at)
    rows = list(db.session.scalars(oldest_first.execution_options(populate_existing=True)))
    rows = _fold_digests(rows, batch_id, lease, now)
    db.session.add(EmailBatch(id=batch_id, size=len(rows), created_at=now))
    db.session.commit()
    return rows


def _fold_digests(rows: list[Email], batch_id: str, lease: Any, now: Any) -> list[Email]:
    groups: dict[tuple[str, str, str], list[Email]] = {}
    for row in rows:
        if row.digest_key and row.attempts == 1:
            groups.setdefault((row.tenant_id, row.to, row.digest_key), []).append(row)
    folded = []
    for (tenant_id, to, _key), items in groups.items():
        if len(items) < 2:
            continue
        items.sort(key=lambda r: r.created_at)
        parts, renderable = [], []
        for item in items:
            try:
                shown = render.render(item.template, item.context, subject=item.subject, text=item.text)
            except Exception as err:  # this mail fails alone; the others still go
                item.status, item.lease_expires_at, item.updated_at = "failed", None, now
                item.last_error = f"render: {type(err).__name__}: {err}"[:2000]
                folded.append(item)
                continue
            parts.append({"subject": shown.subject, "text": shown.text.split("\n--\n")[0].strip()})
            renderable.append(item)
        items = renderable
        if len(items) < 2:
            continue
        digest_id = new_id()
        digest = Email(
            id=digest_id,
            tenant_id=tenant_id,
            to=to,
            template="digest",
            context={"items": parts, "count": len(parts)},
            status="sending",
            attempts=1,
            batch_id=batch_id,
            lease_expires_at=lease,
            next_attempt_at=now,
            message_id=f"<{digest_id}@{mails.message_domain()}>",
            created_at=now,
            updated_at=now,
        )
        db.session.add(digest)
        for item in items:
            item.status, item.digest_id, item.lease_expires_at, item.updated_at = "digested", digest_id, None, now
            folded.append(item)
        rows.append(digest)
    return [r for r in rows if r not in folded]


def send_batch(worker: str, limit: int) -> outcomes.BatchResult | None:
    """Claim, render and send one batch over one connection; None when nothing was due."""
    batch_id = new_id()
    rows = claim(batch_id, limit)
    if not rows:
        return None
    config = current_app.config
    result = outcomes.BatchResult(batch_id, size=len(rows))
    record = outcomes.Recorder(result)
    began = time.monotonic()
    messages = _composing(rows)
    smtp = None
    renewed = time.monotonic()
    with tracing.span("SMTP session", relay.span_attributes(len(rows))):
        try:
            smtp, sender = relay.connect(), compose.envelope_from()
            for index, row in enumerate(rows):
                message, wired = next(messages)
                if isinstance(message, Exception):  # a template that cannot render: this mail only
                    record(row, "failed", f"render: {type(message).__name__}: {message}")
                    continue
                assert wired is not None, "a mail that rendered has its DATA"
                if time.monotonic() - renewed > config["EMAIL_LEASE_SECONDS"] / 3:
                    record.drain()
                    _renew_lease(batch_id)
                    renewed = time.monotonic()
                wait = ratelimit.reserve(
                    PACE, config["EMAIL_RATE_PER_MINUTE"], max_wait=config["EMAIL_LEASE_SECONDS"] / 2
                )
                if wait is None:  # the pace will not reach these within the lease: give them back
                    for later in rows[index:]:
                        record(later, "queued", "waiting for the relay rate limit")
                    break
                if wait:
                    time.sleep(wait)
                try:
                    relay.transmit(smtp, sender, row.to, message.data, wired)
                except smtplib.SMTPRecipientsRefused as err:
                    code, text = next(iter(err.recipients.values()), (0, b""))
                    _refused(record, row, code, text, recipient=True)
                except smtplib.SMTPSenderRefused as err:
                    if 500 <= err.smtp_code < 600 and err.smtp_code != 552:
                        raise  # our sender refused (auth, policy): every mail would be; the batch retries
                    _refused(record, row, err.smtp_code, err.smtp_error, recipient=False)  # 4xx, or too big
                except smtplib.SMTPDataError as err:
                    _refused(record, row, err.smtp_code, err.smtp_error, recipient=False)
                except (smtplib.SMTPServerDisconnected, OSError):
                    raise  # the connection: handled below for the rest of the batch
                except Exception as err:  # this mail cannot be sent (e.g. an address SMTP cannot carry)
                    record(row, "failed", f"{type(err).__name__}: {err}")
                    with contextlib.suppress(smtplib.SMTPException, OSError):
                        smtp.rset()
                else:
                    record(row, "sent")
                if smtp.sock is None:  # the relay closed the session (421): no use trying the rest
                    raise smtplib.SMTPServerDisconnected(
                        f"the relay closed the session: {result.failures[-1]['error']}"
                    )
        except (smtplib.SMTPException, OSError) as err:  # the connection: the rest of the batch retries
            result.error = f"{type(err).__name__}: {err}"[:2000]
            for row in rows:
                if row.id not in record.done:
                    record(row, "retrying", f"SMTP connection: {result.error}")
        finally:
            messages.close()
            if smtp is not None:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
            try:
                record.drain()
            finally:
                record.close()
    result.duration_ms = int((time.monotonic() - began) * 1000)
    _finish(result, worker)
    return result


def _composing(rows: list[Email]) -> Generator[tuple[compose.Composed, bytes] | tuple[Exception, None], None, None]:
    """Each mail's bytes, in order, rendered by a helper thread while the sends wait on the
    network. The helper stays at most COMPOSE_AHEAD mails ahead: rendering the whole batch at
    once would hold the GIL for a long stretch, and every SMTP reply would then wait up to the
    interpreter's switch interval (5 ms) for it. Yields each mail with its DATA as sent; a mail
    that cannot render yields its exception."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def one(row: Email) -> tuple[compose.Composed, bytes] | tuple[Exception, None]:
        with app.app_context():
            try:
                composed = compose.compose(row)
            except Exception as err:
                log.warning("mail %s cannot be rendered", row.id, exc_info=True)
                return err, None
            return composed, relay.wire(composed.data)

    executor = ThreadPoolExecutor(1, thread_name_prefix="opsdeck-compose")
    upcoming = iter(rows)
    ahead = deque(executor.submit(one, row) for row in itertools.islice(upcoming, COMPOSE_AHEAD))
    try:
        while ahead:
            composed = ahead.popleft().result()
            row = next(upcoming, None)
            if row is not None:
                ahead.append(executor.submit(one, row))
            yield composed
    finally:
        executor.shutdown(wait=True, cancel_futures=True)  # at most the render under way


def _renew_lease(batch_id: str) -> None:
    """A slow (paced) batch keeps its unsent mails: nobody else claims them meanwhile."""
    until = utcnow() + timedelta(seconds=current_app.config["EMAIL_LEASE_SECONDS"])
    db.session.execute(
        update(Email).where(Email.batch_id == batch_id, Email.status == "sending").values(lease_expires_at=until),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


def _refused(record: outcomes.Recorder, row: Email, code: int, text: Any, *, recipient: bool) -> None:
    """A 4xx is retried, a 5xx fails the mail; only a 5xx to the recipient itself (RCPT) puts
    the address on the suppression list, not one to the sender or the message (size, content)."""
    error = f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
    record(row, "failed" if 500 <= code < 600 else "retrying", error, rcpt_code=code if recipient else None)


def _finish(result: outcomes.BatchResult, worker: str) -> None:
    db.session.execute(
        update(EmailBatch)
        .where(EmailBatch.id == result.batch_id)
        .values(
            worker=worker,
            sent=result.sent,
            retrying=result.retrying,
            failed=result.failed,
            deferred=result.deferred,
            error=result.error,
            finished_at=utcnow(),
            duration_ms=result.duration_ms,
        )
    )
    db.session.commit()
