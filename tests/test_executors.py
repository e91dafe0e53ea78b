"""executor=: any concurrent.futures.Executor runs the items; use_executor scopes one; none is ever shut down.

Three real executors, each with real workers: a ThreadPoolExecutor of the test's own,
loky's reusable executor (worker processes), and a Dask LocalCluster (two worker
processes, one thread each) started for this module. Items that block wait for a
release file, touched before each test ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import concurrency_kit as ck
from concurrency_kit import tasks
from concurrency_kit._backends import executor as _executor
from concurrency_kit._backends.worker import RemoteTraceback
from helpers import (
    HelperError,
    calls_per_index,
    compute,
    double,
    extra_module,
    fail_on_13,
    fail_twice_with_connection_error,
    hang_on,
    initializer_runs,
    load_model,
    started_items,
    thread_after_wait,
    use_model,
    wait_for_release,
    wait_for_starts,
)
from measured import Timing, given

distributed = extra_module("distributed")
loky = extra_module("loky")

KINDS = ("threads", "loky", "dask")
#: How late a timeout may be (the promise: about half a second).
LATE = 1.5


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A real LocalCluster: two worker processes of one thread, no dashboard, for the whole module."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    )
    client = distributed.Client(cluster)
    try:
        # Whatever the client starts lazily (its threads), before the first test counts them.
        executor = client.get_executor(pure=False)
        assert ck.run_parallel(double, range(4), executor=executor, timeout=30) == [0, 2, 4, 6]
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def loky_executor() -> Iterator[Executor]:
    executor = loky.get_reusable_executor(max_workers=2, timeout=300)
    executor.submit(double, 1).result()  # its workers up before the first test counts processes
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, kill_workers=True)


@pytest.fixture(scope="module", autouse=True)
def _up(dask_client: Any, loky_executor: Executor) -> None:
    """The module's cluster and loky workers, up before any test's guard counts threads and processes."""


@pytest.fixture(params=KINDS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Each kind of executor, one test each."""
    if request.param == "threads":
        with ThreadPoolExecutor(4) as own:
            yield own
    elif request.param == "loky":
        yield request.getfixturevalue("loky_executor")
    else:
        yield request.getfixturevalue("dask_client").get_executor(pure=False)


def test_the_reference_workloads_run_on_it_and_the_plan_says_so(executor: Executor) -> None:
    plan = ck.plan(tasks.factorize, tasks.SEED_NUMBERS, executor=executor)
    assert plan.mode == "executor"
    assert type(executor).__name__ in plan.reason
    assert plan.run() == [tasks.factorize(n) for n in tasks.SEED_NUMBERS]
    assert ck.run_parallel(tasks.slow_systemcall, range(5), executor=executor) == list(range(5))
    assert ck.run_parallel(tasks.square, range(3000), executor=executor) == [x * x for x in range(3000)]


def test_it_is_never_shut_down(executor: Executor) -> None:
    ck.run_parallel(double, range(10), executor=executor)
    list(itertools.islice(ck.iter_parallel(double, itertools.count(), executor=executor), 5))
    ck.shutdown()
    assert executor.submit(double, 21).result(timeout=30) == 42


@pytest.mark.parametrize("ordered", [True, False])
def test_a_stream_through_it_yields_every_result(executor: Executor, *, ordered: bool) -> None:
    results = list(ck.iter_parallel(double, iter(range(500)), executor=executor, ordered=ordered, chunksize=7))
    assert (results if ordered else sorted(results)) == [2 * x for x in range(500)]


def test_an_endless_input_streams_through_it_and_closing_stops_it(executor: Executor) -> None:
    stream = ck.iter_parallel(double, itertools.count(), executor=executor)
    assert list(itertools.islice(stream, 300)) == [2 * x for x in range(300)]
    began = time.monotonic()
    stream.close()
    assert time.monotonic() - began < 1.0
    assert ck.run_parallel(double, range(5), executor=executor) == [0, 2, 4, 6, 8]  # the next call works


@pytest.mark.parametrize("measured", [True, False])
def test_an_error_names_its_item(executor: Executor, *, measured: bool) -> None:
    # With a timeout nothing is timed here first: item 13 runs on the executor.
    timeout = None if measured else 30.0
    results: list[int] = []
    with pytest.raises(HelperError) as caught:
        results.extend(ck.iter_parallel(fail_on_13, range(40), executor=executor, timeout=timeout, chunksize=4))
    assert results == [2 * x for x in range(13)]
    assert caught.value.__notes__ == ["concurrency_kit: raised by item 13: 13"]
    if not measured and not isinstance(executor, ThreadPoolExecutor):
        assert isinstance(caught.value.__cause__, RemoteTraceback)
    with pytest.raises(HelperError, match="unlucky"):
        ck.run_parallel(fail_on_13, range(40), executor=executor, timeout=timeout)


def test_return_exceptions_puts_them_in_place(executor: Executor) -> None:
    results = ck.run_parallel(fail_on_13, range(40), executor=executor, return_exceptions=True, timeout=30)
    assert isinstance(results[13], HelperError)
    assert [r for i, r in enumerate(results) if i != 13] == [2 * x for x in range(40) if x != 13]


