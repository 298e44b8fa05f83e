"""Per-mail results of a batch, written to the database while the sends go on.

The sending thread hands results over in chunks of RECORD_EVERY // 2 to a writer thread (its
own session), and waits only when the previous chunk is still being written. So a send never
waits on a commit unless the database is slower than the relay, and at most RECORD_EVERY sent
mails are unrecorded at any moment: a crash can send those (and the one in flight) again.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, update

from app.extensions import db
from app.models import Email
from app.models.base import UTCDateTime, utcnow
from app.services.email import mails
from app.services.jobs import ledger
from app.services.webhooks import events
from app.telemetry import metrics

#: The most sent mails whose results are not yet committed (what a crash can send twice).
RECORD_EVERY = 20
#: Results per hand-over to the writer: one chunk being written and one filling stay within RECORD_EVERY.
_CHUNK = RECORD_EVERY // 2

_NOW = UTCDateTime()
_RECORD = (
    update(Email)
    .where(Email.id == bindparam("e_id"), Email.batch_id == bindparam("b_id"), Email.status == "sending")
    .values(
        status=bindparam("new_status"),
        next_attempt_at=bindparam("due", type_=_NOW),
        last_error=bindparam("err"),
        sent_at=bindparam("sent", type_=_NOW),
        attempts=Email.attempts - bindparam("undo"),
        lease_expires_at=None,
        updated_at=bindparam("now", type_=_NOW),
    )
)
_COUNTERS = {"sent": "sent", "retrying": "retrying", "failed": "failed", "queued": "deferred"}


@dataclass
class BatchResult:
    batch_id: str
    size: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    deferred: int = 0
    error: str | None = None
    duration_ms: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Chunk:
    updates: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # suppressions and events to write with it
    outcomes: Counter[str] = field(default_factory=Counter)


class RecordError(Exception):
    """Writing results failed (the database): never mistaken for an SMTP connection error."""


class Recorder:
    """`recorder(row, status, error, rcpt_code=…)` for each mail of one batch, from the sending
    thread; `drain()` when everything so far must be in the database; `close()` at the end."""

    def __init__(self, result: BatchResult) -> None:
        config = current_app.config
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]
        self.result = result
        self.schedule = {"retry_schedule": config["EMAIL_RETRY_SCHEDULE"]}
        self.max_attempts = len(config["EMAIL_RETRY_SCHEDULE"]) + 1
        self.chunk = _Chunk()
        self.done: set[str] = set()
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="opsdeck-record")
        self.writing: Future[None] | None = None

    def __call__(self, row: Email, status: str, error: str | None = None, *, rcpt_code: int | None = None) -> None:
        """`rcpt_code`: the relay's answer refusing the recipient (a 5xx suppresses it)."""
        now, due, undo = utcnow(), row.next_attempt_at, 0
        if status == "retrying" and row.attempts >= self.max_attempts:
            status = "failed"
        if status == "retrying":
            due = now + timedelta(seconds=ledger.retry_delay(row.attempts, self.schedule))
        if status == "queued":  # given back unsent: not an attempt
            due, undo = now + timedelta(seconds=current_app.config["EMAIL_DELAY"]), 1
        if status in ("failed", "retrying"):
            self.result.failures.append({"id": row.id, "to": row.to, "status": status, "error": error})
        if status == "failed":
            hard_bounce = rcpt_code is not None and 500 <= rcpt_code < 600
            self.chunk.failed.append(
                {
                    "tenant_id": row.tenant_id,
                    "to": row.to,
                    "error": error,
                    "id": row.id,
                    "message_id": row.message_id,
                    "hard_bounce": hard_bounce,
                }
            )
        counter = _COUNTERS[status]
        setattr(self.result, counter, getattr(self.result, counter) + 1)
        self.chunk.outcomes[counter] += 1
        self.done.add(row.id)
        self.chunk.updates.append(
            {
                "e_id": row.id,
                "b_id": self.result.batch_id,
                "new_status": status,
                "due": due,
                "err": (error or "")[:2000] or None,
                "sent": now if status == "sent" else None,
                "undo": undo,
                "now": now,
            }
        )
        if len(self.chunk.updates) >= _CHUNK or status == "failed":  # a failure's rows go at once
            self.hand_over()

    def hand_over(self) -> None:
        """Give the results so far to the writer, once it has finished the previous chunk."""
        self.wait()
        if self.chunk.updates:
            chunk, self.chunk = self.chunk, _Chunk()
            self.writing = self.writer.submit(self._write, chunk)

    def wait(self) -> None:
        """Until the chunk being written is committed (its error, if any, raised here)."""
        writing, self.writing = self.writing, None
        if writing is not None:
            writing.result()

    def drain(self) -> None:
        self.hand_over()
        self.wait()

    def close(self) -> None:
        self.writer.shutdown(wait=True)

    def _write(self, chunk: _Chunk) -> None:
        suppressed = 0
        try:
            with self.app.app_context():  # its own session, committed and removed at the end
                for failed in chunk.failed:  # the tenant hears of it in the same transaction
                    if failed["hard_bounce"] and mails.suppress(
                        failed["tenant_id"], failed["to"], f"hard bounce: {failed['error']}", actor="system:email"
                    ):
                        suppressed += 1
                    events.emit(
                        failed["tenant_id"],
                        "email.failed",
                        {
                            "id": failed["id"],
                            "to": failed["to"],
                            "error": failed["error"],
                            "message_id": failed["message_id"],
                        },
                    )
                db.session.connection().execute(_RECORD, chunk.updates)  # Core executemany
                db.session.commit()
        except Exception as err:
            raise RecordError(f"recording results: {type(err).__name__}: {err}") from err
        for outcome, count in chunk.outcomes.items():
            metrics.email_outcome(outcome, count)
        if suppressed:
            metrics.email_suppressed("hard_bounce", suppressed)
