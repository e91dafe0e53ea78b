"""Decisions auto mode must make, on given figures: exact, whatever else the machine runs.

Each test gives the measurement (``measured.given``) and, with the ``pinned`` fixture, the
machine's figures and 2 CPUs; the items still run, once each. The decisions on live
measurements of real workloads are in test_live_decisions.py (marker ``live``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest

import concurrency_kit as ck
from concurrency_kit import TaskKind
from concurrency_kit._api import planning as _planning
from concurrency_kit._backends import pools as _pools
from concurrency_kit._backends.outcomes import Outcomes
from concurrency_kit._backends.pool_state import shared
from concurrency_kit._core.costmodel import starting_model, using_model
from concurrency_kit._core.cpu import gil_enabled
from concurrency_kit._decide import classify as _classify
from concurrency_kit._decide import measuring as _measuring
from concurrency_kit._decide import monitor as _monitor
from concurrency_kit._decide import probe as _probe
from concurrency_kit._decide import probe_threads as _probe_threads
from concurrency_kit._decide import steps as _decide
from concurrency_kit._decide.memory import Memo, recall, remember
from concurrency_kit.tasks import SEED_NUMBERS, derive_key, factorize, slow_systemcall, square
from helpers import (
    backtrack,
    backtrack_between_sleeps,
    compute_then_wait,
    factorize_first,
    needs_two_cpus,
    wait_io,
    wait_then_compute,
    warm_process_pool,
)
from measured import SERVER_UP, Timing, given, probed

#: What the probe reports of items that wait: two taken, still waiting, 10 ms so far.
WAITING = probed(0.010, 0.0, gil_share=0.0, exact=False)
#: ... of items that compute holding the GIL: the first still running, 50 ms so far.
COMPUTING = probed(0.050, 1.0, items=1, gil_share=1.0, exact=False)


def _is_divisor_list(number: int, divisors: list[int]) -> bool:
    return divisors[0] == 1 and divisors[-1] == number and all(number % d == 0 for d in divisors)


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_factorizing_the_seed_numbers_uses_processes() -> None:
    # A cold pool's start (180 ms) costs as much as the loop's remaining work: a cold
    # decision has no wide margin either way. With the process machinery running, as in
    # any program past its first process-mode call (a pool's start 40 ms), processes win.
    # The probe decides while the first runs: 50 ms so far, so about 100 ms an item.
    with using_model(SERVER_UP), given(probe=COMPUTING):
        plan = ck.plan(factorize, SEED_NUMBERS)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("process", "cpu", 2, 1), plan.reason
    assert "→ cpu (from the measurement); 3 item(s) left: ≈ 300.0 ms in a loop vs ≈ " in plan.reason
    assert "on 2 processes (40.0 ms from warm) → process" in plan.reason
    results = plan.run()
    assert all(_is_divisor_list(n, r) for n, r in zip(SEED_NUMBERS, results, strict=True))


def _meeting(parties: int, then: Callable[[int], Any]) -> Callable[[int], Any]:
    """``then(x)``, once ``parties`` calls are running at once: the calls must overlap, or the barrier breaks."""
    barrier = threading.Barrier(parties)

    def meet(x: int) -> Any:
        barrier.wait(timeout=30)
        return then(x)

    return meet


@pytest.mark.usefixtures("pinned")
def test_five_slow_systemcalls_use_threads_and_overlap() -> None:
    # Serial, they would take 0.5 s: all five wait at once, the two probed items in the
    # probe's threads and the other three in a thread each.
    fn = _meeting(5, slow_systemcall)
    with given(probe=WAITING):
        plan = ck.plan(fn, range(5))
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "io", 3, 1), plan.reason
    assert "3 item(s) left: ≈ 60.0 ms in a loop vs ≈ 20.3 ms on 3 threads → thread" in plan.reason
    assert plan.run() == list(range(5))


@pytest.mark.usefixtures("pinned")
def test_a_hundred_waits_get_a_thread_each_in_one_round() -> None:
    # More items than the old fixed cap of 64 threads: one round of waits, not two.
    with given(probe=WAITING):
        plan = ck.plan(wait_io, range(100))
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "io", 98, 1), plan.reason
    assert plan.run() == list(range(100))


@pytest.mark.usefixtures("pinned")
def test_fifty_slow_systemcalls_get_a_thread_each() -> None:
    # Serial, they would take 5 s: all fifty wait at once.
    fn = _meeting(50, slow_systemcall)
    with given(probe=WAITING):
        plan = ck.plan(fn, range(50))
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "io", 48, 1), plan.reason
    assert plan.run() == list(range(50))


@pytest.mark.usefixtures("pinned")
def test_derive_key_releases_the_gil_so_threads_one_per_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two probe threads computed side by side: 1.9 CPUs' worth between them, the GIL free.
    monkeypatch.setattr(_planning, "planning_cpus", lambda: 4)
    passwords = [f"password {i}" for i in range(16)]
    with given(probe=probed(0.030, 0.95, gil_share=0.0, parallelism=1.9)):
        plan = ck.plan(derive_key, passwords)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "gil_free", 4, 1), plan.reason
    assert "→ gil_free (from the measurement); 14 item(s) left" in plan.reason
    assert plan.run() == [derive_key(p) for p in passwords]


def _cpus_busy(fn: Callable[[int], int], rounds: int) -> float:
    """CPU seconds per second of two threads running ``fn(rounds)`` side by side."""
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait(timeout=10)
        fn(rounds)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    began, cpu = time.perf_counter(), time.process_time()
    barrier.wait(timeout=10)
    for thread in threads:
        thread.join(timeout=30)
    return (time.process_time() - cpu) / (time.perf_counter() - began)


@pytest.mark.slow
@needs_two_cpus
def test_c_code_that_keeps_the_gil_in_short_calls_keeps_it() -> None:
    # That the C calls keep the GIL: two threads compute one CPU's worth between them
    # (derive_key, which lets it go, makes about two on two idle CPUs; a busy machine less).
    assert _cpus_busy(backtrack, 60) < 1.15


@pytest.mark.usefixtures("pinned")
def test_c_code_that_keeps_the_gil_in_short_calls_is_cpu_bound_call_after_call() -> None:
    # The GIL monitor alone wakes nearly on time behind them (it gets the GIL at the
    # sleeps): what the two probe threads computed side by side tells, one CPU's worth.
    # Fresh, and remembered (the calling thread checks the first items): no call may
    # flip the kind. Items of 2 ms, half of it computing: a loop, against a cold pool.
    items = [10] * 40
    side_by_side = probed(0.002, 0.5, gil_share=0.0, parallelism=1.0)
    for fresh in (True, True, True, False, False, False):
        if fresh:
            ck.shutdown()
        with given(probe=side_by_side, here=Timing(0.002, 0.001)):
            plan = ck.plan(backtrack_between_sleeps, items)
        assert (plan.kind, plan.mode) == ("cpu", "serial"), plan.reason
        assert ("what an earlier call measured" in plan.reason) is not fresh, plan.reason
        assert plan.run() == items


@pytest.mark.usefixtures("pinned")
def test_items_that_compute_first_and_then_wait_are_io_bound() -> None:
    # 6 ms holding the GIL, then 20 ms waiting. When the probe's window ends, its items
    # have computed about half their time so far: too much for I/O, with the GIL free
    # as far as the monitor saw. They now wait, so the probe waits for that to show.
    midway = probed(0.010, 0.5, gil_share=0.0, exact=False)
    done = probed(0.026, 6 / 26, gil_share=0.0)
    with given(probe=midway, final=done):
        plan = ck.plan(compute_then_wait, [6] * 32)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "io", 30, 1), (
        plan.reason
    )  # not a thread per CPU
    assert plan.measurement == done  # what the decision waited for
    assert plan.run() == [6] * 32


@pytest.mark.skipif(_probe_threads.thread_clock is None, reason="needs another thread's CPU clock")
def test_once_an_item_finished_the_share_is_the_finished_items_own() -> None:
    # One item computed 6 ms, then waited 20 ms, and finished; the other has computed 9
    # of its 10 ms so far. Together they show a computing share (15 / 36 ms), though
    # both will have waited most of their time: the finished one's share (6 / 26 ms)
    # is the one to go by while the other runs. (On a sandboxed kernel pinned to two
    # CPUs, such items were named `cpu` from the mixed share, with the GIL held in most
    # samples taken while they computed.)
    finished, running = _probe_threads.Slot(), _probe_threads.Slot()
    finished.wall, finished.cpu, finished.items = 0.026, 0.006, 1
    own_clock = time.clock_gettime(_probe_threads.thread_clock(threading.get_ident()))  # type: ignore[misc]
    running.ident, running.live, running.busy = threading.get_ident(), True, 1
    running.t0, running.c0 = time.perf_counter() - 0.010, own_clock - 0.009
    measured = _monitor.Monitor([finished, running], _probe.ProbePolicy()).measure(2, now=running.t0 + 0.010)
    assert (measured.completed, measured.exact) == (1, False)
    assert measured.cpu_share == pytest.approx(6 / 26)
    assert measured.item_wall == pytest.approx(0.036 / 2)  # the running one counts here
    # Once none runs, the share is everyone's.
    running.busy = 0
    running.wall, running.cpu, running.items = 0.026, 0.010, 1
    assert _monitor.Monitor([finished, running], _probe.ProbePolicy()).measure(2).cpu_share == pytest.approx(16 / 52)


@pytest.mark.usefixtures("pinned")
def test_an_io_call_remembers_how_long_its_items_compute() -> None:
    # Decided while the items waited; once done, they computed 1 ms of their 21.
    with given(probe=WAITING, final=probed(0.021, 1 / 21)):
        plan = ck.plan(wait_then_compute, [1] * 8)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "io", 6, 1), plan.reason
    assert plan.run() == [1] * 8
    memo = recall(wait_then_compute)
    assert memo is not None
    assert memo.kind is TaskKind.IO
    assert memo.item_cpu == pytest.approx(0.001)
    assert 0.0009 < memo.item_cpu < memo.item_seconds, memo


def test_io_items_that_compute_much_warm_a_process_pool_on_many_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    # On 4 CPUs, 14 items that wait 20 ms and then compute 15 ms take 14 × 15 ms in
    # threads, which take turns for the GIL, and 4 rounds of 35 ms in a warm pool of 4.
    monkeypatch.setattr(_planning, "planning_cpus", lambda: 4)
    model = starting_model("forkserver")
    with using_model(attrs.evolve(model, restart=model.cold_start)):  # as in a fresh program: a pool's start is dear
        ck.shutdown()
        # As an earlier call measured them. (What a call in threads measures, and remembers,
        # is longer: its items computed taking turns with the others.)
        measured = Memo(TaskKind.IO, 0.035, item_cpu=0.015)
        remember(wait_then_compute, measured)
        items = [15] * 16
        with given(probe=WAITING):
            cold = ck.plan(wait_then_compute, items)
        # A cold pool's start costs more than processes gain in this call: threads, and the
        # pool starts in the background for the next calls.
        assert (cold.mode, cold.kind, cold.workers) == ("thread", "io", 14), cold.reason
        assert "on 14 threads taking turns for the GIL" in cold.reason
        warming = shared.warming  # the pre-start this call began
        assert warming is not None, "no process pool was started for the next calls"
        assert cold.run() == items
        warming.join(timeout=30)
        warm_process_pool(4, wait_then_compute)  # ready (on a busy machine, once warmed again)
        assert _pools.process_pool_ready(4)
        remember(wait_then_compute, measured)
        # The pool is warm: it was started before the cold call's 14 items of 15 ms,
        # computed one at a time, ran (210 ms at least: longer than a pool's start).
        with given(probe=WAITING):
            warm = ck.plan(wait_then_compute, items)
        assert (warm.mode, warm.kind, warm.workers, warm.chunksize) == ("process", "io", 4, 1), warm.reason
        assert warm.run() == items


@pytest.mark.usefixtures("pinned")
def test_twenty_thousand_squares_run_in_a_loop() -> None:
    # A long input: the calling thread checks the first items (0.1 µs each) for 0.1 ms,
    # in spans of 1, 4, 16 … items: 1,365 of them.
    with given(here=Timing(1e-7, 1e-7)):
        plan = ck.plan(square, range(20_000))
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("serial", "cpu", 1, 18_635), plan.reason
    assert plan.measurement is not None
    assert plan.measurement.items == 1_365
    assert re.search(r"too little|nothing", plan.reason), plan.reason
    assert plan.run() == [x * x for x in range(20_000)]


@pytest.mark.usefixtures("pinned")
def test_factorizing_small_numbers_runs_in_a_loop() -> None:
    with given(probe=probed(2e-6, 1.0, items=1, gil_share=1.0)):
        plan = ck.plan(factorize, [10, 21, 36])
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("serial", "cpu", 1, 2), plan.reason
    assert "2 item(s) left: ≈ 4.0 µs in a loop" in plan.reason
    assert "too little work to pay for a pool → serial" in plan.reason
    assert plan.run() == [[1, 2, 5, 10], [1, 3, 7, 21], [1, 2, 3, 4, 6, 9, 12, 18, 36]]


def test_a_single_item_runs_in_a_loop() -> None:
    plan = ck.plan(factorize, SEED_NUMBERS[:1])
    assert plan.mode == "serial", plan.reason
    assert _is_divisor_list(SEED_NUMBERS[0], plan.run()[0])


@pytest.mark.usefixtures("pinned")
def test_one_usable_cpu_runs_cpu_work_in_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_planning, "planning_cpus", lambda: 1)
    with given(probe=COMPUTING):
        plan = ck.plan(factorize, SEED_NUMBERS)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("serial", "cpu", 1, 3), plan.reason
    assert "one usable CPU" in plan.reason
    assert len(plan.run()) == len(SEED_NUMBERS)


def _closure_over_factorize():
    def factorize_locally(number: int) -> list[int]:
        return factorize(number)

    return factorize_locally


# Eight items, so that several are left after the probe (with four, the probe may take
# three, and then nothing is left to run side by side whatever the function).
EIGHT_NUMBERS = SEED_NUMBERS * 2


@pytest.mark.usefixtures("without_cloudpickle", "pinned")
@pytest.mark.slow
def test_an_unpicklable_cpu_task_never_uses_processes() -> None:
    local = _closure_over_factorize()
    with using_model(SERVER_UP), given(probe=COMPUTING):  # processes would win, were they an option
        plan = ck.plan(local, EIGHT_NUMBERS, classifier=lambda _fn, _sample: "cpu")
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("serial", "cpu", 1, 7), plan.reason
    assert "processes are not an option" in plan.reason
    assert "cannot be pickled" in plan.reason
    assert len(plan.run()) == len(EIGHT_NUMBERS)


@pytest.mark.usefixtures("without_cloudpickle", "pinned")
@pytest.mark.slow
def test_a_measured_lambda_never_uses_processes() -> None:
    with using_model(SERVER_UP), given(probe=COMPUTING):
        plan = ck.plan(lambda n: factorize(n), EIGHT_NUMBERS)  # noqa: PLW0108 - a lambda on purpose
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("serial", "cpu", 1, 7), plan.reason
    assert "→ cpu (from the measurement)" in plan.reason
    assert "cannot be pickled" in plan.reason
    assert len(plan.run()) == len(EIGHT_NUMBERS)


@pytest.mark.usefixtures("without_cloudpickle")
def test_forcing_processes_on_a_lambda_raises_unpicklable_task_error() -> None:
    with pytest.raises(ck.UnpicklableTaskError, match="pickle"):
        ck.run_parallel(lambda x: x, [1, 2, 3], "process")


def test_forcing_processes_on_an_unpicklable_item_names_the_item() -> None:
    import threading

    items = [1, 2, threading.Lock(), 4]
    with pytest.raises(ck.UnpicklableTaskError, match="item 2"):
        ck.run_parallel(str, items, "process", chunksize=1)


@pytest.mark.slow
@pytest.mark.usefixtures("pinned")
def test_auto_never_raises_unpicklable_task_error_for_an_unpicklable_item() -> None:
    # The documented promise (UnpicklableTaskError's docstring): auto mode falls back to
    # threads or a loop instead. Here only an item past the probed ones is unpicklable:
    # the plan is processes, and the item is found unpicklable while they run.
    items = [(n, None) for n in SEED_NUMBERS * 2]
    items[6] = (items[6][0], threading.Lock())
    with using_model(SERVER_UP), given(probe=COMPUTING):
        plan = ck.plan(factorize_first, items)
    assert (plan.mode, plan.kind) == ("process", "cpu"), plan.reason
    results = plan.run()
    assert [r[-1] for r in results] == [n for n, _ in items]


def test_measured_reason_says_what_decided() -> None:
    plan = ck.plan(square, range(1000))
    assert "(from the measurement)" in plan.reason
    plan.run()


def _concurrency_tracker(body: Callable[[int], None]) -> tuple[Callable[[int], int], list[int]]:
    """``fn`` running ``body``, and a list whose one value is the most items run at once."""
    lock = threading.Lock()
    running, most = [0], [0]

    def fn(x: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            body(x)
        finally:
            with lock:
                running[0] -= 1
        return x

    return fn, most


@pytest.mark.skipif(not gil_enabled(), reason="the probe reads a GIL")
@pytest.mark.usefixtures("pinned")
def test_the_probe_runs_items_that_hold_the_gil_one_at_a_time() -> None:
    # Two probe threads would only take turns with the GIL (and with the thread that
    # starts a process pool meanwhile): the second joins only once the GIL was seen free.
    # The real probe runs the items; every GIL sample reads held (on a machine so busy
    # that the probe thread waits for a CPU, the GIL it leaves free meanwhile is seen
    # free: the second thread then rightly joins), and every share reads computing.
    def spin(_: int) -> None:
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass

    fn, most = _concurrency_tracker(spin)
    with given(gil_held=True), _classify.READING.using(_classify.Reading(compute_share=0.0)):
        plan = ck.plan(fn, range(40))
    assert plan.kind == "cpu", plan.reason
    assert plan.measurement is not None
    assert plan.measurement.gil_share in (None, 1.0), plan.reason
    assert most == [1], plan.reason
    assert plan.run() == list(range(40))


@pytest.mark.skipif(not gil_enabled(), reason="the hook is called when the probe sees the GIL held")
def test_the_probe_threads_start_no_item_while_its_gil_hook_runs() -> None:
    # The hook pickles the function (importing cloudpickle for one of __main__) and warms
    # a pool: taking turns for the GIL with items that hold it, it took 30 ms, not 3.
    # Items of 2 ms run one a batch: only the one taken before the hook may start in it.
    hooked = threading.Event()
    two_started = threading.Event()
    during: list[int] = []

    def hold_gil(x: int) -> int:
        if hooked.is_set() and not two_started.is_set():
            during.append(x)
            if len(during) == 2:
                two_started.set()
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass
        return x

    hooks: list[int] = []

    def hook() -> None:
        hooks.append(1)
        hooked.set()
        two_started.wait(timeout=0.3)  # the GIL is free meanwhile: the probe thread may run
        hooked.clear()

    # The monitor reads the GIL held, as it does behind these items on a quiet machine; it
    # watches until it has, however seldom a busy machine lets the probe thread run.
    patient = _probe.ProbePolicy(max_window=60.0)
    with given(gil_held=True):
        run = _probe.probe(
            hold_gil, range(200), Outcomes(200), _pools.submit_daemon, on_gil_held=hook, threads=1, policy=patient
        )
    assert run.join(timeout=30)
    assert run.measurement.gil_share == 1.0, "the monitor took no GIL samples"
    assert hooks == [1], "the hook was not called once"
    assert len(during) <= 1, f"items {during} started while the hook ran"


def test_the_probe_runs_items_that_wait_two_at_a_time() -> None:
    # The first two items only return once both are running: the probe must overlap them.
    barrier = threading.Barrier(2)

    def meet(x: int) -> None:
        if x < 2:
            barrier.wait(timeout=30)

    fn, most = _concurrency_tracker(meet)
    assert ck.run_parallel(fn, range(8)) == list(range(8))
    assert most[0] >= 2


@pytest.mark.usefixtures("pinned")
def test_a_long_input_of_tiny_items_runs_in_the_calling_thread_without_probe_threads() -> None:
    # Starting a probe thread can cost more than the whole loop: a long input is tried
    # in the calling thread first, and its tiny items never leave it.
    threads: list[str] = []

    def record_thread(x: int) -> int:
        threads.append(threading.current_thread().name)
        return x

    count = _measuring.POLICY.long_input * ck.get_config().io_thread_cap()
    with given(here=Timing(1e-6, 1e-6)):
        plan = ck.plan(record_thread, range(count))
    assert (plan.mode, plan.kind, plan.workers) == ("serial", "cpu", 1), plan.reason
    assert plan.run() == list(range(count))
    assert set(threads) == {threading.current_thread().name}


class _SeenPickled:
    """``len(blob) + blob[-1]``: trivial work on a big item; it notes each time it is pickled."""

    def __init__(self) -> None:
        self.in_hook = False  # set while the probe's GIL hook runs
        self.pickled: list[bool] = []  # for each pickling: whether the hook was running

    def __call__(self, blob: bytes) -> int:
        return len(blob) + blob[-1]

    def __reduce__(self) -> tuple[type[_SeenPickled], tuple[()]]:
        self.pickled.append(self.in_hook)
        return type(self), ()


@pytest.mark.usefixtures("pinned")
def test_trivial_work_over_big_items_is_decided_without_pickling_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # Big items make pickling dear, not calling fn. Whether fn can go to a pool is asked
    # once the probe sees the GIL held (a pool is warmed then), not before it starts:
    # pickling a function of __main__ (by value, cloudpickle imported for it) took a
    # fresh interpreter's first call over 200 items of 1 MB 2.2-3.4 ms, not 0.8 ms.
    fn = _SeenPickled()
    real_probe = _decide.probe

    def spy(*args: Any, on_gil_held: Callable[[], object] | None = None, **kwargs: Any) -> Any:
        def hook() -> object:
            assert on_gil_held is not None
            fn.in_hook = True
            try:
                return on_gil_held()
            finally:
                fn.in_hook = False

        return real_probe(*args, on_gil_held=None if on_gil_held is None else hook, **kwargs)

    monkeypatch.setattr(_decide, "probe", spy)
    blob = bytes(range(256)) * 4096  # 1 MiB: the same object each time, as pickling any of them would cost
    with given(probe=probed(1e-7, 1.0, items=64, gil_share=1.0)):
        plan = ck.plan(fn, [blob] * 200)
    assert (plan.mode, plan.kind) == ("serial", "cpu"), plan.reason
    assert plan.run() == [len(blob) + blob[-1]] * 200
    assert False not in fn.pickled, f"fn was pickled {fn.pickled.count(False)} time(s) outside the probe's GIL hook"


@pytest.mark.usefixtures("pinned")
def test_a_long_input_of_waits_still_gets_threads() -> None:
    # Its first item runs in the calling thread (10 ms); the probe then finds the rest
    # waiting and gives them threads, all of them at once: far from the loop's 10 ms an
    # item. (A cap of 16 threads makes a long input 160 items.)
    ck.configure(max_io_workers=16)
    count = _measuring.POLICY.long_input * 16
    meet = _meeting(16, wait_io)  # the first 16 items after the probe's wait at once

    def fn(x: int) -> object:
        return meet(x) if 3 <= x < 3 + 16 else wait_io(x)

    with given(here=Timing(0.010, 0.0), probe=WAITING):
        plan = ck.plan(fn, range(count))
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", "io", 16, 1), plan.reason
    assert plan.measurement is not None
    assert plan.measurement.items == 2  # the probe's, after the calling thread's one
    assert plan.run() == list(range(count))


@pytest.mark.skipif(_probe_threads.thread_clock is None, reason="needs the CPU time of a running thread")
def test_items_that_plainly_wait_are_decided_on_without_the_full_window() -> None:
    # With the usual windows out of reach, only the plain-wait rule can end the probe:
    # a few GIL samples, none late, and items that compute almost nothing so far. The
    # items wait until the plan is made (a probe that waited for them would hit the
    # test's deadline).
    planned = threading.Event()

    def wait_for_the_plan(x: int) -> int:
        planned.wait(timeout=30)
        return x

    # Every GIL sample reads free (a busy machine can wake the monitor late).
    with _probe.PROBING.using(_probe.ProbePolicy(min_window=600.0, max_window=600.0)), given(gil_held=False):
        plan = ck.plan(wait_for_the_plan, range(20))
    planned.set()
    assert plan.mode == "thread", plan.reason
    assert plan.kind is ck.TaskKind.IO
    assert plan.measurement is not None
    assert not plan.measurement.exact  # decided while the items still waited
    assert plan.run() == list(range(20))
