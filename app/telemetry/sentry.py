"""Errors to Sentry: `init_sentry(config)` (called first thing in create_app, so in the web
process, every worker and the scheduler), job tags for the Ledger middleware, and the scrubber
every event, transaction and breadcrumb passes before it leaves the process.

Off unless SENTRY_DSN is set: then sentry_sdk is never initialised and nothing is patched.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.integrations.dramatiq import DramatiqIntegration
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from app.config import ROOT

if TYPE_CHECKING:
    from sentry_sdk.types import Event

log = logging.getLogger("opsdeck.observability")

FILTERED = "[Filtered]"

#: Keys whose values never leave, wherever they appear (headers, bodies, query strings, frame
#: variables, extra, breadcrumb and span data), matched anywhere in the key. `Opsdeck-Key`
#: (a key id, not a secret) and `Idempotency-Key` do not match.
_KEY_WORDS = (
    r"passw|pwd|secret|token|signature|api[_-]?key|csrf|xsrf|authorization|cookie|credential"
    r"|private[_-]?key|encryption[_-]?key|session[_-]?id"
)
SENSITIVE_KEY = re.compile(_KEY_WORDS, re.IGNORECASE)
#: A key inside text; starts at a token boundary (no backtracking through long tokens).
_KEY = rf"(?<![\w.-])(?=[\w.-]*?(?:{_KEY_WORDS}))[\w.-]*+"

#: Exact keys for sentry's own EventScrubber (which runs first); ours matches substrings.
DENYLIST = [
    *DEFAULT_DENYLIST,
    "opsdeck-signature",
    "opsdeck_signature",
    "x-csrftoken",
    "set-cookie",
    "signature",
    "secret_key",
    "webhook_secret",
    "signing_secret",
    "router_password",
    "smtp_password",
    "encryption_keys",
    "opsdeck_encryption_keys",
    "callback_token",
]

#: Plain substrings (lower case) one of which a text must contain for the key patterns to run:
#: a cheap filter, since most strings (SQL breadcrumbs above all) contain none of them.
_KEY_HINTS = (
    "passw",
    "pwd",
    "secret",
    "token",
    "signature",
    "api",
    "csrf",
    "xsrf",
    "authorization",
    "cookie",
    "credential",
    "private",
    "encryption",
    "session",
)

#: Secrets recognised by their shape, in any string (messages, reprs, URLs, SQL, breadcrumbs):
#: (hints, pattern, replacement); a pattern runs only on text containing one of its hints.
_PATTERNS: list[tuple[tuple[str, ...], re.Pattern[str], str]] = [
    (("sk_",), re.compile(r"sk_[A-Za-z0-9_-]{20,}"), FILTERED),  # API secrets
    (("whsec_",), re.compile(r"whsec_[A-Za-z0-9+/=]{20,}"), FILTERED),  # webhook signing secrets
    # The M-Pesa callback token is the last segment of its URL ("[" excluded: what was scrubbed
    # already stays as it is, when a line is scrubbed twice).
    (("/mpesa/callback/",), re.compile(r"(/mpesa/callback/)[^/?#\s'\"<>\[\]]+"), rf"\1{FILTERED}"),
    # 'password': 'x', "token": "x", password='x' (dict and dataclass reprs, JSON in strings)
    (
        _KEY_HINTS,
        re.compile(rf"({_KEY}\\?['\"]?\s*[:=]\s*)(\\?['\"])(?:\\.|(?!\2).)*(?:\2|$)", re.IGNORECASE | re.DOTALL),
        rf"\1\2{FILTERED}\2",
    ),
    # ?token=x&…, password=x (query strings, form bodies, log lines)
    (_KEY_HINTS, re.compile(rf"((?:^|[?&;,(\s]){_KEY}=)[^&#;,)\s]*", re.IGNORECASE), rf"\1{FILTERED}"),
    # Authorization: Bearer x, Cookie: a=b (raw header dumps)
    (
        ("authorization", "cookie", "signature", "csrftoken"),
        re.compile(r"((?:authorization|cookie|opsdeck-signature|x-csrftoken)\s*:\s*)[^\r\n]*", re.IGNORECASE),
        rf"\1{FILTERED}",
    ),
    (("bearer",), re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1{FILTERED}"),
    (("@",), re.compile(r"(://[^/\s:@]*:)[^@/\s]+@"), rf"\1{FILTERED}@"),  # user:password@ in URLs
    # Fernet keys (32 url-safe base64 bytes): OPSDECK_ENCRYPTION_KEYS, wherever they turn up.
    (("=",), re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"), FILTERED),
]

_started: tuple[dict[str, Any], bool] | None = None


def init_sentry(config: Mapping[str, Any]) -> bool:
    """Start reporting to Sentry when SENTRY_DSN is set; returns whether it is on.

    Must run before the Dramatiq broker is created: DramatiqIntegration patches
    `Broker.__init__` to put its middleware first. Idempotent: create_app runs many times in
    one process (tests), and Sentry is initialised again only when a setting changed.
    """
    global _started
    dsn = config.get("SENTRY_DSN") or ""
    if not dsn:
        return False
    options: dict[str, Any] = {
        "dsn": dsn,
        "environment": config.get("SENTRY_ENVIRONMENT") or config.get("OPSDECK_ENV") or "production",
        "release": config.get("SENTRY_RELEASE") or git_commit(ROOT),
        "traces_sample_rate": float(config.get("SENTRY_TRACES_SAMPLE_RATE") or 0),
    }
    report_retries = bool(config.get("SENTRY_REPORT_RETRIES"))
    client = sentry_sdk.get_client()
    if (options, report_retries) == _started and client.is_active():
        return True
    if client.is_active():
        client.close(timeout=2)
    scrubber = Scrubber(config_secrets(config))
    # A failed job is reported by the Dramatiq integration once the Ledger has tagged what
    # becomes of it (see job_outcome), not through Dramatiq's own log line, which comes first.
    ignore_logger(DRAMATIQ_WORKER_LOGGER)
    sentry_sdk.init(
        **options,
        integrations=[FlaskIntegration(), DramatiqIntegration()],
        # send_default_pii is left unset: that is "off" (no cookies, IPs or user data), and
        # sentry-sdk 2.x deprecates passing it; data_collection would switch EventScrubber off.
        event_scrubber=EventScrubber(denylist=DENYLIST, recursive=True),
        before_send=_unless_not_the_end(scrubber.event, report_retries),
        before_send_transaction=scrubber.event,
        # No sentry-trace/baggage headers on outbound HTTP: those calls go to customers' endpoints.
        trace_propagation_targets=[],
    )
    _started = (options, report_retries)
    log.info("Sentry on: environment %s, release %s", options["environment"], options["release"])
    return True


def tag_job(job_id: str, job_type: str, tenant_id: str | None, actor_name: str) -> None:
    """Tag what the current worker thread reports while it runs this job. The Dramatiq
    integration gives every message its own isolation scope, so the tags end with the message."""
    if sentry_sdk.get_client().get_integration(DramatiqIntegration) is None:
        return
    scope = sentry_sdk.get_isolation_scope()
    scope.set_tags({"job_id": job_id, "job_type": job_type, "actor": actor_name})
    if tenant_id:
        scope.set_tag("tenant", tenant_id)
    else:
        scope.remove_tag("tenant")


#: Dramatiq's worker threads log every failed attempt here ("Failed to process message …").
DRAMATIQ_WORKER_LOGGER = "dramatiq.worker.WorkerThread"


def job_outcome(status: str) -> None:
    """What became of the job attempt that raised (`retrying`, `dead`, `postponed`, `released`), as the tag
    `job_outcome`. The Ledger sets it before the Dramatiq integration captures the exception:
    Dramatiq calls middleware after-hooks last to first, and the integration's comes first."""
    if status and sentry_sdk.get_client().get_integration(DramatiqIntegration) is not None:
        sentry_sdk.get_isolation_scope().set_tag("job_outcome", status)


