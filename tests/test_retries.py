"""Retries: ``retries=``, ``retry_on=``, ``retry_delay=`` and ``backoff``, in every mode."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import concurrency_kit as ck
from helpers import (
    HelperError,
    calls_per_index,
    fail_twice_with_connection_error,
    record_exit_on,
    record_fail_on_3,
    record_value_error,
)


def _items(calls_dir: str, count: int) -> list[tuple[str, int]]:
    return [(calls_dir, index) for index in range(count)]


@pytest.mark.parametrize("entry", ["run_parallel", "iter_parallel"])
def test_items_that_fail_twice_succeed_with_two_retries_in_order(mode: str, entry: str, calls_dir: str) -> None:
    count, told = 12, []
    progress: Callable[[int, int | None], None] = lambda done, total: told.append((done, total))  # noqa: E731
    if entry == "run_parallel":
        results = ck.run_parallel(
            fail_twice_with_connection_error, _items(calls_dir, count), mode, retries=2, progress=progress
        )
    else:
        stream = ck.iter_parallel(fail_twice_with_connection_error, _items(calls_dir, count), mode, retries=2)
        results = list(stream)
        told = [(done, count) for done in range(1, count + 1)]  # a stream has no progress= of its own
    assert results == list(range(count))
    assert calls_per_index(Path(calls_dir)) == dict.fromkeys(range(count), 3)
    assert told == [(done, count) for done in range(1, count + 1)]  # each item counted once, at its outcome


def test_a_failure_retry_on_does_not_count_is_not_retried(mode: str, calls_dir: str) -> None:
    with pytest.raises(ValueError, match="is wrong") as caught:
        ck.run_parallel(record_value_error, _items(calls_dir, 1), mode, retries=3, retry_on=ConnectionError)
    assert calls_per_index(Path(calls_dir)) == {0: 1}
    assert not any("attempts" in note for note in caught.value.__notes__)


@pytest.mark.parametrize("retry_on", [ValueError, (KeyError, ValueError), lambda exc: "wrong" in str(exc)])
def test_retry_on_takes_a_type_a_tuple_or_a_predicate(retry_on: Any, calls_dir: str) -> None:
    results = ck.run_parallel(
        record_value_error, _items(calls_dir, 3), "thread", retries=2, retry_on=retry_on, return_exceptions=True
    )
    assert all(type(result) is ValueError for result in results)
    assert calls_per_index(Path(calls_dir)) == dict.fromkeys(range(3), 3)


def test_the_final_failure_is_the_last_exception_with_a_note_of_every_attempt(mode: str, calls_dir: str) -> None:
    with pytest.raises(ValueError, match="item 0 is wrong") as caught:
        ck.run_parallel(record_value_error, _items(calls_dir, 1), mode, retries=2)
    notes = "\n".join(caught.value.__notes__)
    assert "item 0 failed 3 attempts" in notes
    assert notes.count("ValueError: item 0 is wrong") == 2  # the two earlier attempts
    assert calls_per_index(Path(calls_dir)) == {0: 3}


def test_with_return_exceptions_each_final_failure_takes_its_place(mode: str, calls_dir: str) -> None:
    results = ck.run_parallel(record_fail_on_3, _items(calls_dir, 8), mode, retries=1, return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    assert type(results[3]) is HelperError
    assert "failed 2 attempts" in results[3].__notes__[-1]
    assert calls_per_index(Path(calls_dir)) == {**dict.fromkeys(range(8), 1), 3: 2}


def test_without_retries_nothing_changes(calls_dir: str) -> None:
    with pytest.raises(ValueError, match="is wrong") as caught:
        ck.run_parallel(record_value_error, _items(calls_dir, 1), "thread")
    assert not any("attempts" in note for note in caught.value.__notes__)
    assert calls_per_index(Path(calls_dir)) == {0: 1}


def test_an_item_that_kills_its_worker_every_time_fails_after_exactly_retries_plus_one_attempts(
    calls_dir: str,
) -> None:
    with pytest.raises(ck.WorkerCrashedError) as caught:
        ck.run_parallel(record_exit_on, [(calls_dir, 0, 0)], "process", workers=1, retries=2)
    assert calls_per_index(Path(calls_dir)) == {0: 3}
    assert "item 0 failed 3 attempts" in "\n".join(caught.value.__notes__)


def test_a_worker_death_is_retried_and_only_the_culprit_fails(calls_dir: str) -> None:
    items = [(calls_dir, index, 5) for index in range(12)]
    results = ck.run_parallel(record_exit_on, items, "process", workers=2, retries=1, return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 5] == [i for i in range(12) if i != 5]
    assert isinstance(results[5], ck.WorkerCrashedError)
    assert calls_per_index(Path(calls_dir))[5] == 2  # retries=1: two attempts, then its error
    # A second call works: the pool was replaced.
    assert ck.run_parallel(abs, [-1, -2], "process") == [1, 2]


def test_a_retry_that_waits_holds_no_worker() -> None:
    order: list[int] = []
    lock = threading.Lock()
    failed_once: set[int] = set()

    def first_attempt_fails(index: int) -> int:
        with lock:
            order.append(index)
            if index == 0 and index not in failed_once:
                failed_once.add(index)
                raise ConnectionError("not yet")
        return index

    # One thread: while item 0 waits 0.5 s for its retry, the other items (microseconds
    # each) run in it; a wait that held the thread would put the retry second.
    results = ck.run_parallel(
        first_attempt_fails, range(10), "thread", workers=1, chunksize=1, retries=1, retry_delay=0.5
    )
    assert results == list(range(10))
    assert order[0] == 0
    assert order[-1] == 0


def test_coroutines_are_retried_on_their_loop() -> None:
    attempts: dict[int, int] = {}

    async def flaky(index: int) -> int:
        attempts[index] = attempts.get(index, 0) + 1
        await asyncio.sleep(0)
        if attempts[index] <= 2:
            raise ConnectionError(index)
        return index

    assert ck.run_parallel(flaky, range(10), retries=2, retry_delay=0.01) == list(range(10))
    attempts.clear()

    async def main() -> list[int]:
        return await ck.arun_parallel(flaky, range(10), retries=2)

    assert asyncio.run(main()) == list(range(10))
    assert attempts == dict.fromkeys(range(10), 3)


def test_a_stream_in_completion_order_yields_every_item_once(calls_dir: str) -> None:
    results = list(
        ck.iter_parallel(fail_twice_with_connection_error, _items(calls_dir, 20), "thread", ordered=False, retries=2)
    )
    assert sorted(results) == list(range(20))


def test_backoff_waits_grow_by_the_factor_up_to_the_maximum() -> None:
    fixed = ck.backoff(0.1, factor=3.0, max=1.0, jitter=False)
    assert [fixed(attempt) for attempt in (1, 2, 3, 4)] == pytest.approx([0.1, 0.3, 0.9, 1.0])
    jittered = ck.backoff(0.1)
    for attempt in range(1, 8):
        assert 0.0 <= jittered(attempt) <= min(60.0, 0.1 * 2 ** (attempt - 1))


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"retries": -1}, ValueError),
        ({"retries": 1.5}, TypeError),
        ({"retries": True}, TypeError),
        ({"retries": 1, "retry_on": int}, TypeError),
        ({"retries": 1, "retry_on": ()}, ValueError),
        ({"retries": 1, "retry_on": (ValueError, "x")}, TypeError),
        ({"retries": 1, "retry_on": "ValueError"}, TypeError),
        ({"retries": 1, "retry_delay": -1}, ValueError),
        ({"retries": 1, "retry_delay": math.nan}, ValueError),
        ({"retries": 1, "retry_delay": "1s"}, TypeError),
    ],
)
def test_bad_retry_options_are_rejected_at_once(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ck.run_parallel(abs, [1], **options)


def test_bad_backoff_figures_are_rejected() -> None:
    with pytest.raises(ValueError, match="factor"):
        ck.backoff(0.1, factor=0.5)
    with pytest.raises(ValueError, match="base"):
        ck.backoff(-1)
    with pytest.raises(TypeError):
        ck.backoff("1")  # type: ignore[arg-type]
