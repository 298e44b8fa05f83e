"""Payments: the platform registers the STK push it started; Daraja's callback confirms or
fails it (idempotent by CheckoutRequestID: Daraja retries); a confirmed payment of the expected
amount becomes subscriber, subscription and credentials in one `payment.process` job."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, fields
from sqlalchemy import bindparam, case, delete, literal, select, update

from app import live
from app.db.statements import Prepared, conflict_insert, core_execute
from app.extensions import db
from app.jobtypes import JobType, register
from app.models.base import new_id, utcnow
from app.models.provisioning import Payment, Plan, Router, Subscriber, UnmatchedCallback
from app.services import audit, jobs
from app.services.provisioning import mpesa, phones, subscriptions
from app.services.webhooks import events


class PaymentPayload(Schema):
    payment_id = fields.String(required=True)


PROCESS = register(
    JobType("payment.process", family="provisioning", queue="payments", payload=PaymentPayload, max_attempts=5)
)

log = logging.getLogger(__name__)


class PaymentError(ValueError):
    """Field errors for the API: {field: [message]}."""

    def __init__(self, messages: dict[str, list[str]]) -> None:
        super().__init__("invalid payment")
        self.messages = messages


def register_expected(
    tenant_id: str, *, checkout_request_id: str, plan: Plan, router: Router, phone: str, mac: str | None
) -> tuple[Payment, bool]:
    """Record the STK push the platform started (caller's transaction). The same
    CheckoutRequestID again returns the first payment and False. A callback that came before
    the registration (kept as unmatched) is applied to the new payment at once. `phone`: any
    form `phones.normalise` reads (InvalidPhone otherwise); kept as E.164."""
    existing = find(tenant_id, checkout_request_id)
    if existing is not None:
        return existing, False
    now = utcnow()
    row = Payment(
        id=new_id(),
        tenant_id=tenant_id,
        checkout_request_id=checkout_request_id,
        plan_id=plan.id,
        router_id=router.id,
        phone=phones.normalise(phone),
        mac=mac,
        amount_expected=plan.price,
        status="expected",
        callbacks=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(row)
    early = db.session.scalar(
        select(UnmatchedCallback)
        .where(UnmatchedCallback.tenant_id == tenant_id, UnmatchedCallback.checkout_request_id == checkout_request_id)
        .with_for_update()
    )
    if early is not None:
        db.session.flush()
        for event_type, data in _apply_unmatched(early, row.id).live:
            live.publish_after_commit(event_type, subject=data["id"], data=data, tenant_id=tenant_id)
        db.session.refresh(row)
    return row, True


def _apply_unmatched(early: UnmatchedCallback, payment_id: str) -> Handled:
    """Apply a kept callback to the payment now registered for it, as if it had come now
    (caller's transaction), and forget it."""
    handled = handle_callback(early.tenant_id, early.raw_callback.encode())
    log.info("mpesa callback received before its payment %s was registered: %s", payment_id, handled.outcome)
    if handled.outcome == "unreadable":  # cannot be: it was read once. Keep it for an operator.
        log.error("kept mpesa callback %s no longer reads; left for an operator", early.id)
        return handled
    if early.callbacks > 1:  # handle_callback counted one
        db.session.execute(
            update(Payment).where(Payment.id == payment_id).values(callbacks=Payment.callbacks + early.callbacks - 1)
        )
    db.session.delete(early)
    db.session.flush()
    return handled


def match_unmatched(limit: int = 500) -> dict[str, Any]:
    """The scheduler's minute sweep: apply kept callbacks whose payment has been registered
    since (a registration racing its callback can miss it: neither saw the other's row)."""
    pairs = db.session.execute(
        select(UnmatchedCallback, Payment.id)
        .join(
            Payment,
            (Payment.tenant_id == UnmatchedCallback.tenant_id)
            & (Payment.checkout_request_id == UnmatchedCallback.checkout_request_id),
        )
        .limit(limit)
        .with_for_update(of=UnmatchedCallback, skip_locked=True)  # a registration applying it holds it
    ).all()
    for early, payment_id in pairs:
        tenant_id = early.tenant_id
        try:
            with db.session.begin_nested():  # one bad row does not hold back the others
                for event_type, data in _apply_unmatched(early, payment_id).live:
                    live.publish_after_commit(event_type, subject=data["id"], data=data, tenant_id=tenant_id)
        except Exception:
            log.exception("kept mpesa callback %s could not be applied to payment %s", early.id, payment_id)
    db.session.commit()
    return {"matched": len(pairs)}


def find(tenant_id: str, checkout_request_id: str) -> Payment | None:
    return db.session.scalar(
        select(Payment).where(Payment.tenant_id == tenant_id, Payment.checkout_request_id == checkout_request_id)
    )


def get(payment_id: str, tenant_id: str | None) -> Payment | None:
    row = db.session.get(Payment, payment_id)
    return None if row is None or (tenant_id is not None and row.tenant_id != tenant_id) else row


@dataclass
class Handled:
    """What a callback came to; the route publishes `live` after the commit."""

    outcome: str
    payment_id: str | None = None
    live: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def handle_callback(tenant_id: str, raw: bytes) -> Handled:
    """Apply one Daraja callback (caller commits). Repeats of a callback already applied change
    nothing but the count; a callback for a CheckoutRequestID nobody registered is kept as
    `unknown` (logged, acknowledged: Daraja would only retry)."""
    try:
        callback = mpesa.parse(json.loads(raw))
    except (ValueError, RecursionError, mpesa.BadCallback) as err:
        log.warning("mpesa callback for tenant %s unreadable: %s", tenant_id, err)
        return Handled("unreadable")
    now, job_id = utcnow(), new_id()
    row = core_execute(_APPLY[_outcome(callback)], _callback_values(tenant_id, callback, raw, now, job_id)).first()
    if row is None:
        repeat = core_execute(_REPEAT, {"cb_tenant": tenant_id, "cb_checkout": callback.checkout_request_id}).scalar()
        if repeat is None:
            log.warning(
                "mpesa callback for unknown CheckoutRequestID %s (tenant %s): kept until it is registered",
                callback.checkout_request_id,
                tenant_id,
            )
            if not _keep_unmatched(tenant_id, callback, raw, now):
                return Handled("unknown")  # a repeat: counted, announced once
            if find(tenant_id, callback.checkout_request_id) is not None:
                # PostgreSQL: the registration committed while this insert waited on its lock
                # (it applied an earlier copy of this callback). Count this one as a repeat.
                db.session.execute(
                    delete(UnmatchedCallback).where(
                        UnmatchedCallback.tenant_id == tenant_id,
                        UnmatchedCallback.checkout_request_id == callback.checkout_request_id,
                    )
                )
                return handle_callback(tenant_id, raw)
            data = {
                "id": callback.checkout_request_id,
                "checkout_request_id": callback.checkout_request_id,
                "result_code": callback.result_code,
                "receipt_number": callback.receipt_number,
                "amount_paid": None if callback.amount is None else str(callback.amount),
            }
            events.emit(tenant_id, "payment.unmatched", data)
            return Handled("unknown", live=[("payment.unmatched", data)])
        return Handled("repeat", repeat)
    if row.status == "processing":
        jobs.submit(PROCESS.name, {"payment_id": row.id}, tenant_id=tenant_id, priority="high", job_id=job_id)
        return Handled("confirmed", row.id)
    reason = (
        callback.meaning if row.status == "failed" else f"paid {callback.amount} for a plan of {row.amount_expected}"
    )
    event_type = f"payment.{row.status}"
    data = summary(row, reason=reason)
    events.emit(tenant_id, event_type, data)
    return Handled(row.status, row.id, [(event_type, data)])


def _outcome(callback: mpesa.Callback) -> str:
    """What a callback does to its expected payment, the rule in three cases:

    - `failed`: the customer did not pay (a result code other than 0);
    - `held`: paid, but the callback carries no amount: an operator looks at it;
    - `paid`: paid an amount, which the UPDATE compares with the plan's price
      (`amount_expected`): the same amount moves the payment to `processing` (the subscription
      is provisioned), any other to `held`.

    The UPDATE moves only a payment still `expected`, so of Daraja's retries only the first
    applies; the others are counted as repeats."""
    if callback.result_code != 0:
        return "failed"
    return "held" if callback.amount is None else "paid"


def _callback_values(tenant_id: str, callback: mpesa.Callback, raw: bytes, now: Any, job_id: str) -> dict[str, Any]:
    """The bound values of `_APPLY`'s statements: the callback's fields, as the payment keeps them."""
    return {
        "cb_tenant": tenant_id,
        "cb_checkout": callback.checkout_request_id,
        "cb_job": job_id,
        "cb_raw": _raw_text(raw),
        "cb_now": now,
        "cb_merchant": callback.merchant_request_id,
        "cb_code": callback.result_code,
        "cb_desc": callback.result_desc,
        "cb_amount": callback.amount,
        "cb_receipt": callback.receipt_number,
        "cb_date": callback.transaction_date,
        "cb_phone": callback.phone,
    }


_SUMMARY = (
    Payment.id,
    Payment.status,
    Payment.checkout_request_id,
    Payment.receipt_number,
    Payment.amount_expected,
    Payment.amount_paid,
    Payment.phone,
    Payment.plan_id,
    Payment.router_id,
    Payment.subscription_id,
    Payment.result_code,
)


def _apply_statement(status: Any) -> Any:
    """The UPDATE a callback makes to its expected payment, for a status expression."""
    return (
        update(Payment)
        .where(
            Payment.tenant_id == bindparam("cb_tenant"),
            Payment.checkout_request_id == bindparam("cb_checkout"),
            Payment.status == "expected",
        )
        .values(
            status=status,
            job_id=case((status == "processing", bindparam("cb_job")), else_=None),
            callbacks=Payment.callbacks + 1,
            raw_callback=bindparam("cb_raw"),
            callback_at=bindparam("cb_now"),
            updated_at=bindparam("cb_now"),
            merchant_request_id=bindparam("cb_merchant"),
            result_code=bindparam("cb_code"),
            result_desc=bindparam("cb_desc"),
            amount_paid=bindparam("cb_amount"),
            receipt_number=bindparam("cb_receipt"),
            transaction_date=bindparam("cb_date"),
            paid_phone=bindparam("cb_phone"),
        )
        .returning(*_SUMMARY)
    )


#: The UPDATE of each `_outcome`, built once; for `paid` the status is the amount rule.
_APPLY = {
    "failed": _apply_statement(literal("failed")),
    "held": _apply_statement(literal("held")),
    "paid": _apply_statement(case((Payment.amount_expected == bindparam("cb_amount"), "processing"), else_="held")),
}
#: A repeat of a callback already applied: counted.
_REPEAT = (
    update(Payment)
    .where(Payment.tenant_id == bindparam("cb_tenant"), Payment.checkout_request_id == bindparam("cb_checkout"))
    .values(callbacks=Payment.callbacks + 1)
    .returning(Payment.id)
)


def _keep_unmatched(tenant_id: str, callback: mpesa.Callback, raw: bytes, now: Any) -> bool:
    """Store a callback nobody registered (its repeats counted), for registration to apply.
    True for the first of them."""
    stmt = conflict_insert(UnmatchedCallback).values(
        tenant_id=tenant_id,
        checkout_request_id=callback.checkout_request_id,
        raw_callback=_raw_text(raw),
        result_code=callback.result_code,
        amount_paid=callback.amount,
        receipt_number=callback.receipt_number,
        callbacks=1,
        received_at=now,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "checkout_request_id"], set_={"callbacks": UnmatchedCallback.callbacks + 1}
    )
    return db.session.execute(upsert.returning(UnmatchedCallback.callbacks)).scalar_one() == 1


def _raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").replace("\x00", "")[:20_000]


def summary(row: Any, **extra: Any) -> dict[str, Any]:
    """The payment as events carry it (`row`: a Payment, or a row of _SUMMARY's columns)."""
    return {
        "id": row.id,
        "status": row.status,
        "checkout_request_id": row.checkout_request_id,
        "receipt_number": row.receipt_number,
        "amount_expected": str(row.amount_expected),
        "amount_paid": None if row.amount_paid is None else str(row.amount_paid),
        "phone": row.phone,
        "plan_id": row.plan_id,
        "router_id": row.router_id,
        "subscription_id": row.subscription_id,
        "result_code": row.result_code,
        **extra,
    }


def process(payment_id: str) -> dict[str, Any]:
    """payment.process: subscriber, subscription and credentials, once (the payment row names
    its subscription, so a second run finds it and changes nothing)."""
    row = db.session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
    if row is None:
        return {"skipped": "no such payment"}
    if row.subscription_id is not None or row.status != "processing":
        db.session.rollback()
        return {"skipped": f"payment is {row.status}", "subscription_id": row.subscription_id}
    subscriber = subscriber_for(row.tenant_id, row.phone, row.mac)
    plan, router = db.session.get(Plan, row.plan_id), db.session.get(Router, row.router_id)
    assert plan is not None and router is not None
    sub = subscriptions.create(
        row.tenant_id, plan, router, source="payment", subscriber_id=subscriber.id, payment_id=row.id, mac=row.mac
    )
    row.subscription_id, row.status, row.updated_at = sub.id, "processed", utcnow()
    data = summary(row, username=sub.username, expires_at=sub.expires_at.isoformat())
    events.emit(row.tenant_id, "payment.processed", data)
    db.session.commit()
    return {"subscription_id": sub.id, "username": sub.username, "live": data}


_NEW_SUBSCRIBER = Prepared(
    lambda insert: insert(Subscriber).on_conflict_do_nothing(index_elements=["tenant_id", "phone"])
)
_SUBSCRIBER = select(Subscriber).where(
    Subscriber.tenant_id == bindparam("tenant"), Subscriber.phone == bindparam("phone_number")
)


def subscriber_for(tenant_id: str, phone: str, mac: str | None) -> Subscriber:
    """The subscriber for this phone (any form `phones.normalise` reads: one subscriber per
    number), made once even when two payments race (ON CONFLICT)."""
    phone = phones.normalise(phone)
    core_execute(
        _NEW_SUBSCRIBER, {"id": new_id(), "tenant_id": tenant_id, "phone": phone, "mac": mac, "created_at": utcnow()}
    )
    found = db.session.scalar(_SUBSCRIBER, {"tenant": tenant_id, "phone_number": phone})
    assert found is not None
    if mac and found.mac != mac:
        found.mac = mac
    return found


def release_held(row: Payment, *, actor: str, provision: bool) -> None:
    """An admin decides a held payment: provision it anyway, or mark it failed."""
    if row.status != "held":
        raise PaymentError({"status": [f"Only a held payment can be decided (this one is {row.status})."]})
    row.updated_at = utcnow()
    if provision:
        row.status = "processing"
        row.job_id = jobs.submit(PROCESS.name, {"payment_id": row.id}, tenant_id=row.tenant_id, priority="high").id
    else:
        row.status = "failed"
    audit.record(
        actor,
        "payment.release" if provision else "payment.reject",
        target=row.id,
        tenant_id=row.tenant_id,
        details={"amount_paid": str(row.amount_paid), "amount_expected": str(row.amount_expected)},
    )
