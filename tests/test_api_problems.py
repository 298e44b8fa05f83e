"""Every error the API answers is application/problem+json with `type`, `title`, `status` and
`detail` (RFC 9457), whichever route and whichever check refuses the request: one walk over
every operation of the OpenAPI document and each 4xx it documents, reached with real requests."""

from __future__ import annotations

import re
import time
from typing import Any

from urllib3 import encode_multipart_formdata

from app.config import FAMILIES
from app.services import ratelimit, tenants
from tests.conftest import SignedClient
from tests.fakes.processes import free_port
from tests.helpers import LOOPBACK, make_endpoint, post_event, upload
from tests.samples import eicar_zip

#: Documented, but answered by the web server in front of the API, in its own format.
NOT_PROBLEMS = {414}
#: Documented errors no request reaches, and why.
UNREACHED = {
    ("POST /scans", 400): "werkzeug reads a malformed multipart body as one without a file part: 422",
}
MISSING = "00000000-0000-0000-0000-000000000000"
#: Request bodies: refused as the wrong media type, as malformed, as not an object.
TEXT, MALFORMED, NOT_AN_OBJECT = b"x", b'{"unterminated', b"[]"
#: A request body limit for the walk, and a body over it.
LIMIT = 4096
TOO_LARGE = b"[" + b"0," * LIMIT + b"0]"
#: A bulk call counts its items against the rate limit once it has read them.
BULK_BODIES = {
    "/jobs/batch": {"jobs": [{"type": "system.echo", "payload": {}}]},
    "/events/batch": {"events": [{"type": "a.b", "payload": {}}]},
}


def _made(response: Any) -> str:
    assert response.status_code in (201, 202), response.get_json()
    return response.get_json()["id"]


def _resources(api: SignedClient) -> dict[str, str]:
    """One of each resource a path names, made through the API: {path parameter: value}."""
    router = _made(
        api.post(
            "/api/v1/routers",
            {
                "name": "r",
                "host": "127.0.0.1",
                "port": free_port(),
                "username": "u",
                "password": "p",
                "hotspot_server": "hs1",
            },
        )
    )
    plan = _made(api.post("/api/v1/plans", {"name": "Daily", "price": "50", "duration": "1d", "profile": "daily"}))
    shop = {"plan_id": plan, "router_id": router}
    endpoint = make_endpoint(api, "http://127.0.0.1:9/hook")["id"]
    event = _made(post_event(api))
    return {
        "router_id": router,
        "plan_id": plan,
        "endpoint_id": endpoint,
        "event_id": event,
        "delivery_id": api.get(f"/api/v1/webhook-endpoints/{endpoint}/deliveries").get_json()["data"][0]["id"],
        "subscription_id": _made(api.post("/api/v1/subscriptions", {**shop, "username": "taken"})),
        "payment_id": _made(
            api.post("/api/v1/payments", {**shop, "checkout_request_id": "ws_CO_1", "phone": "+254712345678"})
        ),
        "job_id": _made(api.post("/api/v1/jobs", {"type": "system.echo", "payload": {}})),
        "email_id": _made(api.post("/api/v1/emails", {"to": "a@example.com", "subject": "s", "text": "t"})),
        "scan_id": upload(api, "notes.txt", b"hello\n")["id"],  # pending: not downloadable yet
        "token": api.get("/api/v1/payments/mpesa/callback-url").get_json()["url"].rsplit("/", 1)[1],
        "action": "extend",
    }


def _fill(template: str, values: dict[str, str]) -> str:
    return "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


class Walk:
    """Sends requests, checks that each is refused with the status meant, as a problem
    document, and remembers which (operation, status) it reached."""

    def __init__(self) -> None:
        self.reached: set[tuple[str, int]] = set()

    def expect(self, operation: str, status: int, response: Any) -> Any:
        where = f"{operation} meant to answer {status}"
        assert response.status_code == status, (where, response.status_code, response.get_data()[:300])
        assert response.mimetype == "application/problem+json", (where, response.mimetype)
        body = response.get_json(force=True)
        assert body.get("status") == status and all(body.get(k) for k in ("type", "title", "detail")), (where, body)
        self.reached.add((operation, status))
        return response


