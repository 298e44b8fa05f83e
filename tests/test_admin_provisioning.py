"""Admin pages of the provisioning family against the RouterOS API test server: routers with
their last check (check now, kick), plans, subscribers, subscriptions (extend, expire, provision
again), payments (held ones decided, raw callback escaped), vouchers (generate, print); every
change audited; viewers read only; no hotspot password on a list page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Payment, Router, Subscription
from app.services.provisioning import routers, subscriptions
from tests.fakes.routeros import RouterOsServer
from tests.helpers import fresh, pending_jobs, post, run_provisioning_job

ROUTER_PASSWORD = "r0uter-secret"
USERS, ACTIVE = "/ip/hotspot/user", "/ip/hotspot/active"
BASE = "/admin/provisioning"


@pytest.fixture
def app_config():
    return {"PROVISION_RETRY_SCHEDULE": [1, 1, 1], "ROUTER_TIMEOUT": 3.0}


@pytest.fixture
def mikrotik() -> Iterator[RouterOsServer]:
    with RouterOsServer("opsdeck", ROUTER_PASSWORD) as server:
        yield server


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_shop(api: Any, server: RouterOsServer, name: str = "lobby") -> dict[str, Any]:
    """A router on the test server and a plan, through the API."""
    router = created(
        api.post(
            "/api/v1/routers",
            {
                "name": name,
                "host": "127.0.0.1",
                "port": server.port,
                "username": "opsdeck",
                "password": ROUTER_PASSWORD,
                "hotspot_server": "hs1",
            },
        )
    )
    plan = created(
        api.post(
            "/api/v1/plans",
            {
                "name": f"Daily 2M {name}",
                "price": "50",
                "duration": "1d",
                "rate_limit": "2M/2M",
                "uptime_limit": "12h",
                "data_limit_bytes": 1_000_000_000,
                "shared_users": 2,
                "profile": "daily-2m",
            },
        )
    )
    path = api.get("/api/v1/payments/mpesa/callback-url").get_json()["url"].split("://", 1)[1].split("/", 1)[1]
    return {"router": router, "plan": plan, "callback_path": "/" + path}


@pytest.fixture
def shop(app, api, mikrotik) -> dict[str, Any]:
    return add_shop(api, mikrotik)


def pay(
    app: Any, api: Any, shop: dict[str, Any], checkout: str, amount: Any = 50, desc: str | None = None, code: int = 0
) -> dict[str, Any]:
    """Register an STK push, then Daraja's callback for it (as Safaricom sends it)."""
    payment = created(
        api.post(
            "/api/v1/payments",
            {
                "checkout_request_id": checkout,
                "plan_id": shop["plan"]["id"],
                "router_id": shop["router"]["id"],
                "phone": "+254712345678",
            },
        )
    )
    stk: dict[str, Any] = {
        "MerchantRequestID": "29115-1",
        "CheckoutRequestID": checkout,
        "ResultCode": code,
        "ResultDesc": desc or "The service request is processed successfully.",
    }
    if code == 0:
        stk["CallbackMetadata"] = {
            "Item": [
                {"Name": "Amount", "Value": amount},
                {"Name": "MpesaReceiptNumber", "Value": f"R{checkout[-4:]}"},
                {"Name": "PhoneNumber", "Value": 254712345678},
            ]
        }
    body = json.dumps({"Body": {"stkCallback": stk}})
    answer = app.test_client().post(shop["callback_path"], data=body, content_type="application/json")
    assert answer.status_code == 200
    return payment


def run_all(job_type: str) -> list[Any]:
    return [run_provisioning_job(job.id) for job in pending_jobs(job_type)]


