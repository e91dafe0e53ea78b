"""The test-only seam for measurements (concurrency_kit._backends.given): given figures, every item still run once."""

from __future__ import annotations

import math
import threading
from collections import Counter

import attrs
import pytest

import concurrency_kit as ck
from concurrency_kit import TaskKind
from concurrency_kit._backends import given as _given
from concurrency_kit._backends import pools as _pools
from concurrency_kit._backends.outcomes import Outcomes
from concurrency_kit._backends.registry import send_first
from concurrency_kit._decide.memory import Memo, remember
from concurrency_kit._decide.probe import ProbePolicy, probe
from helpers import double
from measured import InWorker, Timing, given, probed


def test_nothing_is_given_outside_a_block_and_blocks_nest() -> None:
    assert _given.given_now() is None
    with given(here=Timing(1.0, 0.5)) as outer:
        assert _given.given_now() is outer
        with given(gil_held=True) as inner:
            assert _given.given_now() is inner
        assert _given.given_now() is outer
    assert _given.given_now() is None


def test_the_given_figures_reach_the_threads_a_call_starts() -> None:
    seen: list[object] = []
    with given(gil_held=False) as figures:
        thread = threading.Thread(target=lambda: seen.append(_given.given_now()))
        thread.start()
        thread.join()
    assert seen == [figures]


def _counting() -> tuple[Counter[int], threading.Lock, object]:
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def fn(x: int) -> int:
        with lock:
            calls[x] += 1
        return 2 * x

    return calls, lock, fn


@pytest.mark.parametrize("figures", ["exact", "lower bounds"])
def test_the_probe_reports_the_given_figures_and_runs_exactly_the_items_they_name(figures: str) -> None:
    calls, _, fn = _counting()
    measurement = probed(0.01, 0.5, items=3, gil_share=0.0, exact=figures == "exact")
    outcomes = Outcomes(10)
    with given(probe=measurement):
        run = probe(fn, range(10), outcomes, _pools.submit_daemon, start=2)  # type: ignore[arg-type]
    assert run.measurement == measurement
    assert (run.first, run.resume_at) == (2, 5)
    assert run.join(timeout=30)
    assert calls == Counter({2: 1, 3: 1, 4: 1})
    assert outcomes.values[2:5] == [4, 6, 8]
    assert run.final() == attrs.evolve(measurement, completed=3, exact=True)  # once done


def test_exact_figures_wait_for_their_items_and_lower_bounds_leave_them_running() -> None:
    release = threading.Event()

    def wait_for_release(x: int) -> int:
        release.wait(timeout=30)
        return x

    with given(probe=probed(0.01, 0.0, exact=False)):
        run = probe(wait_for_release, range(4), Outcomes(4), _pools.submit_daemon)
    assert not run.join(timeout=0)  # decided while the items wait
    release.set()
    assert run.join(timeout=30)


def test_a_decision_that_waits_for_running_items_sees_the_final_figures() -> None:
    midway, done = probed(0.01, 0.5, exact=False), probed(0.026, 0.23)
    asked: list[object] = []

    def settled(m: object) -> bool:
        asked.append(m)
        return False  # as for items that may be waiting now

    with given(probe=midway, final=done):
        run = probe(double, range(8), Outcomes(8), _pools.submit_daemon, settled=settled)
    assert asked == [midway]
    assert run.measurement == done
    assert all(thread.done() for thread in run.threads)


def test_the_probe_runs_the_items_in_as_many_threads_as_it_may() -> None:
    threads: set[int] = set()
    both = threading.Barrier(2)

    def meet(x: int) -> int:
        threads.add(threading.get_ident())
        both.wait(timeout=30)  # two at once, or the barrier breaks
        return x

    with given(probe=probed(0.01, 0.0, items=2)):
        run = probe(meet, range(4), Outcomes(4), _pools.submit_daemon, threads=2)
    assert run.join(timeout=30)
    assert len(threads) == 2
    threads.clear()

    def record(x: int) -> int:
        threads.add(threading.get_ident())
        return x

    with given(probe=probed(0.01, 0.0, items=3)):
        run = probe(record, range(4), Outcomes(4), _pools.submit_daemon, threads=1)
    assert run.join(timeout=30)
    assert len(threads) == 1


def test_figures_that_name_more_items_than_are_left_cover_those_left() -> None:
    with given(probe=probed(0.01, 1.0, items=5)):
        run = probe(double, range(3), Outcomes(3), _pools.submit_daemon, policy=ProbePolicy())
    assert (run.resume_at, run.measurement.items, run.measurement.completed) == (3, 3, 3)


@pytest.mark.parametrize(
    ("wall", "budget", "expected"),
    [
        (1e-5, 1e-4, 21),  # spans of 1, 4 and 16: past the budget after the third
        (1e-3, 1e-4, 1),  # one slow item ends the check
        (1e-7, math.inf, 100),  # no budget: up to the stop
    ],
)
def test_the_calling_threads_check_runs_the_spans_the_given_time_ends(
    wall: float, budget: float, expected: int
) -> None:
    calls, _, fn = _counting()
    outcomes = Outcomes(100, in_order=True)
    with given(here=Timing(wall, wall / 2)):
        done = _given.timed_here(fn, range(100), outcomes, 100, budget, start=0, growth=4)  # type: ignore[arg-type]
    assert done == (expected, expected * wall, expected * wall / 2)
    assert calls == Counter(range(expected))
    assert _given.timed_here(double, range(100), Outcomes(100), 100, budget, start=0, growth=4) is None


def test_a_call_timed_in_one_thread_takes_the_given_time() -> None:
    assert _given.timed_call(0.5, 0.25) == (0.5, 0.25)
    with given(here=Timing(0.02, 0.02)):
        assert _given.timed_call(0.5, 0.25) == (0.02, 0.02)


@pytest.mark.parametrize("state", ["finished", "running"])
def test_the_first_item_measured_in_a_worker_takes_the_given_time(state: str) -> None:
    finished = state == "finished"
    outcomes = Outcomes(4)
    with given(in_worker=InWorker(0.5, finished=finished)):
        seconds, sent = send_first(double, range(4), outcomes, workers=1, within=0.002)
    assert seconds == 0.5
    assert (sent is None) is finished
    if sent is not None:
        sent.finish()
    assert outcomes.values[0] == 0


def test_a_plan_on_given_figures_runs_every_item_once_with_its_result() -> None:
    calls, _, fn = _counting()
    remember(fn, Memo(TaskKind.IO, 0.01))  # type: ignore[arg-type]
    with given(probe=probed(0.01, 0.0, items=4, exact=False), here=Timing(0.01, 0.0)):
        plan = ck.plan(fn, range(50))  # type: ignore[arg-type]
    assert plan.run() == [2 * x for x in range(50)]
    assert calls == Counter(range(50))