def test_every_error_of_every_operation_is_a_problem_document(app, api):
    app.config.update(LOOPBACK)
    ids = _resources(api)
    missing = {**{name: MISSING for name in ids}, "token": "no-such-token", "action": "extend"}
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    app.config.update(MAX_CONTENT_LENGTH=LIMIT, API_BATCH_MAX_BYTES=LIMIT)
    plain = app.test_client()
    walk = Walk()
    documented: set[tuple[str, int]] = set()
    for template, operations in spec["paths"].items():
        real, absent = _fill(template, ids), _fill(template, missing)
        walk.expect(f"PUT {template}", 405, plain.put(real))  # no route takes PUT
        for method, op in operations.items():
            name, verb = f"{method.upper()} {template}", method.upper()
            codes = {int(code) for code in op["responses"] if code.startswith("4")} - NOT_PROBLEMS
            documented |= {(name, code) for code in codes}
            content = op.get("requestBody", {}).get("content", {})

            def signed(path: str = real, body: bytes | None = None, verb: str = verb, **kw: Any) -> Any:
                return api.request(verb, path, data=body, **kw)

            if op["security"]:
                walk.expect(name, 401, plain.open(real, method=verb))
            if 404 in codes and "{" in template and op["security"]:
                walk.expect(name, 404, signed(absent))
            elif 404 in codes and "{" in template:
                walk.expect(name, 404, plain.open(absent, method=verb, json={}))
            if "application/json" in content:
                walk.expect(name, 415, signed(body=TEXT, headers={"Content-Type": "text/plain"}))
                walk.expect(name, 400, signed(body=MALFORMED))
                walk.expect(name, 422, signed(body=NOT_AN_OBJECT))
                walk.expect(name, 413, signed(body=TOO_LARGE))
            elif verb in {"POST", "PATCH", "DELETE"} and 422 in codes:
                walk.expect(name, 422, signed(headers={"Idempotency-Key": "k" * 256}))
            elif verb == "GET" and 422 in codes:
                walk.expect(name, 422, signed(real + "?limit=0"))
    walk.expect("GET /no-such-route", 404, api.get("/api/v1/no-such-route"))

    # A switched-off family's routes, those without an id in their path included.
    app.config["OPSDECK_DISABLED_FAMILIES"] = list(FAMILIES)
    for template, operations in spec["paths"].items():
        for method, op in operations.items():
            if 404 in {int(c) for c in op["responses"] if c.isdigit()} and "{" not in template:
                path = _fill(template, ids)
                walk.expect(f"{method.upper()} {template}", 404, api.request(method.upper(), path))
    app.config["OPSDECK_DISABLED_FAMILIES"] = []

    # Over the rate limit: every signed operation, before it does anything.
    limited = tenants.create_tenant("limited")
    client = SignedClient(app, limited.key_id, limited.secret)
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 1
    for template, operations in spec["paths"].items():
        for method, op in operations.items():
            if op["security"]:
                ratelimit.hit(f"api:{limited.tenant_id}", 1, 60)  # this minute's window is spent (1 of 1)
                over = client.request(method.upper(), _fill(template, ids), BULK_BODIES.get(template))
                response = walk.expect(f"{method.upper()} {template}", 429, over)
                assert int(response.headers["Retry-After"]) >= 1
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 6000

    # Refusals that need a resource in a given state.
    sub = f"/api/v1/subscriptions/{ids['subscription_id']}"
    walk.expect("POST /jobs/{job_id}/retry", 409, api.post(f"/api/v1/jobs/{ids['job_id']}/retry"))
    assert api.post(f"/api/v1/jobs/{ids['job_id']}/cancel").status_code == 200
    walk.expect("POST /jobs/{job_id}/cancel", 409, api.post(f"/api/v1/jobs/{ids['job_id']}/cancel"))
    walk.expect("GET /scans/{scan_id}/file", 409, api.get(f"/api/v1/scans/{ids['scan_id']}/file"))
    body = {"plan_id": ids["plan_id"], "router_id": ids["router_id"], "username": "taken"}
    walk.expect("POST /subscriptions", 409, api.post("/api/v1/subscriptions", body))
    assert api.post(f"{sub}/expire").status_code == 202
    walk.expect("POST /subscriptions/{subscription_id}/{action}", 409, api.post(f"{sub}/reprovision"))
    endpoint = f"/api/v1/webhook-endpoints/{ids['endpoint_id']}"
    assert api.patch(endpoint, {"enabled": False}).status_code == 200
    walk.expect(
        "POST /webhook-endpoints/{endpoint_id}/recover",
        409,
        api.post(f"{endpoint}/recover", {"since": "2020-01-01T00:00:00Z"}),
    )
    walk.expect(
        "POST /webhook-deliveries/{delivery_id}/retry",
        409,
        api.post(f"/api/v1/webhook-deliveries/{ids['delivery_id']}/retry"),
    )
    reused = api.post("/api/v1/jobs", {"type": "system.echo", "payload": {"a": 1}}, headers={"Idempotency-Key": "once"})
    walk.expect("POST /jobs", 422, reused)  # the key went with another body before

    # The M-Pesa callback (no signature): from outside MPESA_ALLOWED_NETWORKS, and over the body limit.
    callback = _fill("/payments/mpesa/callback/{token}", ids)
    app.config["MPESA_ALLOWED_NETWORKS"] = ["10.0.0.0/8"]
    walk.expect("POST /payments/mpesa/callback/{token}", 403, plain.post(callback, json={}))
    app.config["MPESA_ALLOWED_NETWORKS"] = []
    walk.expect(
        "POST /payments/mpesa/callback/{token}",
        413,
        plain.post(callback, data=TOO_LARGE, content_type="application/json"),
    )

    # Uploads: no file part, over SCAN_MAX_BYTES (declared and not), malformed (no file either), refused by the
    # pre-check, and that refusal answered again for its Idempotency-Key and for its signature.
    app.config["SCAN_MAX_BYTES"] = 1000
    walk.expect("POST /scans", 422, api.upload("/api/v1/scans", "notes.txt", b"hi", field="other"))
    walk.expect("POST /scans", 413, api.upload("/api/v1/scans", "big.txt", b"a" * 2000))
    walk.expect("POST /scans", 413, api.upload("/api/v1/scans", "huge.txt", b"a" * 100_000))
    malformed = api.request("POST", "/api/v1/scans", data=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
    walk.expect("POST /scans", 422, malformed)
    app.config["SCAN_MAX_BYTES"] = 1_000_000
    keyed = {"Idempotency-Key": "jpg"}
    refused = walk.expect("POST /scans", 422, api.upload("/api/v1/scans", "holiday.jpg", eicar_zip(), headers=keyed))
    assert refused.get_json()["title"] == "File rejected" and refused.get_json()["scan_id"]
    again = walk.expect("POST /scans", 422, api.upload("/api/v1/scans", "holiday.jpg", eicar_zip(), headers=keyed))
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == refused.get_json()
    wire, content_type = encode_multipart_formdata({"file": ("holiday.png", eicar_zip())})
    sent_at = int(time.time())  # the same signed request twice: a client's automatic retry
    refused, again = (
        walk.expect(
            "POST /scans",
            422,
            api.request("POST", "/api/v1/scans", data=wire, timestamp=sent_at, headers={"Content-Type": content_type}),
        )
        for _ in range(2)
    )
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == refused.get_json()

    unreached = documented - walk.reached
    assert unreached == set(UNREACHED), f"documented errors the walk did not reach: {sorted(unreached)}"
