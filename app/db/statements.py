"""Statement helpers for the hot paths: a Core statement prepared once per dialect, run in the
session's transaction without the ORM, and a row inserted that way held as a loaded ORM object.
Every caller that writes rows in bulk goes through these."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import make_transient_to_detached

from app.extensions import db


def dialect_insert(dialect_name: str) -> Callable[[Any], Any]:
    """The `insert()` with ON CONFLICT clauses of a dialect (SQLite's and PostgreSQL's share
    `on_conflict_do_nothing` / `on_conflict_do_update`). Both modules are imported with this
    one, at boot, rather than on a process's first request."""
    return sqlite.insert if dialect_name == "sqlite" else postgresql.insert


def conflict_insert(model: Any) -> Any:
    """`INSERT` for `model` with this database's ON CONFLICT clauses."""
    return dialect_insert(db.engine.dialect.name)(model)


class Prepared:
    """A Core statement built once (per SQL dialect: their ON CONFLICT clauses differ) and run
    with parameters: compiled once per process instead of on every call (building a statement
    and its cache key costs about as much as running it)."""

    def __init__(self, build: Callable[[Any], Any]) -> None:
        """`build(insert)` returns the statement; `insert` is the dialect's `insert()`."""
        self._build = build
        self._built: dict[str, Any] = {}

    def on(self, dialect: Any) -> Any:
        stmt = self._built.get(dialect.name)
        if stmt is None:
            stmt = self._built[dialect.name] = self._build(dialect_insert(dialect.name))
        return stmt


class InsertNew:
    """`INSERT … ON CONFLICT DO NOTHING RETURNING id` of many rows of `model` in one
    statement, prepared once per dialect and set of columns. On PostgreSQL the rows go in as
    one array per column (`SELECT unnest(…), …`): the statement stays a few hundred characters
    however many rows there are, where a multi-row VALUES grows with them and psycopg rewrites
    every placeholder of it on each call. SQLite takes the
    rows as they are (executemany, which SQLAlchemy sends as multi-row VALUES)."""

    def __init__(self, model: Any, **on_conflict: Any) -> None:
        """`on_conflict`: `on_conflict_do_nothing`'s arguments (the unique index to skip on)."""
        self.model, self.on_conflict = model, on_conflict
        self._built: dict[tuple[str, tuple[str, ...]], Any] = {}

    def ids(self, rows: list[dict[str, Any]]) -> set[Any]:
        """Insert `rows` (the same columns each) in the session's transaction; the ids of
        those inserted (none for a row that met the conflict)."""
        connection = db.session.connection()
        dialect, columns = connection.dialect.name, tuple(rows[0])
        stmt = self._built.get((dialect, columns))
        if stmt is None:
            stmt = self._built[(dialect, columns)] = self._build(dialect, columns)
        if dialect == "postgresql":
            return {r.id for r in connection.execute(stmt, {c: [row[c] for row in rows] for c in columns})}
        return {r.id for r in connection.execute(stmt, rows)}

    def _build(self, dialect: str, columns: tuple[str, ...]) -> Any:
        table = self.model.__table__
        if dialect == "postgresql":
            arrays = [func.unnest(bindparam(c, type_=postgresql.ARRAY(table.c[c].type))).label(c) for c in columns]
            insert = postgresql.insert(self.model).from_select(list(columns), select(*arrays))
        else:
            insert = dialect_insert(dialect)(self.model)
        return insert.on_conflict_do_nothing(**self.on_conflict).returning(table.c.id)


def core_execute(stmt: Any, params: Any = None) -> Any:
    """Run a Core statement in the session's transaction without the ORM's execution layer
    (no autoflush, no ORM compile step), for the hot paths. Only for statements whose results
    need no ORM objects and that need not see the session's unflushed changes."""
    connection = db.session.connection()
    if isinstance(stmt, Prepared):
        stmt = stmt.on(connection.dialect)
    return connection.execute(stmt, params)


Model = TypeVar("Model")
_EMPTY_ROWS: dict[type, dict[str, None]] = {}


def add_as_loaded(model: type[Model], row: dict[str, Any]) -> Model:
    """For a row just inserted with Core: its ORM object, held by the session as if it had
    been loaded (every column set, those `row` leaves out None, so none reloads on access; a
    change to it is flushed as an UPDATE, never a second INSERT)."""
    obj = model(**full_row(model, row))
    make_transient_to_detached(obj)
    db.session.add(obj)
    return obj


def full_row(model: type, row: dict[str, Any]) -> dict[str, Any]:
    """`row` with every column of `model` it leaves out set to None (as a new row reads back)."""
    empty = _EMPTY_ROWS.get(model)
    if empty is None:
        empty = _EMPTY_ROWS[model] = dict.fromkeys(c.key for c in model.__table__.columns)  # type: ignore[attr-defined]
    return {**empty, **row}


Obj = TypeVar("Obj")


@dataclass
class Written(Generic[Obj]):
    """One row given to `insert_once`: the row as inserted, or what held its key already
    (`replayed`)."""

    value: dict[str, Any] | Obj
    replayed: bool


def insert_once(
    stmt: InsertNew, rows: list[dict[str, Any]], key: str, holders: Callable[[str | None, list[str]], Iterable[Obj]]
) -> tuple[list[Written[Obj]], list[dict[str, Any]]]:
    """Insert, in the current transaction, each row whose `key` column (unique per
    `tenant_id`; None: no key) no earlier row of `rows` has, with `stmt` (skipping a row whose
    key the unique index holds). A row whose key a committed row holds, or an earlier row
    of the call took, is not inserted: its answer is that row, replayed (`holders(tenant, keys)`
    reads the committed ones). Keys go in sorted, so two calls inserting the same keys take
    their locks in one order. Returns the answers, in the rows' order, and the rows inserted."""
    first: dict[tuple[str | None, str], int] = {}
    fresh = []
    for n, row in enumerate(rows):
        if row[key] is not None:
            if (row["tenant_id"], row[key]) in first:
                continue
            first[(row["tenant_id"], row[key])] = n
        fresh.append(row)
    fresh.sort(key=lambda row: (row[key] is None, row["tenant_id"] or "", row[key] or ""))
    inserted = stmt.ids(fresh) if fresh else set()
    held = {k for k, n in first.items() if rows[n]["id"] not in inserted}
    by_tenant: dict[str | None, list[str]] = {}
    for tenant, value in held:
        by_tenant.setdefault(tenant, []).append(value)
    found: dict[tuple[str | None, str], Obj] = {}
    for tenant, values in by_tenant.items():
        found.update(((tenant, getattr(obj, key)), obj) for obj in holders(tenant, values))
    answers: list[Written[Obj]] = []
    for row in rows:
        k = (row["tenant_id"], row[key])
        if row[key] is None:
            answers.append(Written(row, False))
        elif k in held:
            answers.append(Written(found[k], True))
        elif rows[first[k]] is row:
            answers.append(Written(row, False))
        else:  # a later row with an earlier row's key, in this call
            answers.append(Written(rows[first[k]], True))
    return answers, [row for row in fresh if row["id"] in inserted]
