"""Combiner (app/broker/combining.py): calls from many threads combined into batches."""

from __future__ import annotations

import threading

import pytest

from app.broker.combining import Combiner
from tests.fakes.processes import wait_until


class _Gate:
    """A batch function that records its batches; the first batch waits for `release`."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.fail = fail

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.entered.set()
            self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        return [i * 10 for i in items]


def _calls(combiner: Combiner[int, int], items: list[int]) -> tuple[list[threading.Thread], dict[int, object]]:
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = combiner(i)
        except Exception as err:
            results[i] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
    return threads, results


def test_calls_made_while_a_batch_runs_go_together_in_the_next_and_each_gets_its_result():
    gate = _Gate()
    combiner = Combiner(gate)
    first, results = _calls(combiner, [1])
    assert gate.entered.wait(10)
    rest, more = _calls(combiner, [2, 3, 4])
    wait_until(lambda: len(combiner._waiting) == 3, 10, 0.01, what="three calls queued behind the first")
    gate.release.set()
    for t in first + rest:
        t.join(10)
    assert gate.batches[0] == [1] and sorted(gate.batches[1]) == [2, 3, 4] and len(gate.batches) == 2
    assert {**results, **more} == {1: 10, 2: 20, 3: 30, 4: 40}


def test_an_error_reaches_every_call_of_its_batch():
    boom = ConnectionError("redis went away")
    gate = _Gate(fail=boom)
    combiner = Combiner(gate)
    first, results = _calls(combiner, [1])
    assert gate.entered.wait(10)
    rest, more = _calls(combiner, [2, 3])
    wait_until(lambda: len(combiner._waiting) == 2, 10, 0.01, what="two calls queued behind the first")
    gate.release.set()
    for t in first + rest:
        t.join(10)
    assert all(r is boom for r in {**results, **more}.values()) and len({**results, **more}) == 3


def test_a_batch_function_giving_the_wrong_number_of_results_fails_its_calls():
    combiner: Combiner[int, int] = Combiner(lambda items: [])
    with pytest.raises(RuntimeError, match="gave 0 result"):
        combiner(1)


def test_a_call_alone_runs_at_once_in_its_own_thread():
    seen: list[str] = []
    combiner: Combiner[int, int] = Combiner(lambda items: [seen.append(threading.current_thread().name) or 7])
    assert combiner(1) == 7 and seen == [threading.current_thread().name]
