"""The menus of the fake RouterOS router, held in memory and shared by every API connection:
hotspot users, user profiles, active sessions and cookies, `/system/resource` and
`/system/identity`.

Values are kept as the strings the API carries (booleans as "true"/"false", as RouterOS prints
them). Tests seed and inspect them with `add`, `items`, `get`, `update`, `remove` and
`add_session`, which take Python keywords (`limit_uptime="1h"` is `limit-uptime`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class Trap(Exception):
    """A command failed: the router answers `!trap =message=…` (`=category=` when set), then `!done`."""

    def __init__(self, message: str, category: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.category = category


READ = frozenset({"print", "getall"})
EDIT = READ | {"add", "set", "remove"}
#: Arguments print accepts besides queries (`?…` words).
PRINT_ARGS = frozenset({".proplist", "count-only", "detail", "without-paging", "terse"})
#: What a command answers: the `!re` items, then the attributes of `!done`.
Result = tuple[list[dict[str, str]], dict[str, str]]
BOOLEANS = frozenset({"disabled", "add-mac-cookie", "transparent-proxy", "open-status-page", "radius"})


@dataclass(frozen=True)
class MenuSpec:
    commands: frozenset[str]
    #: What add and set accept from the API; anything else is "unknown parameter".
    fields: frozenset[str] = frozenset()
    defaults: Mapping[str, str] = field(default_factory=dict)
    #: The attribute two items may not share, named in "already have <noun> with this name".
    unique: str | None = None
    noun: str = "item"
    #: One item without an `.id` (`/system/resource`).
    singleton: bool = False


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _pairs(text: str) -> dict[str, str]:
    """Attributes written as `a=1 b=2`, as a dict."""
    return dict(pair.split("=", 1) for pair in text.split())


SPECS: dict[str, MenuSpec] = {
    "/ip/hotspot/user": MenuSpec(
        EDIT,
        _words(
            "name password profile server limit-uptime limit-bytes-in limit-bytes-out limit-bytes-total"
            " comment disabled email address mac-address routes"
        ),
        _pairs(
            "server=all profile=default uptime=0s bytes-in=0 bytes-out=0 packets-in=0 packets-out=0"
            " dynamic=false disabled=false"
        ),
        unique="name",
        noun="user",
    ),
    "/ip/hotspot/user/profile": MenuSpec(
        EDIT,
        _words(
            "name rate-limit shared-users idle-timeout keepalive-timeout session-timeout status-autorefresh"
            " address-pool add-mac-cookie mac-cookie-timeout transparent-proxy parent-queue address-list"
            " on-login on-logout incoming-filter outgoing-filter open-status-page"
        ),
        _pairs(
            "shared-users=1 idle-timeout=none keepalive-timeout=2m status-autorefresh=1m add-mac-cookie=true"
            " mac-cookie-timeout=3d transparent-proxy=false default=false"
        ),
        unique="name",
        noun="profile",
    ),
    "/ip/hotspot/active": MenuSpec(
        READ | {"remove"},
        defaults=_pairs(
            "server=hotspot1 uptime=0s idle-time=0s login-by=http-chap radius=false"
            " bytes-in=0 bytes-out=0 packets-in=0 packets-out=0"
        ),
    ),
    "/ip/hotspot/cookie": MenuSpec(READ | {"remove"}, defaults={"domain": "", "expires-in": "3d"}),
    "/system/resource": MenuSpec(READ, singleton=True),
    "/system/identity": MenuSpec(READ | {"set"}, frozenset({"name"}), singleton=True),
}

RESOURCE = {
    "uptime": "0s",
    "version": "7.16.2 (stable)",
    "build-time": "2024-11-26 13:19:13",
    "factory-software": "6.44.6",
    "free-memory": "201220096",
    "total-memory": "268435456",
    "cpu": "ARMv7",
    "cpu-count": "4",
    "cpu-frequency": "716",
    "cpu-load": "3",
    "free-hdd-space": "2256896",
    "total-hdd-space": "16777216",
    "architecture-name": "arm",
    "board-name": "hAP ac^2",
    "platform": "MikroTik",
}


def duration(seconds: float) -> str:
    """RouterOS's duration format: 1w2d3h4m5s."""
    left, out = int(seconds), ""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            out += f"{count}{unit}"
    return out or "0s"


