"""Provisioning: a tenant's MikroTik routers and plans, its subscribers, the M-Pesa payments it
expects, and the subscriptions that become hotspot users on a router (and stop being them at
expiry). Also the tenant's M-Pesa callback token."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import JSONType, Model, UTCDateTime, new_id, utcnow

#: Subscription states (the brief's): provisioning = a router call is under way or retrying.
SUBSCRIPTION_STATES = ("pending", "provisioning", "active", "expired", "failed", "cancelled")
#: Payment states: expected (registered, no callback yet), processing (confirmed by M-Pesa,
#: subscription being made), processed, failed (M-Pesa said no), held (amount mismatch: an
#: admin decides).
PAYMENT_STATES = ("expected", "processing", "processed", "failed", "held")
ROUTER_STATES = ("unknown", "online", "offline")


class Router(Model):
    __tablename__ = "routers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=8728)
    tls: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Certificate checks for API-SSL (routers often have self-signed certificates: a CA file).
    tls_verify: Mapped[bool] = mapped_column(Boolean, default=True)
    username: Mapped[str] = mapped_column(String(100))
    password_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    hotspot_server: Mapped[str] = mapped_column(String(100), default="all")
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    version: Mapped[str | None] = mapped_column(String(60))
    uptime: Mapped[str | None] = mapped_column(String(60))
    cpu_load: Mapped[int | None] = mapped_column(Integer)
    free_memory: Mapped[int | None] = mapped_column(BigInteger)
    board_name: Mapped[str | None] = mapped_column(String(100))
    #: The last check's hotspot sessions: [{user, address, mac-address, uptime, .id}, ...].
    active_sessions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:  # never the password
        return f"<Router {self.id} {self.host}:{self.port} {self.status}>"


class Plan(Model):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), default="KES")
    duration_seconds: Mapped[int] = mapped_column(Integer)
    #: RouterOS rate-limit of the plan's user profile, e.g. "2M/2M".
    rate_limit: Mapped[str | None] = mapped_column(String(100))
    #: RouterOS duration for the user's limit-uptime, e.g. "1h" (None: no limit).
    uptime_limit: Mapped[str | None] = mapped_column(String(30))
    data_limit_bytes: Mapped[int | None] = mapped_column(BigInteger)
    shared_users: Mapped[int] = mapped_column(Integer, default=1)
    #: The hotspot user profile on the router (created or updated to the plan's limits).
    profile: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Subscriber(Model):
    __tablename__ = "subscribers"
    __table_args__ = (UniqueConstraint("tenant_id", "phone", name="uq_subscribers_tenant_phone"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    #: E.164, e.g. +254712345678.
    phone: Mapped[str] = mapped_column(String(20))
    mac: Mapped[str | None] = mapped_column(String(17))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Payment(Model):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "checkout_request_id", name="uq_payments_tenant_checkout"),
        Index("ix_payments_tenant_created", "tenant_id", "created_at"),
        Index("ix_payments_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    checkout_request_id: Mapped[str] = mapped_column(String(100))
    merchant_request_id: Mapped[str | None] = mapped_column(String(100))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    router_id: Mapped[str] = mapped_column(ForeignKey("routers.id"))
    phone: Mapped[str] = mapped_column(String(20))
    mac: Mapped[str | None] = mapped_column(String(17))
    amount_expected: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    amount_paid: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    receipt_number: Mapped[str | None] = mapped_column(String(30))
    transaction_date: Mapped[str | None] = mapped_column(String(20))
    paid_phone: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default="expected")
    result_code: Mapped[int | None] = mapped_column(Integer)
    result_desc: Mapped[str | None] = mapped_column(String(300))
    #: Daraja's callback exactly as received (the first one; repeats are counted).
    raw_callback: Mapped[str | None] = mapped_column(Text)
    callbacks: Mapped[int] = mapped_column(Integer, default=0)
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    subscription_id: Mapped[str | None] = mapped_column(String(36))
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UnmatchedCallback(Model):
    """A Daraja callback for a CheckoutRequestID no payment was registered for (yet): kept until
    the platform registers it (then applied to the payment at once), and listed for operators
    meanwhile. The customer may have paid: nothing Safaricom tells us is dropped."""

    __tablename__ = "unmatched_callbacks"
    __table_args__ = (UniqueConstraint("tenant_id", "checkout_request_id", name="uq_unmatched_tenant_checkout"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    checkout_request_id: Mapped[str] = mapped_column(String(100))
    #: The first callback exactly as received; repeats are counted.
    raw_callback: Mapped[str] = mapped_column(Text)
    result_code: Mapped[int] = mapped_column(Integer)
    amount_paid: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    receipt_number: Mapped[str | None] = mapped_column(String(30))
    callbacks: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Subscription(Model):
    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_tenant_created", "tenant_id", "created_at"),
        Index("ix_subscriptions_created", "created_at"),
        Index("ix_subscriptions_status_expires", "status", "expires_at"),
        UniqueConstraint("router_id", "username", name="uq_subscriptions_router_username"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    subscriber_id: Mapped[str | None] = mapped_column(ForeignKey("subscribers.id"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    router_id: Mapped[str] = mapped_column(ForeignKey("routers.id"))
    payment_id: Mapped[str | None] = mapped_column(String(36))
    #: payment, voucher or manual.
    source: Mapped[str] = mapped_column(String(16), default="manual")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    username: Mapped[str] = mapped_column(String(64))
    password_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    mac: Mapped[str | None] = mapped_column(String(17))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The job provisioning (or removing) the user now; a newer one supersedes it.
    job_id: Mapped[str | None] = mapped_column(String(36))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:  # never the password
        return f"<Subscription {self.id} {self.username} {self.status}>"


class MpesaToken(Model):
    """A tenant's M-Pesa callback token: found by its SHA-256, shown again from its ciphertext."""

    __tablename__ = "mpesa_tokens"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
