"""What every resource shares: its client, and JSON calls with their answers typed."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from opsdeck_client.client import Response
from opsdeck_client.pagination import Pager

if TYPE_CHECKING:
    from opsdeck_client.client import OpsdeckClient

T = TypeVar("T")
#: Polling's interval grows by this factor up to `max_interval`: quick answers come back
#: quickly, slow ones do not cost a request every half second.
POLL_GROWTH = 1.5


def fields(**values: Any) -> dict[str, Any]:
    """A request body of the given fields, those left as None omitted (the server's default)."""
    return {name: value for name, value in values.items() if value is not None}


class Resource:
    def __init__(self, client: OpsdeckClient) -> None:
        self._client = client

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Response:
        return self._client.request(method, "/api/v1" + path, body, query=query, idempotency_key=idempotency_key)

    def _json(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        return self._call(method, path, body, **options).json()

    def _pager(self, path: str, page_size: int | None, **filters: Any) -> Pager[Any]:
        def fetch(cursor: str | None) -> dict[str, Any]:
            query = {**filters, "limit": page_size, "cursor": cursor}
            answer: dict[str, Any] = self._json("GET", path, query=query)
            return answer

        return Pager(fetch)


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float, what: str) -> T:
    """`read()` until `done(value)`; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    max_interval = max(interval, 5.0)
    while True:
        value = read()
        if done(value):
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what} not finished after {timeout:g}s")
        time.sleep(min(interval, left))
        interval = min(max_interval, interval * POLL_GROWTH)
