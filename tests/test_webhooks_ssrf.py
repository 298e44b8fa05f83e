"""The SSRF guard: endpoints must resolve to public addresses only, checked at creation and at
every send, unless WEBHOOK_ALLOWED_NETWORKS opens a range."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from app.extensions import db
from app.models import WebhookDelivery
from app.services.webhooks import transport
from tests.fakes.http_receiver import HttpReceiver
from tests.helpers import make_endpoint, post_event, run_attempt

BLOCKED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",
    "2002:7f00:1::",
    "192.0.0.9",
    "192.0.0.170",
    "fec0::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", BLOCKED)
def test_internal_addresses_are_not_public(address):
    assert not transport.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are(address):
    assert transport.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8080/hook", "http://127.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/latest/meta-data"],
)
def test_vet_refuses_names_and_literals_that_reach_inside(url):
    with pytest.raises(transport.Refused, match="does not resolve to a public address"):
        transport.vet(url)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "http:///nohost", "http://user:pw@example.com/", "http://a:99999/"]
)
def test_vet_refuses_malformed_urls(url):
    with pytest.raises(transport.Refused):
        transport.vet(url)


def test_allowed_networks_open_a_range():
    target = transport.vet("http://localhost:8080/hook", transport.parse_networks(["127.0.0.0/8", "::1/128"]))
    assert target.host == "localhost" and target.port == 8080 and target.path == "/hook"
    assert all(ip.is_loopback for ip in target.addresses)
    assert target.host_header == "localhost:8080"


@pytest.mark.parametrize("url", ["http://localhost:9/hook", "http://169.254.169.254/", "http://10.0.0.1/"])
def test_creating_an_internal_endpoint_is_422(app, api, url):
    response = api.post("/api/v1/webhook-endpoints", {"url": url})
    message = response.get_json()["errors"]["url"][0]
    assert response.status_code == 422 and "does not resolve to a public address" in message
    assert "127.0.0.1" not in message  # a name's internal address is not told
    assert "WEBHOOK_ALLOWED_NETWORKS" in message  # and the setting that allows a range is


@pytest.mark.parametrize("app_config", [{"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "WEBHOOK_RETRY_SCHEDULE": [1]}])
def test_the_guard_runs_again_at_send_time(app, api, app_config):
    """Allowed when created; the range is closed later: the send is refused and recorded as a
    failed attempt, and nothing reaches the receiver."""
    receiver = HttpReceiver().start()
    try:
        make_endpoint(api, receiver.url())
        post_event(api)
        app.config["WEBHOOK_ALLOWED_NETWORKS"] = []
        app.extensions.pop("opsdeck_webhook_networks", None)
        outcome = run_attempt(db.session.query(WebhookDelivery).one().id)
        db.session.expire_all()
        row = db.session.get(WebhookDelivery, outcome.delivery_id)
        assert row.status == "retrying" and row.last_error.startswith("refused:") and receiver.received == []
    finally:
        receiver.close()


def test_a_send_goes_to_the_vetted_address_whatever_the_name_resolves_to_later(monkeypatch):
    """DNS rebinding: a name vetted once is never resolved again for that attempt. After the
    check, the resolver is made to answer an address nobody listens on (a rebinding answer);
    the send still reaches the vetted address, with the name in Host."""
    receiver = HttpReceiver().start()
    try:
        url = receiver.url().replace("127.0.0.1", "localhost")
        target = transport.vet(url, transport.parse_networks(["127.0.0.0/8", "::1/128"]))
        assert set(target.addresses) <= {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
        resolve = socket.getaddrinfo

        def rebinding(host, port, *args, **kwargs):  # the name now points where nobody listens
            return resolve(
                "127.0.0.2" if host == "localhost" else host, 9 if host == "localhost" else port, *args, **kwargs
            )

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        assert socket.getaddrinfo("localhost", 80)[0][4] == ("127.0.0.2", 9)
        answer = transport.Transport().post(target, b"{}", {}, timeout=5, connect_timeout=2)
        assert answer.status == 200
        assert receiver.received[0].headers["Host"] == target.host_header.lower()
        assert target.host_header.startswith("localhost:")
    finally:
        receiver.close()
