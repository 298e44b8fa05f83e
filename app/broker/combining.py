"""Calls from many threads combined into one batch (flat combining).

A thread that calls a `Combiner` queues its item and takes the turn; the thread holding the
turn runs the batch function once for its own item and every item the other threads queued
meanwhile, and each finds its result set when its own turn comes. Under load that is one
round trip or one transaction for several threads' calls; a thread alone runs at once with a
batch of one, so nothing waits for a timer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Call(Generic[T, R]):
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: T) -> None:
        self.item, self.done = item, False
        self.result: R | None = None
        self.error: BaseException | None = None


class Combiner(Generic[T, R]):
    """`combiner(item)` returns `run(items)[i]` for this thread's item, `run` being called
    with the items of every thread waiting at that moment, in arrival order. When `run`
    raises, every call of that batch raises the same error; when the thread running the batch
    is interrupted (a time limit, a shutdown), the others raise RuntimeError and this one the
    interruption."""

    def __init__(self, run: Callable[[list[T]], Sequence[R]]) -> None:
        self.run = run
        self._waiting: list[_Call[T, R]] = []
        self._lock = threading.Lock()
        self._turn = threading.Lock()

    def __call__(self, item: T) -> R:
        mine: _Call[T, R] = _Call(item)
        with self._lock:
            self._waiting.append(mine)
        with self._turn:
            if not mine.done:
                with self._lock:
                    batch, self._waiting = self._waiting, []
                self._run(batch)
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def _run(self, batch: list[_Call[T, R]]) -> None:
        try:
            results = self.run([c.item for c in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} call(s) gave {len(results)} result(s)")
        except Exception as err:
            for c in batch:
                c.error, c.done = err, True
            return
        except BaseException:
            for c in batch:
                c.error, c.done = RuntimeError("the combined call was interrupted"), True
            raise
        for c, result in zip(batch, results, strict=True):  # lengths checked above
            c.result, c.done = result, True
