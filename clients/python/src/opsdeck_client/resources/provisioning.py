"""client.routers, client.plans, client.subscriptions, client.payments, client.vouchers."""

from __future__ import annotations

import builtins
from decimal import Decimal
from typing import Literal, cast

from opsdeck_client.client import segment
from opsdeck_client.pagination import Pager
from opsdeck_client.resources.base import Resource, fields
from opsdeck_client.types import Payment, Plan, PlanChanges, Router, RouterChanges, Subscription

Charset = Literal["lower", "upper", "digits", "mixed"]


class Routers(Resource):
    def create(
        self,
        name: str,
        host: str,
        username: str,
        password: str,
        *,
        port: int | None = None,
        tls: bool | None = None,
        tls_verify: bool | None = None,
        hotspot_server: str | None = None,
        idempotency_key: str | None = None,
    ) -> Router:
        """Add a MikroTik router (RouterOS API; the password is stored encrypted, never shown)."""
        body = fields(
            name=name,
            host=host,
            username=username,
            password=password,
            port=port,
            tls=tls,
            tls_verify=tls_verify,
            hotspot_server=hotspot_server,
        )
        return cast(Router, self._json("POST", "/routers", body, idempotency_key=idempotency_key))

    def list(self) -> Pager[Router]:
        return self._pager("/routers", None)

    def get(self, router_id: str) -> Router:
        """A router with its last check: status, version, uptime, CPU load, free memory."""
        return cast(Router, self._json("GET", f"/routers/{segment(router_id)}"))

    def update(self, router_id: str, changes: RouterChanges, *, idempotency_key: str | None = None) -> Router:
        path = f"/routers/{segment(router_id)}"
        return cast(Router, self._json("PATCH", path, changes, idempotency_key=idempotency_key))

    def delete(self, router_id: str, *, idempotency_key: str | None = None) -> None:
        """Remove a router (its history stays; no more checks or provisioning)."""
        self._call("DELETE", f"/routers/{segment(router_id)}", idempotency_key=idempotency_key)


class Plans(Resource):
    def create(
        self,
        name: str,
        price: str | int | Decimal,
        duration: str | int,
        *,
        currency: str | None = None,
        rate_limit: str | None = None,
        uptime_limit: str | None = None,
        data_limit_bytes: int | None = None,
        shared_users: int | None = None,
        profile: str | None = None,
        active: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Plan:
        """A plan: `duration` like "30d", "12h", "90m" or seconds; `price` a decimal amount."""
        body = fields(
            name=name,
            price=price,
            duration=duration,
            currency=currency,
            rate_limit=rate_limit,
            uptime_limit=uptime_limit,
            data_limit_bytes=data_limit_bytes,
            shared_users=shared_users,
            profile=profile,
            active=active,
        )
        return cast(Plan, self._json("POST", "/plans", body, idempotency_key=idempotency_key))

    def list(self) -> Pager[Plan]:
        return self._pager("/plans", None)

    def get(self, plan_id: str) -> Plan:
        return cast(Plan, self._json("GET", f"/plans/{segment(plan_id)}"))

    def update(self, plan_id: str, changes: PlanChanges, *, idempotency_key: str | None = None) -> Plan:
        path = f"/plans/{segment(plan_id)}"
        return cast(Plan, self._json("PATCH", path, changes, idempotency_key=idempotency_key))


class Subscriptions(Resource):
    def create(
        self,
        plan_id: str,
        router_id: str,
        *,
        phone: str | None = None,
        mac: str | None = None,
        username: str | None = None,
        password: str | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Provision without a payment: a hotspot user for the plan's duration (credentials
        generated unless given)."""
        body = fields(plan_id=plan_id, router_id=router_id, phone=phone, mac=mac, username=username, password=password)
        return cast(Subscription, self._json("POST", "/subscriptions", body, idempotency_key=idempotency_key))

    def list(self, *, status: str | None = None, page_size: int | None = None) -> Pager[Subscription]:
        return self._pager("/subscriptions", page_size, status=status)

    def get(self, subscription_id: str) -> Subscription:
        """A subscription with the customer's hotspot credentials."""
        return cast(Subscription, self._json("GET", f"/subscriptions/{segment(subscription_id)}"))

    def extend(self, subscription_id: str, duration: str | int, *, idempotency_key: str | None = None) -> Subscription:
        """Add `duration` ("30d", "12h", "90m" or seconds) to the subscription."""
        return self._action(subscription_id, "extend", {"duration": duration}, idempotency_key)

    def expire(self, subscription_id: str, *, idempotency_key: str | None = None) -> Subscription:
        """End it now: the hotspot user is removed from the router."""
        return self._action(subscription_id, "expire", None, idempotency_key)

    def reprovision(self, subscription_id: str, *, idempotency_key: str | None = None) -> Subscription:
        """Push the hotspot user to the router again (after a router reset, say)."""
        return self._action(subscription_id, "reprovision", None, idempotency_key)

    def _action(
        self, subscription_id: str, action: str, body: dict[str, str | int] | None, idempotency_key: str | None
    ) -> Subscription:
        path = f"/subscriptions/{segment(subscription_id)}/{action}"
        return cast(Subscription, self._json("POST", path, body, idempotency_key=idempotency_key))


class Payments(Resource):
    def create(
        self,
        checkout_request_id: str,
        plan_id: str,
        router_id: str,
        phone: str,
        *,
        mac: str | None = None,
        idempotency_key: str | None = None,
    ) -> Payment:
        """Register the STK push the platform started; Daraja's callback to `callback_url()`
        completes it. The same CheckoutRequestID answers with the first payment."""
        body = fields(
            checkout_request_id=checkout_request_id, plan_id=plan_id, router_id=router_id, phone=phone, mac=mac
        )
        return cast(Payment, self._json("POST", "/payments", body, idempotency_key=idempotency_key))

    def list(self, *, status: str | None = None, page_size: int | None = None) -> Pager[Payment]:
        return self._pager("/payments", page_size, status=status)

    def get(self, payment_id: str) -> Payment:
        return cast(Payment, self._json("GET", f"/payments/{segment(payment_id)}"))

    def callback_url(self) -> str:
        """The CallBackURL to give Daraja with each STK push (it carries this tenant's token)."""
        return str(self._json("GET", "/payments/mpesa/callback-url")["url"])


class Vouchers(Resource):
    def create(
        self,
        plan_id: str,
        router_id: str,
        count: int,
        *,
        prefix: str | None = None,
        length: int | None = None,
        charset: Charset | None = None,
        idempotency_key: str | None = None,
    ) -> builtins.list[Subscription]:
        """Generate `count` vouchers: subscriptions with generated credentials."""
        body = fields(plan_id=plan_id, router_id=router_id, count=count, prefix=prefix, length=length, charset=charset)
        answer = self._json("POST", "/vouchers", body, idempotency_key=idempotency_key)
        return cast(builtins.list[Subscription], answer["data"])
