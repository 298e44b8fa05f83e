"""Group commit: every job submission and event the API accepts (one, or a bulk call's list)
is written through here, with those of the requests waiting meanwhile, in one transaction.

A write commits its work and its idempotency record together (app/api/writes.py). For a job
submission the work is one row (for an event, a few), and most of the request's cost is the
transaction around it. A view under `grouped_write` only validates and builds its rows, and
returns them as a `Pending` with the writer that writes them (`jobs.submit_many`,
`events.create_many`) and how to answer once they are written. The request hands its record
and its rows to a Combiner (app/broker/combining.py): the request holding the turn runs each
writer once for the rows of every request waiting meanwhile (one INSERT per table, one COMMIT,
one publish to Redis). A request alone goes at once, in a batch of one.

The answer is known before the write when every row is new, and is the record stored with
the rows. A row answered by what held its key (a job's `idempotency_key`, an event's `id`)
changes it: the request's answer is made again from what the writer returned, and its record
updated in the same transaction.

Each request's rows still commit together or not at all: a record holding its key (its
Idempotency-Key or its signature) leaves its rows out, and the request answers as that record
says: the stored response replayed, 422 for another body, or, when the record has expired, its
own write, alone. A batch that fails is written again one request at a time, so a bad row
fails only its own. There is no lookup before the view: the key is claimed by the record's
INSERT, and only a repeat pays for a read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flask import Response, g

from app.api import writes
from app.broker.combining import Combiner
from app.db.statements import Written
from app.extensions import db
from app.services import idempotency


class Outcome(Enum):
    COMMITTED = "committed"
    #: A record holds its idempotency key: nothing of it was written.
    KEY_HELD = "key held"


#: A service function that writes rows in the caller's transaction and answers each, in the
#: rows' order (`jobs.submit_many`, `events.create_many`).
Writer = Callable[[list[dict[str, Any]]], list[Written[Any]]]


@dataclass
class Pending:
    """What a view under `grouped_write` returns: rows for a writer, and its answer once they
    are written (a row may be answered by what held its key: the platform's idempotency_key
    on a job, its id on an event)."""

    writer: Writer
    rows: list[dict[str, Any]]
    answer: Callable[[list[Written[Any]]], Response]

    def as_new(self) -> Response:
        """The answer when every row is written new (the common case, known before the write)."""
        return self.answer([Written(row, False) for row in self.rows])


@dataclass
class Submission:
    """What one request writes: its idempotency record (from `idempotency.new_record`, keyed
    by its Idempotency-Key or its signature, holding the answer `as_new`) and its rows."""

    record: dict[str, Any] | None
    pending: Pending


@dataclass
class Result:
    outcome: Outcome
    #: The answer, when a row was answered by what held its key (the record holds it too).
    replayed: Response | None = None


def grouped_write(view: Callable[..., Pending]) -> Callable[..., Response]:
    """`write`, for a view whose only work is the rows of the `Pending` it returns: they are
    committed with those of the requests waiting meanwhile (a lone request is a batch of one)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        return _grouped(view, args, kwargs)

    wrapper.idempotent = True  # type: ignore[attr-defined]  # the OpenAPI document declares the header
    return wrapper


def _grouped(view: Callable[..., Pending], args: Any, kwargs: Any) -> Response:
    claim = writes.request_claim()
    if claim is not None and claim.implicit and g.get("signature_seen"):
        found = writes.look_up(claim)  # the same signed request again: no need to run the view
        if isinstance(found, idempotency.Replay):
            return writes.replayed(found)
        claim = found
    try:
        pending = view(*args, **kwargs)
        response = pending.as_new()
    except Exception as err:
        return writes.failed(claim, err)  # a repeat is answered as the first time, refusals too
    record = None
    if claim is not None:
        body = response.get_json(silent=True)
        record = idempotency.new_record(claim, response.status_code, body, writes.replayed_headers(response))
    # A request holds no transaction while it waits for its turn (on SQLite the batch needs the
    # write lock; on PostgreSQL a row lock would hold up its group). Nothing before the view
    # writes through the session; this ends what a read may have begun.
    db.session.commit()
    result = _combiner(Submission(record, pending))
    if isinstance(result, Exception):
        raise result
    if result.outcome is Outcome.KEY_HELD and claim is not None:
        found = writes.look_up(claim)
        if isinstance(found, idempotency.Replay):
            return writes.replayed(found)
        # The record has expired: this request's write, alone.
        return writes.commit(pending.answer(pending.writer(pending.rows)), found)
    return result.replayed or response


def write_batch(submissions: list[Submission]) -> list[Result | Exception]:
    """Write submissions in one transaction and commit. When a write fails, each is written
    again alone; when the COMMIT fails, every one gets its error (the commit may have gone
    through: written again, each would find its own record and answer from it, for rows that
    may not exist)."""
    try:
        results = _write(submissions)
    except Exception as err:
        db.session.rollback()
        if len(submissions) == 1:
            return [err]
        return [write_batch([one])[0] for one in submissions]
    try:
        db.session.commit()
    except Exception as err:
        db.session.rollback()
        return [err] * len(submissions)
    return list(results)


def _write(submissions: list[Submission]) -> list[Result]:
    """Each writer once, with the rows of every submission whose key was free; a submission
    with a row answered by what held its key gets its answer again, and its record too."""
    outcomes = [Outcome.COMMITTED] * len(submissions)
    _claim_keys(submissions, outcomes)
    results = [Result(outcome) for outcome in outcomes]
    by_writer: dict[Writer, list[int]] = {}
    for n, outcome in enumerate(outcomes):
        if outcome is Outcome.COMMITTED:
            by_writer.setdefault(submissions[n].pending.writer, []).append(n)
    for writer, members in by_writer.items():
        written = writer([row for n in members for row in submissions[n].pending.rows])
        at = 0
        for n in members:
            pending = submissions[n].pending
            mine, at = written[at : at + len(pending.rows)], at + len(pending.rows)
            if any(w.replayed for w in mine):
                results[n].replayed = _answer_again(submissions[n].record, pending.answer(mine))
    return results


def _answer_again(record: dict[str, Any] | None, response: Response) -> Response:
    if record is not None:
        idempotency.update_answer(
            record, response.status_code, response.get_json(silent=True), writes.replayed_headers(response)
        )
    return response


def _record_key(sub: Submission) -> tuple[str, str] | None:
    return None if sub.record is None else (sub.record["tenant_id"], sub.record["key"])


def _claim_keys(submissions: list[Submission], outcomes: list[Outcome]) -> None:
    """Store each submission's record: the first submission with a key inserts it, and keeps
    it unless the database held it already; the others, and one whose key was held, are
    KEY_HELD. Keys go in sorted, so two batches inserting the same keys take their locks in
    one order."""
    first: dict[tuple[str, str], int] = {}
    for n, sub in enumerate(submissions):
        key = _record_key(sub)
        if key is None:
            continue
        if key in first:
            outcomes[n] = Outcome.KEY_HELD
        else:
            first[key] = n
    taken = idempotency.store_many([submissions[first[key]].record for key in sorted(first)])  # type: ignore[misc]
    for key, n in first.items():
        if key not in taken:
            outcomes[n] = Outcome.KEY_HELD


_combiner: Combiner[Submission, Result | Exception] = Combiner(write_batch)
