"""The platform Opsdeck serves, as the fault suite plays it: signed requests to the web process
over HTTP (opsdeck_client: an Idempotency-Key on every write, retries on 5xx, 429 and connection
errors), M-Pesa callbacks, and a record of every piece of work the web process accepted."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
from opsdeck_client import OpsdeckClient, OpsdeckError, TransportError

#: What Daraja posts for a successful STK push (see tests/test_provisioning.py).
PLAN_PRICE = 50


def stk_callback(checkout: str, phone: int) -> dict[str, Any]:
    items = [
        {"Name": "Amount", "Value": PLAN_PRICE},
        {"Name": "MpesaReceiptNumber", "Value": checkout[-10:].upper()},
        {"Name": "Balance"},
        {"Name": "TransactionDate", "Value": 20191219102115},
        {"Name": "PhoneNumber", "Value": phone},
    ]
    return {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": "29115-34620561-1",
                "CheckoutRequestID": checkout,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {"Item": items},
            }
        }
    }


@dataclass
class Accepted:
    """Work the web process accepted (2xx), by kind; and every answer's status code."""

    echo: dict[str, str] = field(default_factory=dict)  # job id → message
    events: set[str] = field(default_factory=set)
    mails: set[str] = field(default_factory=set)
    scans: dict[str, str] = field(default_factory=dict)  # scan id → expected verdict
    payments: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)

    def total(self) -> int:
        return len(self.echo) + len(self.events) + len(self.mails) + len(self.scans) + len(self.payments)


