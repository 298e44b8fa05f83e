"""Vouchers (mikhmon's most used feature): N subscriptions of a plan on a router, each a hotspot
user with generated credentials, provisioned like any other and printed on a page to hand out.
A voucher's plan time counts from when it is generated."""

from __future__ import annotations

import string

from sqlalchemy import select

from app.extensions import db
from app.models.provisioning import Plan, Router, Subscription
from app.services import audit
from app.services.provisioning import subscriptions

CHARSETS = {
    "lower": subscriptions.CHARSET,
    "upper": "ABCDEFGHJKMNPQRSTUVWXYZ23456789",
    "digits": string.digits,
    "mixed": subscriptions.CHARSET + "ABCDEFGHJKMNPQRSTUVWXYZ",
}
MAX_BATCH = 500


def generate(
    tenant_id: str,
    plan: Plan,
    router: Router,
    *,
    count: int,
    prefix: str = "",
    length: int = 6,
    charset: str = "lower",
    same_password: bool = True,
    actor: str,
) -> list[Subscription]:
    """Make `count` voucher subscriptions (caller's transaction): usernames `prefix` + random,
    password equal to the username or separate."""
    if not plan.active:
        raise subscriptions.SubscriptionError("this plan is not on sale")
    if not 1 <= count <= MAX_BATCH:
        raise subscriptions.SubscriptionError(f"between 1 and {MAX_BATCH} vouchers at a time")
    alphabet = CHARSETS[charset]
    taken = set(db.session.scalars(select(Subscription.username).where(Subscription.router_id == router.id)))
    made: list[Subscription] = []
    while len(made) < count:
        username = subscriptions.random_text(length, alphabet, prefix)
        if username in taken:
            continue
        taken.add(username)
        password = username if same_password else subscriptions.random_text(length, alphabet)
        made.append(
            subscriptions.create(tenant_id, plan, router, source="voucher", username=username, password=password)
        )
    audit.record(
        actor,
        "vouchers.generate",
        target=plan.id,
        tenant_id=tenant_id,
        details={"count": count, "router_id": router.id, "prefix": prefix},
    )
    return made
