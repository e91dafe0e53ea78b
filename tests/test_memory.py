"""Auto mode remembers what it measured about a function between calls."""

from __future__ import annotations

import time
from collections import Counter

import concurrency_kit as ck
from concurrency_kit.tasks import square
from helpers import slow_if_positive

REMEMBERED = "what an earlier call measured"


def test_a_second_call_of_tiny_work_runs_in_a_loop_from_memory() -> None:
    first = ck.plan(square, range(20_000))
    assert first.run() == [x * x for x in range(20_000)]
    second = ck.plan(square, range(20_000))
    assert REMEMBERED in second.reason, second.reason
    assert (second.mode, second.kind) == ("serial", first.kind)
    assert second.run() == [x * x for x in range(20_000)]


def test_the_remembered_run_calls_every_item_exactly_once() -> None:
    # Work this small (a list append) never goes to processes, so counting the calls in
    # this process sees every one; a file per call (as elsewhere) would be slow enough
    # on a busy machine to make threads worth it, and the loop-from-memory path untested.
    calls: list[int] = []
    record = calls.append  # one function object for both calls: memory is kept per function
    for _ in ("first", "second"):
        calls.clear()
        plan = ck.plan(record, range(2_000))
        assert plan.run() == [None] * 2_000
        assert Counter(calls) == dict.fromkeys(range(2_000), 1)
    assert REMEMBERED in plan.reason, plan.reason


def test_work_that_grew_is_measured_afresh() -> None:
    assert ck.run_parallel(slow_if_positive, range(-20_000, 0)) == list(range(-20_000, 0))
    started = time.perf_counter()
    plan = ck.plan(slow_if_positive, range(40))
    results = plan.run()
    elapsed = time.perf_counter() - started
    assert results == list(range(40))
    assert REMEMBERED not in plan.reason, plan.reason
    assert (plan.mode, plan.kind) == ("thread", "io"), plan.reason
    assert elapsed < 0.5, f"40 waits of 20 ms took {elapsed:.2f} s: the drift check ran them in a loop"


def test_shutdown_forgets() -> None:
    ck.run_parallel(square, range(20_000))
    ck.shutdown()
    assert REMEMBERED not in ck.plan(square, range(20_000)).reason
