"""What Opsdeck does on a MikroTik router, through the RouterOS API (librouteros): keep a plan's
user profile, add or update a hotspot user, remove one and kick its sessions and cookies, read
the router's resources and active sessions. Every call has ROUTER_TIMEOUT; every failure is a
RouterError with a short reason."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import librouteros
from flask import current_app
from librouteros.exceptions import LibRouterosError, TrapError
from librouteros.login import plain
from librouteros.query import Key

from app.models.provisioning import Router
from app.services import crypto

USERS = "/ip/hotspot/user"
PROFILES = "/ip/hotspot/user/profile"
ACTIVE = "/ip/hotspot/active"
COOKIES = "/ip/hotspot/cookie"
#: RouterOS's words when an add meets an existing name.
ALREADY = "already have"


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
        attrs: dict[str, Any] = {"name": self.name, "password": self.password, "profile": self.profile,
                                 "server": self.server, "comment": self.comment}  # fmt: skip
        attrs["limit-uptime"] = self.limit_uptime or "0s"
        attrs["limit-bytes-total"] = str(self.limit_bytes_total or 0)
        return attrs


def _tls(router: Router) -> Any:
    context = ssl.create_default_context(cafile=current_app.config["ROUTER_CA_FILE"] or None)
    if not router.tls_verify:  # the operator chose so for this router (self-signed, no CA file)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return lambda sock: context.wrap_socket(sock, server_hostname=router.host)


@contextlib.contextmanager
def session(router: Router) -> Iterator[Any]:
    """A logged-in API connection (plain login, RouterOS >= 6.43), closed afterwards."""
    options: dict[str, Any] = {"port": router.port, "timeout": current_app.config["ROUTER_TIMEOUT"],
                               "login_method": plain}  # fmt: skip
    if router.tls:
        options["ssl_wrapper"] = _tls(router)
    try:
        api = librouteros.connect(router.host, router.username, crypto.decrypt(router.password_encrypted), **options)
    except (OSError, LibRouterosError) as err:
        raise RouterError(f"cannot reach {router.host}:{router.port}: {_reason(err)}") from err
    try:
        yield api
    except (OSError, LibRouterosError) as err:
        raise RouterError(f"{router.host}: {_reason(err)}") from err
    finally:
        with contextlib.suppress(Exception):
            api.close()


def _reason(err: BaseException) -> str:
    return (str(err) or type(err).__name__)[:300]


def _find(path: Any, **where: str) -> list[dict[str, Any]]:
    query = [Key(name) == value for name, value in where.items()]
    return list(path.select().where(*query)) if query else list(path.select())


def ensure_profile(api: Any, name: str, *, rate_limit: str | None, shared_users: int) -> None:
    """The plan's user profile exists with its rate-limit and shared-users."""
    profiles = api.path(PROFILES)
    wanted = {"rate-limit": rate_limit or "", "shared-users": str(shared_users)}
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
    (existing,) = _find(users, name=user.name)[:1] or [None]
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


def user_exists(api: Any, name: str) -> bool:
    return bool(_find(api.path(USERS), name=name))


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