def manual(api: Any, shop: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"], **extra}
    return created(api.post("/api/v1/subscriptions", body))


def audited(action: str) -> list[AuditEntry]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def flashed(client: Any, response: Any) -> str:
    assert response.status_code == 302, response.status_code
    return client.get(response.headers["Location"]).text


def test_pages_show_routers_plans_subscribers_subscriptions_and_payments(app, api, other_api, admin, shop, mikrotik):
    paid = pay(app, api, shop, "ws_CO_1001")
    run_all("payment.process")
    run_all("subscription.provision")
    sub = fresh(Subscription, fresh(Payment, paid["id"]).subscription_id)
    password = subscriptions.password_of(sub)
    theirs = add_shop(other_api, mikrotik, name="kiosk")
    their_sub = manual(other_api, theirs, username="globex-user", password="their-pass-1")
    mikrotik.menus.add_session(sub.username, "10.5.50.7", "AA:BB:CC:DD:EE:01")
    run_all("subscription.provision")
    post(admin, f"{BASE}/routers/{shop['router']['id']}/check")
    run_all("router.check")

    assert f'href="{BASE}/routers"' in admin.get("/admin/").text  # in the navigation
    routers_page = admin.get(f"{BASE}/routers")
    assert routers_page.status_code == 200 and "lobby" in routers_page.text and "kiosk" in routers_page.text
    assert (
        "state-ok" in routers_page.text and ">online<" in routers_page.text and "7.16.2 (stable)" in routers_page.text
    )
    their_tenant = fresh(Router, theirs["router"]["id"]).tenant_id
    only_theirs = admin.get(f"{BASE}/routers?tenant={their_tenant}").text
    assert "kiosk" in only_theirs and "lobby" not in only_theirs
    detail = admin.get(f"{BASE}/routers/{shop['router']['id']}").text
    assert sub.username in detail and "10.5.50.7" in detail and "AA:BB:CC:DD:EE:01" in detail and "Kick" in detail
    assert "Check now" in detail and ROUTER_PASSWORD not in detail and "MiB" in detail

    plans = admin.get(f"{BASE}/plans").text
    assert "Daily 2M lobby" in plans and "50.00 KES" in plans and "1 d" in plans and "2M/2M" in plans
    assert "12h" in plans and "953.7 MiB" in plans and "daily-2m" in plans and "state-ok" in plans
    subscribers = admin.get(f"{BASE}/subscribers").text
    assert "+254712345678" in subscribers and re.search(r">1</a>", subscribers)

    listing = admin.get(f"{BASE}/subscriptions")
    assert listing.status_code == 200 and sub.username in listing.text and "globex-user" in listing.text
    assert admin.get(f"{BASE}/subscriptions?tenant={their_tenant}").text.count("data-subscription-id") == 1
    assert sub.username not in admin.get(f"{BASE}/subscriptions?router={theirs['router']['id']}").text
    assert "data-subscription-id" not in admin.get(f"{BASE}/subscriptions?status=expired").text
    assert "globex-user" in admin.get(f"{BASE}/subscriptions?source=manual").text
    assert "unknown value" in admin.get(f"{BASE}/subscriptions?status=bogus").text
    page = admin.get(f"{BASE}/subscriptions/{sub.id}")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert re.search(r"<details[^>]*>.*" + re.escape(password), page.text, re.S)

    payments = admin.get(f"{BASE}/payments").text
    assert paid["id"][:8] in payments and "R1001" in payments and "processed" in payments
    assert "data-payment-id" not in admin.get(f"{BASE}/payments?status=held").text
    assert "data-payment-id" not in admin.get(f"{BASE}/payments?tenant={their_tenant}").text
    payment = admin.get(f"{BASE}/payments/{paid['id']}").text
    assert "ws_CO_1001" in payment and "&#34;CheckoutRequestID&#34;: &#34;ws_CO_1001&#34;" in payment

    for url in (
        f"{BASE}/routers",
        f"{BASE}/routers/{shop['router']['id']}",
        f"{BASE}/subscribers",
        f"{BASE}/subscriptions",
        f"{BASE}/payments",
        f"{BASE}/payments/{paid['id']}",
    ):
        text = admin.get(url).text
        assert password not in text and "their-pass-1" not in text, url
    for url in ("routers/nope", "subscriptions/nope", "payments/nope"):
        assert admin.get(f"{BASE}/{url}").status_code == 404
    assert admin.get(f"/admin/provisioning/subscriptions/{their_sub['id']}").status_code == 200


def test_check_now_queues_a_check_and_kick_ends_a_session_on_the_router(app, api, admin, shop, mikrotik):
    router_id = shop["router"]["id"]
    alice = mikrotik.menus.add_session("alice", "10.5.50.9", "AA:BB:CC:DD:EE:09")
    mikrotik.menus.add_session("bob", "10.5.50.10", "AA:BB:CC:DD:EE:10")
    assert "Not checked yet" in admin.get(f"{BASE}/routers/{router_id}").text
    assert "Check queued" in flashed(admin, post(admin, f"{BASE}/routers/{router_id}/check"))
    (job,) = pending_jobs("router.check")
    assert job.payload == {"router_id": router_id}
    run_provisioning_job(job.id)
    assert {s["user"] for s in fresh(Router, router_id).active_sessions} == {"alice", "bob"}

    kicked = post(admin, f"{BASE}/routers/{router_id}/kick", {"session": alice})
    assert "Session of alice ended" in flashed(admin, kicked)
    assert [s["user"] for s in mikrotik.menus.items(ACTIVE)] == ["bob"]
    assert [s["user"] for s in fresh(Router, router_id).active_sessions] == ["bob"]
    (entry,) = audited("router.kick")
    assert entry.actor == "user:admin@example.com" and entry.target == router_id and entry.details == {"session": alice}

    again = post(admin, f"{BASE}/routers/{router_id}/kick", {"session": alice})
    assert "not in the last check" in flashed(admin, again)
    bob = fresh(Router, router_id).active_sessions[0][".id"]
    mikrotik.refuse = True
    mikrotik.drop_connections()
    refused = post(admin, f"{BASE}/routers/{router_id}/kick", {"session": bob})
    assert "could not be reached" in flashed(admin, refused)
    assert len(fresh(Router, router_id).active_sessions) == 1 and len(audited("router.kick")) == 1


def test_admin_extends_expires_and_provisions_again_audited(app, api, admin, shop, mikrotik):
    made = manual(api, shop, username="carol", password="carol-pass")
    run_all("subscription.provision")
    url = f"{BASE}/subscriptions/{made['id']}"
    before = fresh(Subscription, made["id"]).expires_at

    assert "Extended by 2 h" in flashed(admin, post(admin, f"{url}/extend", {"duration": "2h"}))
    assert fresh(Subscription, made["id"]).expires_at == before + timedelta(hours=2)
    assert "extend: a duration like" in flashed(admin, post(admin, f"{url}/extend", {"duration": "soon"}))
    assert fresh(Subscription, made["id"]).expires_at == before + timedelta(hours=2)

    assert "pushed to the router again" in flashed(admin, post(admin, f"{url}/reprovision"))
    assert fresh(Subscription, made["id"]).status == "provisioning"
    run_all("subscription.provision")
    assert fresh(Subscription, made["id"]).status == "active"

    assert "Expiring now" in flashed(admin, post(admin, f"{url}/expire"))
    run_all("subscription.deprovision")
    assert fresh(Subscription, made["id"]).status == "expired" and not mikrotik.menus.items(USERS, name="carol")
    refused = flashed(admin, post(admin, f"{url}/reprovision"))
    assert "reprovision: only a subscription that has not expired" in refused
    assert "Expire now" not in refused  # no longer offered
    assert post(admin, f"{url}/bogus").status_code == 400

    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.target == made["id"])).all()
    assert sorted(e.action for e in entries) == [
        "subscription.expire",
        "subscription.extend",
        "subscription.reprovision",
    ]
    assert {e.actor for e in entries} == {"user:admin@example.com"}