def _wire(attrs: Mapping[str, object]) -> dict[str, str]:
    """Python keywords to API attributes: `limit_uptime=3600` -> {"limit-uptime": "3600"}."""
    out = {}
    for key, value in attrs.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out[key if key.startswith(".") else key.replace("_", "-")] = text
    return out


def _same(left: str, right: str) -> bool:
    flags = {"yes": "true", "no": "false"}
    return flags.get(left, left) == flags.get(right, right)


def _compare(left: str, right: str) -> int:
    try:
        a: int | str = int(left)
        b: int | str = int(right)
    except ValueError:
        a, b = left, right
    return (a > b) - (a < b)  # type: ignore[operator]


def matches(item: Mapping[str, str], queries: Sequence[str]) -> bool:
    """Evaluate RouterOS query words on a stack: `?name`, `?-name`, `?name=x`, `?=name=x`, `?<name=x`,
    `?>name=x`, and `?#` operations (`|` or, `&` and, `!` not, `.` duplicate). What is left is AND-ed."""
    stack: list[bool] = []
    for word in queries:
        body = word[1:]
        try:
            if body.startswith("#"):
                for op in body[1:]:
                    if op == "!":
                        stack.append(not stack.pop())
                    elif op in "|&":
                        right, left = stack.pop(), stack.pop()
                        stack.append(left or right if op == "|" else left and right)
                    elif op == ".":
                        stack.append(stack[-1])
                    else:
                        raise Trap(f"unknown query operation {op}")
            elif body.startswith("-"):
                stack.append(body[1:] not in item)
            elif body[:1] in ("=", "<", ">"):
                name, sep, value = body[1:].partition("=")
                if not sep:
                    raise Trap(f"invalid query {word}")
                have = item.get(name)
                if body[0] == "=":
                    stack.append(have is not None and _same(have, value))
                else:
                    order = -1 if body[0] == "<" else 1
                    stack.append(have is not None and _compare(have, value) == order)
            else:
                name, sep, value = body.partition("=")
                stack.append(name in item if not sep else name in item and _same(item[name], value))
        except IndexError:
            raise Trap(f"invalid query {word}") from None
    return all(stack)


