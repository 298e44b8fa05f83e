"""M-Pesa callbacks that arrive before the platform registers their payment: kept, shown to
operators, and applied the moment the payment is registered (or by the minute sweep when the
two raced). Nothing Safaricom reports about a customer's money is dropped."""

from __future__ import annotations

from sqlalchemy import func, select

from app import live
from app.extensions import db
from app.models import Payment, UnmatchedCallback
from app.models.base import new_id, utcnow
from app.services.provisioning import payments
from tests import test_provisioning as base
from tests.helpers import fresh, pending_jobs
from tests.test_provisioning import USERS, call_back, expect_payment, run_all, stk_callback

# The provisioning suite's fixtures: a RouterOS test server and a tenant's router and plan.
app_config, mikrotik, shop = base.app_config, base.mikrotik, base.shop


def unmatched() -> list[UnmatchedCallback]:
    db.session.rollback()
    return list(db.session.scalars(select(UnmatchedCallback)))


def test_a_paid_callback_before_its_registration_is_kept_then_applied_at_registration(app, api, shop, mikrotik):
    for _ in range(2):  # Daraja retries
        answer = call_back(app, shop, stk_callback("ws_CO_early"))
        assert answer.status_code == 200 and answer.get_json()["ResultCode"] == 0
    (kept,) = unmatched()
    assert (kept.checkout_request_id, kept.result_code, kept.callbacks) == ("ws_CO_early", 0, 2)
    assert str(kept.amount_paid) == "50.00" and kept.receipt_number == "NLJ7RT61SV"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
    assert base.event_types() == ["payment.unmatched"]  # announced once, not per retry

    payment = expect_payment(api, shop, "ws_CO_early")
    assert payment["status"] == "processing" and payment["receipt_number"] == "NLJ7RT61SV"
    assert unmatched() == []
    assert fresh(Payment, payment["id"]).callbacks == 2
    run_all("payment.process")
    run_all("subscription.provision")
    row = fresh(Payment, payment["id"])
    assert row.status == "processed"
    username = api.get(f"/api/v1/subscriptions/{row.subscription_id}").get_json()["username"]
    assert len(mikrotik.menus.items(USERS, name=username)) == 1


def test_a_cancelled_push_reported_before_registration_fails_the_payment_at_registration(app, api, shop):
    call_back(app, shop, stk_callback("ws_CO_gone", code=1032))
    assert [e["type"] for e in live.recent()] == ["payment.unmatched"]
    payment = expect_payment(api, shop, "ws_CO_gone")
    assert payment["status"] == "failed" and payment["result_code"] == 1032
    assert unmatched() == [] and pending_jobs("payment.process") == []
    # Operators hear of it once the registration commits (published after its commit).
    assert [(e["type"], e["subject"]) for e in live.recent()][0] == ("payment.failed", payment["id"])