#: Outcomes of an attempt that are not failures at all: a postponement (rate limit), a release
#: at shutdown. Their exception is never reported.
NOT_A_FAILURE = frozenset({"postponed", "released"})


def _unless_not_the_end(send: Any, report_retries: bool) -> Any:
    """before_send that drops the exception of a job attempt that is not the job's end: always
    for a postponement or a release, and for a failure that will be retried unless
    SENTRY_REPORT_RETRIES (a flaky endpoint retried ten times is one event, when its job dies,
    not ten). Only the Dramatiq integration's capture is dropped: anything else logged
    meanwhile still goes."""
    dropped = NOT_A_FAILURE if report_retries else NOT_A_FAILURE | {"retrying"}

    def before_send(event: dict[str, Any], hint: Any = None) -> dict[str, Any] | None:
        if (event.get("tags") or {}).get("job_outcome") in dropped:
            values = (event.get("exception") or {}).get("values") or [{}]
            if (values[-1].get("mechanism") or {}).get("type") == DramatiqIntegration.identifier:
                return None
        return send(event, hint)

    return before_send


#: Values that carry no text to scrub (bool is an int; exact types, so a str subclass is scrubbed).
_PLAIN = (int, float, bool)


class Scrubber:
    """Removes secrets from an event: values under sensitive keys, then secret-shaped text and
    the configured secrets themselves in every string (keys included)."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        ordered = sorted({s for s in literals if len(s) >= 8}, key=len, reverse=True)
        self._literals = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._memo: dict[str, str] = {}
        self._keys: dict[str, tuple[str, bool]] = {}

    def event(self, event: Event, hint: Any = None) -> Event:
        """before_send / before_send_transaction. Breadcrumbs are scrubbed here, with the event
        that carries them, rather than one by one in before_breadcrumb as they are recorded:
        that would tax every SQL query and log line of every job for text that is mostly
        never sent."""
        return self.scrub(event)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            clean = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    clean[key] = self.scrub(item)
                    continue
                name, sensitive = self._key(key)
                if sensitive and item not in (None, ""):
                    clean[name] = FILTERED
                elif type(item) is str:
                    clean[name] = self.text(item)
                elif item is None or type(item) in _PLAIN:
                    clean[name] = item
                else:
                    clean[name] = self.scrub(item)
            return clean
        if isinstance(value, list | tuple):
            return [self.scrub(item) for item in value]
        return value

    def _key(self, key: str) -> tuple[str, bool]:
        """A key's scrubbed text and whether its value is withheld, kept like short texts."""
        known = self._keys.get(key)
        if known is None:
            if len(key) > self.MEMO_MAX_CHARS:
                return self.text(key), bool(SENSITIVE_KEY.search(key))
            if len(self._keys) >= self.MEMO_SIZE:
                self._keys.clear()
            known = self._keys[key] = (self.text(key), bool(SENSITIVE_KEY.search(key)))
        return known

    #: Short strings come back again and again (log keys, levels, messages, actor names): their
    #: scrubbed form is kept, up to this many, instead of running every pattern on each line.
    MEMO_SIZE, MEMO_MAX_CHARS = 4096, 200

    def text(self, value: str) -> str:
        if len(value) > self.MEMO_MAX_CHARS:
            return self._text(value)
        clean = self._memo.get(value)
        if clean is None:
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.clear()
            clean = self._memo[value] = self._text(value)
        return clean

    def line(self, value: str) -> str:
        """`text` for a string seen once (a log line with its time): not worth remembering."""
        return self._text(value)

    def _text(self, value: str) -> str:
        if self._literals is not None:
            value = self._literals.sub(FILTERED, value)
        lower = value.lower()
        for hints, pattern, replacement in _PATTERNS:
            if any(hint in lower for hint in hints):
                value = pattern.sub(replacement, value)
        return value


#: Settings whose values are secrets, scrubbed wherever they appear verbatim.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "OPSDECK_ENCRYPTION_KEYS",
    "SMTP_PASSWORD",
    "S3_SECRET_ACCESS_KEY",
    "REDIS_SENTINEL_PASSWORD",
)


def config_secrets(config: Mapping[str, Any]) -> list[str]:
    """The values of SECRET_SETTINGS in this config (lists flattened)."""
    found: list[str] = []
    for name in SECRET_SETTINGS:
        value = config.get(name)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, bytes):
                item = item.decode(errors="replace")
            if isinstance(item, str) and item:
                found.append(item)
    return found


@functools.cache
def git_commit(root: Path) -> str | None:
    """The checked-out commit, read from .git without running git; None when there is none."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        common = git / "commondir"
        base = (git / common.read_text().strip()).resolve() if common.is_file() else git
        for candidate in (git / ref, base / ref):
            if candidate.is_file():
                return candidate.read_text().strip() or None
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name == ref:
                    return sha
    except (OSError, IndexError):
        return None
    return None
