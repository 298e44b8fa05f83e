"""Group commit: concurrent requests' writes in one transaction (job submissions, events).

A signed write commits its signature, its work and its Idempotency-Key record together
(app/api/writes.py). For a job submission the work is one row (for an event, a few), and most
of the request's cost was the transaction around it: BEGIN, an Idempotency-Key lookup, three
INSERTs, COMMIT and a publish, a round trip each. Under `grouped_write` the view only builds its
rows (`defer`), and the request hands its signature digest, its record and its rows to a Combiner
(app/combining.py): the request holding the turn writes those of every request waiting meanwhile
in one transaction (one INSERT per table, one COMMIT, one publish to Redis). A request alone
goes at once, in a batch of one.

Each request's rows still commit together or not at all:
- a signature recorded already (a replay racing its original) leaves the request's record and
  rows out, and it is refused (401);
- an Idempotency-Key a record holds leaves its rows out, and the request answers as that record
  says: the stored response replayed, 422 for another body, or, when the record has expired,
  its own write, alone;
- a batch that fails is written again one request at a time, so a bad row fails only its own.

There is no Idempotency-Key lookup before the view: the key is claimed by the record's INSERT,
and only a repeat pays for a read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flask import Response, g, make_response, request
from sqlalchemy import insert

from app.api import auth, writes
from app.combining import Combiner
from app.extensions import core_execute, db
from app.models import Job
from app.services import idempotency, jobs


class Outcome(Enum):
    COMMITTED = "committed"
    #: Its signature was recorded already: a replay.
    REPLAYED = "replayed"
    #: A record holds its Idempotency-Key: nothing of it was written but its signature.
    KEY_HELD = "key held"


#: Rows by model: a Job's are published after commit (jobs.submit_rows).
Rows = dict[type, list[dict[str, Any]]]


@dataclass
class Submission:
    """What one request writes: its signature's digest, its Idempotency-Key record (from
    `idempotency.new_record`) and its rows (jobs from `jobs.new_row`)."""

    digest: str | None
    record: dict[str, Any] | None
    rows: Rows


def defer(model: type, rows: list[dict[str, Any]]) -> None:
    """For a view under `grouped_write`: add rows of `model` (complete, one set of columns per
    model) to the request's work."""
    deferred = g.get("grouped_rows")
    if deferred is None:
        raise RuntimeError("defer() is for views under grouped_write")
    deferred.setdefault(model, []).extend(rows)


def grouped_write(alone: Callable[[], bool] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`write`, for a view whose only work is the rows it `defer`s. When `alone()` says so
    (asked before the view runs), the request is a plain `write` instead, and the view writes
    through the session itself."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        plain = writes.write(view)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            if alone is not None and alone():
                return plain(*args, **kwargs)
            return _grouped(view, args, kwargs)

        wrapper.idempotent = True  # type: ignore[attr-defined]  # the OpenAPI document declares the header
        return wrapper

    return decorator


def deferring() -> bool:
    """Whether the current request's rows are being deferred (the view is not writing alone)."""
    return g.get("grouped_rows") is not None


def _grouped(view: Callable[..., Any], args: Any, kwargs: Any) -> Response:
    key = request.headers.get("Idempotency-Key")
    claim = writes.new_claim(key) if key is not None else None
    g.grouped_rows = rows = {}
    try:
        response = make_response(view(*args, **kwargs))
    except Exception:
        db.session.rollback()
        twin = writes.twin_answer(claim)  # a repeat is answered as the first time, refusals too
        if twin is not None:
            return twin
        auth.record_signature_alone()
        raise
    finally:
        g.grouped_rows = None
    if response.status_code >= 500:
        auth.record_signature_alone()
        return response
    record = None
    if claim is not None:
        body = response.get_json(silent=True)
        record = idempotency.new_record(claim, response.status_code, body, writes.replayed_headers(response))
    # A request holds no transaction while it waits for its turn (on SQLite the batch needs the
    # write lock; on PostgreSQL a row lock would hold up its group). Nothing before the view
    # writes through the session; this ends what a read may have begun.
    db.session.commit()
    outcome = _combiner(Submission(g.get("signature_digest"), record, rows))
    if isinstance(outcome, Exception):
        raise outcome
    if outcome is Outcome.REPLAYED:
        raise auth.replay_refused()
    if outcome is Outcome.KEY_HELD:
        g.signature_digest = None  # recorded with the batch
        found = writes.look_up(key or "")
        if isinstance(found, idempotency.Replay):
            return writes.replayed(found)
        _insert(rows)  # the record has expired: this request's write, alone
        return writes.commit(response, found)
    return response


def write_batch(submissions: list[Submission]) -> list[Outcome | Exception]:
    """Write submissions in one transaction and commit. When a write fails, each is written
    again alone; when the COMMIT fails, every one gets its error (the commit may have gone
    through: written again, each would find its own signature and be refused as a replay)."""
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
    _first_wins(submissions, outcomes, _digest, Outcome.REPLAYED,
                lambda winners: auth.record_signatures([sub.digest for sub in winners]))  # fmt: skip
    _first_wins(submissions, outcomes, _record_key, Outcome.KEY_HELD,
                lambda winners: idempotency.store_many([sub.record for sub in winners]))  # fmt: skip
    rows: Rows = {}
    for sub, outcome in zip(submissions, outcomes, strict=True):
        if outcome is Outcome.COMMITTED:
            for model, some in sub.rows.items():
                rows.setdefault(model, []).extend(some)
    _insert(rows)
    return outcomes


def _digest(sub: Submission) -> str | None:
    return sub.digest


def _record_key(sub: Submission) -> tuple[str, str] | None:
    return None if sub.record is None else (sub.record["tenant_id"], sub.record["key"])


def _first_wins(submissions: list[Submission], outcomes: list[Outcome], key_of: Callable[[Submission], Any],
                loser: Outcome, insert: Callable[[list[Any]], set[Any]]) -> None:  # fmt: skip
    """Claim each still-committed submission's key (a signature digest, an Idempotency-Key):
    the first submission with a key inserts it, and keeps it unless the database held it
    already (`insert` returns the keys it inserted); the others, and one whose key was held,
    become `loser`. Keys go in sorted, so two batches inserting the same keys take their
    locks in one order."""
    first: dict[Any, int] = {}
    for n, sub in enumerate(submissions):
        key = key_of(sub)
        if key is None or outcomes[n] is not Outcome.COMMITTED:
            continue
        if key in first:
            outcomes[n] = loser
        else:
            first[key] = n
    taken = insert([submissions[first[key]] for key in sorted(first)])
    for key, n in first.items():
        if key not in taken:
            outcomes[n] = loser


def _insert(rows: Rows) -> None:
    """One INSERT per model, parents first (foreign keys are checked at each statement)."""
    order = _table_order()
    for model in sorted(rows, key=lambda m: order[m.__table__]):  # type: ignore[attr-defined]
        if model is Job:
            jobs.submit_rows(rows[model])
        elif rows[model]:
            core_execute(_statement(model), rows[model])


@functools.cache
def _table_order() -> dict[Any, int]:
    return {table: n for n, table in enumerate(db.metadata.sorted_tables)}


@functools.cache
def _statement(model: type) -> Any:
    return insert(model)


_combiner: Combiner[Submission, Outcome | Exception] = Combiner(write_batch)
