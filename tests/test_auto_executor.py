"""AutoExecutor: a standard Executor whose calls run where their function's kind says."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from concurrent.futures import Executor, wait
from pathlib import Path

import pytest

import concurrency_kit as ck
from helpers import (
    compute,
    declared_compute,
    declared_io,
    double,
    failing_initializer,
    initializer_runs,
    load_model,
    pid_after_a_moment,
    thread_after_wait,
    use_model,
    worker_pid,
)
from measured import Timing, given


def test_it_is_an_executor_and_a_context_manager() -> None:
    with ck.AutoExecutor(2) as executor:
        assert isinstance(executor, Executor)
        assert executor.submit(pow, 2, 8).result(timeout=30) == 256
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(pow, 2, 8)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.map(double, range(3))


@pytest.mark.parametrize("bad", [0, -1])
def test_max_workers_below_one_is_rejected_as_the_standard_executors_do(bad: int) -> None:
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        ck.AutoExecutor(bad)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(TypeError):
        ck.AutoExecutor("4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be"):
        ck.AutoExecutor(mode="executor")
    with ck.AutoExecutor(1) as executor:
        with pytest.raises(ValueError, match="buffersize"):
            executor.map(double, range(3), buffersize=0)
        with pytest.raises(TypeError, match="buffersize"):
            executor.map(double, range(3), buffersize=1.5)  # type: ignore[arg-type]


def test_declared_kinds_go_where_they_say() -> None:
    if not ck.usable_cpus() >= 2:
        pytest.skip("one CPU: processes are not worth it")
    with ck.AutoExecutor(2) as executor:
        assert executor.submit(declared_io, 3).result(timeout=30) == 3
        assert executor._processes is None
        assert executor.submit(declared_compute, 20).result(timeout=30) == 20
        assert executor._processes is not None


def test_an_unknown_function_is_timed_in_threads_then_sent_to_processes_if_it_computes() -> None:
    if not ck.usable_cpus() >= 2:
        pytest.skip("one CPU: processes are not worth it")
    # Its calls, timed in the executor's threads, compute 20 ms of 20.
    with ck.AutoExecutor(2) as executor, given(here=Timing(0.020, 0.020)):
        first = [executor.submit(compute, 20) for _ in range(2)]
        wait(first, timeout=30)
        assert executor._processes is None
        later = executor.submit(compute, 20)
        assert later.result(timeout=30) == 20
        assert executor._processes is not None
        pid = executor.submit(worker_pid, None).result(timeout=30)
        assert pid == os.getpid()  # unknown: a thread of this process


def test_waiting_calls_stay_in_threads() -> None:
    # Timed in the executor's threads, they wait their 20 ms.
    with ck.AutoExecutor(4) as executor, given(here=Timing(0.020, 0.0)):
        names = [f.result(timeout=30) for f in [executor.submit(thread_after_wait, 20) for _ in range(6)]]
        assert all(name.startswith("concurrency_kit-auto") for name in names)
        assert executor._processes is None


def test_map_is_lazy_and_bounded_on_an_endless_input() -> None:
    taken = itertools.count()
    seen: list[int] = []

    def source():
        for x in taken:
            seen.append(x)
            yield x

    with ck.AutoExecutor(2) as executor:
        results = executor.map(double, source(), buffersize=8)
        assert [next(results) for _ in range(20)] == [2 * x for x in range(20)]
        assert len(seen) <= 20 + 8
        results.close()  # type: ignore[attr-defined]


def test_map_takes_several_iterables_and_a_fixed_chunksize() -> None:
    with ck.AutoExecutor(2) as executor:
        assert list(executor.map(pow, range(10), range(10))) == [pow(x, x) for x in range(10)]
        assert list(executor.map(pow, range(10), range(10), chunksize=3)) == [pow(x, x) for x in range(10)]
        assert list(executor.map(divmod, [7, 9], [2, 4, 8])) == [(3, 1), (2, 1)]  # the shortest iterable


def test_serial_mode_runs_in_the_caller() -> None:
    with ck.AutoExecutor(mode="serial") as executor:
        future = executor.submit(worker_pid, None)
        assert future.done()
        assert future.result() == os.getpid()
        failed = executor.submit(divmod, 1, 0)
        assert isinstance(failed.exception(), ZeroDivisionError)


def test_shutdown_cancels_queued_calls_when_asked() -> None:
    executor = ck.AutoExecutor(1)
    futures = [executor.submit(thread_after_wait, 50) for _ in range(20)]
    executor.shutdown(wait=True, cancel_futures=True)
    cancelled = [f for f in futures if f.cancelled()]
    assert len(cancelled) >= 10
    assert all(f.done() for f in futures)


@pytest.mark.parametrize("mode", ["thread", "process", "serial"])
def test_an_initializer_sets_up_each_worker_once_before_its_calls(mode: str, tmp_path: Path) -> None:
    with ck.AutoExecutor(2, mode=mode, initializer=load_model, initargs=(str(tmp_path), mode)) as executor:
        results = [executor.submit(use_model, index).result() for index in range(6)]
        mapped = list(executor.map(use_model, range(6)))
    assert {name for name, _, _ in results + mapped} == {mode}
    runs = initializer_runs(str(tmp_path))
    assert len(runs) == len(set(runs))  # once a worker (a thread, or a process)


def test_an_initializer_that_raises_fails_the_futures_with_worker_init_error() -> None:
    with ck.AutoExecutor(2, mode="thread", initializer=failing_initializer) as executor:
        future = executor.submit(use_model, 1)
        with pytest.raises(ck.WorkerInitError) as caught:
            future.result(timeout=30)
    assert isinstance(caught.value.__cause__, OSError)


def test_max_tasks_per_worker_replaces_its_worker_processes() -> None:
    with ck.AutoExecutor(1, mode="process", max_tasks_per_worker=2) as executor:
        pids = [future.result(timeout=60) for future in [executor.submit(pid_after_a_moment, i) for i in range(10)]]
        mapped = list(executor.map(pid_after_a_moment, range(6)))
    assert sorted(Counter(pids).values()) == [2, 2, 2, 2, 2]
    assert max(Counter(mapped).values()) <= 2


def test_max_tasks_per_worker_with_every_worker_at_its_limit_at_once_never_deadlocks() -> None:
    with ck.AutoExecutor(3, mode="process", max_tasks_per_worker=3) as executor:
        pids = [future.result(timeout=60) for future in [executor.submit(pid_after_a_moment, i) for i in range(45)]]
    assert max(Counter(pids).values()) <= 3
