"""Scenario 5: each family's outside peer down, slow and erroring in turn. The family retries as
docs/development.md (Fault suite) says, nothing is marked done that was not done (checked continuously while
the peer misbehaves), and once the peer behaves every piece of work ends done, once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Email, Scan, Suppression, WebhookDelivery, WebhookEndpoint
from app.models.provisioning import Payment, Subscription
from tests.chaos import reconcile
from tests.chaos.conftest import ROUTER_PASSWORD, Watch, settled, start_all
from tests.chaos.peers import ClamdProxy
from tests.fakes.clamav import EICAR, ClamdServer
from tests.fakes.http_receiver import Reply
from tests.fakes.processes import wait_until

pytestmark = pytest.mark.chaos


def retried(model: Any, ids: list[str], *, attempts: int = 2, column: str = "attempts") -> Callable[[], bool]:
    """True once every row has had `attempts` failed tries (the family is retrying, not stuck)."""

    def check() -> bool:
        reconcile.fresh()
        rows = db.session.scalars(select(model).where(model.id.in_(ids))).all()
        return len(rows) == len(ids) and all(getattr(r, column) >= attempts for r in rows)

    return check


def statuses(model: Any, ids: list[str]) -> dict[str, int]:
    reconcile.fresh()
    found: dict[str, int] = {}
    for row in db.session.scalars(select(model).where(model.id.in_(ids))):
        found[row.status] = found.get(row.status, 0) + 1
    return found


def phase(report: Any, name: str, model: Any, ids: list[str], done: set[str], **extra: Any) -> None:
    """Record a misbehaving phase: its rows must all still be waiting (none in `done`)."""
    seen = statuses(model, ids)
    report.sections.setdefault("phases", []).append({"peer": name, "rows": len(ids), "status": seen, **extra})
    if set(seen) & done:
        report.problems.append(f"{name}: {seen} while the peer could not have done it")


# -- SMTP ---------------------------------------------------------------------------------
def test_smtp_down_erroring_and_slow(app, stack, tenant_key, sink, hooks, report):
    """Down: mails retry (connection refused), none `sent`. Erroring: 450 twice is retried then
    sent; 550 is `failed` and suppressed, never sent. Slow (1 s per DATA, below SMTP_TIMEOUT):
    sent once."""
    shop = start_all(stack, tenant_key, sink, hooks)

    # Each check reads the database before the peer: the peer acts first, the row says so after.
    def sent_means_received() -> list[str]:
        sent = db.session.scalars(select(Email).where(Email.status == "sent")).all()
        received = set(sink.message_ids())
        return [f"mail {e.id} sent, not in the sink" for e in sent if e.message_id not in received]

    watch = Watch(app, "a sent mail is in the sink", sent_means_received)
    watch.start()
    sink.down()
    down = shop.mails(20, "down")
    wait_until(retried(Email, down), 60, 0.2, what="mails to be retried while the sink is down")
    phase(report, "smtp down", Email, down, {"sent"})
    sink.up()

    for i in range(5):
        sink.script(f"busy-{i}@example.com", "450 4.2.0 Mailbox busy", "450 4.2.0 Mailbox busy")
    for i in range(3):
        sink.script(f"gone-{i}@example.com", "550 5.1.1 No such user")
    busy, gone = shop.mails(5, "busy"), shop.mails(3, "gone")
    wait_until(retried(Email, busy), 60, 0.2, what="450s to be retried")
    phase(report, "smtp 450", Email, busy, {"sent"})

    sink.data_delay = 1.0
    slow = shop.mails(6, "slow")
    settled(report, stack, 120)
    sink.data_delay = 0.0
    report.add("watch", watch.stop(report))
    report.add("ledger", reconcile.ledger(report.problems))
    report.add("email", reconcile.email(sink, down + busy + slow, report.problems))
    report.add("email_550", reconcile.email(sink, gone, report.problems, expect="failed"))
    reconcile.fresh()
    suppressed = {s.address for s in db.session.scalars(select(Suppression))}
    if suppressed != {f"gone-{i}@example.com" for i in range(3)}:
        report.problems.append(f"smtp: suppression list is {sorted(suppressed)}")
    report.check()


# -- webhooks -------------------------------------------------------------------------------
def test_webhook_receiver_down_erroring_and_slow(app, stack, tenant_key, sink, hooks, report):
    """Down: deliveries retry (connection refused), none `succeeded`. Erroring: 500, 503 and 429
    with Retry-After, 502: retried until a 2xx. Slow (answers after WEBHOOK_TIMEOUT): retried with
    the same webhook-id and body; the receiver may see it twice (at least once)."""
    shop = start_all(stack, tenant_key, sink, hooks)
    shop.endpoint(hooks.url("/flaky"))
    shop.endpoint(hooks.url("/slow"))

    def succeeded_means_2xx() -> list[str]:
        paths = {
            e.id: "/" + e.url.split("://", 1)[1].split("/", 1)[1] for e in db.session.scalars(select(WebhookEndpoint))
        }
        rows = db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.status == "succeeded")).all()
        ok = {(a.webhook_id, a.path) for a in list(hooks.answered) if 200 <= a.status < 300}
        return [
            f"delivery {d.id} succeeded without a 2xx" for d in rows if (d.event_id, paths[d.endpoint_id]) not in ok
        ]

    watch = Watch(app, "a succeeded delivery was answered 2xx", succeeded_means_2xx)
    watch.start()
    hooks.down()
    down = [shop.event(phase="down", i=i) for i in range(4)]
    down_rows = _deliveries(down)
    wait_until(retried(WebhookDelivery, down_rows), 60, 0.2, what="deliveries to be retried while the receiver is down")
    phase(report, "receiver down", WebhookDelivery, down_rows, {"succeeded"})
    hooks.up()

    hooks.script(
        "/flaky",
        Reply(500),
        Reply(503, {"Retry-After": "1"}),
        Reply(429, {"Retry-After": "1"}),
        Reply(502),
        Reply(500),
        Reply(500),
    )
    hooks.script("/slow", *[Reply(200, delay=5)] * 3)  # WEBHOOK_TIMEOUT is 3 s
    later = [shop.event(phase="later", i=i) for i in range(4)]
    settled(report, stack, 120)
    report.add("watch", watch.stop(report))
    report.add("ledger", reconcile.ledger(report.problems))
    report.add("webhooks", reconcile.webhooks(hooks, down + later, report.problems))
    answers: dict[str, dict[int, int]] = {}
    for a in hooks.answered:
        answers.setdefault(a.path, {}).setdefault(a.status, 0)
        answers[a.path][a.status] += 1
    report.add("receiver_answers", answers)
    report.check()


def _deliveries(event_ids: list[str | None]) -> list[str]:
    reconcile.fresh()
    ids = [e for e in event_ids if e]
    return list(db.session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(ids))))


# -- clamd ------------------------------------------------------------------------------------
@pytest.fixture
def own_clamd() -> Any:
    server = ClamdServer().start()
    yield server
    server.close()


def test_clamd_down_erroring_and_slow(app, stack, tenant_key, sink, hooks, own_clamd, report):
    """Down (clamd stopped, connections refused), erroring (an ERROR line for every command),
    slow (answers after CLAMD_TIMEOUT): scans retry and stay `pending`, never `clean`; once clamd
    answers, each gets its verdict (clean, or infected and quarantined)."""
    proxy = ClamdProxy(own_clamd.socket_path).start()
    stack.env.update(CLAMD_URL=proxy.url)
    shop = start_all(stack, tenant_key, sink, hooks)

    def clean_means_ok() -> list[str]:
        clean = db.session.scalars(select(Scan.id).where(Scan.status == "clean")).all()
        return (
            [f"{len(clean)} clean scans, clamd said OK {proxy.ok_replies} times"]
            if len(clean) > proxy.ok_replies
            else []
        )

    watch = Watch(app, "clean scans <= clamd's `stream: OK` answers", clean_means_ok)
    watch.start()

    def upload(tag: str) -> list[str]:
        ids = [shop.upload(f"{tag}-{i}.txt", f"{tag} {i}\n".encode() * 100, "clean") for i in range(3)]
        return [i for i in [*ids, shop.upload(f"{tag}-bad.txt", EICAR, "infected")] if i]

    proxy.set("down")
    own_clamd.stop()
    down = upload("down")
    wait_until(retried(Scan, down), 60, 0.2, what="scans to be retried while clamd is down")
    phase(report, "clamd down", Scan, down, {"clean", "infected"})
    own_clamd.start()
    proxy.set("pass")

    proxy.set("error")
    erroring = upload("error")
    wait_until(retried(Scan, erroring), 60, 0.2, what="scans to be retried while clamd errs")
    phase(report, "clamd erroring", Scan, erroring, {"clean", "infected"})

    proxy.set("slow", 5.0)  # CLAMD_TIMEOUT is 3 s
    slow = upload("slow")
    wait_until(retried(Scan, slow), 60, 0.2, what="scans to be retried while clamd is too slow")
    phase(report, "clamd too slow", Scan, slow, {"clean", "infected"})
    proxy.set("slow", 0.5)  # slow, but within the timeout

    settled(report, stack, 120)
    report.add("watch", watch.stop(report))
    proxy.close()
    report.add("ledger", reconcile.ledger(report.problems))
    report.add(
        "scans",
        reconcile.scans(
            shop.accepted.scans,
            reconcile.stored("files"),
            reconcile.stored("quarantine"),
            report.problems,
        ),
    )
    report.add("clamd_ok_answers", proxy.ok_replies)
    report.check()


# -- the router ----------------------------------------------------------------------------------
def test_router_down_stalled_slow_and_erroring(app, stack, tenant_key, sink, hooks, router, report):
    """Down (connections refused), stalled (commands never answered), slow (each answer after
    ROUTER_TIMEOUT, the command still carried out: the user exists before the retry that finds
    it), erroring (`!fatal` and dropped connections): subscriptions retry, none `active` without
    its user on the router, and each ends with exactly one user."""
    shop = start_all(stack, tenant_key, sink, hooks)
    router_id, plan_id = shop.shop(router.port, ROUTER_PASSWORD)
    users = "/ip/hotspot/user"

    def active_means_on_router() -> list[str]:
        rows = db.session.scalars(select(Subscription).where(Subscription.status == "active")).all()
        on_router = {u.get("comment") for u in router.menus.items(users)}
        return [
            f"subscription {s.id} active, no user on the router" for s in rows if f"opsdeck:{s.id}" not in on_router
        ]

    watch = Watch(app, "an active subscription has its user on the router", active_means_on_router)
    watch.start()

    def pay(tag: str, base: int) -> list[str]:
        paid = [shop.pay(router_id, plan_id, base + i, tag) for i in range(4)]
        wait_until(lambda: all(_subscription(p) for p in paid if p), 60, 0.1, what="subscriptions to be made")
        return [_subscription(p) for p in paid if p]

    router.refuse = True
    down = pay("down", 0)
    wait_until(retried(Subscription, down), 60, 0.2, what="provisioning to retry while the router refuses")
    phase(report, "router down", Subscription, down, {"active"})
    router.refuse = False

    router.stall = True
    stalled = pay("stall", 10)
    wait_until(retried(Subscription, stalled), 60, 0.2, what="provisioning to retry while the router stalls")
    phase(report, "router stalled", Subscription, stalled, {"active"})
    router.stall = False

    # The add answered after ROUTER_TIMEOUT: the router has the user, the attempt failed; the
    # retry finds "already have user" and updates it (the upsert).
    router.delay, router.slow_paths = 3.0, frozenset({"/ip/hotspot/user/add"})
    slow = pay("slow", 20)
    names = _usernames(slow)
    wait_until(
        lambda: names <= {u["name"] for u in router.menus.items(users)},
        60,
        0.2,
        what="the late adds to land on the router",
    )
    wait_until(retried(Subscription, slow), 60, 0.2, what="provisioning to retry while the router is too slow")
    phase(
        report,
        "router add answered too late",
        Subscription,
        slow,
        {"active"},
        users_on_router=sum(1 for u in router.menus.items(users) if u["name"] in names),
    )
    router.delay, router.slow_paths = 0.0, frozenset()

    router.fatal_next = "chaos: the router is rebooting"
    router.drop_connections()
    erroring = pay("fatal", 30)
    settled(report, stack, 120)
    report.add("watch", watch.stop(report))
    report.add("ledger", reconcile.ledger(report.problems))
    report.add("provisioning", reconcile.provisioning(router, shop.accepted.payments, report.problems))
    report.add(
        "subscriptions", {"down": len(down), "stalled": len(stalled), "slow": len(slow), "erroring": len(erroring)}
    )
    report.check()


def _subscription(payment_id: str | None) -> str | None:
    reconcile.fresh()
    row = db.session.get(Payment, payment_id) if payment_id else None
    return row.subscription_id if row else None


def _usernames(subscription_ids: list[str]) -> set[str]:
    reconcile.fresh()
    return {s.username for s in db.session.scalars(select(Subscription).where(Subscription.id.in_(subscription_ids)))}
