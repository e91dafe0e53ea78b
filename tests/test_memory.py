"""Auto mode remembers what it measured about a function between calls."""

from __future__ import annotations

import time
from pathlib import Path

import concurrency_kit as ck
from concurrency_kit.tasks import square
from helpers import calls_per_index, record_trivial, slow_if_positive

REMEMBERED = "what an earlier call measured"


def test_a_second_call_of_tiny_work_runs_in_a_loop_from_memory() -> None:
    first = ck.plan(square, range(20_000))
    assert first.run() == [x * x for x in range(20_000)]
    second = ck.plan(square, range(20_000))
    assert REMEMBERED in second.reason, second.reason
    assert (second.mode, second.kind) == ("serial", first.kind)
    assert second.run() == [x * x for x in range(20_000)]


def test_the_remembered_run_calls_every_item_exactly_once(tmp_path: Path) -> None:
    for round_ in ("first", "second"):
        directory = tmp_path / round_
        directory.mkdir()
        # A dozen file creations: too little work for a pool, so the second call loops from memory.
        plan = ck.plan(record_trivial, [(str(directory), i) for i in range(12)])
        assert plan.run() == list(range(12))
        assert calls_per_index(directory) == dict.fromkeys(range(12), 1)
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
