"""Cursor pagination: `{"data": [...], "next_cursor": ...}`, followed page by page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Pager(Generic[T]):
    """The items of a list call, newest first, fetched a page at a time as you iterate
    (`for job in client.jobs.list(status="dead")`); `pages()` yields whole pages. Each
    iteration starts again from the first page."""

    def __init__(self, fetch: Callable[[str | None], dict[str, Any]]) -> None:
        self._fetch = fetch

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page

    def pages(self) -> Iterator[list[T]]:
        cursor: str | None = None
        while True:
            answer = self._fetch(cursor)
            yield list(answer["data"])
            cursor = answer.get("next_cursor")
            if not cursor:
                return