def test_a_held_payment_is_provisioned_anyway_or_rejected_by_an_admin(app, api, admin, shop, mikrotik):
    kept = pay(app, api, shop, "ws_CO_2001", amount=5)
    refused = pay(app, api, shop, "ws_CO_2002", amount=500)
    assert {fresh(Payment, p["id"]).status for p in (kept, refused)} == {"held"}
    held = admin.get(f"{BASE}/payments?status=held").text
    assert held.count("data-payment-id") == 2
    page = admin.get(f"{BASE}/payments/{kept['id']}").text
    assert "Provision anyway" in page and "Reject" in page and "data-confirm" in page

    released = post(admin, f"{BASE}/payments/{kept['id']}/provision")
    assert "Payment released" in flashed(admin, released)
    assert fresh(Payment, kept["id"]).status == "processing"
    run_all("payment.process")
    run_all("subscription.provision")
    row = fresh(Payment, kept["id"])
    assert row.status == "processed" and fresh(Subscription, row.subscription_id).status == "active"
    assert "Provision anyway" not in admin.get(f"{BASE}/payments/{kept['id']}").text

    assert "Payment rejected" in flashed(admin, post(admin, f"{BASE}/payments/{refused['id']}/reject"))
    assert fresh(Payment, refused["id"]).status == "failed" and not pending_jobs("payment.process")
    assert "Only a held payment" in flashed(admin, post(admin, f"{BASE}/payments/{refused['id']}/provision"))
    assert fresh(Payment, refused["id"]).status == "failed"
    (release,), (reject,) = audited("payment.release"), audited("payment.reject")
    assert release.target == kept["id"] and reject.target == refused["id"]
    assert release.actor == reject.actor == "user:admin@example.com" and reject.details["amount_paid"] == "500.00"


