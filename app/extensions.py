"""Extensions, created unbound here and bound to an app in create_app()."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import make_transient_to_detached

if TYPE_CHECKING:
    from flask import Flask

#: Constraint names fixed so Alembic migrations are stable on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: expire_on_commit=False: a request's objects stay readable after its commit (responses are
#: built from them) instead of each attribute access reloading the row.
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION), session_options={"expire_on_commit": False})


def dialect_insert(dialect_name: str) -> Callable[[Any], Any]:
    """The `insert()` with ON CONFLICT clauses of a dialect (SQLite's and PostgreSQL's share
    `on_conflict_do_nothing` / `on_conflict_do_update`). Both modules are imported with this
    one: importing one on a process's first request cost that request 17 ms."""
    return sqlite.insert if dialect_name == "sqlite" else postgresql.insert


def conflict_insert(model: Any) -> Any:
    """`INSERT` for `model` with this database's ON CONFLICT clauses."""
    return dialect_insert(db.engine.dialect.name)(model)


class Prepared:
    """A Core statement built once (per SQL dialect: their ON CONFLICT clauses differ) and run
    with parameters. Building a statement and its cache key on every call cost as much as
    running it; a prepared one is compiled once per process."""

    def __init__(self, build: Callable[[Any], Any]) -> None:
        """`build(insert)` returns the statement; `insert` is the dialect's `insert()`."""
        self._build = build
        self._built: dict[str, Any] = {}

    def on(self, dialect: Any) -> Any:
        stmt = self._built.get(dialect.name)
        if stmt is None:
            stmt = self._built[dialect.name] = self._build(dialect_insert(dialect.name))
        return stmt


def core_execute(stmt: Any, params: Any = None) -> Any:
    """Run a Core statement in the session's transaction without the ORM's execution layer
    (no autoflush, no ORM compile step): on the paths every signed request takes, that layer
    cost as much as the statement. Only for statements whose results need no ORM objects and
    that need not see the session's unflushed changes."""
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


migrate = Migrate()
socketio = SocketIO()
login = LoginManager()
csrf = CSRFProtect()
#: Admin login throttling (Redis storage, RATELIMIT_* settings); no default limits.
limiter = Limiter(key_func=get_remote_address)


#: Connections one process may open to Redis (redis-py's default is 100).
REDIS_MAX_CONNECTIONS = 512


class Queue:
    """Holds the Dramatiq Redis broker this app publishes to (and, in a worker, consumes from)."""

    def __init__(self) -> None:
        self._broker: Any = None

    def init_app(self, app: Flask) -> None:
        import redis

        from app.broker import Broker

        # A worker's consumers each hold a connection while they wait for work (app/broker.py):
        # two per queue, besides the threads' own; the limit stays well above that.
        client = redis.Redis.from_url(
            app.config["REDIS_URL"],
            socket_connect_timeout=2,
            socket_timeout=10,
            health_check_interval=30,
            max_connections=REDIS_MAX_CONNECTIONS,
        )
        # Middleware is added by workers/broker.py in worker processes; publishing needs none.
        self._broker = Broker(client=client, middleware=[])
        app.extensions["opsdeck_queue"] = self

    @property
    def broker(self) -> Any:
        if self._broker is None:
            raise RuntimeError("Queue is not bound to an app; call init_app first")
        return self._broker

    @property
    def redis(self) -> Any:
        return self.broker.client


queue = Queue()