class RouterMenus:
    """Thread-safe store of every menu; one per server, shared by all its connections."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, dict[str, str]]] = {path: {} for path in SPECS}
        self._counters = {path: itertools.count(1) for path in SPECS}
        self._started = time.monotonic()
        self._single: dict[str, dict[str, str]] = {
            "/system/resource": dict(RESOURCE),
            "/system/identity": {"name": "MikroTik"},
        }
        self.add("/ip/hotspot/user/profile", name="default", default=True)

    # -- for tests --------------------------------------------------------
    def add(self, path: str, **attrs: object) -> str:
        """Add an item the way the router would (defaults, unique names) but with any attribute; its `.id`."""
        with self._lock:
            return self._add(path, _wire(attrs))

    def add_session(self, user: str, address: str, mac_address: str, **attrs: object) -> str:
        """A logged-in hotspot client in /ip/hotspot/active; its `.id`."""
        return self.add("/ip/hotspot/active", user=user, address=address, mac_address=mac_address, **attrs)

    def items(self, path: str, **where: object) -> list[dict[str, str]]:
        """Copies of the items (with `.id`) whose attributes equal every `where` value."""
        wanted = _wire(where)
        with self._lock:
            return [item for item in self._all(path) if all(item.get(k) == v for k, v in wanted.items())]

    def get(self, path: str, item_id: str) -> dict[str, str] | None:
        with self._lock:
            item = self._items[path].get(item_id)
            return {".id": item_id, **item} if item is not None else None

    def update(self, path: str, item_id: str | None = None, **attrs: object) -> None:
        """Change an item, or the one item of a singleton menu (`item_id=None`)."""
        with self._lock:
            values = _wire(attrs)
            if SPECS[path].singleton:
                self._single[path].update(values)
            else:
                self._set(path, self._ids(path, item_id or ""), values)

    def remove(self, path: str, *item_ids: str) -> None:
        with self._lock:
            for item_id in self._ids(path, ",".join(item_ids)):
                del self._items[path][item_id]

    # -- for the API ------------------------------------------------------
    def resolve(self, command: str) -> tuple[str, str]:
        """Split `/ip/hotspot/user/print` into menu and command, or trap like RouterOS."""
        menu, _, verb = command.rpartition("/")
        spec = SPECS.get(menu)
        if spec is not None and verb in spec.commands:
            return menu, verb
        if spec is None:  # name the first path segment that no menu has
            parts = command.strip("/").split("/")
            prefixes = {"/".join(path.split("/")[: n + 1]) for path in SPECS for n in range(1, path.count("/") + 1)}
            verb = next((part for n, part in enumerate(parts, 1) if "/" + "/".join(parts[:n]) not in prefixes), verb)
        raise Trap(f"no such command or directory ({verb})", category=0)

    def run(self, menu: str, verb: str, attrs: dict[str, str], queries: Sequence[str]) -> Result:
        """Execute one command; the `!re` items and the `!done` attributes."""
        spec = SPECS[menu]
        with self._lock:
            if verb in READ:
                return self._print(menu, attrs, queries)
            if verb == "add":
                return [], {"ret": self._add(menu, self._checked(spec, attrs))}
            by_id, by_number = attrs.pop(".id", None), attrs.pop("numbers", None)
            ref = by_id if by_id is not None else by_number
            if verb == "set" and spec.singleton:
                self._single[menu].update(self._checked(spec, attrs))
                return [], {}
            if ref is None:
                raise Trap("missing value(s) of argument(s) numbers")
            ids = self._ids(menu, ref)
            if verb == "set":
                self._set(menu, ids, self._checked(spec, attrs))
            elif attrs:
                raise Trap("unknown parameter")
            else:
                for item_id in ids:
                    del self._items[menu][item_id]
            return [], {}

    # -- inside the lock --------------------------------------------------
    def _all(self, path: str) -> list[dict[str, str]]:
        if path == "/system/resource":
            self._single[path]["uptime"] = duration(time.monotonic() - self._started)
        if SPECS[path].singleton:
            return [dict(self._single[path])]
        return [{".id": item_id, **item} for item_id, item in self._items[path].items()]

    def _print(self, menu: str, attrs: Mapping[str, str], queries: Sequence[str]) -> Result:
        if set(attrs) - PRINT_ARGS:
            raise Trap("unknown parameter")
        found = [item for item in self._all(menu) if matches(item, queries)]
        if "count-only" in attrs:
            return [], {"ret": str(len(found))}
        if ".proplist" in attrs:
            keep = set(attrs[".proplist"].split(","))
            found = [{k: v for k, v in item.items() if k in keep} for item in found]
        return found, {}

    def _checked(self, spec: MenuSpec, attrs: Mapping[str, str]) -> dict[str, str]:
        if set(attrs) - spec.fields:
            raise Trap("unknown parameter")
        flags = {"yes": "true", "no": "false"}
        return {k: flags.get(v, v) if k in BOOLEANS else v for k, v in attrs.items()}

    def _check(self, path: str, values: Mapping[str, str], skip: str | None = None) -> None:
        spec = SPECS[path]
        if spec.unique and spec.unique in values:
            taken = any(
                i != skip and item.get(spec.unique) == values[spec.unique] for i, item in self._items[path].items()
            )
            if taken:
                raise Trap(f"failure: already have {spec.noun} with this name")
        if path == "/ip/hotspot/user" and "profile" in values:
            profiles = {p.get("name") for p in self._items["/ip/hotspot/user/profile"].values()}
            if values["profile"] not in profiles:
                raise Trap("input does not match any value of profile")

    def _add(self, path: str, values: dict[str, str]) -> str:
        spec = SPECS[path]
        if spec.unique and spec.unique not in values:
            raise Trap(f"missing value(s) of argument(s) {spec.unique}")
        item = {**spec.defaults, **values}
        self._check(path, item)
        item_id = f"*{next(self._counters[path]):X}"
        self._items[path][item_id] = item
        return item_id

    def _set(self, path: str, ids: list[str], values: dict[str, str]) -> None:
        for item_id in ids:
            self._check(path, values, skip=item_id)
        for item_id in ids:
            self._items[path][item_id].update(values)

    def _ids(self, path: str, ref: str) -> list[str]:
        """`*1,*2` (or item names, like `numbers=alice`) to existing ids; "no such item" if any is missing."""
        spec, ids = SPECS[path], []
        for part in ref.split(","):
            if part.startswith("*"):
                try:
                    item_id = f"*{int(part[1:], 16):X}"
                except ValueError:
                    raise Trap("no such item") from None
            else:
                named = [i for i, item in self._items[path].items() if spec.unique and item.get(spec.unique) == part]
                item_id = named[0] if named else part
            if item_id not in self._items[path]:
                raise Trap("no such item")
            ids.append(item_id)
        return ids
