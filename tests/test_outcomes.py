"""Where results land: in-order outcomes that grow at their end, and dense ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import concurrency_kit as ck
from concurrency_kit._backends.outcomes import EMPTY, Feed, Outcomes, iterate_from, run_span, run_timed
from concurrency_kit._backends.thread import ThreadRunner
from concurrency_kit._backends.unit import Unit
from helpers import HelperError, compute, double


class Items(list[int]):
    """A list whose own iterator is a generator: it cannot skip ahead, nor say what is left."""

    def __iter__(self) -> Iterator[int]:
        yield from (self[index] for index in range(len(self)))


def _recording(failing: int) -> tuple[list[int], Callable[[int], int]]:
    """A function that records every item it gets and raises on item ``failing``; and its record."""
    calls: list[int] = []

    def record_or_fail(x: int) -> int:
        calls.append(x)
        if x == failing:
            raise HelperError(x)
        return x

    return calls, record_or_fail


SEQUENCES = {
    "list": list(range(50)),
    "tuple": tuple(range(50)),
    "range": range(50),
    "other": Items(range(50)),
}


@pytest.mark.parametrize("kind", SEQUENCES)
@pytest.mark.parametrize("start", [0, 1, 49, 50])
def test_iterating_from_an_index_yields_the_rest(kind: str, start: int) -> None:
    assert list(iterate_from(SEQUENCES[kind], start)) == list(range(start, 50))


def test_in_order_outcomes_grow_span_by_span_and_the_last_span_completes_them() -> None:
    outcomes = Outcomes(10, in_order=True)
    feed = Feed(outcomes, 0, 10, in_order=True)
    assert outcomes.values == []
    assert run_span(double, range(10), feed, feed.take(3), check_each=False)
    assert outcomes.values == [0, 2, 4]
    assert outcomes.in_order
    assert run_span(double, range(10), feed, feed.take(100), check_each=False)
    assert outcomes.values == [2 * x for x in range(10)]
    assert not outcomes.in_order


def test_a_feed_that_may_write_out_of_order_makes_the_outcomes_dense_in_place() -> None:
    outcomes = Outcomes(6, in_order=True)
    feed = Feed(outcomes, 0, 2, in_order=True)
    run_span(double, range(6), feed, feed.take(2), check_each=False)
    values = outcomes.values
    Feed(outcomes, 2, 6)  # another thread's, say
    assert outcomes.values is values
    assert values == [0, 2, EMPTY, EMPTY, EMPTY, EMPTY]
    assert not outcomes.in_order


def test_collected_exceptions_never_use_in_order_outcomes() -> None:
    outcomes = Outcomes(3, collect=True, in_order=True)
    assert outcomes.values == [EMPTY] * 3


def test_a_checked_span_on_in_order_outcomes_makes_them_dense_first() -> None:
    outcomes = Outcomes(4, in_order=True)
    feed = Feed(outcomes, 0, 4, in_order=True)
    assert run_span(double, range(4), feed, feed.take(4), check_each=True)
    assert outcomes.values == [0, 2, 4, 6]


@pytest.mark.parametrize("kind", SEQUENCES)
@pytest.mark.parametrize("failing", [0, 2, 7, 49])
def test_a_failure_in_an_in_order_span_names_its_item(kind: str, failing: int) -> None:
    items = SEQUENCES[kind]
    outcomes = Outcomes(50, in_order=True)
    feed = Feed(outcomes, 0, 50, in_order=True)
    calls, record_or_fail = _recording(failing)
    going = run_span(record_or_fail, items, feed, feed.take(3), check_each=False)
    going = going and run_span(record_or_fail, items, feed, feed.take(50), check_each=False)
    assert not going
    assert outcomes.error_index == failing
    assert calls == list(range(failing + 1))


@pytest.mark.parametrize("kind", ["list", "other"])
@pytest.mark.parametrize("failing", [5_000, 19_999])
def test_a_remembered_loop_that_fails_after_its_check_names_the_item(kind: str, failing: int) -> None:
    # The second call runs a timed head in the calling thread, then the rest as one
    # span onto it: the failure is found from the rest's iterator.
    items: Sequence[int] = list(range(20_000)) if kind == "list" else Items(range(20_000))
    calls: list[int] = []
    fail = [False]

    def tiny(x: int) -> Any:
        calls.append(x)
        if fail[0] and x == failing:
            raise HelperError(f"item {x} fails")
        return x

    assert ck.run_parallel(tiny, items) == list(range(20_000))
    assert ck.run_parallel(tiny, items) == list(range(20_000))
    calls.clear()
    fail[0] = True
    with pytest.raises(HelperError) as caught:
        ck.run_parallel(tiny, items)
    assert caught.value.__notes__ == [f"concurrency_kit: raised by item {failing}: {failing}"]
    assert calls == list(range(failing + 1))


@pytest.mark.parametrize("failures", ["raised", "collected"])
def test_a_timed_run_stops_at_its_span_after_the_budget(failures: str) -> None:
    collect = failures == "collected"
    outcomes = Outcomes(100, collect=collect, in_order=True)
    assert run_timed(double, range(100), outcomes, 99, budget=-1.0, growth=4) == 1  # the budget is spent at once
    assert outcomes.values[:1] == [0]
    outcomes = Outcomes(100, collect=collect, in_order=True)
    assert run_timed(double, range(100), outcomes, 99, budget=float("inf"), growth=4) == 99
    assert outcomes.values[:99] == [2 * x for x in range(99)]


@pytest.mark.parametrize("failing", [0, 1, 4, 20, 98])
def test_a_failure_in_a_timed_run_names_its_item_and_stops_there(failing: int) -> None:
    outcomes = Outcomes(100, in_order=True)
    calls, record_or_fail = _recording(failing)
    assert run_timed(record_or_fail, range(100), outcomes, 99, budget=float("inf"), growth=4) > failing
    assert outcomes.error_index == failing
    assert calls == list(range(failing + 1))


def test_threads_running_a_calls_units_count_their_cpu_time() -> None:
    runner = ThreadRunner(compute, 2, collect=False, count_cpu=True)
    futures = [runner.submit(Unit(index, [5])) for index in range(4)]
    assert [future.result(timeout=60).values for future in futures] == [[5]] * 4
    assert 0.020 <= runner.cpu < 1.0
