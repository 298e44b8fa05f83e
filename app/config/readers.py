"""How a setting's text is read: each reader raises ValueError saying what it expects (the
Setting that uses it names the variable), and the scan storage URLs' own checks."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A setting whose value Opsdeck cannot use; the message names the variable."""


def text(raw: str) -> str:
    return raw


def integer(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def number(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError("expected a number") from None


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError("expected 1 or 0 (or true/false, yes/no, on/off)")
    return value in _TRUE


def words(raw: str) -> list[str]:
    """Comma-separated items."""
    return [item.strip() for item in raw.split(",") if item.strip()]


def seconds_list(raw: str) -> list[int]:
    """Comma-separated whole seconds, each 0 or more."""
    items = words(raw)
    if not all(re.fullmatch(r"\d+", item) for item in items):
        raise ValueError("expected comma-separated whole seconds, such as 5,60,300")
    return [int(item) for item in items]


def extensions(raw: str) -> list[str]:
    return [item.lower().lstrip(".") for item in words(raw)]


def base_url(raw: str) -> str:
    if not re.match(r"https?://[^/]", raw.strip()):
        raise ValueError("expected an http:// or https:// URL")
    return raw.strip().rstrip("/")


def hh_mm(raw: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", raw.strip()):
        raise ValueError("expected a time of day as HH:MM (24-hour, UTC), such as 02:00")
    return raw.strip()


def country_code(raw: str) -> str:
    """A calling code without its plus: 1 to 3 digits, not starting with 0."""
    value = raw.strip().removeprefix("+")
    if not re.fullmatch(r"[1-9][0-9]{0,2}", value):
        raise ValueError("expected a country calling code of 1 to 3 digits, such as 254")
    return value


def addresses(raw: str) -> list[str]:
    """Comma-separated `host:port` items (an IPv6 host in brackets)."""
    items = words(raw)
    if not items or not all(re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}", item) for item in items):
        raise ValueError("expected comma-separated host:port items, such as 10.0.0.5:26379,10.0.0.6:26379")
    return items


def file_url(path: Path) -> str:
    """A `file://` URL of a directory (made absolute)."""
    return Path(os.path.abspath(path)).as_uri()


@dataclass(frozen=True)
class StorageLocation:
    """Where a storage URL points: a directory (`file`) or a bucket and key prefix (`s3`)."""

    scheme: str
    #: The absolute directory (file) or the bucket (s3).
    where: str
    #: s3: the key prefix, empty or ending in `/`.
    prefix: str = ""

    def __str__(self) -> str:
        return Path(self.where).as_uri() if self.scheme == "file" else f"s3://{self.where}/{self.prefix}"

    def contains(self, other: StorageLocation) -> bool:
        """Whether `other` is this location or lies inside it."""
        if self.scheme == "file":
            mine, theirs = self.where.rstrip("/") + "/", other.where.rstrip("/") + "/"
            return theirs.startswith(mine)
        return self.where == other.where and other.prefix.startswith(self.prefix)


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def storage_location(raw: str) -> StorageLocation:
    """`file:///absolute/path` or `s3://bucket/optional/prefix`."""
    parts = urlsplit(raw.strip())
    if parts.query or parts.fragment:
        raise ValueError("expected no ?query or #fragment")
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ValueError("expected an absolute path as file:///absolute/path (three slashes)")
        return StorageLocation("file", os.path.normpath(path))
    if parts.scheme == "s3":
        bucket, prefix = parts.netloc, unquote(parts.path).strip("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket or re.fullmatch(r"[0-9.]+", bucket):
            raise ValueError(f"{bucket!r} is not a bucket name (3-63 lower-case letters, digits, dots and hyphens)")
        return StorageLocation("s3", bucket, f"{prefix}/" if prefix else "")
    raise ValueError("expected file:///absolute/path or s3://bucket/prefix")


def storage_url(raw: str) -> str:
    return str(storage_location(raw))


def check_scan_storage(files_url: str, quarantine_url: str) -> None:
    """Quarantine moves are server-side: a rename (file) or a copy within one endpoint (s3).
    Raises ConfigError naming SCAN_QUARANTINE_URL when the two locations cannot move between
    each other or one lies inside the other."""
    files, quarantine = storage_location(files_url), storage_location(quarantine_url)
    if files.scheme != quarantine.scheme:
        raise ConfigError(
            f"SCAN_QUARANTINE_URL={quarantine_url!r}: expected the same kind of URL as SCAN_STORAGE_URL ({files.scheme}://)"
        )
    if files.contains(quarantine) or quarantine.contains(files):
        raise ConfigError(
            f"SCAN_QUARANTINE_URL={quarantine_url!r}: must not be SCAN_STORAGE_URL or lie inside it (or it inside the quarantine)"
        )


def choice(*options: str, upper: bool = False) -> Callable[[str], str]:
    def read(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    read.__name__ = f"one of {'|'.join(options)}"
    return read