def test_the_raw_callback_is_pretty_printed_and_escaped(app, api, admin, shop):
    hostile = "<script>alert('callback')</script>"
    paid = pay(app, api, shop, "ws_CO_3001", code=1032, desc=hostile)
    assert hostile in fresh(Payment, paid["id"]).raw_callback
    page = admin.get(f"{BASE}/payments/{paid['id']}").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(" in page
    assert "\n      &#34;ResultCode&#34;: 1032" in page  # indented JSON
    assert "<script>alert" not in admin.get(f"{BASE}/payments").text


def test_vouchers_are_generated_provisioned_and_printed(app, api, admin, shop, mikrotik):
    assert "Generate" in admin.get(f"{BASE}/vouchers").text
    form = {
        "router": shop["router"]["id"],
        "plan": shop["plan"]["id"],
        "count": "5",
        "prefix": "v-",
        "length": "6",
        "charset": "digits",
        "same_password": "1",
    }
    made = post(admin, f"{BASE}/vouchers", form)
    assert made.status_code == 302 and "/vouchers/print?" in made.headers["Location"]
    printed = admin.get(made.headers["Location"])
    assert printed.status_code == 200 and printed.headers["Cache-Control"] == "no-store"
    rows = db.session.scalars(select(Subscription).where(Subscription.source == "voucher")).all()
    assert len(rows) == 5 and all(re.fullmatch(r"v-\d{6}", r.username) for r in rows)
    assert printed.text.count('class="voucher"') == 5 and "50.00 KES" in printed.text and "1 d" in printed.text
    for row in rows:
        assert row.username in printed.text and subscriptions.password_of(row) == row.username
    (entry,) = audited("vouchers.generate")
    assert entry.actor == "user:admin@example.com" and entry.details["count"] == 5
    run_all("subscription.provision")
    assert sorted(u["name"] for u in mikrotik.menus.items(USERS)) == sorted(r.username for r in rows)

    separate = post(admin, f"{BASE}/vouchers", {**form, "count": "2", "prefix": "w", "same_password": ""})
    batch = admin.get(separate.headers["Location"]).text
    assert batch.count('class="voucher"') == 2 and "v-" not in batch  # only the new batch
    recent = admin.get(f"{BASE}/vouchers/print?minutes=60&router={shop['router']['id']}").text
    assert recent.count('class="voucher"') == 7

    for bad in ({"count": "0"}, {"count": "many"}, {"prefix": "<b>"}, {"charset": "emoji"}, {"plan": "nope"}):
        assert "Generate" in flashed(admin, post(admin, f"{BASE}/vouchers", {**form, **bad}))
    count = select(func.count()).select_from(Subscription).where(Subscription.source == "voucher")
    assert db.session.scalar(count) == 7


def test_viewers_see_every_page_but_change_nothing(app, api, viewer, shop, mikrotik):
    held = pay(app, api, shop, "ws_CO_4001", amount=5)
    made = manual(api, shop)
    session_id = mikrotik.menus.add_session("dave", "10.5.50.11", "AA:BB:CC:DD:EE:11")
    routers.check(shop["router"]["id"])
    router_url, sub_url = f"{BASE}/routers/{shop['router']['id']}", f"{BASE}/subscriptions/{made['id']}"
    pages = (
        f"{BASE}/routers",
        router_url,
        f"{BASE}/plans",
        f"{BASE}/subscribers",
        f"{BASE}/subscriptions",
        sub_url,
        f"{BASE}/payments",
        f"{BASE}/payments/{held['id']}",
        f"{BASE}/vouchers",
    )
    for url in pages:
        assert viewer.get(url).status_code == 200, url
    assert "Kick" not in viewer.get(router_url).text and "Check now" not in viewer.get(router_url).text
    assert "Expire now" not in viewer.get(sub_url).text
    assert "Provision anyway" not in viewer.get(f"{BASE}/payments/{held['id']}").text
    assert 'name="count"' not in viewer.get(f"{BASE}/vouchers").text
    # Customers' hotspot passwords are for admins only.
    assert made["password"] not in viewer.get(sub_url).text and "shown to admins only" in viewer.get(sub_url).text
    assert viewer.get(f"{BASE}/vouchers/print").status_code == 403
    posts = (
        (f"{router_url}/check", {}),
        (f"{router_url}/kick", {"session": session_id}),
        (f"{sub_url}/extend", {"duration": "1d"}),
        (f"{sub_url}/expire", {}),
        (f"{sub_url}/reprovision", {}),
        (f"{BASE}/payments/{held['id']}/provision", {}),
        (f"{BASE}/payments/{held['id']}/reject", {}),
        (f"{BASE}/vouchers", {"router": shop["router"]["id"], "plan": shop["plan"]["id"], "count": "1"}),
    )
    for url, data in posts:
        assert post(viewer, url, data).status_code == 403, url
    assert fresh(Payment, held["id"]).status == "held" and len(mikrotik.menus.items(ACTIVE)) == 1
    assert not pending_jobs("router.check") and not pending_jobs("subscription.deprovision")
    by_viewer = select(AuditEntry.action).where(AuditEntry.actor == "user:viewer@example.com")
    assert set(db.session.scalars(by_viewer)) == {"user.login"}
