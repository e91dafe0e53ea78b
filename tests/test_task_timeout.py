"""``task_timeout``: one item past it fails with ``TaskTimeoutError``, and the others go on, in every mode."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import concurrency_kit as ck
from helpers import calls_per_index, hang_hard_on, hang_on, hang_on_first_attempt, sleep_for
from stuck_tasks import every_fifth_hangs

#: Far beyond what any of these calls takes when no item waits for a hung one (about a
#: second), and far below the 30 s a hung item waits: passing it means the call did not wait.
NOT_WAITED = 10.0
STOPPABLE = ("thread", "process")


def _hang(
    calls_dir: str, release: str, count: int, hung: tuple[int, ...]
) -> list[tuple[str, int, str, tuple[int, ...]]]:
    return [(calls_dir, index, release, hung) for index in range(count)]


def _outcomes(results: list[Any]) -> list[Any]:
    return ["timeout" if isinstance(result, ck.TaskTimeoutError) else result for result in results]


def test_stuck_items_in_processes_fail_alone_even_one_that_blocks_signals_and_spins(calls_dir: str) -> None:
    items = [(calls_dir, index, (3, 15)) for index in range(20)]
    items[9] = (calls_dir, 9, (9,))  # the same function: item 9 spins with SIGTERM blocked
    began = time.monotonic()
    results = ck.run_parallel(hang_hard_on, items, "process", workers=4, task_timeout=0.5, return_exceptions=True)
    assert time.monotonic() - began < 3.0  # the bound: each stuck worker alone is killed and replaced
    expected = ["timeout" if index in (3, 9, 15) else index for index in range(20)]
    assert _outcomes(results) == expected
    assert all(results[index].index == index for index in (3, 9, 15))
    assert ck.run_parallel(abs, [-1, -2], "process") == [1, 2]  # a second call works


@pytest.mark.parametrize("mode", STOPPABLE)
def test_queue_time_does_not_count(mode: str) -> None:
    # 8 items of 0.4 s on 2 workers: the last start 1.2 s after the call, each runs 0.4 s.
    assert ck.run_parallel(sleep_for, [0.4] * 8, mode, workers=2, chunksize=1, task_timeout=0.5) == [0.4] * 8


def test_one_hung_item_in_a_chunk_fails_alone(calls_dir: str, release: str) -> None:
    items = _hang(calls_dir, release, 30, (14,))
    results = ck.run_parallel(
        hang_on, items, "process", workers=3, chunksize=10, task_timeout=0.3, return_exceptions=True
    )
    assert _outcomes(results) == ["timeout" if index == 14 else index for index in range(30)]


@pytest.mark.parametrize("mode", ["thread", "process", "auto"])
def test_without_return_exceptions_the_call_raises_it_noted_with_its_item(
    mode: str, calls_dir: str, release: str
) -> None:
    began = time.monotonic()
    with pytest.raises(ck.TaskTimeoutError) as caught:
        ck.run_parallel(hang_on, _hang(calls_dir, release, 6, (2,)), mode, workers=2, task_timeout=0.3)
    assert time.monotonic() - began < NOT_WAITED
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, ck.ConcurrencyKitError)
    assert caught.value.index == 2
    assert caught.value.seconds == 0.3
    assert any("item 2" in note for note in caught.value.__notes__)


def test_a_stuck_thread_is_abandoned_and_replaced(calls_dir: str, release: str) -> None:
    # Two lanes, two stuck items first: only fresh lanes can run the rest.
    items = _hang(calls_dir, release, 12, (0, 1))
    results = ck.run_parallel(hang_on, items, "thread", workers=2, task_timeout=0.3, return_exceptions=True)
    assert _outcomes(results) == ["timeout", "timeout", *range(2, 12)]
    assert calls_per_index(Path(calls_dir)) == dict.fromkeys(range(12), 1)


def test_hanging_items_under_repetition_never_hang_the_call() -> None:
    released = threading.Event()  # the hung items block on it (a poll in 800 threads would starve the rest)

    def every_fifth_hangs(index: int) -> int:
        if index % 5 == 0:
            released.wait(30)
        return index

    try:
        for _ in range(20):
            results = ck.run_parallel(
                every_fifth_hangs, range(200), "thread", workers=8, task_timeout=0.05, return_exceptions=True
            )
            outcomes = _outcomes(results)
            assert outcomes.count("timeout") == 40
            assert [o for o in outcomes if o != "timeout"] == [i for i in range(200) if i % 5]
    finally:
        released.set()


@pytest.mark.parametrize("run", range(20))  # the 20 runs, each under its own deadline and leak check
def test_hanging_items_in_processes_under_repetition(run: int) -> None:
    # Each stuck item costs one worker's start (its worker alone is killed): under a second a run here.
    results = ck.run_parallel(
        every_fifth_hangs, range(200), "process", workers=4, task_timeout=0.05, return_exceptions=True
    )
    outcomes = _outcomes(results)
    assert outcomes.count("timeout") == 40, f"run {run}"
    assert [o for o in outcomes if o != "timeout"] == [i for i in range(200) if i % 5]


@pytest.mark.parametrize("mode", STOPPABLE)
def test_an_item_that_hangs_only_once_succeeds_with_a_retry(mode: str, calls_dir: str, release: str) -> None:
    items = [(calls_dir, index, release) for index in range(4)]
    results = ck.run_parallel(hang_on_first_attempt, items, mode, workers=4, task_timeout=0.3, retries=1)
    assert results == [0, 1, 2, 3]
    assert calls_per_index(Path(calls_dir)) == dict.fromkeys(range(4), 2)


def test_a_coroutine_past_it_is_cancelled_and_its_finally_runs() -> None:
    cleaned: list[int] = []

    async def slow_on_two(index: int) -> int:
        try:
            await asyncio.sleep(30 if index == 2 else 0)
            return index
        finally:
            cleaned.append(index)

    results = ck.run_parallel(slow_on_two, range(5), task_timeout=0.2, return_exceptions=True)
    assert _outcomes(results) == [0, 1, "timeout", 3, 4]
    assert sorted(cleaned) == [0, 1, 2, 3, 4]

    async def main() -> list[Any]:
        return await ck.arun_parallel(slow_on_two, range(5), task_timeout=0.2, return_exceptions=True)

    assert _outcomes(asyncio.run(main())) == [0, 1, "timeout", 3, 4]


def test_an_executor_task_past_it_fails_and_the_rest_go_on(calls_dir: str, release: str) -> None:
    with ThreadPoolExecutor(2) as executor:
        results = ck.run_parallel(
            hang_on, _hang(calls_dir, release, 6, (1,)), executor=executor, task_timeout=0.3, return_exceptions=True
        )
        assert _outcomes(results) == [0, "timeout", 2, 3, 4, 5]
        Path(release).touch()  # the executor's thread is not ours: let it finish before it shuts down


def test_a_stream_yields_the_timeout_in_its_place(calls_dir: str, release: str) -> None:
    stream = ck.iter_parallel(
        hang_on, _hang(calls_dir, release, 8, (5,)), "thread", workers=2, task_timeout=0.3, return_exceptions=True
    )
    assert _outcomes(list(stream)) == [0, 1, 2, 3, 4, "timeout", 6, 7]


def test_a_loop_cannot_stop_an_item_so_serial_mode_refuses_it() -> None:
    with pytest.raises(ValueError, match="task_timeout"):
        ck.run_parallel(abs, [1], "serial", task_timeout=1)


@ck.cpu_bound
def _computes(x: int) -> int:
    return x


@ck.io_bound
def _waits(x: int) -> int:
    return x


def test_auto_never_picks_a_loop_and_sends_gil_holding_work_to_processes() -> None:
    computing = ck.plan(_computes, range(4), task_timeout=1)
    assert computing.mode == "process"
    assert "task_timeout" in computing.reason
    assert ck.plan(_waits, range(4), task_timeout=1).mode == "thread"
    assert ck.plan(abs, range(4), task_timeout=1).mode != "serial"  # unknown, and trivial: still stoppable


@pytest.mark.parametrize("value", [0, -1.0, math.nan])
def test_a_task_timeout_that_is_not_positive_is_a_value_error(value: float) -> None:
    with pytest.raises(ValueError, match="task_timeout"):
        ck.run_parallel(abs, [1], task_timeout=value)


def test_a_task_timeout_that_is_not_a_number_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="task_timeout"):
        ck.run_parallel(abs, [1], task_timeout="1s")  # type: ignore[arg-type]
