"""Scans run by real `dramatiq workers` processes against the real clamd: verdicts reach the
platform as signed `scan.completed` webhooks and the operators' feed hears of infections; a
scheduler process notices new signatures and the workers rescan."""

from __future__ import annotations

import json

import pytest

from app import live
from app.models import Scan
from tests.fakes.clamav import EICAR, ClamdServer
from tests.fakes.processes import wait_until
from tests.helpers import fresh, make_endpoint, upload

pytestmark = [pytest.mark.slow, pytest.mark.both_storages]
WORKER_ENV = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "WEBHOOK_RETRY_SCHEDULE": "1,2"}


@pytest.fixture
def app_config():
    return {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "WEBHOOK_RETRY_SCHEDULE": [1, 2]}


def verdict(scan_id: str) -> str:
    return fresh(Scan, scan_id).status


def test_verdicts_from_workers_reach_the_platform_and_the_feed(app, api, workers, receiver):
    make_endpoint(api, receiver.url(), event_types=["scan.completed"])
    clean = upload(api, "notes.txt", b"hello")
    infected = upload(api, "readme.txt", EICAR)
    workers.start(["scans", "webhooks"], **WORKER_ENV)
    wait_until(
        lambda: verdict(clean["id"]) == "clean" and verdict(infected["id"]) == "infected", 60, 0.1, what="both verdicts"
    )
    wait_until(lambda: len(receiver.on("/hook")) >= 2, 30, 0.1, what="two scan.completed webhooks")
    delivered = {json.loads(r.body)["data"]["id"]: json.loads(r.body)["data"] for r in receiver.on("/hook")}
    assert delivered[clean["id"]]["status"] == "clean"
    assert delivered[infected["id"]]["status"] == "infected"
    assert "Opsdeck.Test.EICAR" in delivered[infected["id"]]["signature"]
    feed = [e for e in live.recent(50) if e["type"] == "scan.infected"]
    assert [e["subject"] for e in feed] == [infected["id"]]


def test_the_scheduler_notices_new_signatures_and_workers_rescan(app, api, workers):
    own = ClamdServer().start()
    try:
        env = {"CLAMD_URL": own.url, "SCAN_SIGNATURE_CHECK_SECONDS": 1}
        app.config["CLAMD_URL"] = own.url
        workers.start(["scans", "scans_low"], **env)
        workers.start_scheduler(**env)
        later_bad = b"harmless until the next signature update\n"
        suspect = upload(api, "suspect.txt", later_bad)
        wait_until(lambda: verdict(suspect["id"]) == "clean", 60, 0.1, what="the first verdict")
        own.update_signatures({"Opsdeck.Test.Later": later_bad})
        try:
            wait_until(lambda: verdict(suspect["id"]) == "infected", 60, 0.2, what="the rescan")
        except TimeoutError as err:
            raise AssertionError(workers.logs()) from err
        assert fresh(Scan, suspect["id"]).db_version == own.version
    finally:
        own.close()
