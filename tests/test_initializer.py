"""``initializer=`` and ``initargs=``: each worker sets itself up once, in every mode."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

import concurrency_kit as ck
from helpers import (
    failing_initializer,
    initializer_runs,
    load_model,
    slow_initializer,
    use_model,
    use_model_crash_on_10,
)


@pytest.fixture
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("runs"))


def test_processes_run_it_once_each_and_every_item_sees_its_state(runs_dir: str) -> None:
    results = ck.run_parallel(
        use_model, range(100), "process", workers=4, initializer=load_model, initargs=(runs_dir, "m1")
    )
    assert {name for name, _, _ in results} == {"m1"}
    ck.shutdown(wait=True)  # every worker started has run it
    runs = initializer_runs(runs_dir)
    assert len({pid for pid, _ in runs}) == len(runs) == 4  # once in each of the call's 4 processes
    assert {pid for _, _, pid in results} <= {pid for pid, _ in runs}  # every item's worker ran it


def test_warm_workers_run_it_again_only_for_other_initargs(runs_dir: str) -> None:
    options: dict[str, Any] = {"workers": 4, "initializer": load_model}
    first = ck.run_parallel(use_model, range(40), "process", initargs=(runs_dir, "m1"), **options)
    again = ck.run_parallel(use_model, range(40), "process", initargs=(runs_dir, "m1"), **options)
    other = ck.run_parallel(use_model, range(40), "process", initargs=(runs_dir, "m2"), **options)
    assert {r[0] for r in first + again} == {"m1"}
    assert {r[0] for r in other} == {"m2"}
    assert {pid for _, _, pid in first} & {pid for _, _, pid in other} == set()  # workers of their own
    ck.shutdown(wait=True)  # every worker started has run it
    assert len(initializer_runs(runs_dir)) == 8  # 4 for both calls with m1 (one pool kept warm), 4 for m2


def test_a_replacement_worker_runs_it_too(runs_dir: str) -> None:
    results = ck.run_parallel(
        use_model_crash_on_10,
        range(100),
        "process",
        workers=4,
        initializer=load_model,
        initargs=(runs_dir, "m1"),
        return_exceptions=True,
    )
    assert isinstance(results[10], ck.WorkerCrashedError)
    assert {r[0] for i, r in enumerate(results) if i != 10} == {"m1"}  # the fresh workers set up too
    ck.shutdown(wait=True)  # every worker started has run it, and no more start
    assert len(initializer_runs(runs_dir)) == 5  # the 4 workers, and the one that took the dead one's place


def test_threads_run_it_once_each_so_a_thread_local_is_set_up(runs_dir: str) -> None:
    results = ck.run_parallel(
        use_model, range(40), "thread", workers=4, initializer=load_model, initargs=(runs_dir, "t")
    )
    assert {(name, local) for name, local, _ in results} == {("t", "t")}
    runs = initializer_runs(runs_dir)
    assert len(runs) == len(set(runs)) <= 4  # once a thread


def test_a_loop_runs_it_once_in_the_calling_thread(runs_dir: str) -> None:
    results = ck.run_parallel(use_model, range(5), "serial", initializer=load_model, initargs=(runs_dir, "s"))
    assert {(name, local) for name, local, _ in results} == {("s", "s")}
    assert initializer_runs(runs_dir) == [(os.getpid(), threading.get_ident())]


def test_auto_runs_it_where_it_measures_and_counts_it_per_worker(runs_dir: str) -> None:
    # 20 items of 5 ms and an initializer of 1 s: no pool pays it once a worker for that.
    plan = ck.plan(use_model, range(20), initializer=slow_initializer, initargs=(1.0,))
    assert plan.mode == "serial"
    assert "initializer" in plan.reason
    assert plan.run()[0][0] == "slow"


@pytest.mark.parametrize("mode", ["serial", "thread", "process", "auto"])
def test_an_initializer_that_raises_stops_the_call_promptly(mode: str) -> None:
    for collect in (False, True):
        began = time.monotonic()
        with pytest.raises(ck.WorkerInitError) as caught:
            ck.run_parallel(use_model, range(20), mode, initializer=failing_initializer, return_exceptions=collect)
        assert time.monotonic() - began < 2.0  # promptly: nothing waits for the items
        assert isinstance(caught.value.__cause__, OSError)
        assert "no model here" in str(caught.value.__cause__)
    assert ck.run_parallel(abs, [-1, -2], mode) == [1, 2]  # the next call works


def test_an_initializer_failure_is_never_retried(runs_dir: str) -> None:
    with pytest.raises(ck.WorkerInitError):
        ck.run_parallel(use_model, range(4), "thread", initializer=failing_initializer, retries=3)


def test_coroutines_run_it_once_on_their_loop() -> None:
    ran: list[int] = []

    async def setup() -> None:
        ran.append(threading.get_ident())

    async def item(index: int) -> int:
        await asyncio.sleep(0)
        return len(ran)

    assert ck.run_parallel(item, range(10), initializer=setup) == [1] * 10

    async def main() -> list[int]:
        ran.clear()
        return await ck.arun_parallel(item, range(10), initializer=lambda: ran.append(0))

    assert asyncio.run(main()) == [1] * 10


def test_an_executor_runs_it_once_in_this_process() -> None:
    from concurrent.futures import ThreadPoolExecutor

    ran: list[int] = []
    with ThreadPoolExecutor(2) as executor:
        results = ck.run_parallel(lambda _: len(ran), range(10), executor=executor, initializer=lambda: ran.append(1))
    assert results == [1] * 10


@pytest.mark.parametrize(("options", "error"), [({"initializer": 3}, TypeError), ({"initargs": [1]}, TypeError)])
def test_bad_initializer_options_are_rejected_at_once(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ck.run_parallel(abs, [1], initializer=options.get("initializer", print), initargs=options.get("initargs", ()))