class Platform:
    """One tenant's back end. Thread-safe: each thread gets its own HTTP session."""

    def __init__(self, url: str, key_id: str, secret: str, *, retries: int = 3, timeout: float = 15) -> None:
        self.url, self.key_id, self.secret = url, key_id, secret
        self.retries, self.timeout = retries, timeout
        self.accepted = Accepted()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.callback_path = ""

    def _client(self) -> OpsdeckClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = OpsdeckClient(self.url, self.key_id, self.secret, retries=self.retries, timeout=self.timeout)
            self._local.client = client
        return client

    def _count(self, what: str, status: int | str) -> None:
        with self._lock:
            self.accepted.answers[f"{what} {status}"] += 1

    def post(self, what: str, path: str, body: Any) -> dict[str, Any] | None:
        """POST with retries; the JSON answer when 2xx, else None (counted either way)."""
        try:
            response = self._client().request("POST", path, body)
        except OpsdeckError as err:
            self._count(what, _outcome(err))
            return None
        self._count(what, response.status)
        return response.json()

    def get(self, path: str) -> Any:
        return self._client().request("GET", path).json()

    # -- work --------------------------------------------------------------------------
    def echo(self, message: str, *, sleep: float = 0, max_attempts: int | None = 10, **extra: Any) -> str | None:
        body = {
            "type": "system.echo",
            "payload": {"message": message, "sleep_seconds": sleep},
            "max_attempts": max_attempts,
            **extra,
        }
        job = self.post("jobs", "/api/v1/jobs", body)
        if job is None:
            return None
        with self._lock:
            self.accepted.echo[job["id"]] = message
        return job["id"]

    def event(self, event_type: str = "chaos.ping", **data: Any) -> str | None:
        event = self.post("events", "/api/v1/events", {"type": event_type, "payload": data or {"n": 1}})
        if event is None:
            return None
        with self._lock:
            self.accepted.events.add(event["id"])
        return event["id"]

    def mails(self, count: int, tag: str) -> list[str]:
        body = [
            {"to": f"{tag}-{i}@example.com", "subject": f"{tag} {i}", "text": f"mail {i} of {tag}"}
            for i in range(count)
        ]
        answer = self.post("emails", "/api/v1/emails", body)
        if answer is None:
            return []
        ids = [mail["id"] for mail in answer["data"]]
        with self._lock:
            self.accepted.mails.update(ids)
        return ids

    def upload(self, name: str, content: bytes, expected: str) -> str | None:
        """A signed multipart upload (retried with the same Idempotency-Key)."""
        try:
            scan_id = self._client().scans.upload(content, filename=name)["id"]
        except OpsdeckError as err:
            self._count("scans", _outcome(err))
            return None
        self._count("scans", 202)
        with self._lock:
            self.accepted.scans[scan_id] = expected
        return scan_id

    # -- provisioning -----------------------------------------------------------------
    def endpoint(self, url: str, event_types: list[str] | None = None) -> str:
        answer = self.post(
            "setup", "/api/v1/webhook-endpoints", {"url": url, "event_types": event_types or ["chaos.ping"]}
        )
        assert answer is not None, "could not create a webhook endpoint"
        return answer["id"]

    def shop(self, router_port: int, password: str, router_host: str = "127.0.0.1") -> tuple[str, str]:
        """A router and a plan; remembers the M-Pesa callback path. Returns (router id, plan id)."""
        router = self.post(
            "setup",
            "/api/v1/routers",
            {
                "name": "chaos",
                "host": router_host,
                "port": router_port,
                "username": "opsdeck",
                "password": password,
                "hotspot_server": "hs1",
            },
        )
        plan = self.post(
            "setup",
            "/api/v1/plans",
            {
                "name": "Chaos 1h",
                "price": str(PLAN_PRICE),
                "duration": "1h",
                "rate_limit": "2M/2M",
                "profile": "chaos-1h",
            },
        )
        assert router is not None and plan is not None, "could not create the router and plan"
        url = self.get("/api/v1/payments/mpesa/callback-url")["url"]
        self.callback_path = "/" + url.split("://", 1)[1].split("/", 1)[1]
        return router["id"], plan["id"]

    def pay(self, router_id: str, plan_id: str, n: int, tag: str) -> str | None:
        """Register the STK push, then Daraja's callback for it. The payment id when both went in."""
        checkout = f"ws_CO_{tag}_{n}_{uuid.uuid4().hex[:8]}"
        phone = 254700000000 + n
        payment = self.post(
            "payments",
            "/api/v1/payments",
            {"checkout_request_id": checkout, "plan_id": plan_id, "router_id": router_id, "phone": f"+{phone}"},
        )
        if payment is None:
            return None
        body = json.dumps(stk_callback(checkout, phone)).encode()
        for _ in range(self.retries + 1):
            try:
                answer = requests.post(
                    self.url + self.callback_path,
                    data=body,
                    timeout=self.timeout,
                    headers={"Content-Type": "application/json"},
                )
            except requests.RequestException as err:
                self._count("callbacks", type(err).__name__)
                continue
            self._count("callbacks", answer.status_code)
            if answer.status_code == 200:
                with self._lock:
                    self.accepted.payments.add(payment["id"])
                return payment["id"]
        return None


def _outcome(err: OpsdeckError) -> int | str:
    """What an answer is counted as: its status, or the name of the error that left none."""
    if isinstance(err, TransportError):
        return type(err.__cause__ or err).__name__
    return err.status


class Traffic(threading.Thread):
    """The platform sending a steady mix until stopped: an echo job (sleeping `echo_sleep`) each
    round, an event every third round, a list of 5 mails every tenth."""

    def __init__(self, shop: Platform, *, echo_sleep: float = 0.2, pause: float = 0.05, tag: str = "t") -> None:
        super().__init__(name="chaos-traffic", daemon=True)
        self.shop, self.echo_sleep, self.pause, self.tag = shop, echo_sleep, pause, tag
        self.rounds = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.rounds += 1
            n = self.rounds
            self.shop.echo(f"{self.tag} {n}", sleep=self.echo_sleep)
            if n % 3 == 0:
                self.shop.event(round=n)
            if n % 10 == 0:
                self.shop.mails(5, f"{self.tag}{n}")
            self._halt.wait(self.pause)

    def stop(self) -> None:
        self._halt.set()
        self.join(60)
