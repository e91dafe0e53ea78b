"""Balancing a list's items across the workers: the dearest start first (``cost=``, or a size the times follow)."""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Any

import pytest

import concurrency_kit as ck
from concurrency_kit import TaskKind
from concurrency_kit._api.planning import DEAREST_FIRST
from concurrency_kit._backends.outcomes import Outcomes
from concurrency_kit._core.costmodel import using_model
from concurrency_kit._core.options import call_options
from concurrency_kit._decide.memory import SURE_AFTER, Memo, recall, remember
from concurrency_kit._decide.ordering import balancing
from concurrency_kit._decide.plan import Choice
from concurrency_kit._decide.sizes import BySize, by_size, concordance, size_key, spread
from concurrency_kit._decide.sizing import chunks
from concurrency_kit._run.balancing import longest_first
from concurrency_kit._run.handover import Handover
from helpers import HelperError, compute, fail_on_13
from measured import SERVER_UP, given, probed

_started: list[Any] = []
_lock = threading.Lock()


def _logged(item: Any) -> Any:
    """Note that ``item`` started; return it."""
    with _lock:
        _started.append(item)
    return item


@pytest.fixture
def started() -> list[Any]:
    _started.clear()
    return _started


def test_longest_first_orders_from_the_dearest_and_ties_keep_input_order() -> None:
    items = ["a", "bbb", "cc", "ddd", "e"]
    order = longest_first(items, 1, len)
    assert list(order.items(items)) == ["bbb", "ddd", "cc", "e"]
    assert [order.index(p) for p in range(5)] == [0, 1, 3, 2, 4]
    assert order.restored(["a", "bbb", "ddd", "cc", "e"]) == items


def test_cost_starts_the_dearest_first_and_returns_results_in_input_order(started: list[Any]) -> None:
    items = [1, 1, 2, 1, 2, 1]
    plan = ck.plan(_logged, items, "thread", workers=2, cost=lambda n: n)
    assert plan.reason.endswith(DEAREST_FIRST), plan.reason
    assert plan.run() == items
    # Both long ones start in the first round, side by side; the short ones fill in after.
    assert sorted(started[:2]) == [2, 2], started


@pytest.mark.slow
def test_cost_in_processes_keeps_input_order_and_names_a_failing_item_by_its_input_index() -> None:
    items = list(range(20))
    assert ck.run_parallel(compute, [3, 1, 2, 1], "process", workers=2, cost=lambda n: n) == [3, 1, 2, 1]
    with pytest.raises(HelperError, match="unlucky") as caught:
        ck.run_parallel(fail_on_13, items, "process", workers=2, chunksize=1, cost=lambda n: -n)
    assert any("item 13" in note for note in caught.value.__notes__), caught.value.__notes__


def test_a_bad_cost_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="cost must be a callable"):
        ck.run_parallel(abs, [1, 2], cost=3)  # type: ignore[arg-type]


def test_a_serial_plan_keeps_input_order(started: list[Any]) -> None:
    plan = ck.plan(_logged, [1, 3, 2], "serial", cost=lambda n: n)
    assert DEAREST_FIRST not in plan.reason
    assert plan.run() == [1, 3, 2]
    assert started == [1, 3, 2]


@pytest.mark.parametrize(
    ("items", "key"),
    [([3, 1.5, 2], "value"), (["ab", b"c", [1, 2]], "len"), ([1, "a"], None), ([True, 2], None), ([], None)],
)
def test_an_items_size_is_its_value_or_its_length(items: list[Any], key: str | None) -> None:
    assert size_key(items) == key


def test_concordance_counts_the_pairs_of_different_sizes_in_which_the_larger_took_longer() -> None:
    assert concordance([(1, 10), (2, 20), (3, 30), (4, 40)]) == (1.0, 6)
    assert concordance([(1, 1), (2, 4), (3, 9), (4, 16)]) == (1.0, 6)  # any increasing relation
    assert concordance([(1, 4), (2, 3), (3, 2), (4, 1)]) == (0.0, 6)
    assert concordance([(1, 5), (2, 5)]) == (0.5, 1)  # equal times: half
    # Many units alike and a few long ones: the pairs of equal sizes count neither way.
    alike = [(1, 0.001 + k * 1e-5) for k in range(20)]
    assert concordance([*alike, (100, 0.1), (100, 0.09)]) == (1.0, 40)


def test_times_follow_a_size_unit_by_unit() -> None:
    items = [10, 40, 20, 80, 30, 5]
    following = [(range(i, i + 1), items[i] / 1000) for i in range(6)]
    found = by_size(items, "value", following)
    assert found is not None
    assert found.follows()
    assert found.pairs == 15
    unrelated = [(range(i, i + 1), t) for i, t in enumerate([0.3, 0.1, 0.4, 0.1, 0.5, 0.9])]
    found = by_size(items, "value", unrelated)
    assert found is not None
    assert not found.follows()
    assert by_size(items, "value", following[:3]) is None  # too few units to tell