def test_retries_run_the_failed_items_again_on_it(executor: Executor, tmp_path: Path) -> None:
    items = [(str(tmp_path), index) for index in range(10)]
    results = ck.run_parallel(fail_twice_with_connection_error, items, executor=executor, retries=2, timeout=60)
    assert results == list(range(10))
    assert calls_per_index(tmp_path) == dict.fromkeys(range(10), 3)


def test_an_item_past_its_task_timeout_fails_and_the_rest_go_on(
    executor: Executor, tmp_path: Path, release: str
) -> None:
    # The last item hangs: on Dask a task's time counts from its submission, so one queued
    # behind a stuck task on the same worker could run out of time too (docs/per_item.md).
    items = [(str(tmp_path), index, release, (5,)) for index in range(6)]
    results = ck.run_parallel(hang_on, items, executor=executor, task_timeout=1.0, return_exceptions=True, timeout=60)
    assert isinstance(results[5], ck.TaskTimeoutError)
    assert results[:5] == [0, 1, 2, 3, 4]


def test_an_initializer_sets_up_each_worker_once(executor: Executor, tmp_path: Path) -> None:
    results = ck.run_parallel(
        use_model, range(30), executor=executor, initializer=load_model, initargs=(str(tmp_path), "d")
    )
    assert {name for name, _, _ in results} == {"d"}
    runs = initializer_runs(str(tmp_path))
    assert len({pid for pid, _ in runs}) == len(runs)  # once a worker process (Dask's threads share it)


def test_a_timeout_ends_the_call_on_time(executor: Executor, tmp_path: Path, release: str) -> None:
    (tmp_path / "calls").mkdir()
    directory = str(tmp_path / "calls")
    items = [(directory, i, release) for i in range(4)]
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        ck.run_parallel(wait_for_release, items, executor=executor, timeout=0.5)
    assert time.monotonic() - began < 0.5 + LATE
    Path(release).touch()  # the tasks already running finish on the executor's workers
    assert ck.run_parallel(double, range(3), executor=executor) == [0, 2, 4]


def test_closing_a_stream_cancels_what_has_not_started(executor: Executor, tmp_path: Path, release: str) -> None:
    (tmp_path / "calls").mkdir()
    directory = str(tmp_path / "calls")
    released = tmp_path / "released"
    released.touch()
    # Item 0 returns at once; the others wait for the release: the workers fill up and the
    # rest of the window (6 items taken) queues.
    items = ((directory, i, str(released) if i == 0 else release) for i in itertools.count())
    stream = ck.iter_parallel(wait_for_release, items, executor=executor, timeout=60, max_in_flight=6, chunksize=1)
    assert next(stream) == 0
    wait_for_starts(directory, 3)
    stream.close()
    if type(executor).__module__.startswith("distributed"):
        _wait_for_dask_to_drop_the_cancelled(executor)  # a cancel reaches Dask's scheduler a moment later
    Path(release).touch()
    for _ in range(4):  # the executor's queue drained: a task submitted now runs after the others
        executor.submit(double, 0).result(timeout=30)
    assert ck.run_parallel(double, range(3), executor=executor) == [0, 2, 4]
    started = len(started_items(directory))
    if isinstance(executor, loky.ProcessPoolExecutor):
        # loky (as ProcessPoolExecutor) hands tasks to its workers' queue ahead of time,
        # and marks them running then: a close cannot cancel those.
        assert 3 <= started <= 6
    else:
        assert 3 <= started < 6  # of the 6 taken, the queued ones never started


def _busy_tasks(dask_scheduler: Any) -> int:
    return sum(task.state in {"processing", "queued", "no-worker"} for task in dask_scheduler.tasks.values())


def _wait_for_dask_to_drop_the_cancelled(executor: Any) -> None:
    client = executor._client
    deadline = time.monotonic() + 30
    while client.run_on_scheduler(_busy_tasks) > 2:  # the two running on the two workers
        assert time.monotonic() < deadline, "Dask kept the cancelled tasks"
        time.sleep(0.01)  # polling the scheduler's state, not hoping


def test_progress_counts_every_item(executor: Executor) -> None:
    seen: list[tuple[int, int | None]] = []
    assert ck.run_parallel(double, range(120), executor=executor, progress=lambda d, t: seen.append((d, t))) == [
        2 * x for x in range(120)
    ]
    assert seen[-1] == (120, 120)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_use_executor_scopes_auto_calls_not_forced_ones(executor: Executor) -> None:
    with ck.use_executor(executor) as scoped:
        assert scoped is executor
        assert ck.plan(double, range(10)).mode == "executor"
        assert ck.run_parallel(double, range(10)) == [2 * x for x in range(10)]
        assert ck.plan(double, range(10), "thread").mode == "thread"
        assert ck.plan(double, range(10), "executor").mode == "executor"
    assert ck.plan(double, range(10)).mode != "executor"


