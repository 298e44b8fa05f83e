"""What Opsdeck does on a MikroTik router, through the RouterOS API (librouteros): keep a plan's
user profile, add or update a hotspot user, remove one and kick its sessions and cookies, read
the router's resources and active sessions. Every call has ROUTER_TIMEOUT; every failure is a
RouterError with a short reason."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import librouteros
from flask import current_app
from librouteros.exceptions import LibRouterosError, TrapError
from librouteros.login import plain
from librouteros.query import Key

from app.models.provisioning import Router
from app.services import crypto
from app.telemetry import tracing

USERS = "/ip/hotspot/user"
PROFILES = "/ip/hotspot/user/profile"
ACTIVE = "/ip/hotspot/active"
COOKIES = "/ip/hotspot/cookie"
#: RouterOS's words when an add meets an existing name.
ALREADY = "already have"


T = TypeVar("T")


class RouterError(Exception):
    """The router could not be reached, or refused a command."""


@dataclass(frozen=True)
class HotspotUser:
    name: str
    password: str
    profile: str
    server: str
    comment: str
    limit_uptime: str | None = None
    limit_bytes_total: int | None = None

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "name": self.name,
            "password": self.password,
            "profile": self.profile,
            "server": self.server,
            "comment": self.comment,
        }
        attrs["limit-uptime"] = self.limit_uptime or "0s"
        attrs["limit-bytes-total"] = str(self.limit_bytes_total or 0)
        return attrs


def _tls(router: Router) -> Any:
    context = ssl.create_default_context(cafile=current_app.config["ROUTER_CA_FILE"] or None)
    if not router.tls_verify:  # the operator chose so for this router (self-signed, no CA file)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return lambda sock: context.wrap_socket(sock, server_hostname=router.host)


class _Pool:
    """Logged-in API connections kept per router (and credentials) in this process, so a job
    does not pay a TCP connect, a login and a router log line each time. A connection is reused
    only if it was idle less than IDLE_SECONDS."""

    IDLE_SECONDS = 30.0
    MAX_IDLE = 8

    def __init__(self) -> None:
        self._idle: dict[tuple[Any, ...], list[tuple[float, Any]]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[Any, ...]) -> Any | None:
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                since, api = idle.pop()
                if now - since < self.IDLE_SECONDS:
                    return api
                _close(api)
        return None

    def give(self, key: tuple[Any, ...], api: Any) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.MAX_IDLE:
                idle.append((time.monotonic(), api))
                return
        _close(api)


_pool = _Pool()


def _close(api: Any) -> None:
    with contextlib.suppress(Exception):
        api.close()


def _connect(router: Router) -> Any:
    """A new logged-in API connection (plain login, RouterOS >= 6.43)."""
    options: dict[str, Any] = {
        "port": router.port,
        "timeout": current_app.config["ROUTER_TIMEOUT"],
        "login_method": plain,
    }
    if router.tls:
        options["ssl_wrapper"] = _tls(router)
    try:
        return librouteros.connect(router.host, router.username, crypto.decrypt(router.password_encrypted), **options)
    except (OSError, LibRouterosError) as err:
        raise RouterError(f"cannot reach {router.host}:{router.port}: {_reason(err)}") from err


def call(router: Router, work: Callable[[Any], T]) -> T:
    """Run `work(api)` on a connection to the router. A pooled connection that turns out dead
    (the router restarted) is replaced once by a new one; every operation here is safe to
    repeat (add falls back to update, removal of what is gone is nothing)."""
    with tracing.span("RouterOS API", {"server.address": router.host, "server.port": router.port}):
        return _call(router, work)


def _call(router: Router, work: Callable[[Any], T]) -> T:
    key = (router.id, router.host, router.port, router.tls, router.username, router.password_encrypted)
    api, reused = _pool.take(key), True
    if api is None:
        api, reused = _connect(router), False
    try:
        result = work(api)
    except TrapError as err:  # the router refused the command; the connection is fine
        _pool.give(key, api)
        raise RouterError(f"{router.host}: {_reason(err)}") from err
    except (OSError, LibRouterosError) as err:
        _close(api)
        if not reused:
            raise RouterError(f"{router.host}: {_reason(err)}") from err
        api = _connect(router)
        try:
            result = work(api)
        except (OSError, LibRouterosError) as again:
            _close(api)
            raise RouterError(f"{router.host}: {_reason(again)}") from again
    _pool.give(key, api)
    return result


def _reason(err: BaseException) -> str:
    return (str(err) or type(err).__name__)[:300]


def _find(path: Any, **where: str) -> list[dict[str, Any]]:
    query = [Key(name) == value for name, value in where.items()]
    return list(path.select().where(*query)) if query else list(path.select())


#: Profiles this process made sure of recently: (router id, name, rate-limit, shared-users) ->
#: when. Within PROFILE_TRUST_SECONDS the check is skipped (one round trip per provision).
_profiles_seen: dict[tuple[str, str, str, int], float] = {}
PROFILE_TRUST_SECONDS = 60.0


def ensure_profile(api: Any, name: str, *, rate_limit: str | None, shared_users: int, router_id: str = "") -> None:
    """The plan's user profile exists with its rate-limit and shared-users."""
    seen_key = (router_id, name, rate_limit or "", shared_users)
    if router_id and time.monotonic() - _profiles_seen.get(seen_key, -1e9) < PROFILE_TRUST_SECONDS:
        return
    _ensure_profile(api, name, {"rate-limit": rate_limit or "", "shared-users": str(shared_users)})
    if router_id:
        _profiles_seen[seen_key] = time.monotonic()


def _ensure_profile(api: Any, name: str, wanted: dict[str, str]) -> None:
    profiles = api.path(PROFILES)
    found = _find(profiles, name=name)
    if not found:
        try:
            profiles.add(name=name, **wanted)
            return
        except TrapError as err:  # another worker added it meanwhile
            if ALREADY not in str(err):
                raise
            found = _find(profiles, name=name)
    current = found[0]
    if any(str(current.get(k, "")) != v for k, v in wanted.items()):
        profiles.update(**{".id": current[".id"], **wanted})


def upsert_user(api: Any, user: HotspotUser) -> str:
    """Add the hotspot user, or update it when the name exists. Returns "added" or "updated"."""
    users = api.path(USERS)
    attrs = user.attributes()
    try:
        users.add(**attrs)
        return "added"
    except TrapError as err:
        if ALREADY not in str(err):
            raise
    existing = next(iter(_find(users, name=user.name)), None)
    if existing is None:
        raise RouterError(f"user {user.name} reported as existing but not found")
    users.update(**{".id": existing[".id"], **{k: v for k, v in attrs.items() if k != "name"}})
    return "updated"


def remove_user(api: Any, name: str) -> dict[str, int]:
    """Remove the user, then kick its active sessions and drop its cookies (each may be gone)."""
    removed = {}
    for path in (USERS, ACTIVE, COOKIES):
        menu = api.path(path)
        rows = _find(menu, **({"name": name} if path == USERS else {"user": name}))
        if rows:
            menu.remove(*[row[".id"] for row in rows])
        removed[path.rsplit("/", 1)[-1]] = len(rows)
    return removed


def resources(api: Any) -> dict[str, Any]:
    (row,) = list(api.path("/system/resource").select())[:1] or [{}]
    return row


def active_sessions(api: Any) -> list[dict[str, Any]]:
    return [
        {k: row.get(k) for k in (".id", "user", "address", "mac-address", "uptime", "server")}
        for row in api.path(ACTIVE).select()
    ]


def kick(api: Any, session_id: str) -> None:
    api.path(ACTIVE).remove(session_id)
