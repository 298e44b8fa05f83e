"""Group commit: concurrent requests' writes in one transaction (job submissions, events).

A write commits its work and its idempotency record together (app/api/writes.py). For a job
submission the work is one row (for an event, a few), and most of the request's cost is the
transaction around it. Under `grouped_write` the view only builds its rows (`defer`), and the
request hands its record and its rows to a Combiner (app/broker/combining.py): the request holding the
turn writes those of every request waiting meanwhile in one transaction (one INSERT per table,
one COMMIT, one publish to Redis). A request alone goes at once, in a batch of one.

Each request's rows still commit together or not at all: a record holding its key (its
Idempotency-Key or its signature) leaves its rows out, and the request answers as that record
says: the stored response replayed, 422 for another body, or, when the record has expired, its
own write, alone. A batch that fails is written again one request at a time, so a bad row
fails only its own.

There is no lookup before the view: the key is claimed by the record's INSERT, and only a
repeat pays for a read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flask import Response, g, make_response, request
from sqlalchemy import insert

from app.api import writes
from app.broker.combining import Combiner
from app.db.statements import core_execute
from app.extensions import db
from app.models import Job
from app.services import idempotency, jobs


class Outcome(Enum):
    COMMITTED = "committed"
    #: A record holds its idempotency key: nothing of it was written.
    KEY_HELD = "key held"


#: Rows by model: a Job's are published after commit (jobs.submit_many).
Rows = dict[type, list[dict[str, Any]]]


@dataclass
class Submission:
    """What one request writes: its idempotency record (from `idempotency.new_record`, keyed
    by its Idempotency-Key or its signature) and its rows (jobs from `jobs.new_row`)."""

    record: dict[str, Any] | None
    rows: Rows


def defer(model: type, rows: list[dict[str, Any]]) -> None:
    """For a view under `grouped_write`: add rows of `model` (complete, one set of columns per
    model) to the request's work."""
    deferred = g.get("grouped_rows")
    if deferred is None:
        raise RuntimeError("defer() is for views under grouped_write")
    deferred.setdefault(model, []).extend(rows)


def grouped_write(alone_with: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`write`, for a view whose only work is the rows it `defer`s. A request whose JSON body
    sets the field `alone_with` (the platform's own key, whose dedupe needs the INSERT's
    answer) is a plain `write` instead, and the view writes through the session itself."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        plain = writes.write(view)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            if alone_with is not None and _sets(alone_with):
                return plain(*args, **kwargs)
            return _grouped(view, args, kwargs)

        wrapper.idempotent = True  # type: ignore[attr-defined]  # the OpenAPI document declares the header
        return wrapper

    return decorator


def _sets(field: str) -> bool:
    """Whether the request's JSON body is an object with `field` set."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # the view refuses it
        return False
    return isinstance(body, dict) and body.get(field) is not None


def deferring() -> bool:
    """Whether the current request's rows are being deferred (the view is not writing alone)."""
    return g.get("grouped_rows") is not None


def _grouped(view: Callable[..., Any], args: Any, kwargs: Any) -> Response:
    claim = writes.request_claim()
    if claim is not None and claim.implicit and g.get("signature_seen"):
        found = writes.look_up(claim)  # the same signed request again: no need to run the view
        if isinstance(found, idempotency.Replay):
            return writes.replayed(found)
        claim = found
    rows: Rows = {}
    g.grouped_rows = rows
    try:
        response = make_response(view(*args, **kwargs))
    except Exception as err:
        return writes.failed(claim, err)  # a repeat is answered as the first time, refusals too
    finally:
        g.grouped_rows = None
    if response.status_code >= 500:
        return response
    record = None
    if claim is not None:
        body = response.get_json(silent=True)
        record = idempotency.new_record(claim, response.status_code, body, writes.replayed_headers(response))
    # A request holds no transaction while it waits for its turn (on SQLite the batch needs the
    # write lock; on PostgreSQL a row lock would hold up its group). Nothing before the view
    # writes through the session; this ends what a read may have begun.
    db.session.commit()
    outcome = _combiner(Submission(record, rows))
    if isinstance(outcome, Exception):
        raise outcome
    if outcome is Outcome.KEY_HELD and claim is not None:
        found = writes.look_up(claim)
        if isinstance(found, idempotency.Replay):
            return writes.replayed(found)
        _insert(rows)  # the record has expired: this request's write, alone
        return writes.commit(response, found)
    return response


def write_batch(submissions: list[Submission]) -> list[Outcome | Exception]:
    """Write submissions in one transaction and commit. When a write fails, each is written
    again alone; when the COMMIT fails, every one gets its error (the commit may have gone
    through: written again, each would find its own record and answer from it, for rows that
    may not exist)."""
    try:
        outcomes = _write(submissions)
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
    return list(outcomes)


def _write(submissions: list[Submission]) -> list[Outcome]:
    outcomes = [Outcome.COMMITTED] * len(submissions)
    _claim_keys(submissions, outcomes)
    rows: Rows = {}
    for sub, outcome in zip(submissions, outcomes, strict=True):
        if outcome is Outcome.COMMITTED:
            for model, some in sub.rows.items():
                rows.setdefault(model, []).extend(some)
    _insert(rows)
    return outcomes


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


def _insert(rows: Rows) -> None:
    """One INSERT per model, parents first (foreign keys are checked at each statement)."""
    order = _table_order()
    for model in sorted(rows, key=lambda m: order[m.__table__]):  # type: ignore[attr-defined]
        if model is Job:
            jobs.submit_many(rows[model])
        elif rows[model]:
            core_execute(_statement(model), rows[model])


@functools.cache
def _table_order() -> dict[Any, int]:
    return {table: n for n, table in enumerate(db.metadata.sorted_tables)}


@functools.cache
def _statement(model: type) -> Any:
    return insert(model)


_combiner: Combiner[Submission, Outcome | Exception] = Combiner(write_batch)
