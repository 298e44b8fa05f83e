"""Provisioning against the RouterOS API test server with the real librouteros client: M-Pesa
callbacks to payments, subscriptions and hotspot users; retries; expiry; TLS; refusals."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app import live
from app.extensions import db
from app.models import AuditEntry, Event, Payment, Subscription
from app.models.base import utcnow
from app.services.provisioning import subscriptions
from tests.fakes.routeros import RouterOsServer
from tests.helpers import fresh, pending_jobs, run_provisioning_job

USERS, PROFILES = "/ip/hotspot/user", "/ip/hotspot/user/profile"
ROUTER_PASSWORD = "r0uter-secret"


@pytest.fixture
def app_config():
    return {"PROVISION_RETRY_SCHEDULE": [1, 1, 1], "ROUTER_TIMEOUT": 3.0}


@pytest.fixture
def mikrotik() -> Iterator[RouterOsServer]:
    with RouterOsServer("opsdeck", ROUTER_PASSWORD) as server:
        yield server


def add_router(api: Any, server: RouterOsServer, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "lobby",
        "host": "127.0.0.1",
        "port": server.port,
        "username": "opsdeck",
        "password": ROUTER_PASSWORD,
        "hotspot_server": "hs1",
        **extra,
    }
    response = api.post("/api/v1/routers", body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_plan(api: Any, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "Daily 2M",
        "price": "50",
        "duration": "1d",
        "rate_limit": "2M/2M",
        "uptime_limit": "12h",
        "data_limit_bytes": 1_000_000_000,
        "shared_users": 2,
        "profile": "daily-2m",
        **extra,
    }
    response = api.post("/api/v1/plans", body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def stk_callback(checkout: str, code: int = 0, amount: Any = 50, phone: int = 254712345678) -> dict[str, Any]:
    """Daraja's STK callback as Safaricom sends it (Balance without a Value)."""
    stk: dict[str, Any] = {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": checkout,
        "ResultCode": code,
        "ResultDesc": "The service request is processed successfully.",
    }
    if code == 0:
        stk["CallbackMetadata"] = {
            "Item": [
                {"Name": "Amount", "Value": amount},
                {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
                {"Name": "Balance"},
                {"Name": "TransactionDate", "Value": 20191219102115},
                {"Name": "PhoneNumber", "Value": phone},
            ]
        }
    else:
        stk["ResultDesc"] = "Request cancelled by user"
    return {"Body": {"stkCallback": stk}}


@pytest.fixture
def shop(app, api, mikrotik) -> dict[str, Any]:
    router, plan = add_router(api, mikrotik), add_plan(api)
    url = api.get("/api/v1/payments/mpesa/callback-url").get_json()["url"]
    return {"router": router, "plan": plan, "callback_path": url.split("://", 1)[1].split("/", 1)[1]}


def expect_payment(api: Any, shop: dict[str, Any], checkout: str = "ws_CO_1") -> dict[str, Any]:
    response = api.post(
        "/api/v1/payments",
        {
            "checkout_request_id": checkout,
            "plan_id": shop["plan"]["id"],
            "router_id": shop["router"]["id"],
            "phone": "+254712345678",
        },
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def call_back(app: Any, shop: dict[str, Any], body: Any, **kw: Any) -> Any:
    return app.test_client().post(
        "/" + shop["callback_path"], data=json.dumps(body), content_type="application/json", **kw
    )


def run_all(job_type: str) -> list[Any]:
    return [run_provisioning_job(job.id) for job in pending_jobs(job_type)]


def event_types() -> list[str]:
    db.session.rollback()
    return [e.type for e in db.session.scalars(select(Event).order_by(Event.created_at))]


def test_a_paid_callback_becomes_a_hotspot_user_with_the_plans_limits(app, api, shop, mikrotik):
    payment = expect_payment(api, shop)
    answer = call_back(app, shop, stk_callback("ws_CO_1"))
    assert answer.status_code == 200 and answer.get_json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert fresh(Payment, payment["id"]).status == "processing"
    run_all("payment.process")
    row = fresh(Payment, payment["id"])
    assert row.status == "processed" and row.receipt_number == "NLJ7RT61SV" and row.paid_phone == "+254712345678"
    assert json.loads(row.raw_callback)["Body"]["stkCallback"]["CheckoutRequestID"] == "ws_CO_1"
    run_all("subscription.provision")
    sub = api.get(f"/api/v1/subscriptions/{row.subscription_id}").get_json()
    assert sub["status"] == "active" and sub["payment_id"] == payment["id"] and sub["password"]
    (user,) = mikrotik.menus.items(USERS, name=sub["username"])
    assert user["password"] == sub["password"] and user["profile"] == "daily-2m" and user["server"] == "hs1"
    assert user["limit-uptime"] == "12h" and user["limit-bytes-total"] == "1000000000"
    assert user["comment"] == f"opsdeck:{sub['id']}"
    (profile,) = mikrotik.menus.items(PROFILES, name="daily-2m")
    assert profile["rate-limit"] == "2M/2M" and profile["shared-users"] == "2"
    assert event_types() == ["payment.processed", "subscription.provisioned"]


def test_the_same_callback_three_times_is_one_payment_and_one_user(app, api, shop, mikrotik):
    payment = expect_payment(api, shop)
    for _ in range(3):
        assert call_back(app, shop, stk_callback("ws_CO_1")).status_code == 200
    assert len(pending_jobs("payment.process")) == 1
    run_all("payment.process")
    run_all("payment.process")  # nothing left to run
    run_all("subscription.provision")
    assert fresh(Payment, payment["id"]).callbacks == 3
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 1
    assert len(mikrotik.menus.items(USERS)) == 1
    again = api.post(
        "/api/v1/payments",
        {
            "checkout_request_id": "ws_CO_1",
            "plan_id": shop["plan"]["id"],
            "router_id": shop["router"]["id"],
            "phone": "+254712345678",
        },
    )
    assert again.status_code == 200 and again.get_json()["id"] == payment["id"]


def test_a_cancelled_push_fails_the_payment_and_makes_no_user(app, api, shop, mikrotik):
    payment = expect_payment(api, shop)
    call_back(app, shop, stk_callback("ws_CO_1", code=1032))
    row = fresh(Payment, payment["id"])
    assert row.status == "failed" and row.result_code == 1032 and not pending_jobs("payment.process")
    assert mikrotik.menus.items(USERS) == []
    event = db.session.scalar(select(Event).where(Event.type == "payment.failed"))
    assert json.loads(event.body)["data"]["reason"] == "cancelled by the customer"
    assert [e["type"] for e in live.recent(5)] == ["payment.failed"]


def test_an_amount_mismatch_is_held_for_an_admin(app, api, shop, mikrotik):
    payment = expect_payment(api, shop)
    call_back(app, shop, stk_callback("ws_CO_1", amount=5))
    row = fresh(Payment, payment["id"])
    assert row.status == "held" and row.amount_paid == 5 and not pending_jobs("payment.process")
    assert "payment.held" in event_types() and mikrotik.menus.items(USERS) == []


def test_a_router_down_for_the_first_attempts_is_provisioned_on_retry(app, api, shop, mikrotik):
    expect_payment(api, shop)
    call_back(app, shop, stk_callback("ws_CO_1"))
    run_all("payment.process")
    mikrotik.refuse = True
    mikrotik.drop_connections()
    (job,) = pending_jobs("subscription.provision")
    first = run_provisioning_job(job.id)
    assert type(first.retry).__name__ == "RetryIn" and "cannot reach" in str(first.retry)
    assert fresh(Subscription, first and job.payload["subscription_id"]).status == "provisioning"
    mikrotik.refuse = False
    second = run_provisioning_job(job.id)
    assert second.retry is None
    sub = fresh(Subscription, job.payload["subscription_id"])
    assert sub.status == "active" and sub.attempts == 2 and len(mikrotik.menus.items(USERS)) == 1


def test_a_router_down_for_good_fails_the_subscription_on_the_feed(app, api, shop, mikrotik):
    expect_payment(api, shop)
    call_back(app, shop, stk_callback("ws_CO_1"))
    run_all("payment.process")
    mikrotik.refuse = True
    mikrotik.drop_connections()
    (job,) = pending_jobs("subscription.provision")
    outcomes = [run_provisioning_job(job.id) for _ in range(4)]  # the schedule has 3 entries: 4 attempts
    assert [type(o.retry).__name__ for o in outcomes] == ["RetryIn", "RetryIn", "RetryIn", "GiveUp"]
    assert fresh(Subscription, job.payload["subscription_id"]).status == "failed"
    assert "provisioning.failed" in event_types()


def test_an_existing_user_is_updated_not_duplicated(app, api, shop, mikrotik):
    mikrotik.menus.add(USERS, name="alice", password="old", profile="default")
    created = api.post(
        "/api/v1/subscriptions",
        {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"], "username": "alice", "password": "n3w-pass"},
    )
    assert created.status_code == 201, created.get_json()
    outcome = run_all("subscription.provision")[0]
    assert outcome.result == {"user": "updated"}
    (user,) = mikrotik.menus.items(USERS, name="alice")
    assert user["password"] == "n3w-pass" and user["profile"] == "daily-2m"


def test_expiry_removes_the_user_and_kicks_its_session(app, api, shop, mikrotik):
    created = api.post("/api/v1/subscriptions", {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"]})
    sub_id, username = created.get_json()["id"], created.get_json()["username"]
    run_all("subscription.provision")
    mikrotik.menus.add_session(username, "10.5.50.7", "AA:BB:CC:DD:EE:01")
    mikrotik.menus.add("/ip/hotspot/cookie", user=username, mac_address="AA:BB:CC:DD:EE:01")
    mikrotik.menus.add_session("someone-else", "10.5.50.8", "AA:BB:CC:DD:EE:02")
    row = fresh(Subscription, sub_id)
    row.expires_at = utcnow()
    db.session.commit()
    assert subscriptions.expire_due() == {"queued": 1}
    assert subscriptions.expire_due() == {"queued": 0}  # its removal is already queued
    (outcome,) = run_all("subscription.deprovision")
    assert outcome.result == {"removed": {"user": 1, "active": 1, "cookie": 1}}
    assert mikrotik.menus.items(USERS, name=username) == [] and mikrotik.menus.items("/ip/hotspot/cookie") == []
    assert [s["user"] for s in mikrotik.menus.items("/ip/hotspot/active")] == ["someone-else"]
    assert fresh(Subscription, sub_id).status == "expired" and "subscription.expired" in event_types()


def test_api_ssl_on_8729(app, api, tmp_path):
    from tests.test_routeros_fake import self_signed

    cert_file, key_file = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    app.config["ROUTER_CA_FILE"] = str(cert_file)
    with RouterOsServer("opsdeck", ROUTER_PASSWORD, tls_context=context) as server:
        router = add_router(api, server, tls=True)
        plan = add_plan(api)
        api.post("/api/v1/subscriptions", {"plan_id": plan["id"], "router_id": router["id"], "username": "tls-1"})
        assert run_all("subscription.provision")[0].result == {"user": "added"}
        assert server.menus.items(USERS, name="tls-1") and server.logins
    assert add_router(api, server, name="x", tls=True, port=None)["port"] == 8729


def test_callback_token_and_network_refusals(app, api, shop, mikrotik):
    payment = expect_payment(api, shop)
    wrong = app.test_client().post("/api/v1/payments/mpesa/callback/not-the-token", json=stk_callback("ws_CO_1"))
    assert wrong.status_code == 404 and fresh(Payment, payment["id"]).status == "expected"
    app.config["MPESA_ALLOWED_NETWORKS"] = ["196.201.214.0/24"]
    assert call_back(app, shop, stk_callback("ws_CO_1")).status_code == 403
    forged = call_back(app, shop, stk_callback("ws_CO_1"), headers={"X-Forwarded-For": "196.201.214.200"})
    assert forged.status_code == 403  # 127.0.0.1 is not a trusted proxy: its header means nothing
    app.config["TRUSTED_PROXIES"] = ["127.0.0.1/32"]
    proxied = call_back(app, shop, stk_callback("ws_CO_1"), headers={"X-Forwarded-For": "196.201.214.200"})
    assert proxied.status_code == 200 and fresh(Payment, payment["id"]).status == "processing"
    unreadable = call_back(app, shop, {"hello": "world"}, headers={"X-Forwarded-For": "196.201.214.200"})
    assert unreadable.status_code == 200  # acknowledged (Daraja would only retry), logged, nothing changed


def _hostile(checkout: str, **stk: Any) -> dict[str, Any]:
    body = stk_callback(checkout)
    body["Body"]["stkCallback"].update(stk)
    return body


def _with_amount(checkout: str, amount: Any) -> dict[str, Any]:
    body = stk_callback(checkout)
    body["Body"]["stkCallback"]["CallbackMetadata"]["Item"][0]["Value"] = amount
    return body


@pytest.mark.parametrize(
    "body",
    [
        _hostile("ws_CO_1", ResultCode=2**40),  # past PostgreSQL's integer
        _with_amount("ws_CO_1", "1e999999"),  # past NUMERIC(12, 2)
        _with_amount("ws_CO_1", "NaN"),
        _with_amount("ws_CO_1", 50.001),
        _hostile("ws_CO_1\u0000", ResultCode=0),
        _hostile("x" * 101),
        _hostile("ws_CO_1", ResultDesc="nul\u0000inside", MerchantRequestID="m" * 500),
        "nested",
    ],
    ids=["result-code", "huge-amount", "nan-amount", "fraction-of-a-cent", "nul-id", "long-id", "nul-text", "nested"],
)
def test_hostile_callbacks_are_acknowledged_and_change_nothing_they_should_not(app, api, shop, body):
    """Daraja only retries what it is not acknowledged: never a 500, never a half-written payment."""
    payment = expect_payment(api, shop)
    raw = "[" * 100_000 + "]" * 100_000 if body == "nested" else json.dumps(body)
    answer = app.test_client().post("/" + shop["callback_path"], data=raw, content_type="application/json")
    assert answer.status_code == 200 and answer.get_json()["ResultCode"] == 0
    row = fresh(Payment, payment["id"])
    if body != "nested" and body["Body"]["stkCallback"].get("ResultDesc", "").startswith("nul"):
        assert row.status == "processing" and row.result_desc == "nulinside" and len(row.merchant_request_id) == 100
    else:
        assert row.status == "expected" and row.callbacks == 0


def test_api_validation_secrets_and_tenant_isolation(app, api, other_api, shop):
    bad = api.post(
        "/api/v1/payments",
        {
            "checkout_request_id": "x",
            "plan_id": shop["plan"]["id"],
            "router_id": shop["router"]["id"],
            "phone": "712345678",  # the national 0 forgotten (tests/test_provisioning_phones.py)
        },
    )
    assert bad.status_code == 422 and "phone" in bad.get_json()["errors"]
    assert api.post("/api/v1/plans", {"name": "x", "price": "10", "duration": "soon"}).status_code == 422
    assert api.post("/api/v1/plans", {"name": "x", "price": "-5", "duration": "1d"}).status_code == 422
    assert (
        api.post("/api/v1/plans", {"name": "x", "price": "10", "duration": "1d", "rate_limit": "fast"}).status_code
        == 422
    )
    listed = api.get("/api/v1/routers").get_json()["data"]
    assert listed and all("password" not in r and ROUTER_PASSWORD not in json.dumps(r) for r in listed)
    assert other_api.get(f"/api/v1/routers/{shop['router']['id']}").status_code == 404
    foreign = other_api.post(
        "/api/v1/subscriptions", {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"]}
    )
    assert foreign.status_code == 404
    assert api.post("/api/v1/subscriptions/nope/extend", {"duration": "1d"}).status_code == 404


def test_extend_expire_and_reprovision_are_audited(app, api, shop, mikrotik):
    sub = api.post(
        "/api/v1/subscriptions", {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"]}
    ).get_json()
    run_all("subscription.provision")
    longer = api.post(f"/api/v1/subscriptions/{sub['id']}/extend", {"duration": "2d"})
    assert longer.status_code == 202 and longer.get_json()["expires_at"] > sub["expires_at"]
    assert api.post(f"/api/v1/subscriptions/{sub['id']}/reprovision", {}).status_code == 202
    run_all("subscription.provision")
    assert api.post(f"/api/v1/subscriptions/{sub['id']}/expire", {}).status_code == 202
    run_all("subscription.deprovision")
    assert fresh(Subscription, sub["id"]).status == "expired" and not mikrotik.menus.items(USERS)
    conflict = api.post(f"/api/v1/subscriptions/{sub['id']}/reprovision", {})
    assert conflict.status_code == 409
    actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.target == sub["id"])))
    assert actions == {"subscription.extend", "subscription.reprovision", "subscription.expire"}


def test_router_checks_report_resources_and_changes(app, api, shop, mikrotik):
    from app.services.provisioning import routers

    mikrotik.menus.add_session("alice", "10.5.50.9", "AA:BB:CC:DD:EE:09")
    assert routers.queue_checks() == {"queued": 1} and routers.queue_checks() == {"queued": 0}
    run_all("router.check")
    router = api.get(f"/api/v1/routers/{shop['router']['id']}").get_json()
    assert router["status"] == "online" and router["version"] == "7.16.2 (stable)" and router["cpu_load"] is not None
    mikrotik.refuse = True
    mikrotik.drop_connections()
    routers.queue_checks()
    run_all("router.check")
    assert api.get(f"/api/v1/routers/{shop['router']['id']}").get_json()["status"] == "offline"
    mikrotik.refuse = False
    routers.queue_checks()
    run_all("router.check")
    assert [t for t in event_types() if t.startswith("router.")] == ["router.offline", "router.online"]


def test_vouchers_are_generated_and_provisioned(app, api, shop, mikrotik):
    made = api.post(
        "/api/v1/vouchers",
        {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"], "count": 5, "prefix": "v-", "length": 6},
    )
    assert made.status_code == 201
    vouchers = made.get_json()["data"]
    assert len({v["username"] for v in vouchers}) == 5 and all(v["username"].startswith("v-") for v in vouchers)
    assert all(v["password"] == v["username"] and v["source"] == "voucher" for v in vouchers)
    run_all("subscription.provision")
    assert sorted(u["name"] for u in mikrotik.menus.items(USERS)) == sorted(v["username"] for v in vouchers)
    api.patch(f"/api/v1/plans/{shop['plan']['id']}", {"active": False})
    off_sale = api.post(
        "/api/v1/vouchers", {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"], "count": 1}
    )
    assert off_sale.status_code == 422 and "not on sale" in off_sale.get_json()["errors"]["plan_id"][0]


def test_router_connections_are_reused_and_a_restarted_router_costs_no_attempt(app, api, shop, mikrotik):
    def provision_one() -> Any:
        api.post("/api/v1/subscriptions", {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"]})
        (outcome,) = run_all("subscription.provision")
        return outcome

    assert [provision_one().retry for _ in range(3)] == [None, None, None]
    assert len(mikrotik.logins) == 1  # one login for three users
    mikrotik.drop_connections()  # the router restarts: the kept connection is dead
    assert provision_one().retry is None and len(mikrotik.logins) == 2
    assert len(mikrotik.menus.items(USERS)) == 4


def test_a_lock_left_by_a_killed_attempt_is_taken_over_by_the_jobs_next_attempt(app, api, shop, mikrotik):
    from app.extensions import queue

    created = api.post("/api/v1/subscriptions", {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"]})
    row = fresh(Subscription, created.get_json()["id"])
    key = f"opsdeck:router:{row.router_id}:user:{row.username}"
    queue.redis.set(key, row.job_id, ex=600)  # its first attempt died holding the lock
    assert run_all("subscription.provision")[0].retry is None
    assert queue.redis.get(key) is None and fresh(Subscription, row.id).status == "active"
    queue.redis.set(key, "another-job", ex=600)  # held by another job: wait, then try later
    api.post(f"/api/v1/subscriptions/{row.id}/reprovision", {})
    outcome = run_all("subscription.provision")[0]
    assert "another worker" in str(outcome.retry) and queue.redis.get(key) == b"another-job"
