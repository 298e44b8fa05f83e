"""Extensions, created unbound here and bound to an app in create_app()."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData

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


migrate = Migrate()
socketio = SocketIO()
login = LoginManager()
csrf = CSRFProtect()
#: Admin login throttling (Redis storage, RATELIMIT_* settings); no default limits.
limiter = Limiter(key_func=get_remote_address)


class Queue:
    """Holds the Dramatiq Redis broker this app publishes to (and, in a worker, consumes from)."""

    def __init__(self) -> None:
        self._broker: Any = None

    def init_app(self, app: Flask) -> None:
        from app.broker import connection
        from app.broker.redis import Broker

        # A worker's consumers each hold a connection while they wait for work (app/broker/redis.py):
        # two per queue, besides the threads' own; connection.MAX_CONNECTIONS stays well above that.
        client = connection.client(app.config)
        # Middleware is added by workers/runtime.py in worker processes; publishing needs none.
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