def test_the_minute_sweep_applies_a_callback_that_raced_its_registration(app, api, shop):
    """The registration and the callback committed at once, neither seeing the other's row:
    the callback is kept although its payment exists. The scheduler's sweep applies it."""
    call_back(app, shop, stk_callback("ws_CO_race"))
    now = utcnow()
    row = Payment(
        id=new_id(),
        tenant_id=unmatched()[0].tenant_id,
        checkout_request_id="ws_CO_race",
        plan_id=shop["plan"]["id"],
        router_id=shop["router"]["id"],
        phone="+254712345678",
        amount_expected=50,
        status="expected",
        callbacks=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(row)
    db.session.commit()
    assert payments.match_unmatched() == {"matched": 1}
    assert fresh(Payment, row.id).status == "processing" and unmatched() == []
    assert len(pending_jobs("payment.process")) == 1
    assert payments.match_unmatched() == {"matched": 0}


def test_operators_see_callbacks_waiting_for_their_payment(app, api, admin, shop):
    call_back(app, shop, stk_callback("ws_CO_orphan"))
    page = admin.get("/admin/provisioning/payments").text
    assert 'id="unmatched-callbacks"' in page
    assert "<code>ws_CO_orphan</code>" in page.split('id="unmatched-callbacks"')[1].split("</table>")[0]
    expect_payment(api, shop, "ws_CO_orphan")
    assert 'id="unmatched-callbacks"' not in admin.get("/admin/provisioning/payments").text


def test_the_sweep_keeps_a_callback_it_cannot_read_and_applies_the_others(app, api, shop):
    for checkout in ("ws_CO_bad", "ws_CO_good"):
        call_back(app, shop, stk_callback(checkout))
    bad = next(u for u in unmatched() if u.checkout_request_id == "ws_CO_bad")
    bad.raw_callback = "{truncated"
    now = utcnow()
    for checkout in ("ws_CO_bad", "ws_CO_good"):
        db.session.add(
            Payment(
                id=new_id(),
                tenant_id=bad.tenant_id,
                checkout_request_id=checkout,
                plan_id=shop["plan"]["id"],
                router_id=shop["router"]["id"],
                phone="+254712345678",
                amount_expected=50,
                status="expected",
                callbacks=0,
                created_at=now,
                updated_at=now,
            )
        )
    db.session.commit()
    assert payments.match_unmatched() == {"matched": 2}
    assert [u.checkout_request_id for u in unmatched()] == ["ws_CO_bad"]
    states = dict(db.session.execute(select(Payment.checkout_request_id, Payment.status)).all())
    assert states == {"ws_CO_bad": "expected", "ws_CO_good": "processing"}


def test_an_admin_dismisses_a_settled_callback_and_the_audit_log_keeps_it(app, api, admin, shop):
    from app.models import AuditEntry
    from tests.helpers import post

    call_back(app, shop, stk_callback("ws_CO_refunded"))
    call_back(app, shop, stk_callback("ws_CO_waiting"))
    target = next(u for u in unmatched() if u.checkout_request_id == "ws_CO_refunded")
    target_id, tenant_id = target.id, target.tenant_id
    filtered = admin.get(f"/admin/provisioning/payments?tenant={tenant_id}&status=expected&unmatched_id=9").text
    assert f"/unmatched/{target_id}/dismiss?status=expected&amp;tenant={tenant_id}" in filtered
    response = post(
        admin, f"/admin/provisioning/payments/unmatched/{target_id}/dismiss?status=expected&tenant={tenant_id}"
    )
    assert response.status_code == 302  # back to the page as it was filtered
    assert response.headers["Location"] == f"/admin/provisioning/payments?status=expected&tenant={tenant_id}"
    assert [u.checkout_request_id for u in unmatched()] == ["ws_CO_waiting"]
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "payment.unmatched_dismiss")).one()
    assert entry.target == "ws_CO_refunded" and entry.tenant_id == tenant_id
    assert entry.details["receipt_number"] == "NLJ7RT61SV" and entry.details["amount_paid"] == "50.00"
    assert post(admin, f"/admin/provisioning/payments/unmatched/{target_id}/dismiss").status_code == 404
    # One whose payment is registered is refused: the minute sweep applies it.
    waiting = unmatched()[0]
    db.session.add(
        Payment(
            id=new_id(),
            tenant_id=tenant_id,
            checkout_request_id=waiting.checkout_request_id,
            plan_id=shop["plan"]["id"],
            router_id=shop["router"]["id"],
            phone="+254712345678",
            amount_expected=50,
            status="expected",
            callbacks=0,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
    )
    db.session.commit()
    refused = post(admin, f"/admin/provisioning/payments/unmatched/{waiting.id}/dismiss")
    assert refused.status_code == 302 and "minute sweep applies it" in admin.get("/admin/provisioning/payments").text
    assert [u.checkout_request_id for u in unmatched()] == ["ws_CO_waiting"]
    # A payment registered for it later is a payment like any other: expected, not applied.
    assert expect_payment(api, shop, "ws_CO_refunded")["status"] == "expected"


def test_retention_ages_out_callbacks_nobody_registered(app, shop):
    from datetime import timedelta

    from app.models import AuditEntry
    from app.services import retention

    call_back(app, shop, stk_callback("ws_CO_ancient"))  # paid
    call_back(app, shop, stk_callback("ws_CO_cancelled", code=1032))
    call_back(app, shop, stk_callback("ws_CO_recent"))
    for row in unmatched():
        if row.checkout_request_id != "ws_CO_recent":
            row.received_at = utcnow() - timedelta(days=91)
    db.session.commit()
    record = retention.run(triggered_by="test")
    assert record.status == "completed", record.error
    assert record.counts["unmatched_callbacks"] == 2
    assert [u.checkout_request_id for u in unmatched()] == ["ws_CO_recent"]
    # The paid one leaves its receipt in the audit log; the cancelled push had nothing to keep.
    (entry,) = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "payment.unmatched_expired")).all()
    assert entry.target == "ws_CO_ancient" and entry.actor == "system:retention"
    assert entry.details["receipt_number"] == "NLJ7RT61SV" and entry.details["amount_paid"] == "50.00"


def test_a_retry_that_waited_on_the_registration_applying_its_first_copy_is_counted_once(app, api, shop):
    """PostgreSQL: Daraja's retry arrives while the registration is applying the kept first copy.
    The retry's insert waits on the registration's lock, finds the payment once it commits, and
    is counted as a repeat: no second unmatched row, event or job."""
    import threading

    import pytest

    from app.models import Plan, Router
    from tests.fakes.processes import wait_until

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: a callback cannot wait inside the registration")
    call_back(app, shop, stk_callback("ws_CO_wait"))  # the first copy, kept
    tenant_id = unmatched()[0].tenant_id
    payment, created = payments.register_expected(
        tenant_id,
        checkout_request_id="ws_CO_wait",
        plan=db.session.get(Plan, shop["plan"]["id"]),
        router=db.session.get(Router, shop["router"]["id"]),
        phone="+254712345678",
        mac=None,
    )
    assert created and payment.status == "processing"  # applied, not committed yet
    answers: list[int] = []
    retry = threading.Thread(
        target=lambda: answers.append(call_back(app, shop, stk_callback("ws_CO_wait")).status_code)
    )
    retry.start()

    def retry_waits_on_a_lock() -> bool:
        with db.engine.connect() as conn:
            return bool(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    " AND position('unmatched_callbacks' in query) > 0"
                ).scalar()
            )

    wait_until(retry_waits_on_a_lock, 30, 0.05, what="the retry to wait on the registration's lock")
    db.session.commit()
    retry.join(30)
    assert answers == [200]
    row = fresh(Payment, payment.id)
    assert row.status == "processing" and row.callbacks == 2
    assert unmatched() == []
    assert len(pending_jobs("payment.process")) == 1
    assert base.event_types().count("payment.unmatched") == 1
