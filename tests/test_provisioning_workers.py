"""Provisioning run by real `dramatiq workers` and scheduler processes against the RouterOS API
test server: a paid callback becomes a hotspot user, and the scheduler's expiry check takes it
away again when the plan's time is up."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from app.extensions import db
from app.models import Payment, Subscription
from app.models.base import utcnow
from tests.fakes.processes import wait_until
from tests.fakes.routeros import RouterOsServer
from tests.helpers import fresh
from tests.test_provisioning import ROUTER_PASSWORD, USERS, add_plan, add_router, call_back, stk_callback

pytestmark = pytest.mark.slow
QUEUES = ["payments", "payments_high", "provisioning", "routers"]


def test_a_paid_callback_reaches_the_router_and_expiry_takes_the_user_away(app, api, workers):
    with RouterOsServer("opsdeck", ROUTER_PASSWORD) as mikrotik:
        router, plan = add_router(api, mikrotik), add_plan(api, duration="1d", uptime_limit=None)
        url = api.get("/api/v1/payments/mpesa/callback-url").get_json()["url"]
        shop = {"callback_path": url.split("://", 1)[1].split("/", 1)[1]}
        payment = api.post(
            "/api/v1/payments",
            {
                "checkout_request_id": "ws_CO_9",
                "plan_id": plan["id"],
                "router_id": router["id"],
                "phone": "+254700000001",
            },
        ).get_json()
        env = {"EXPIRY_CHECK_SECONDS": 1, "ROUTER_CHECK_SECONDS": 3600, "OUTBOX_RELAY_INTERVAL": 0.5}
        workers.start(QUEUES, **env)
        workers.start_scheduler(**env)
        assert call_back(app, shop, stk_callback("ws_CO_9")).status_code == 200

        def provisioned() -> bool:
            row = fresh(Payment, payment["id"])
            return row.subscription_id is not None and fresh(Subscription, row.subscription_id).status == "active"

        wait_until(provisioned, 60, 0.05, what="the subscription to be active")
        username = fresh(Subscription, fresh(Payment, payment["id"]).subscription_id).username
        assert [u["name"] for u in mikrotik.menus.items(USERS)] == [username]
        mikrotik.menus.add_session(username, "10.5.50.2", "AA:BB:CC:00:00:01")
        # The plan's day is up (set here rather than waited for: a duration of seconds could run
        # out before the session above is there to be kicked).
        sub_id = fresh(Payment, payment["id"]).subscription_id
        db.session.execute(update(Subscription).where(Subscription.id == sub_id).values(expires_at=utcnow()))
        db.session.commit()

        # The user goes first, then its sessions (so it cannot log back in between): wait for both.
        wait_until(
            lambda: not mikrotik.menus.items(USERS) and not mikrotik.menus.items("/ip/hotspot/active"),
            60,
            0.1,
            what="expiry to remove the user and kick its session",
        )
        sub = fresh(Subscription, fresh(Payment, payment["id"]).subscription_id)
        wait_until(lambda: fresh(Subscription, sub.id).status == "expired", 30, 0.1, what="the subscription to expire")

        # The operators saw each step on the live feed, each about its own row.
        from app import live

        wait_until(
            lambda: any(e["type"] == "subscription.expired" for e in live.recent(50)),
            10,
            0.1,
            what="subscription.expired on the feed",
        )
        feed = {e["type"]: e for e in live.recent(50)}
        assert feed["payment.processed"]["subject"] == payment["id"]
        assert feed["subscription.provisioned"]["subject"] == sub.id == feed["subscription.expired"]["subject"]
