"""Coroutines through the run engine: the lanes' rules (waking, unit sizes, the unit future) and what they guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import CancelledError

import pytest

import concurrency_kit as ck
from concurrency_kit._backends.lanes import MAX_BACKOFF, UNIT_SPREAD, Grouping
from concurrency_kit._backends.loop_future import LoopFuture
from concurrency_kit._backends.unit import Done

pytestmark = pytest.mark.filterwarnings("error")

TIGHT, APART = UNIT_SPREAD / 10, UNIT_SPREAD * 10


def test_units_grow_while_their_items_finish_together_and_drop_to_one_when_they_do_not() -> None:
    grouping = Grouping()
    grouping.settled(1, 0.0)  # a unit of one: nothing against growing the first time
    assert grouping.size == 2
    grouping.settled(2, TIGHT)
    grouping.settled(4, TIGHT)
    assert grouping.size == 8
    grouping.settled(8, APART)
    assert grouping.size == 1


def test_after_each_miss_units_of_one_wait_twice_as_long_before_growing_again() -> None:
    grouping = Grouping()
    waits = []
    for _ in range(4):
        grouping.size = 2
        grouping.settled(2, APART)  # a miss
        settled = 0
        while grouping.size == 1:
            grouping.settled(1, 0.0)
            settled += 1
        waits.append(settled)
    assert waits == [2, 4, 8, 16]


def test_the_wait_is_bounded_and_shrinks_as_units_finish_together_again() -> None:
    grouping = Grouping()
    for _ in range(3 * MAX_BACKOFF):
        grouping.size = 2
        grouping.settled(2, APART)
    assert grouping.backoff == MAX_BACKOFF
    grouping.size = 2
    grouping.settled(2, TIGHT)
    assert (grouping.size, grouping.backoff) == (4, MAX_BACKOFF - 1)


def test_a_loop_future_is_a_future_without_a_lock() -> None:
    told: list[object] = []
    future = LoopFuture()
    future.add_done_callback(told.append)
    assert not future.done()
    assert future.set_running_or_notify_cancel()
    assert future.running()
    assert not future.cancel()  # its unit started
    done = Done([1, 2])
    future.set_result(done)
    assert future.done()
    assert told == [future]
    assert future.result() is done
    assert future.exception() is None
    late: list[object] = []
    future.add_done_callback(late.append)  # done: called at once
    assert late == [future]


def test_a_loop_future_cancelled_before_its_unit_starts() -> None:
    told: list[object] = []
    future = LoopFuture()
    future.add_done_callback(told.append)
    assert future.cancel()
    assert future.cancelled()
    assert future.done()
    assert told == [future]
    assert not future.set_running_or_notify_cancel()
    with pytest.raises(CancelledError):
        future.result()


def test_items_behind_a_coroutine_that_suspends_get_lanes_after_quick_ones() -> None:
    """Quick coroutines run on one lane; ten that wait for each other then need ten lanes at once.

    The input is longer than the window, so that no lane is woken because the input ended.
    """
    started = 0
    all_started = asyncio.Event()

    async def quick_then_together(x: int) -> int:
        nonlocal started
        if not 50 <= x < 60:
            return x
        started += 1
        if started == 10:
            all_started.set()
        await all_started.wait()  # never set unless all ten run at once
        return x

    async def main() -> list[int]:
        return [value async for value in ck.aiter_parallel(quick_then_together, range(200), workers=10)]

    assert asyncio.run(asyncio.wait_for(main(), 20)) == list(range(200))


def test_an_async_input_that_waits_does_not_hold_back_the_results_before_it() -> None:
    """The input waits for the consumer to have the first result: read ahead, not in the engine's step."""

    async def main() -> list[int]:
        got_first = asyncio.Event()

        async def source() -> AsyncIterator[int]:
            yield 0
            await got_first.wait()
            yield 1

        async def double(x: int) -> int:
            return 2 * x

        results = []
        async with ck.aiter_parallel(double, source()) as stream:
            async for value in stream:
                results.append(value)
                got_first.set()
        return results

    assert asyncio.run(asyncio.wait_for(main(), 20)) == [0, 2]


@pytest.mark.parametrize("exit_with", [SystemExit(3), KeyboardInterrupt()])
def test_system_exit_or_ctrl_c_in_a_coroutine_ends_the_call_with_it(exit_with: BaseException) -> None:
    """Raised in a task, asyncio raises it out of the loop: the private loop's thread must not die with it."""

    async def leaves(x: int) -> int:
        await asyncio.sleep(0)
        if x == 3:
            raise exit_with
        return x

    with pytest.raises(type(exit_with)) as raised:
        ck.run_parallel(leaves, range(8))
    assert "item 3" in " ".join(getattr(raised.value, "__notes__", []))
    with pytest.raises(type(exit_with)):
        list(ck.iter_parallel(leaves, range(8)))


def test_an_unordered_stream_of_coroutines_yields_a_quick_result_before_a_slow_one() -> None:
    async def main() -> list[int]:
        release = asyncio.Event()

        async def slow_first(x: int) -> int:
            if x == 0:
                await release.wait()
            return x

        order = []
        async for value in ck.aiter_parallel(slow_first, range(20), ordered=False):
            order.append(value)
            if len(order) == 19:
                release.set()
        return order

    order = asyncio.run(asyncio.wait_for(main(), 20))
    assert order[-1] == 0
    assert sorted(order) == list(range(20))
