"""Auto mode remembers what it measured about a function between calls.

The decisions here are made on given figures (``measured.given``): the calling thread's
check finds tiny items 0.1 µs long, say, whatever else the machine runs.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import pytest

import concurrency_kit as ck
from concurrency_kit import TaskKind
from concurrency_kit._backends import pools as _pools
from concurrency_kit._backends.outcomes import Outcomes
from concurrency_kit._backends.pickling import needs_main, pickled
from concurrency_kit._core.costmodel import CostModel, using_model
from concurrency_kit._decide import classify as _classify
from concurrency_kit._decide import learning as _learning
from concurrency_kit._decide import measuring as _measuring
from concurrency_kit._decide import memory as _memory
from concurrency_kit._decide import monitor as _monitor
from concurrency_kit._decide import probe as _probe
from concurrency_kit._decide import remembered as _remembered
from concurrency_kit._decide import steps as _decide
from concurrency_kit._decide.memory import SURE_AFTER, LoopVerdict, Memo, recall, remember
from concurrency_kit._decide.plan import Choice
from concurrency_kit._decide.probe_threads import Slot
from concurrency_kit._run.handover import RunFacts, Sizing
from concurrency_kit.tasks import SEED_NUMBERS, derive_key, factorize, slow_systemcall, square
from helpers import (
    HelperError,
    double,
    factorize_and_pid,
    fail_on_13,
    needs_two_cpus,
    slow_if_positive,
    spin_and_pid,
    wait_then_compute,
    warm_process_pool,
)
from measured import COLD, SERVER_UP, InWorker, Timing, given, probed

REMEMBERED = "what an earlier call measured"
#: Tiny items, as the calling thread's check (or the probe) times them: 0.1 µs each.
TINY = Timing(1e-7, 1e-7)
TINY_PROBED = probed(1e-7, 1.0, items=16, gil_share=1.0)
#: Items that wait 20 ms, as the calling thread's check times the first; and as the
#: probe finds the next two, still waiting 10 ms into them.
WAITS = Timing(0.020, 0.0)
WAITING = probed(0.010, 0.0, gil_share=0.0, exact=False)
#: Every share reads computing, and the GIL is read free: what a computing kind's known
#: items measure however busy the machine is.
COMPUTING_READ = _classify.Reading(compute_share=0.0)


@pytest.mark.usefixtures("pinned")
def test_a_second_call_of_tiny_work_runs_in_a_loop_from_memory() -> None:
    with given(here=TINY):
        first = ck.plan(square, range(20_000))
        assert first.run() == [x * x for x in range(20_000)]
        second = ck.plan(square, range(20_000))
    assert REMEMBERED in second.reason, second.reason
    assert (second.mode, second.kind) == ("serial", first.kind) == ("serial", "cpu")
    assert second.measurement is not None
    assert second.chunksize == 20_000 - second.measurement.items
    assert second.run() == [x * x for x in range(20_000)]


@pytest.mark.usefixtures("pinned")
def test_a_kept_loop_verdict_spares_the_cost_model_until_the_call_outgrows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with given(here=TINY):
        _kept_loop_verdict_spares_the_cost_model(monkeypatch)


def _kept_loop_verdict_spares_the_cost_model(monkeypatch: pytest.MonkeyPatch) -> None:
    items = range(20_000)
    ck.run_parallel(square, items)
    ck.run_parallel(square, items)  # the memory's estimate says loop: that verdict is kept
    memo = recall(square)
    assert memo is not None
    assert memo.loop is not None
    # Items measured slower than when the verdict was made (a busy machine) rightly ask
    # the cost model again: here the verdict covers items of up to a second.
    verdict = LoopVerdict(memo.loop.count, 1.0, memo.loop.setting)
    remember(square, Memo(memo.kind, memo.item_seconds, verdict, readings=memo.readings))
    asked: list[int] = []
    real_choose = _decide.choose

    def counting_choose(**kwargs: object):
        asked.append(1)
        return real_choose(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_decide, "choose", counting_choose)
    kept = ck.plan(square, items)
    assert kept.mode == "serial"
    assert not asked, kept.reason
    assert "an earlier call's cost model chose a loop" in kept.reason, kept.reason
    assert kept.run() == [x * x for x in items]
    assert kept.run() == [x * x for x in items]  # a second run() runs every item again
    # More items than the verdict covered, or another setting: the cost model is asked.
    ck.plan(square, range(40_000)).run()
    assert asked
    asked.clear()
    ck.plan(square, items, workers=3).run()
    assert asked


def test_a_loop_verdict_covers_items_a_drift_longer_where_the_cost_model_still_says_loop() -> None:
    memo = Memo(TaskKind.CPU, 1e-6, readings=SURE_AFTER)
    setting = ("a setting",)
    asked: list[float] = []

    def loop_below(most: float) -> Callable[..., Choice]:
        def decide(m: _probe.Measurement, resume_at: int, kind: TaskKind, *, free: bool = False) -> Choice:
            asked.append(m.item_wall)
            return Choice("serial" if m.item_wall <= most else "process", 1, 1, "a test's")

        return decide

    kept = _remembered.loop_expected(square, memo, 100, setting, loop_below(1.0))
    assert kept is not None
    assert kept.loop == LoopVerdict(100, _measuring.POLICY.drift * 1e-6, setting)
    assert recall(square) == kept
    asked.clear()
    kept = _remembered.loop_expected(square, memo, 100, setting, loop_below(2e-6))  # a loop at 1 µs, not at 4
    assert kept is not None
    assert kept.loop == LoopVerdict(100, 1e-6, setting)
    assert asked == [1e-6, _measuring.POLICY.drift * 1e-6]


@pytest.mark.usefixtures("pinned")
def test_a_loop_a_kept_verdict_covers_is_not_remembered_anew_for_a_swing_in_item_time() -> None:
    with given(here=TINY):
        _a_kept_loop_is_not_remembered_anew_for_a_swing()


def _a_kept_loop_is_not_remembered_anew_for_a_swing() -> None:
    items = range(20_000)
    ck.run_parallel(double, items)
    ck.run_parallel(double, items)
    memo = recall(double)
    assert memo is not None
    assert memo.loop is not None
    # A verdict for items of up to a second; the remembered time a swing (not a drift) off
    # what the items take now (as the calling thread's check times them).
    now = TINY.wall
    verdict = LoopVerdict(memo.loop.count, 1.0, memo.loop.setting)
    swung = Memo(memo.kind, now * _learning.REMEMBERING.same_time * 1.2, verdict, readings=memo.readings)
    remember(double, swung)
    kept = ck.plan(double, items)
    assert "an earlier call's cost model chose a loop" in kept.reason, kept.reason
    assert kept.run() == [2 * x for x in items]
    assert recall(double) is swung
    # A drift is remembered (and a stale time too: see the test below).
    remember(double, attrs.evolve(swung, item_seconds=swung.item_seconds * 100))
    ck.run_parallel(double, items)
    assert recall(double).item_seconds < swung.item_seconds * 10  # type: ignore[union-attr]


@pytest.mark.usefixtures("pinned")
def test_a_call_a_kept_verdict_covers_returns_exceptions_in_place() -> None:
    items = range(2_000)
    # The first call's probe, then the calling thread's checks, find the items tiny (a
    # garbage collection inside a check of a tenth of a millisecond would not).
    with given(probe=TINY_PROBED, here=TINY):
        for _ in ("measured", "verdict kept"):
            ck.run_parallel(fail_on_13, items, return_exceptions=True)
        memo = recall(fail_on_13)
        assert memo is not None
        assert memo.loop is not None
        plan = ck.plan(fail_on_13, items, return_exceptions=True)
    assert plan.mode == "serial", plan.reason
    assert "an earlier call's cost model chose a loop" in plan.reason, plan.reason
    results = plan.run()
    assert [r for i, r in enumerate(results) if i != 13] == [2 * x for x in items if x != 13]
    assert type(results[13]) is HelperError


@pytest.mark.usefixtures("pinned")
def test_the_remembered_run_calls_every_item_exactly_once() -> None:
    # Work this small (a list append) never goes to processes, so counting the calls in
    # this process sees every one.
    calls: list[int] = []
    record = calls.append  # one function object for both calls: memory is kept per function
    for _ in ("first", "second"):
        calls.clear()
        with given(probe=TINY_PROBED, here=TINY):
            plan = ck.plan(record, range(2_000))
        assert plan.mode == "serial", plan.reason
        assert plan.run() == [None] * 2_000
        assert Counter(calls) == dict.fromkeys(range(2_000), 1)
    assert REMEMBERED in plan.reason, plan.reason


@pytest.mark.usefixtures("pinned")
def test_work_that_grew_is_measured_afresh() -> None:
    threads: dict[int, str] = {}

    def record(x: int) -> int:
        threads[x] = threading.current_thread().name
        return slow_if_positive(x)

    with given(here=TINY):
        assert ck.run_parallel(record, range(-20_000, 0)) == list(range(-20_000, 0))
    # Now 20 ms waits: the calling thread's check finds the first far longer, and the
    # probe measures the next ones afresh.
    with given(here=WAITS, probe=WAITING):
        plan = ck.plan(record, range(40))
    assert REMEMBERED not in plan.reason, plan.reason
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "io", 37, 1), plan.reason
    assert plan.run() == list(range(40))
    # The drift check ran one item in the calling thread, not the rest in a loop.
    here = threading.current_thread().name
    assert [x for x in range(40) if threads[x] == here] == [0]


@pytest.mark.usefixtures("pinned")
def test_work_that_outgrew_a_kept_loop_verdict_runs_each_item_once_measured_afresh() -> None:
    calls: list[int] = []

    def record(x: int) -> int:
        calls.append(x)
        return slow_if_positive(x)

    with given(here=TINY):
        for _ in ("measured", "verdict kept"):
            assert ck.run_parallel(record, range(-20_000, 0)) == list(range(-20_000, 0))
    memo = recall(record)
    assert memo is not None
    assert memo.loop is not None
    calls.clear()
    # The verdict covers 40 items at the remembered time: the calling thread checks the
    # first, finds it far longer, and hands the rest to the probe.
    with given(here=WAITS, probe=WAITING):
        plan = ck.plan(record, range(40))
    assert plan.run() == list(range(40))
    assert Counter(calls) == dict.fromkeys(range(40), 1)
    assert REMEMBERED not in plan.reason, plan.reason
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "io", 37, 1), plan.reason


def test_shutdown_forgets() -> None:
    ck.run_parallel(square, range(20_000))
    ck.shutdown()
    assert REMEMBERED not in ck.plan(square, range(20_000)).reason


@pytest.mark.usefixtures("pinned")
def test_a_call_decided_on_running_items_remembers_how_long_they_took() -> None:
    # The probe decides while the 0.1 s waits are still running (lower bounds: 10 ms so
    # far); once run() has them, the memory holds their real length, not the lower bound.
    with given(probe=WAITING, final=probed(0.1, 0.001)):
        assert ck.run_parallel(slow_systemcall, range(4)) == list(range(4))
    memo = recall(slow_systemcall)
    assert memo is not None
    assert memo.kind == "io"
    assert memo.item_seconds >= 0.09, memo


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_a_known_kind_decides_without_waiting_for_gil_samples() -> None:
    remember(derive_key, Memo(TaskKind.GIL_FREE, 0.03, readings=SURE_AFTER))  # as an earlier call measured it
    # Were the probe to wait for its window now, it would run every item itself and
    # leave nothing to a pool: only the earlier call's figures let it stop sooner. (The
    # real probe runs the items; its readings agree with the known kind.)
    windows = _probe.ProbePolicy(min_window=60.0, max_window=60.0)
    with _probe.PROBING.using(windows), _classify.READING.using(COMPUTING_READ), given(gil_held=False):
        plan = ck.plan(derive_key, [f"p{i}" for i in range(8)])
    assert REMEMBERED in plan.reason, plan.reason
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "gil_free", 2, 1), plan.reason
    assert plan.run() == [derive_key(f"p{i}") for i in range(8)]


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_work_known_to_hold_the_gil_is_probed_in_one_thread() -> None:
    remember(factorize, Memo(TaskKind.CPU, 0.1, readings=SURE_AFTER))  # as an earlier call measured it
    numbers = [SEED_NUMBERS[i % len(SEED_NUMBERS)] for i in range(2 * 2 + 1)]
    windows = _probe.ProbePolicy(min_window=60.0, max_window=60.0)
    with (
        using_model(SERVER_UP),
        _probe.PROBING.using(windows),
        _classify.READING.using(COMPUTING_READ),
        given(gil_held=True),
    ):
        plan = ck.plan(factorize, numbers)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("process", "cpu", 2, 1), plan.reason
    assert plan.measurement is not None
    assert plan.measurement.items == 1, plan.reason  # a second thread would only take turns for the GIL
    assert plan.run() == [factorize(n) for n in numbers]


def _warm_pool(fn: Callable[[Any], Any] | None = None) -> CostModel:
    """Start a pool of 2 (the pinned fixture's CPUs) and wait for its first answer.

    Returns:
        The cost model under which it counts as warm from now on: a pool's start no
        longer than this one's age.
    """
    warm_process_pool(2, fn)
    age = _pools.process_pool_age(2)
    assert age is not None
    return attrs.evolve(COLD, cold_start=age, restart=age)


@pytest.mark.parametrize(
    ("item_seconds", "longer", "cpus", "ready"),
    [
        (0.001, False, 1, True),  # short: the calling thread checks them, on one CPU too
        (0.001, True, 2, False),
        (0.100, True, 2, True),  # long: the first is measured in a worker ...
        (0.100, True, 1, False),  # ... given a CPU for it besides the caller's
        (0.100, False, 2, False),
    ],
)
def test_computing_items_remembered_short_or_long_each_go_their_way_to_a_warm_pool(
    monkeypatch: pytest.MonkeyPatch,
    item_seconds: float,
    longer: bool,  # noqa: FBT001
    cpus: int,
    ready: bool,  # noqa: FBT001
) -> None:
    monkeypatch.setattr(_remembered, "process_pool_ready_for", lambda *_args: True)
    monkeypatch.setattr(_remembered, "gil_enabled", lambda: True)
    memo = Memo(TaskKind.CPU, item_seconds, readings=SURE_AFTER)
    figures: dict[str, Any] = {"count": 8, "workers": None, "cpus": cpus, "window": 0.002}
    assert _remembered.cpu_for_warm_pool(double, memo, None, longer=longer, **figures) is ready
    # Not for another kind, nor without a memory.
    assert not _remembered.cpu_for_warm_pool(double, memo, TaskKind.IO, longer=longer, **figures)
    assert not _remembered.cpu_for_warm_pool(double, None, None, longer=longer, **figures)


#: The seed numbers' items, as an earlier call measured them.
_LONG = Memo(TaskKind.CPU, 0.1, readings=SURE_AFTER)


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_small_items_of_a_function_remembered_as_long_run_in_a_loop() -> None:
    # The same function's items can differ in cost by orders of magnitude: after
    # factorizing the seed numbers (~0.1 s each), with the pool warm for them, three
    # small numbers are measured (the first in a worker: 20 µs there), and the rest
    # take the loop.
    remember(factorize_and_pid, _LONG)
    warm = _warm_pool()
    for _ in range(3):  # every call, not only the first: nothing sends them unmeasured
        with using_model(warm), given(in_worker=InWorker(20e-6)):
            plan = ck.plan(factorize_and_pid, [10, 20, 30])
        assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("serial", "cpu", 1, 2), plan.reason
        assert plan.measurement is not None, plan.reason
        assert plan.measurement.in_pool, plan.reason
        assert plan.measurement.exact, plan.reason
        results = plan.run()
        assert [r[0] for r in results] == [factorize(n) for n in (10, 20, 30)]
        assert results[0][1] != os.getpid()
        assert {pid for _, pid in results[1:]} == {os.getpid()}
        remember(factorize_and_pid, _LONG)  # remembered long again


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_a_few_long_items_of_remembered_gil_holding_work_are_measured_and_go_to_the_pool() -> None:
    remember(factorize_and_pid, _LONG)
    warm = _warm_pool()
    with using_model(warm), given(in_worker=InWorker(0.002, finished=False)):  # still running after the 2 ms window
        plan = ck.plan(factorize_and_pid, SEED_NUMBERS)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("process", "cpu", 2, 1), plan.reason
    assert plan.measurement is not None, plan.reason
    # Measured in a worker: a probe thread here would take a CPU and the GIL from the
    # threads feeding the pool. Still running when the plan is made, it is taken over.
    assert plan.measurement.in_pool, plan.reason
    assert not plan.measurement.exact, plan.reason
    assert plan.reason.startswith("measured 1 item(s) in a worker process"), plan.reason
    results = plan.run()
    assert [r[0] for r in results] == [factorize(n) for n in SEED_NUMBERS]
    assert os.getpid() not in {r[1] for r in results}


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_short_items_of_remembered_gil_holding_work_are_checked_in_the_calling_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With a pool warm for them, no probe thread: it would hold the GIL for a switch
    # interval (5 ms) before the calling thread could decide, while the workers wait.
    items = [3000] * 600
    remember(spin_and_pid, Memo(TaskKind.CPU, 0.0003, readings=SURE_AFTER))  # as an earlier call measured them
    warm = _warm_pool()
    memo = recall(spin_and_pid)
    assert memo is not None
    assert memo.item_seconds <= _probe.ProbePolicy().quick_window

    probe_calls: list[object] = []
    real_probe = _decide.probe

    def spy(*args: Any, **kwargs: Any) -> Any:
        probe_calls.append(args)
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(_decide, "probe", spy)
    # The check runs for the probe's quick window (2 ms): spans of 1, 4 and 16 items of 0.3 ms.
    with using_model(warm), given(here=Timing(0.0003, 0.0003)):
        plan = ck.plan(spin_and_pid, items)
    assert not probe_calls, "a probe thread measured the items"
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("process", "cpu", 2, 73), plan.reason
    assert plan.measurement is not None
    assert plan.measurement.exact
    assert plan.measurement.items == 21
    assert plan.reason.startswith("measured "), plan.reason
    measured = plan.measurement.items
    results = plan.run()
    assert [total for total, _ in results] == [spin_and_pid(3000)[0]] * len(items)
    pids = [pid for _, pid in results]
    assert set(pids[:measured]) == {os.getpid()}
    assert os.getpid() not in pids[measured:]


@needs_two_cpus
@pytest.mark.skipif(
    _pools.get_config().resolved_start_method() != "forkserver" or not (3, 11) <= sys.version_info < (3, 14),
    reason="workers skip the main module with a forkserver, on CPython 3.11-3.13",
)
def test_remembered_work_from_the_main_module_is_measured_while_the_pool_lacks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The warm pool's workers skip the main module: a task from it would need a new pool,
    # started cold, so the few items are not sent there on memory alone.
    def from_main(x: int) -> int:
        return x

    from_main.__module__, from_main.__qualname__ = "__main__", "ck_test_from_main"
    monkeypatch.setattr(sys.modules["__main__"], "ck_test_from_main", from_main, raising=False)
    assert needs_main(pickled(from_main))
    _warm_pool()  # started for no function: its workers skip the main module
    assert _pools.process_pool_ready(2)
    assert not _pools.process_pool_ready(2, main=True)
    remember(from_main, Memo(TaskKind.CPU, 0.5, readings=SURE_AFTER))
    plan = ck.plan(from_main, range(2))
    assert plan.measurement is not None, plan.reason
    assert plan.run() == [0, 1]


@pytest.mark.usefixtures("pinned")
def test_items_far_shorter_than_remembered_are_measured_and_remembered_afresh() -> None:
    remember(double, Memo(TaskKind.CPU, 10.0, readings=SURE_AFTER))  # as if an earlier call took 10 s per item
    warm = _warm_pool(double)  # its workers imported its module, as after an earlier call in processes
    # The warm worker answers within the 2 ms window: 5 µs there. (Were it to answer
    # later, on a busy machine, auto would rightly keep the items in the pool.)
    with using_model(warm), given(in_worker=InWorker(5e-6)):
        plan = ck.plan(double, range(4))
    assert plan.measurement is not None, plan.reason
    assert plan.measurement.exact
    assert plan.measurement.in_pool
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("serial", "cpu", 1, 3), plan.reason
    assert plan.run() == [0, 2, 4, 6]
    memo = recall(double)
    assert memo is not None
    assert memo.item_seconds == 5e-6


class _Squarer:
    def square(self, x: int) -> int:
        return x * x


@pytest.mark.usefixtures("pinned")
def test_a_lambda_made_anew_for_each_call_is_remembered() -> None:
    for _ in ("first", "second"):
        with given(here=TINY):
            plan = ck.plan(lambda x: x * x, range(20_000))  # a new function object each time
        assert plan.run() == [x * x for x in range(20_000)]
    assert REMEMBERED in plan.reason, plan.reason


@pytest.mark.usefixtures("pinned")
def test_a_bound_method_and_a_partial_are_remembered() -> None:
    squarer = _Squarer()
    with given(here=TINY):
        ck.run_parallel(squarer.square, range(20_000))  # a new bound method at every access
        assert REMEMBERED in ck.plan(squarer.square, range(20_000)).reason
        ck.run_parallel(functools.partial(pow, exp=2), range(20_000))
        assert REMEMBERED in ck.plan(functools.partial(pow, exp=2), range(20_000)).reason


@pytest.mark.usefixtures("pinned")
def test_only_an_item_time_far_from_the_remembered_one_is_remembered_anew() -> None:
    assert not _learning.changed(1e-6, 1e-6 * _learning.REMEMBERING.same_time * 0.99)
    assert not _learning.changed(1e-6, 1e-6 / _learning.REMEMBERING.same_time * 1.01)
    assert _learning.changed(1e-6, 1e-6 * _learning.REMEMBERING.same_time * 1.01)
    assert _learning.changed(1e-6, 1e-6 / _learning.REMEMBERING.same_time / 1.01)
    with given(here=TINY):
        ck.run_parallel(double, range(20_000))
        memo = recall(double)
        assert memo is not None
        stale = Memo(memo.kind, memo.item_seconds / 1000, memo.loop, readings=memo.readings)
        remember(double, stale)
        ck.run_parallel(double, range(20_000))
    assert recall(double) is not stale


def test_what_was_remembered_goes_with_the_function() -> None:
    namespace: dict[str, object] = {}
    exec("def cube(x):\n    return x * x * x\n", namespace)  # a code object of its own
    cube = namespace.pop("cube")
    assert callable(cube)
    ck.run_parallel(cube, range(20_000))
    assert recall(cube) is not None
    twin: dict[str, object] = {}
    exec("def cube(x):\n    return x * x * x\n", twin)  # equal code, another object
    assert recall(twin["cube"]) is None  # type: ignore[arg-type]
    code = weakref.ref(cube.__code__)
    del cube, namespace, twin
    gc.collect()
    assert code() is None
    assert all(key() is not None for key, _ in _memory._memos.values())  # no entry outlives its function


def _io_plan(mode: str, workers: int, chunksize: int = 1) -> Any:
    return ck.Plan(mode=mode, kind=TaskKind.IO, workers=workers, chunksize=chunksize, reason="test")  # type: ignore[arg-type]


def _io_memo(memo: Memo, earlier: Memo | None, plan: Any, **figures: Any) -> Memo:
    """What memory keeps of I/O items that ran as ``plan`` says, with the call's ``figures``."""
    return _learning._own_length(memo, earlier, _learning.PoolRun(plan.mode, plan.workers, plan.chunksize, **figures))


#: Two probe items that waited 20 ms, then computed 10 ms taking turns for the GIL with
#: 22 other threads: their wall time, 150 ms, is mostly turns.
_TURNS = Memo(TaskKind.IO, 0.150, item_cpu=0.010)


def test_io_items_in_threads_are_remembered_without_their_turns_for_the_gil() -> None:
    # 24 items computing 10 ms each one after another, after a 20 ms wait: 260 ms.
    memo = _io_memo(_TURNS, None, _io_plan("thread", 24), count=24, seconds=0.260, cpu=0.240, warm=False)
    assert memo.item_seconds == pytest.approx(0.030)
    assert memo.item_cpu == 0.010
    assert memo.item_alone is None


def test_an_io_items_length_from_threads_is_at_least_twice_its_computing() -> None:
    # Threads' own CPU time (waking to ask for the GIL) can leave less time than a wait.
    memo = _io_memo(_TURNS, None, _io_plan("thread", 24), count=24, seconds=0.250, cpu=0.255, warm=False)
    assert memo.item_seconds == pytest.approx(0.020)


def test_an_io_items_length_from_threads_is_never_less_than_processes_measured() -> None:
    earlier = Memo(TaskKind.IO, 0.060, item_cpu=0.010, item_alone=0.060)
    memo = _io_memo(_TURNS, earlier, _io_plan("thread", 24), count=24, seconds=0.260, cpu=0.240, warm=False)
    assert (memo.item_seconds, memo.item_alone) == (0.060, 0.060)
    # Nor more than the probe items' own wall time.
    memo = _io_memo(
        attrs.evolve(_TURNS, item_seconds=0.040),
        earlier,
        _io_plan("thread", 24),
        count=24,
        seconds=0.260,
        cpu=0.240,
        warm=False,
    )
    assert memo.item_seconds == 0.040


def test_io_items_in_a_warm_pool_are_remembered_by_the_calls_time_per_round() -> None:
    alone = Memo(TaskKind.IO, 0.012, item_cpu=0.001)  # the probe's first items were short ones
    plan = _io_plan("process", 16)
    # 40 items on 16 processes: 3 rounds, in 75 ms.
    warm = _io_memo(alone, None, plan, count=40, seconds=0.075, cpu=0.0, warm=True)
    assert warm.item_seconds == warm.item_alone == pytest.approx(0.025)
    # A pool that was starting: its start is in the call's time; the probe items' time stands.
    cold = _io_memo(alone, None, plan, count=40, seconds=0.500, cpu=0.0, warm=False)
    assert cold.item_seconds == cold.item_alone == 0.012


@pytest.mark.parametrize(("decided_on", "in_force", "warm"), [(SERVER_UP, COLD, True), (COLD, SERVER_UP, False)])
def test_a_run_after_the_probe_reads_its_pool_as_warm_by_the_model_the_decision_weighed(
    decided_on: CostModel,
    in_force: CostModel,
    warm: bool,  # noqa: FBT001
) -> None:
    # Waiting items decided on while they ran, then run in a pool 100 ms old: warm for a
    # pool's start of 40 ms (SERVER_UP), still starting for one of 180 ms (COLD). The
    # model the decision weighed says which, whatever model is in force as the run ends.
    items = list(range(40))
    question = _decide.Question(
        double, items, Outcomes(len(items)), len(items), None, None, None, 2, 16, None, None, model=decided_on
    )
    with given(probe=WAITING, final=probed(0.012, 0.05)):
        decided = _decide.decide(question)
    left = decided.measuring
    assert left is not None, decided.reason
    assert left.join(timeout=30)
    ended = time.perf_counter() + 0.075
    with using_model(in_force):
        left.finished(RunFacts(Sizing("process", 16, 1), total=40, ended=ended, cpu=0.0, pool_age=0.1))
    memo = recall(double)
    assert memo is not None
    assert memo.item_alone is not None
    # 40 items on 16 processes: 3 rounds, in 75 ms and more; from a pool still starting,
    # the probe's items' 12 ms.
    if warm:
        assert memo.item_alone >= 0.025, memo
    else:
        assert memo.item_alone == pytest.approx(0.012), memo


def test_io_items_are_remembered_with_the_mode_they_ran_in() -> None:
    probed = Memo(TaskKind.IO, 0.025, item_cpu=0.002)
    in_processes = _io_memo(probed, None, _io_plan("process", 16), count=40, seconds=0.075, cpu=0.0, warm=True)
    assert in_processes.in_processes
    threads = _io_plan("thread", 40)
    in_threads = _io_memo(probed, in_processes, threads, count=40, seconds=0.1, cpu=0.08, warm=False)
    assert not in_threads.in_processes
    # A call run in the calling thread tells nothing of which pool wins: the last pool's stands.
    for earlier in (in_processes, in_threads):
        serial = _io_memo(probed, earlier, _io_plan("serial", 1), count=40, seconds=1.0, cpu=0.08, warm=False)
        assert serial.in_processes is earlier.in_processes


@pytest.mark.usefixtures("pinned")
def test_a_call_weighs_io_items_by_the_mode_the_last_call_ran_them_in(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []
    chosen = _decide.choose

    def spy(**inputs: Any) -> Choice:
        asked.append(inputs["processes_last"])
        return chosen(**inputs)

    monkeypatch.setattr(_decide, "choose", spy)
    remember(wait_then_compute, Memo(TaskKind.IO, 0.004, item_cpu=0.001, in_processes=True))
    with given(probe=WAITING):
        plan = ck.plan(wait_then_compute, [1] * 8)
    # 6 items of 20 ms: threads take turns for their 1 ms of computing, and still beat a
    # cold pool of 2 processes clearly, where the last call ran them.
    assert (plan.mode, plan.kind, plan.workers) == ("thread", "io", 6), plan.reason
    assert asked, "the cost model was not asked"
    assert all(asked), asked
    assert plan.run() == [1] * 8
    memo = recall(wait_then_compute)
    assert memo is not None
    assert memo.in_processes is (plan.mode == "process"), (plan.mode, memo)


def test_the_cost_model_takes_io_items_no_shorter_than_processes_measured() -> None:
    probed = _probe.Measurement(
        items=2, completed=2, seconds=0.01, item_wall=0.008, item_cpu=0.001, cpu_share=0.1, gil_share=None, exact=True
    )
    assert _learning.estimated_item_seconds(TaskKind.IO, probed, Memo(TaskKind.IO, 0.030, item_cpu=0.001)) == 0.008
    measured = Memo(TaskKind.IO, 0.030, item_cpu=0.001, item_alone=0.030)
    assert _learning.estimated_item_seconds(TaskKind.IO, probed, measured) == 0.030
    assert _learning.estimated_item_seconds(TaskKind.CPU, probed, attrs.evolve(measured, kind=TaskKind.CPU)) < 0.030


@pytest.mark.usefixtures("pinned")
def test_a_thread_call_of_io_items_gives_their_length_the_whole_calls_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    # 24 items wait 20 ms, then compute 15 ms of CPU time holding the GIL. What the
    # memory makes of the figures is checked above; here, that it gets the right ones:
    # every item's CPU time (the probe's items' and the pool threads'), and the call's.
    seen: list[tuple[dict[str, Any], Memo]] = []
    made = _learning._own_length

    def spy(memo: Memo, earlier: Memo | None, pool: _learning.PoolRun) -> Memo:
        seen.append((attrs.asdict(pool), made(memo, earlier, pool)))
        return seen[-1][1]

    monkeypatch.setattr(_learning, "_own_length", spy)
    start = time.perf_counter()
    # Decided while the probe's two items waited; done, they had computed 15 ms of 35.
    with given(probe=WAITING, final=probed(0.035, 15 / 35)):
        plan = ck.plan(wait_then_compute, [15] * 24)
    assert (plan.mode, plan.kind, plan.workers) == ("thread", "io", 22), plan.reason
    assert plan.run() == [15] * 24
    took = time.perf_counter() - start
    assert len(seen) == 1
    figures, memo = seen[0]
    assert figures["count"] == 24
    assert 24 * 0.015 <= figures["seconds"] <= took, figures
    assert 24 * 0.015 <= figures["cpu"] < 2 * took, figures
    assert recall(wait_then_compute) is memo


@pytest.mark.usefixtures("pinned")
def test_items_an_earlier_call_found_gil_free_are_not_doubted_again() -> None:
    # A computing kind on a middling CPU share waits for an item to end, as the items may
    # have computed first and wait now; not when it is the kind an earlier call found
    # (on a busy machine its share can be middling). The real probe runs the items.
    passwords = [f"p{i}" for i in range(8)]
    remember(derive_key, Memo(TaskKind.GIL_FREE, 0.03, readings=SURE_AFTER))
    middling = attrs.evolve(COMPUTING_READ, computing_share=2.0)  # every share is middling, none waiting
    with _classify.READING.using(middling), given(gil_held=False):
        plan = ck.plan(derive_key, passwords)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "gil_free", 2, 1), plan.reason
    assert plan.measurement is not None
    assert plan.measurement.completed == 0, plan.reason  # decided while the items ran
    assert plan.run() == [derive_key(p) for p in passwords]


def _finished(cpu_share: float, gil_share: float | None) -> _probe.Measurement:
    return _probe.Measurement(2, 2, 0.03, 0.026, 0.026 * cpu_share, cpu_share, gil_share, exact=True)


def test_items_misread_as_computing_are_remembered_by_their_figures_once_done() -> None:
    # Decided gil_free while they computed; done, they waited three quarters of their time.
    assert _learning._final_kind(TaskKind.GIL_FREE, _finished(0.23, 0.0)) is TaskKind.IO
    assert _learning._final_kind(TaskKind.CPU, _finished(0.23, 0.2)) is TaskKind.IO
    # Items that computed, or that the monitor saw hold the GIL, keep their kind.
    assert _learning._final_kind(TaskKind.GIL_FREE, _finished(0.9, 0.0)) is TaskKind.GIL_FREE
    assert _learning._final_kind(TaskKind.CPU, _finished(0.25, 1.0)) is TaskKind.CPU
    assert _learning._final_kind(TaskKind.IO, _finished(0.9, 1.0)) is TaskKind.IO


@pytest.mark.parametrize(
    ("readings", "gil_share", "parallelism", "kind", "after"),
    [
        (0, 0.2, 1.0, TaskKind.CPU, 1),  # a first reading, by default (neither figure decisive)
        (1, 0.2, 1.0, TaskKind.CPU, SURE_AFTER),  # a second that agrees: sure
        (SURE_AFTER, 0.2, 1.0, TaskKind.CPU, SURE_AFTER),  # no further: nothing more to write
        (0, 0.9, None, TaskKind.CPU, SURE_AFTER),  # the GIL held most of the time: decisive
        (1, 0.0, 1.9, TaskKind.GIL_FREE, SURE_AFTER),  # two threads side by side: decisive
        (0, 0.1, None, TaskKind.GIL_FREE, 1),  # one that disagrees starts again
        (1, None, None, TaskKind.CPU, 1),  # measured where the GIL cannot be seen: no reading
    ],
)
def test_a_kind_counts_the_readings_in_a_row_that_named_it(
    readings: int, gil_share: float | None, parallelism: float | None, kind: TaskKind, after: int
) -> None:
    earlier = Memo(TaskKind.CPU, 0.03, readings=readings)
    remember(derive_key, earlier)
    m = probed(0.03, 1.0, gil_share=gil_share, parallelism=parallelism)
    _learning.learn(derive_key, _learning.Measured(kind, m, "process", earlier, None))
    memo = recall(derive_key)
    assert memo is not None
    assert (memo.kind, memo.readings, memo.sure) == (kind, after, after >= SURE_AFTER)


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_a_kind_read_once_is_read_again_where_a_worker_could_not_correct_it() -> None:
    keys = [f"p{i}" for i in range(6)]
    model = _warm_pool(derive_key)
    # GIL-free work misread as holding it (neither figure decisive: the fallback, cpu):
    # it goes to processes, and is remembered so.
    misread = probed(0.03, 1.0, gil_share=0.2, parallelism=1.0)
    with using_model(model), given(probe=misread, in_worker=InWorker(0.03)):
        first = ck.plan(derive_key, keys)
        assert (first.mode, first.kind) == ("process", "cpu"), first.reason
        assert first.run() == [derive_key(k) for k in keys]
    memo = recall(derive_key)
    assert memo is not None
    assert (memo.kind, memo.sure) == (TaskKind.CPU, False)
    # The next call is read again by the probe, which watches the GIL (a worker, where a
    # sure kind would send the first item, cannot): read right, it goes back to threads.
    right = probed(0.03, 1.0, gil_share=0.0, parallelism=1.9)
    with using_model(model), given(probe=right, in_worker=InWorker(0.03)):
        second = ck.plan(derive_key, keys)
        assert (second.mode, second.kind) == ("thread", "gil_free"), second.reason
        assert second.run() == [derive_key(k) for k in keys]


def test_the_parallelism_reading_goes_by_the_ticks_past_each_threads_first_item() -> None:
    monitor = _monitor.Monitor([Slot(), Slot()], _probe.ProbePolicy())
    computing = probed(0.005, 0.9, items=4, gil_share=0.2, parallelism=None, exact=False)
    for _ in range(5):  # first runs that took turns (under a library's own lock)
        monitor._count_pair(0.001, 0.001, warm=False)
    assert monitor.parallelism() == 1.0
    assert monitor.in_doubt(attrs.evolve(computing, parallelism=monitor.parallelism()))  # watched on
    for _ in range(3):
        monitor._count_pair(0.0019, 0.001, warm=True)
    assert monitor.parallelism() == pytest.approx(1.9)
    assert not monitor.in_doubt(attrs.evolve(computing, parallelism=monitor.parallelism()))
    # GIL samples that say it was held are no doubt, whatever the threads did.
    fresh = _monitor.Monitor([Slot(), Slot()], _probe.ProbePolicy())
    assert not fresh.in_doubt(attrs.evolve(computing, gil_share=0.8))


@pytest.mark.parametrize(("spread", "kept"), [(3.0, 0.005), (None, 0.0005), (0.1, 0.0005)])
def test_one_item_among_items_known_to_vary_widely_leaves_the_remembered_mean(
    spread: float | None, kept: float
) -> None:
    # ast.parse of modules of every size: the one item timed in a worker (0.5 ms) is no
    # news where items vary threefold their mean; replacing the mean with it made every
    # other call measure afresh.
    earlier = Memo(TaskKind.CPU, 0.005, readings=SURE_AFTER, spread=spread)
    remember(derive_key, earlier)
    one = _measuring.in_pool(0.0005, done=True)
    _learning.learn(derive_key, _learning.Measured(TaskKind.CPU, one, "process", earlier, None))
    memo = recall(derive_key)
    assert memo is not None
    assert memo.item_seconds == pytest.approx(kept)