def test_use_executor_reaches_asyncio_tasks_and_copied_contexts_not_bare_threads() -> None:
    with ThreadPoolExecutor(2) as executor, ck.use_executor(executor):

        async def in_a_task() -> str:
            return ck.plan(double, range(5)).mode

        assert asyncio.run(in_a_task()) == "executor"
        assert contextvars.copy_context().run(lambda: ck.plan(double, range(5)).mode) == "executor"
        seen: list[str] = []
        bare = threading.Thread(target=lambda: seen.append(ck.plan(double, range(5)).mode))
        bare.start()
        bare.join()
        assert seen != ["executor"]


def test_use_executor_blocks_nest_and_the_argument_wins() -> None:
    with ThreadPoolExecutor(1) as outer, ThreadPoolExecutor(1) as inner, ck.use_executor(outer):
        with ck.use_executor(inner):
            assert ck.plan(double, range(3))._handover.options.executor is inner
        assert ck.plan(double, range(3))._handover.options.executor is outer
        assert ck.plan(double, range(3), executor=inner)._handover.options.executor is inner


def test_bad_executor_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="executor must be"):
        ck.run_parallel(double, range(3), executor="dask")  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as executor, pytest.raises(ValueError, match="mode must be 'auto' or 'executor'"):
        ck.run_parallel(double, range(3), "process", executor=executor)
    with pytest.raises(ValueError, match="needs an executor"):
        ck.run_parallel(double, range(3), "executor")
    with pytest.raises(TypeError, match="executor must be"), ck.use_executor(object()):  # type: ignore[type-var]
        pass


def test_chunks_carry_ten_times_the_task_overhead(dask_client: Any) -> None:
    # 1 ms items (as the first are timed here): a thread pool's task costs microseconds
    # (30 µs, as its ping measured it), a cluster's milliseconds (3 ms), so through the
    # cluster many items share a task.
    cluster_executor = dask_client.get_executor(pure=False)
    with ThreadPoolExecutor(2) as threads, given(here=Timing(0.001, 0.001)):
        with _executor._overheads_lock:
            _executor._overheads.update({threads: 30e-6, cluster_executor: 0.003})
        local = ck.plan(compute, [1] * 400, executor=threads)
        cluster = ck.plan(compute, [1] * 400, executor=cluster_executor)
    assert (local.mode, local.workers, local.chunksize) == ("executor", 2, 1), local.reason
    assert (cluster.mode, cluster.chunksize) == ("executor", 30), cluster.reason
    assert cluster.chunksize >= 4 * local.chunksize
    assert "chunks of 30 (≥ 10× its task overhead of 3.0 ms in work a task)" in cluster.reason


def test_an_executors_task_overhead_is_measured_once() -> None:
    with ThreadPoolExecutor(2) as threads:
        overhead = _executor.task_overhead(threads)
        assert 0 < overhead < _executor.PING_TIMEOUT
        assert _executor.task_overhead(threads) == overhead  # kept for that executor


def test_while_the_first_item_is_timed_here_the_next_ones_already_run_on_the_executor() -> None:
    with ThreadPoolExecutor(2, thread_name_prefix="given") as executor:
        names = ck.run_parallel(thread_after_wait, [30] * 6, executor=executor)
        assert names[0] == threading.current_thread().name  # timed here
        assert all(name.startswith("given") for name in names[1:])
        # An earlier call measured the function: its items are sized from that, none runs here.
        again = ck.run_parallel(thread_after_wait, [30] * 6, executor=executor)
        assert all(name.startswith("given") for name in again)


#: Set by the test below once the stream has yielded: the item waiting on it may finish.
_GATE = threading.Event()
#: Set by that item as it finishes.
_PASSED = threading.Event()


def _gated_unless_one(item: int) -> int:
    """Item 1 returns at once; the others wait for ``_GATE`` (up to 30 s)."""
    if item != 1:
        _GATE.wait(30)
        _PASSED.set()
    return item


class _CallerRuns(Executor):
    """One worker thread; a task submitted while it is busy runs in the caller (Java's caller-runs policy)."""

    def __init__(self) -> None:
        self._max_workers = 1
        self._pool = ThreadPoolExecutor(1)
        self._lock = threading.Lock()
        self._busy = False

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            inline, self._busy = self._busy, True
        if not inline:
            future = self._pool.submit(fn, *args, **kwargs)
            future.add_done_callback(self._free)
            return future
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - the task's, handed over like a pool's
            done.set_exception(exc)
        return done

    def _free(self, _: Future[Any]) -> None:
        with self._lock:
            self._busy = False

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:  # noqa: FBT001, FBT002 - Executor's
        self._pool.shutdown(wait, cancel_futures=cancel_futures)


def test_a_task_done_as_it_is_submitted_is_yielded_without_waiting_for_the_others() -> None:
    _GATE.clear()
    _PASSED.clear()
    with _CallerRuns() as executor:
        executor.submit(int).result(timeout=30)  # the overhead pings, out of the way
        stream = ck.iter_parallel(
            _gated_unless_one, range(2), executor=executor, ordered=False, max_in_flight=2, chunksize=1, timeout=60
        )
        try:
            assert next(stream) == 1  # ran in this thread as it was submitted, item 0 still waiting
            assert not _PASSED.is_set()
        finally:
            _GATE.set()
        assert list(stream) == [0]
