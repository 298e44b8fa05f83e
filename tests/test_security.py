"""Security checks across the API: a tenant-isolation matrix built from the URL map (every
tenant-scoped route, read and write, with another tenant's ids is 404, and no list shows another
tenant's rows), and no secret in plain text anywhere in the database after a full run."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest
from flask import Flask

from app.extensions import db
from app.models import Email, Job, Scan, WebhookDelivery
from tests.fakes.routeros import RouterOsServer
from tests.helpers import LOOPBACK, make_endpoint, post_event, scanned

#: Routes that are not tenant-scoped by id: the M-Pesa callback is found by its token.
NOT_BY_ID = {"api.mpesa_callback"}
#: A body each write route accepts, so a 404 is about the id and not about the body.
BODIES = {
    "api.update_plan": {"name": "renamed"},
    "api.update_router": {"name": "renamed"},
    "api.update_webhook_endpoint": {"description": "x"},
    "api.recover_webhook_endpoint": {"since": "2026-01-01T00:00:00Z"},
    "api.subscription_action": {"duration": "1d"},
}
#: Collections and the ids of the other tenant's rows they must not list.
COLLECTIONS = {
    "/api/v1/jobs": "job_id",
    "/api/v1/emails": "email_id",
    "/api/v1/scans": "scan_id",
    "/api/v1/webhook-endpoints": "endpoint_id",
    "/api/v1/routers": "router_id",
    "/api/v1/plans": "plan_id",
    "/api/v1/payments": "payment_id",
    "/api/v1/subscriptions": "subscription_id",
}


@pytest.fixture
def app_config():
    return dict(LOOPBACK)


@pytest.fixture
def mikrotik():
    with RouterOsServer("admin", "pw") as server:
        yield server


def one_of_everything(api: Any, receiver: Any, mikrotik: RouterOsServer) -> dict[str, str]:
    """Tenant A's rows, one per kind of id the API takes."""
    ids: dict[str, str] = {}
    ids["job_id"] = api.post("/api/v1/jobs", {"type": "system.echo", "payload": {}}).get_json()["id"]
    ids["email_id"] = api.post("/api/v1/emails", {"to": "a@example.com", "subject": "s", "text": "t"}).get_json()["id"]
    ids["endpoint_id"] = make_endpoint(api, receiver.url())["id"]
    ids["event_id"] = post_event(api).get_json()["id"]
    ids["delivery_id"] = db.session.query(WebhookDelivery).one().id
    ids["scan_id"] = scanned(api, "a.txt", b"hello")["id"]
    router = api.post(
        "/api/v1/routers",
        {"name": "r", "host": "127.0.0.1", "port": mikrotik.port, "username": "admin", "password": "pw"},
    ).get_json()
    plan = api.post("/api/v1/plans", {"name": "p", "price": "10", "duration": "1h"}).get_json()
    ids["router_id"], ids["plan_id"] = router["id"], plan["id"]
    ids["payment_id"] = api.post(
        "/api/v1/payments",
        {"checkout_request_id": "ws_1", "plan_id": plan["id"], "router_id": router["id"], "phone": "+254700000001"},
    ).get_json()["id"]
    ids["subscription_id"] = api.post(
        "/api/v1/subscriptions", {"plan_id": plan["id"], "router_id": router["id"]}
    ).get_json()["id"]
    return ids


def routes(app: Flask) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.arguments and rule.endpoint not in NOT_BY_ID:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((method, rule.rule, rule.endpoint))
    return found


def test_another_tenants_ids_are_404_on_every_route_and_absent_from_every_list(app, api, other_api, receiver, mikrotik):
    ids = one_of_everything(api, receiver, mikrotik)
    checked = set()
    for method, rule, endpoint in routes(app):
        params = re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", rule)
        unknown = [p for p in params if p not in ids and p != "action"]
        assert not unknown, f"{rule}: add a row for {unknown} to one_of_everything"
        url = rule
        for param in params:
            url = re.sub(rf"<(?:[a-z]+:)?{param}>", ids.get(param, "extend"), url)
        body = BODIES.get(endpoint, {}) if method in ("POST", "PATCH") else None
        answer = other_api.request(method, url, body)
        assert answer.status_code == 404, (method, url, answer.status_code, answer.get_data(as_text=True)[:200])
        checked.add(endpoint)
    assert len(checked) >= 20
    for path, key in COLLECTIONS.items():
        listed = other_api.get(path).get_json()["data"]
        assert ids[key] not in {row["id"] for row in listed}, path
        assert ids[key] in {row["id"] for row in api.get(path).get_json()["data"]}, path  # the test can fail
    # Nothing the other tenant tried changed A's rows.
    assert db.session.get(Job, ids["job_id"]).status != "cancelled"
    assert db.session.get(Scan, ids["scan_id"]).status == "clean"
    assert db.session.get(Email, ids["email_id"]) is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_secret_is_stored_in_plain_text(app, api, tenant, receiver, mikrotik, database_url):
    """After a run through every family, none of the secrets handed out or taken in appears in a
    dump of the database (API secrets, webhook signing secrets, router and hotspot passwords,
    the M-Pesa callback token)."""
    one_of_everything(api, receiver, mikrotik)
    secrets = [tenant.secret, "pw"]
    endpoint = make_endpoint(api, receiver.url("/other"))
    secrets.append(endpoint["secret"])
    secrets.append(api.post(f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {}).get_json()["secret"])
    url = api.get("/api/v1/payments/mpesa/callback-url").get_json()["url"]
    secrets.append(url.rsplit("/", 1)[1])
    plan = api.get("/api/v1/plans").get_json()["data"][0]
    router = api.get("/api/v1/routers").get_json()["data"][0]
    sub = api.post(
        "/api/v1/subscriptions", {"plan_id": plan["id"], "router_id": router["id"], "password": "hotspot-pass-123"}
    ).get_json()
    secrets.append(sub["password"])
    db.session.commit()
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    dump = "\n".join(sqlite3.connect(path).iterdump())
    for secret in secrets:
        if secret == "pw":  # too short to be unique in a dump: check the router row instead
            assert b"pw" not in sqlite3.connect(path).execute("select password_encrypted from routers").fetchone()[0]
            continue
        assert secret not in dump, f"a secret is stored in plain text: {secret[:6]}…"