def test_a_size_the_times_followed_orders_a_pool_call() -> None:
    items = [1, 9, 3]
    remembered = Memo(TaskKind.CPU, 0.01, readings=SURE_AFTER, by_size=BySize("value", 0.9, 8))
    balanced = balancing(abs, items, remembered, Choice("process", 2, 1, ""), 3)
    assert balanced.cost is not None
    assert balanced.timing is not None  # and it learns on
    assert "their times followed their value" in balanced.said
    assert balancing(abs, items, remembered, Choice("serial", 1, 3, ""), 3).cost is None
    assert balancing(abs, ["a", "bc", "d"], remembered, Choice("process", 2, 1, ""), 3).cost is None  # len now
    weak = Memo(TaskKind.CPU, 0.01, by_size=BySize("value", 0.2, 8))
    assert balancing(abs, items, weak, Choice("process", 2, 1, ""), 3).cost is None


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_a_skewed_input_with_a_size_is_started_longest_first_once_a_run_timed_it() -> None:
    # Milliseconds of CPU time each, a size the times follow, the longest last.
    items = [2, 4, 1, 3, 6, 5, 8, 40]
    computing = probed(0.02, 1.0, items=1, gil_share=1.0, exact=False)
    with using_model(SERVER_UP), given(probe=computing):
        first = ck.plan(compute, items)
        assert first.mode == "process", first.reason
        assert "dearest first" not in first.reason  # nothing timed yet: input order
        assert first.run() == items
    memo = recall(compute)
    assert memo is not None
    assert memo.by_size is not None
    assert memo.by_size.follows(), memo.by_size
    with using_model(SERVER_UP), given(probe=computing):
        second = ck.plan(compute, items)
        assert "items start dearest first: their times followed their value" in second.reason, second.reason
        assert second.run() == items


def test_the_spread_of_item_times_is_read_from_units_of_several() -> None:
    even = [(range(i * 4, i * 4 + 4), 0.004) for i in range(6)]
    assert spread(even) == pytest.approx(0.0)
    # Units of 4: one item in 8 takes 40 ms, the others 1 ms.
    uneven = [(range(i * 4, i * 4 + 4), 0.043 if i % 2 else 0.004) for i in range(8)]
    found = spread(uneven)
    assert found is not None
    assert found > 1.0
    assert spread(even[:3]) is None  # too few units to tell


@pytest.mark.parametrize(("spread_", "most"), [(0.0, 25), (0.3, 23), (1.0, 17), (4.6, 5)])
def test_chunks_of_items_whose_times_vary_are_smaller(spread_: float, most: int) -> None:
    # 1 ms items, chunks of about 25 ms: as many as take that even two deviations over the mean.
    assert chunks(10_000, 2, 0.001, 0.025, spread=spread_) == most


def test_chunks_sized_for_the_spread_still_carry_ten_round_trips_of_work() -> None:
    # 0.5 ms items varying widely: 6 a chunk for the spread, but a round trip of 0.5 ms
    # is then a sixth of the work: 10 at least (5 ms, ten round trips).
    assert chunks(10_000, 2, 0.0005, 0.025, spread=10.0) == 6
    assert chunks(10_000, 2, 0.0005, 0.025, spread=10.0, round_trip=0.0005) == 10
    assert chunks(10_000, 2, 0.0005, 0.025, round_trip=0.0005) == 50  # no spread: the target alone


def test_a_run_in_input_order_teaches_the_spread_and_the_next_chunks_follow_it() -> None:
    memo = Memo(TaskKind.CPU, 0.001, readings=SURE_AFTER)
    remember(_logged, memo)
    listener = balancing(_logged, [1] * 40, memo, Choice("process", 2, 4, ""), 40).timing
    assert listener is not None
    listener([(range(i * 4, i * 4 + 4), 0.043 if i % 2 else 0.004) for i in range(10)])
    taught = recall(_logged)
    assert taught is not None
    assert taught.spread is not None
    assert taught.spread > 1.0
    assert taught.by_size is None  # every item the same size: nothing to order by


def test_the_callers_cost_comes_before_a_learnt_order() -> None:
    # An earlier run found the times following the items' value; the caller says the
    # opposite: the caller's order stands, whatever the decision found.
    items = [1, 3, 2]
    opposite: Callable[[int], int] = operator.neg
    options, _ = call_options(_logged, items, started=0.0, cost=opposite)
    learnt = BySize("value", 1.0, 8)
    handover = Handover(_logged, items, options, Outcomes(3), cost=learnt.cost(), cost_said=learnt.said())
    assert handover.cost is opposite
    assert Handover(_logged, items, call_options(_logged, items, started=0.0)[0], Outcomes(3)).cost is None
