"""Outbound HTTP for webhooks: an SSRF guard and pooled connections to vetted addresses.

The destination's name is resolved once per attempt; every address must be public (or inside
WEBHOOK_ALLOWED_NETWORKS) and the connection goes to one of those vetted addresses, with the
original name in `Host` and in TLS SNI and certificate checks. A name that re-resolves to an
internal address between the check and the connect (DNS rebinding) is never used, because the
name is never resolved again.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from app.telemetry import tracing

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Bytes of the receiver's answer kept with an attempt.
KEEP_BYTES = 4096
#: Answers up to this size are read to the end so the connection can be reused.
DRAIN_BYTES = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Not global, though some Python versions' is_global says they are.
_ALSO_BLOCKED = tuple(ipaddress.ip_network(n) for n in ("192.0.0.0/24", "fec0::/10", "100.64.0.0/10"))


class Refused(Exception):
    """The URL may not be called: bad form, or it resolves to a non-public address."""


class SendFailed(Exception):
    """No HTTP answer: timeout, connection or TLS error (the message says which)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[Address, ...]

    def span_attributes(self) -> dict[str, str | int]:
        # No path: a receiver's URL may carry its token there (Slack-style hooks).
        return {
            "http.request.method": "POST",
            "url.scheme": self.scheme,
            "server.address": self.host,
            "server.port": self.port,
        }

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    duration_ms: int


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: Address) -> bool:
    """Globally routable unicast: not loopback, private, link-local (169.254.169.254 included),
    CGNAT 100.64/10, multicast, reserved or unspecified, nor an IPv6 form of one of those."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public(embedded)
    if any(ip in net for net in _ALSO_BLOCKED if net.version == ip.version):
        return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_unspecified
    )


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of an http(s) URL, or Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise Refused(f"not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("the URL must start with http:// or https://")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username or parts.password:
        raise Refused("credentials in the URL are not allowed; use the signature to authenticate")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def vet(url: str, allowed: Sequence[Network] = ()) -> Target:
    """Resolve the URL's host and check every address; Refused names the first bad one."""
    scheme, host, port, path = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise Refused(f"cannot resolve {host}: {err}") from None
    addresses: list[Address] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    for ip in addresses:
        if not is_public(ip) and not any(ip in net for net in allowed):
            # (which address stays unsaid: a tenant must not map the internal network through us)
            raise Refused(
                f"{host} does not resolve to a public address only (private and loopback ranges are refused "
                "unless Opsdeck's WEBHOOK_ALLOWED_NETWORKS setting allows them, e.g. 127.0.0.0/8 for a local receiver)"
            )
    if not addresses:
        raise Refused(f"{host} has no address")
    return Target(scheme, host, port, path, tuple(addresses))


class Transport:
    """Keep-alive connection pools per (scheme, address, port, name), shared by a process's
    threads, least recently used closed beyond `max_pools`."""

    def __init__(self, max_pools: int = 256, per_pool: int = 32) -> None:
        self.max_pools, self.per_pool = max_pools, per_pool
        self._pools: OrderedDict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()

    def _pool(self, target: Target, ip: Address) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, str(ip), target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            if target.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    str(ip),
                    target.port,
                    maxsize=self.per_pool,
                    block=False,
                    retries=False,
                    server_hostname=target.host,
                    assert_hostname=target.host,
                    cert_reqs="CERT_REQUIRED",
                )
            else:
                pool = urllib3.HTTPConnectionPool(
                    str(ip), target.port, maxsize=self.per_pool, block=False, retries=False
                )
            self._pools[key] = pool
            while len(self._pools) > self.max_pools:
                _, old = self._pools.popitem(last=False)
                old.close()
            return pool

    def post(
        self, target: Target, body: bytes, headers: dict[str, str], *, timeout: float, connect_timeout: float
    ) -> Answer:
        """POST to the vetted target; redirects are answers, not followed. SendFailed when
        no address gave an HTTP answer in time. With tracing on, the request carries its
        span's `traceparent`, so the receiving platform can join the trace."""
        with tracing.span("POST", target.span_attributes()) as span:
            headers = {**headers, "Host": target.host_header}
            tracing.inject(headers)
            answer = self._post(target, body, headers, timeout=timeout, connect_timeout=connect_timeout)
            tracing.http_status(span, answer.status)
            return answer

    def _post(
        self, target: Target, body: bytes, headers: dict[str, str], *, timeout: float, connect_timeout: float
    ) -> Answer:
        started = time.monotonic()
        last: Exception | None = None
        for ip in target.addresses:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                break
            pool = self._pool(target, ip)
            try:
                response = pool.urlopen(
                    "POST",
                    target.path,
                    body=body,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    preload_content=False,
                    timeout=urllib3.Timeout(total=left, connect=min(connect_timeout, left)),
                )
            except (NewConnectionError, ConnectTimeoutError) as err:  # try the next address
                last = err
                continue
            except (ReadTimeoutError, SSLError, HTTPError, OSError) as err:
                raise SendFailed(_describe(err, timeout)) from None
            try:
                kept = response.read(KEEP_BYTES)
                if response.length_remaining is not None and response.length_remaining <= DRAIN_BYTES:
                    response.drain_conn()
                else:
                    response.close()  # a large or unbounded answer: drop the connection
            except (HTTPError, OSError):
                response.close()
                kept = b""
            finally:
                response.release_conn()
            duration = int((time.monotonic() - started) * 1000)
            return Answer(response.status, dict(response.headers), kept, duration)
        raise SendFailed(_describe(last, timeout) if last else f"timed out after {timeout:g} s")

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


def _describe(err: Exception | None, timeout: float) -> str:
    if isinstance(err, NewConnectionError):  # (a subclass of ConnectTimeoutError)
        return "connection refused or unreachable"
    if isinstance(err, ConnectTimeoutError):
        return "connect timeout"
    if isinstance(err, ReadTimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(err, SSLError):
        return f"TLS error: {err}"
    return f"connection error: {type(err).__name__}: {err}"
