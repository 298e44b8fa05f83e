"""The customer endpoint the webhook tests and the chaos suite post to: what it counts as a
received request. urllib3 writes a request's headers and its body in two sends, so a worker
SIGKILLed between them leaves the receiver with headers and a short body."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests

from tests.fakes.http_receiver import HttpReceiver
from tests.fakes.processes import wait_until


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.close()


def test_a_request_whose_sender_died_before_the_whole_body_is_not_received(receiver: HttpReceiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nwebhook-id: e1\r\nContent-Length: 20\r\n\r\n")
        sock.sendall(b'{"type":')  # 8 of 20 bytes, then the sender is gone
    wait_until(lambda: receiver.cut, 5, 0.01, what="the cut request")
    assert receiver.received == []
    assert receiver.cut[0].path == "/a" and receiver.cut[0].body == b'{"type":'


def test_a_whole_request_is_received_and_answered(receiver: HttpReceiver) -> None:
    answer = requests.post(receiver.url("/a"), data=b'{"type":"x"}', timeout=5)
    assert answer.status_code == 200
    assert [(r.path, r.body) for r in receiver.received] == [("/a", b'{"type":"x"}')]
    assert receiver.cut == []
