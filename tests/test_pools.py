"""Warm pools and worker processes: reuse, recovery, environment, nesting, shutdown."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from concurrent.futures import Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import psutil
import pytest

import concurrency_kit as ck
from concurrency_kit._backends import pools as _pools
from concurrency_kit._backends import prestart as _prestart
from concurrency_kit._backends import process as _process
from concurrency_kit._backends import worker as _worker
from concurrency_kit._backends.mp_machinery import PRELOAD_MODULES
from concurrency_kit._backends.pool_state import shared
from concurrency_kit._backends.registry import ProcessRunner
from concurrency_kit._backends.worker_pool import WorkerPool
from concurrency_kit._core.costmodel import using_model
from concurrency_kit._run.engine import Engine
from concurrency_kit._run.warming import Helping, help_while_warming
from helpers import (
    HelperError,
    double,
    exit_on_3,
    fail_on_13,
    multiprocessing_helper_pids,
    nested_plan,
    overlap,
    parent_pid,
    return_lock,
    thread_limits,
    wait_here_for_a_worker,
    worker_pid,
)
from measured import SERVER_UP, given, probed


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_process_pool_is_reused_by_the_next_call() -> None:
    first = set(ck.run_parallel(worker_pid, range(8), "process", workers=2, chunksize=1))
    started = _descendants()
    second = set(ck.run_parallel(worker_pid, range(8), "process", workers=2, chunksize=1))
    assert second <= started, "the second call ran in processes started after the first"
    assert _descendants() == started, "the second call started processes"
    assert first <= started


@pytest.mark.usefixtures("pinned")
def test_auto_reuses_the_warm_process_pool() -> None:
    from concurrency_kit.tasks import SEED_NUMBERS, factorize

    ck.run_parallel(worker_pid, range(4), "process", workers=2)  # the pinned fixture's CPUs
    started = _descendants()
    # The probe decides 50 ms into the first item; the pool is warm, or a few ms from it
    # under a model whose pool start is the forkserver's restart.
    with using_model(SERVER_UP), given(probe=probed(0.050, 1.0, items=1, gil_share=1.0, exact=False)):
        plan = ck.plan(factorize, SEED_NUMBERS)
    plan.run()
    assert (plan.mode, plan.kind, plan.workers) == ("process", "cpu", 2), plan.reason
    assert _descendants() == started, "auto started new worker processes"


def test_a_broken_pool_raises_and_the_next_call_works() -> None:
    with pytest.raises(BrokenProcessPool):
        ck.run_parallel(exit_on_3, range(6), "process", workers=2, chunksize=1)
    assert ck.run_parallel(double, range(6), "process", workers=2) == [0, 2, 4, 6, 8, 10]


def test_process_mode_exception_carries_the_remote_traceback() -> None:
    with pytest.raises(HelperError, match="item 13 is unlucky") as info:
        ck.run_parallel(fail_on_13, range(20), "process")
    cause = info.value.__cause__
    assert cause is not None
    assert "Traceback" in str(cause)
    assert "fail_on_13" in str(cause)


def test_an_unpicklable_result_is_an_error_naming_the_item() -> None:
    with pytest.raises(TypeError, match="item 0"):
        ck.run_parallel(return_lock, [0], "process")


def test_process_workers_limit_numeric_thread_pools() -> None:
    limits = ck.run_parallel(thread_limits, range(2), "process")
    for name in _worker._THREAD_LIMIT_VARIABLES:
        expected = os.environ.get(name, "1")  # "1" unless the parent already set it
        assert all(each[name] == expected for each in limits), name


def test_worker_setup_keeps_thread_limits_already_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_worker, "_in_worker_process", False)  # restored afterwards
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    _worker.init_process_worker()
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert os.environ["MKL_NUM_THREADS"] == "1"
    assert _worker.in_worker()


@pytest.mark.slow
def test_spawned_workers_inherit_a_thread_limit_set_by_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    ck.configure(start_method="spawn")
    limits = ck.run_parallel(thread_limits, range(2), "process", workers=1)
    assert {each["OMP_NUM_THREADS"] for each in limits} == {"3"}
    assert {each["OPENBLAS_NUM_THREADS"] for each in limits} == {"1"}


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_nested_auto_call_inside_a_worker_runs_serially(mode: str) -> None:
    for nested_mode, reason, inside in ck.run_parallel(nested_plan, range(2), mode):
        assert inside
        assert nested_mode == "serial"
        assert "inside a concurrency_kit worker" in reason


def test_a_nested_call_in_the_probe_runs_serially() -> None:
    # The items auto mode measures run in the probe's threads, which are pool threads too.
    # (Later items may run in the calling thread, where nesting is no nesting.)
    plan = ck.plan(nested_plan, range(3))
    assert plan.measurement is not None
    probed = plan.measurement.items
    results = plan.run()
    assert probed >= 1
    assert all(nested_mode == "serial" for nested_mode, _, _ in results[:probed])


@pytest.mark.slow
def test_nested_forced_thread_mode_in_a_busy_pool_does_not_deadlock() -> None:
    # Run in a child interpreter: a deadlocked pool cannot be recovered in this one.
    # Two outer items occupy both threads of a two-thread pool; each asks for threads.
    script = (
        "import concurrency_kit as ck\n"
        "from helpers import nested_forced_thread\n"
        "ck.configure(max_io_workers=2)\n"
        "print(ck.run_parallel(nested_forced_thread, range(2), 'thread', workers=2))\n"
    )
    tests_dir = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=15, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a nested run_parallel(mode='thread') inside a pool thread deadlocked (no result in 15 s)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[6, 7]"


def test_process_mode_with_one_worker_runs_one_item_at_a_time(tmp_path: Path) -> None:
    ck.run_parallel(worker_pid, range(4), "process", workers=2)  # a warm pool of two
    concurrent = ck.run_parallel(overlap, [(str(tmp_path), i) for i in range(4)], "process", workers=1, chunksize=1)
    assert max(concurrent) == 1, f"calls running at once: {concurrent}"


def test_thread_mode_with_one_worker_runs_one_item_at_a_time(tmp_path: Path) -> None:
    concurrent = ck.run_parallel(overlap, [(str(tmp_path), i) for i in range(3)], "thread", workers=1)
    assert max(concurrent) == 1, f"calls running at once: {concurrent}"


def test_workers_are_started_by_the_forkserver_by_default() -> None:
    if ck.get_config().resolved_start_method() != "forkserver":
        pytest.skip("forkserver is not this platform's default")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parents = set(ck.run_parallel(parent_pid, range(4), "process", workers=2))
    assert not [w for w in caught if "fork" in str(w.message)], [str(w.message) for w in caught]
    assert parents <= multiprocessing_helper_pids()
    assert os.getpid() not in parents


def test_shutdown_stops_the_warm_pools() -> None:
    ck.run_parallel(worker_pid, range(4), "process", workers=2)
    ck.run_parallel(double, range(4), "thread", workers=2)
    workers = [psutil.Process(pid) for pid in _descendants() - multiprocessing_helper_pids()]
    assert workers
    ck.shutdown()
    assert shared.processes is None
    assert shared.threads is None
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert not [t for t in threading.enumerate() if t.name.startswith("concurrency_kit")]


def test_calls_after_shutdown_start_new_pools() -> None:
    ck.run_parallel(double, range(4), "process")
    ck.shutdown()
    assert ck.run_parallel(double, range(4), "process") == [0, 2, 4, 6]
    assert ck.run_parallel(double, range(4), "thread") == [0, 2, 4, 6]


@pytest.mark.parametrize("wait", [True, False])
def test_shutdown_stops_a_pool_being_prestarted(monkeypatch: pytest.MonkeyPatch, wait: bool) -> None:  # noqa: FBT001
    # The probe prestarts a process pool in a background thread when it sees the GIL
    # held; a shutdown() that comes meanwhile must still leave no pool behind. The
    # prestart thread is held back until shutdown() has told it to stop (with wait=True,
    # shutdown() then waits for it), or for 5 s, so that the interleaving is the same on
    # every run.
    shutdown_began = threading.Event()
    real_process_pool = _pools.process_pool
    real_stop_prestart = _pools._stop_prestart

    def process_pool_after_shutdown(workers: int, generation: int | None = None, *, main: bool = False):
        shutdown_began.wait(timeout=5)
        return real_process_pool(workers, generation, main=main)

    def stop_prestart() -> threading.Thread | None:
        warming = real_stop_prestart()
        shutdown_began.set()
        return warming

    monkeypatch.setattr(_prestart, "process_pool", process_pool_after_shutdown)
    monkeypatch.setattr(_pools, "_stop_prestart", stop_prestart)
    _prestart.prestart_process_pool(2)
    ck.shutdown(wait=wait)
    shutdown_began.set()
    for thread in threading.enumerate():
        if thread.name.startswith("concurrency_kit-prestart"):
            thread.join(timeout=60)
    assert shared.processes is None, "a process pool came alive after shutdown()"


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1])
def test_exiting_while_a_pool_is_prestarted_is_quiet(delay: float) -> None:
    # A script whose last call prestarted a process pool (and then ran in a loop) may
    # exit while the pool's workers start. concurrent.futures stops its pools at exit
    # before atexit handlers run, and Python 3.12+ starts no thread then: workers stopped
    # or orphaned mid-start printed tracebacks. The exit now waits for the pre-start.
    script = (
        "import time\nfrom concurrency_kit._backends import prestart as _prestart\n"
        f"_prestart.prestart_process_pool(2)\ntime.sleep({delay})\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0
    assert completed.stderr == ""


def test_new_workers_start_with_the_pool_s_worker_loop_and_the_function_s_module_only() -> None:
    # In a fresh interpreter: the forkserver preloads the pool's worker loop and
    # concurrency_kit._backends.worker (not attrs, not the planner, not concurrent.futures'
    # executor), and a pool pre-started for a function has each worker import that
    # function's module while it starts.
    script = (
        "import colorsys\n"
        "from concurrency_kit._backends import pools as _pools, prestart as _prestart\n"
        "_prestart.prestart_process_pool(2, colorsys.rgb_to_hsv).join(60)\n"
        "names = ('attrs', 'concurrency_kit._api.calls', 'concurrent.futures.process', 'colorsys',\n"
        "         'concurrency_kit._backends.worker_loop')\n"
        "query = f'sorted(m for m in {names!r} if m in __import__(\"sys\").modules)'\n"
        "pool = _pools.process_pool(2)\n"
        "print(sorted({repr(pool.submit(eval, query).result()) for _ in range(8)}))\n"
    )
    if ck.get_config().resolved_start_method() != "forkserver":
        pytest.skip("the worker modules are preloaded by the forkserver only")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert completed.stdout.strip() == str([repr(["colorsys", "concurrency_kit._backends.worker_loop"])])
    assert completed.stderr == ""


def test_a_pre_start_imports_nothing_in_its_background_thread() -> None:
    # An import in the thread that starts a pool, while the caller or the probe's threads
    # ran items holding the GIL, waited for the GIL at each of its file-system calls: a
    # start of ~0.1 s took seconds. The process machinery is imported with _pools instead.
    script = (
        "import sys\n"
        "from concurrency_kit._backends import pools as _pools, prestart as _prestart\n"
        "before = set(sys.modules)\n"
        "_prestart.prestart_process_pool(2).join(60)\n"
        "print(sorted(set(sys.modules) - before))\n"
        "_pools.shutdown()\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert completed.stdout.strip() == "[]"


def test_the_forkserver_s_preloads_import_neither_typing_nor_the_planner() -> None:
    # Every cold pool waits for the forkserver to import them; typing alone took ~5 ms.
    script = (
        "import importlib, sys\n"
        "before = set(sys.modules)\n"
        f"for name in {PRELOAD_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = {'attrs', 'typing', 'concurrency_kit._api.calls'}\n"
        "ours = ('pools', 'prestart', 'pool_state', 'mp_machinery')\n"
        "heavy |= {'concurrency_kit._backends.' + name for name in ours}\n"
        "print(sorted(heavy & (set(sys.modules) - before)))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "[]"


def _hold_warm_up(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Hold a pre-start's first warm-up submission: set the first event there, wait for the second."""
    entered, release = threading.Event(), threading.Event()
    real_submit = WorkerPool.submit

    def held_submit(self: WorkerPool, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if fn is _worker.warm_up_worker:
            entered.set()
            release.wait(timeout=30)
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(WorkerPool, "submit", held_submit)
    return entered, release


def test_asking_about_the_pool_does_not_wait_for_a_pre_start_s_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pre-start's first submission starts the forkserver and the workers (~0.1 s): a
    # call deciding meanwhile (it asks the pool's age) used to wait for it.
    entered, release = _hold_warm_up(monkeypatch)
    starting = _prestart.prestart_process_pool(2)
    assert starting is not None
    try:
        assert entered.wait(timeout=30)
        answered = threading.Event()

        def ask() -> None:
            _pools.process_pool_age(2)
            _pools.process_pool_ready(2)
            _prestart.prestart_process_pool(2)
            answered.set()

        asker = threading.Thread(target=ask)
        asker.start()
        assert answered.wait(timeout=10), "asking about the pool waited for the pre-start's submission"
    finally:
        release.set()
        starting.join(timeout=60)
    asker.join(timeout=60)
    assert _pools.process_pool_ready(2)


@pytest.mark.parametrize("theirs", [None, 0.002])
def test_a_pre_start_hands_the_gil_over_quickly_then_puts_the_interval_back(
    monkeypatch: pytest.MonkeyPatch, theirs: float | None
) -> None:
    # The starting thread waits for the GIL after each system call behind the threads
    # running items: a lower switch interval meanwhile, and the caller's after (or one
    # set meanwhile, which stands).
    entered, release = _hold_warm_up(monkeypatch)
    before = sys.getswitchinterval()
    try:
        starting = _prestart.prestart_process_pool(2)
        assert starting is not None
        try:
            assert entered.wait(timeout=30)
            assert sys.getswitchinterval() == _prestart.QUICK_SWITCH_INTERVAL
            if theirs is not None:
                sys.setswitchinterval(theirs)
        finally:
            release.set()
            starting.join(timeout=60)
        assert not starting.is_alive()
        assert sys.getswitchinterval() == pytest.approx(before if theirs is None else theirs)
    finally:
        sys.setswitchinterval(before)


def test_concurrent_callers_each_get_their_own_results() -> None:
    results: dict[int, list[int]] = {}
    barrier = threading.Barrier(4)

    def caller(k: int) -> None:
        barrier.wait()
        results[k] = ck.run_parallel(double, range(k * 100, k * 100 + 50), ("thread", "process", "auto", "serial")[k])

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {k: [2 * x for x in range(k * 100, k * 100 + 50)] for k in range(4)}


def _list_engine(
    fn: Any, count: int, workers: int, chunksize: int, helping: Helping | None = None
) -> tuple[Engine, ProcessRunner]:
    """A list call's engine over ``range(count)`` on the process pool, not yet started."""
    runner = ProcessRunner(fn, workers, collect=False)
    engine = Engine(
        runner,
        iter(range(count)),
        start=0,
        first=[],
        ordered=True,
        collect=False,
        window=None,
        chunksize=chunksize,
        workers=workers,
        total=count,
        timeout=None,
        deadline=None,
        helping=helping,
    )
    return engine, runner


@pytest.mark.parametrize(("count", "workers", "chunksize"), [(200, 2, 12), (37, 3, 5), (5, 2, 4), (1000, 16, 100)])
def test_process_chunks_shrink_toward_the_end(count: int, workers: int, chunksize: int) -> None:
    engine, _ = _list_engine(double, count, workers, chunksize)
    sizes = []
    while engine.taken < count:
        size = min(engine.chunk_size(), count - engine.taken)
        sizes.append(size)
        engine.taken += size
    assert sum(sizes) == count
    assert max(sizes) <= chunksize
    assert sizes == sorted(sizes, reverse=True), sizes
    # The last items go one at a time, a worker's worth of them at least.
    assert sizes[-workers:] == [1] * workers, sizes


def test_a_prestart_in_flight_is_not_repeated_and_ends_with_a_ready_pool() -> None:
    starting = _prestart.prestart_process_pool(2)
    assert starting is not None
    assert _prestart.prestart_process_pool(2) in (starting, None)  # the same one, unless it is already done
    starting.join(timeout=60)
    assert _pools.process_pool_ready(2)
    assert _prestart.prestart_process_pool(2) is None


class _AnsweredPool:
    """A stand-in pool of two workers whose warm-up tasks the test answers, one by one."""

    def __init__(self) -> None:
        self.submitted: list[Future[int]] = []
        self.round_in = threading.Event()  # both tasks of the first round submitted

    def submit(self, _fn: Any, /, *_args: Any) -> Future[int]:
        self.submitted.append(Future())
        if len(self.submitted) == 2:
            self.round_in.set()
        return self.submitted[-1]

    def answer_the_rest(self) -> None:
        for pid, future in enumerate(self.submitted, 101):
            if not future.done():
                future.set_result(pid)


def test_a_pre_start_is_up_once_a_first_worker_answers() -> None:
    # Work sent then is taken at once: the first chunks need not wait for every worker
    # (on a machine of many cores, the last of many workers to start).
    pool = _AnsweredPool()
    up = threading.Event()
    warm: list[bool] = []
    warming = threading.Thread(
        target=lambda: warm.append(_prestart._warm_up(pool, 2, shared.generation, None, up.set))  # type: ignore[arg-type]
    )
    warming.start()
    try:
        assert pool.round_in.wait(timeout=10)
        assert not up.is_set()
        pool.submitted[0].set_result(100)
        assert up.wait(timeout=10), "the pre-start was not up once a worker answered"
        assert warming.is_alive()  # still waiting for the other worker
    finally:
        pool.answer_the_rest()
        warming.join(timeout=10)
    assert warm == [True]


def test_the_switch_interval_is_put_back_once_a_first_worker_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The workers are all started by then; the rest of the warm-up, which may wait behind
    # a call's long chunks, needs the GIL rarely.
    pool = _AnsweredPool()
    monkeypatch.setattr(_prestart, "process_pool", lambda *_args, **_kwargs: pool)
    before = sys.getswitchinterval()
    up = threading.Event()
    starting = threading.Thread(target=_prestart._spawn, args=(2, shared.generation, None, up))
    starting.start()
    try:
        assert pool.round_in.wait(timeout=10)
        assert sys.getswitchinterval() == _prestart.QUICK_SWITCH_INTERVAL
        pool.submitted[0].set_result(100)
        assert up.wait(timeout=10)
        assert starting.is_alive()  # still waiting for the other worker
        assert sys.getswitchinterval() == pytest.approx(before)
    finally:
        pool.answer_the_rest()
        starting.join(timeout=10)
        sys.setswitchinterval(before)
    assert not starting.is_alive()


def pid_after_a_little_work(_: object) -> int:
    for _ in range(500):  # some microseconds: all the items take seconds, far longer than a pool start
        pass
    return os.getpid()


def _ran_here(engine: Engine) -> list[int]:
    """The indices of the items the engine stored as run in this process (``pid_after_a_little_work``)."""
    return sorted(
        index
        for unit in engine.ready.values()
        for index, pid in enumerate(unit.done.values if unit.done is not None else (), unit.start)
        if pid == os.getpid()
    )


def _read(engine: Engine) -> list[int]:
    """The indices of the items of the units the engine has read."""
    return sorted(index for unit in engine.ready.values() for index in range(unit.start, unit.stop))


def _sent(engine: Engine) -> list[int]:
    """The indices of the items of the units in flight."""
    return sorted(index for unit in engine.running.values() for index in range(unit.start, unit.stop))


def test_auto_runs_items_in_the_calling_process_while_the_pool_starts() -> None:
    ck.shutdown()  # no pool: the next one takes a while to start
    count = 200_000
    engine, _ = _list_engine(pid_after_a_little_work, count, 2, 64, Helping(None, computing=False))
    try:
        help_while_warming(engine, Helping(None, computing=False))
        here = _ran_here(engine)
        assert here, "the calling thread ran nothing while the pool started"
        # It stops when a first worker is up (or the items run out), leaving the rest to the
        # pool; its first units were sent the moment a worker was up. Together: the front of
        # the input, in order, none skipped. Sent: in flight, or read already (a unit the pool
        # finished before send() looked is read at once: on a busy machine, a few are).
        ran_here = set(here)
        sent = sorted(_sent(engine) + [index for index in _read(engine) if index not in ran_here])
        assert engine.exhausted or sent
        assert sorted(here + sent) == list(range(engine.taken))
        done, _ = wait(set(engine.running), timeout=60)
        for future in done:
            engine.read(engine.running.pop(future), future)
        assert not engine.running
        assert os.getpid() not in {pid for index in sent for pid in [_value_of(engine, index)]}
    finally:
        engine.finish(kill=False)


def _value_of(engine: Engine, index: int) -> Any:
    """What the engine stored for item ``index``."""
    unit = next(unit for unit in engine.ready.values() if unit.start <= index < unit.stop)
    assert unit.done is not None
    return unit.done.values[index - unit.start]


def test_the_calling_thread_runs_no_item_while_the_probe_still_runs_its_own() -> None:
    # Items holding the GIL gain nothing from a second thread of the same process: the
    # calling thread waits for the probe's threads, and the pool takes the items.
    ck.shutdown()
    count = 200_000
    probe_thread: Future[None] = Future()  # still running throughout
    helping = Helping(probe_thread, computing=False)
    engine, _ = _list_engine(pid_after_a_little_work, count, 2, 64, helping)
    try:
        help_while_warming(engine, helping)
        assert _ran_here(engine) == []
        # The first units went to the pool the moment a worker was up, unless the pre-start
        # ended just before they were sent: the engine's loop then sends them, as here.
        engine.take()
        # In flight, or read already: a unit the pool finished before send() looked is read at once.
        sent = sorted(_sent(engine) + _read(engine))
        assert sent
        assert sent == list(range(engine.taken))
        done, _ = wait(set(engine.running), timeout=60)
        for future in done:
            engine.read(engine.running.pop(future), future)
        assert not engine.running
        assert os.getpid() not in {_value_of(engine, index) for index in sent}
    finally:
        engine.finish(kill=False)
        probe_thread.set_result(None)


def test_while_threads_here_compute_the_calls_items_the_pool_runs_a_chunk_fewer() -> None:
    # They take a CPU (one between them: they hold the GIL): one unit fewer than the
    # call has workers, none queued, until they are done; then the call's whole share.
    ck.shutdown()
    count = 64
    probe_thread: Future[None] = Future()
    engine, _ = _list_engine(double, count, 2, 1, Helping(probe_thread, computing=True))
    _pools.process_pool(2)
    try:
        engine.take()
        assert len(engine.running) == 1
        probe_thread.set_result(None)
        engine.take()
        assert len(engine.running) == 2 * _process.IN_FLIGHT_PER_WORKER
        done, _ = wait(set(engine.running), timeout=60)
        for future in done:
            engine.read(engine.running.pop(future), future)
        assert [_value_of(engine, index) for index in range(engine.taken)] == [2 * x for x in range(engine.taken)]
    finally:
        engine.finish(kill=False)


def test_a_forced_process_call_runs_nothing_in_the_calling_process() -> None:
    ck.shutdown()
    assert os.getpid() not in ck.run_parallel(worker_pid, range(200), "process")


# --- the main module in workers ------------------------------------------------------

_WORKMOD = '''
import sys


def main_was_imported(_):
    """Whether this worker imported the main program (only it imports marker)."""
    return "marker" in sys.modules


def class_name(obj):
    return type(obj).__name__
'''

_PROGRAM = """
import concurrency_kit as ck
import marker  # noqa: F401 - what only this program imports
from workmod import class_name, main_was_imported


class Thing:
    pass


def add_one(x):
    return x + 1


if __name__ == "__main__":
    print(ck.run_parallel(main_was_imported, range(2), "process", workers=2, chunksize=1))
    print(ck.run_parallel(class_name, [Thing(), Thing()], "process", workers=2, chunksize=1))
    print(ck.run_parallel(add_one, range(2), "process", workers=2, chunksize=1))
    print(ck.run_parallel(main_was_imported, range(2), "process", workers=2, chunksize=1))
    ck.shutdown()
"""


def _run_program(tmp_path: Path, *how: str) -> list[str]:
    (tmp_path / "workmod.py").write_text(_WORKMOD, encoding="utf-8")
    (tmp_path / "marker.py").write_text("", encoding="utf-8")
    (tmp_path / "program.py").write_text(_PROGRAM, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, *how], capture_output=True, text=True, timeout=50, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.skipif(
    _pools.get_config().resolved_start_method() != "forkserver" or not (3, 11) <= sys.version_info < (3, 14),
    reason="workers skip the main module with a forkserver, on CPython 3.11-3.13",
)
def test_workers_import_a_main_module_run_by_name_only_once_a_task_comes_from_it(tmp_path: Path) -> None:
    # python -m program: multiprocessing would have each worker import it, and all it
    # imports. Tasks that never name it do without; a class or function defined there
    # gets workers that import it, and the pool keeps them.
    assert _run_program(tmp_path, "-m", "program") == [
        "[False, False]",
        "['Thing', 'Thing']",
        "[1, 2]",
        "[True, True]",
    ]


@pytest.mark.skipif(
    _pools.get_config().resolved_start_method() != "forkserver" or not (3, 11) <= sys.version_info < (3, 14),
    reason="workers skip the main module with a forkserver, on CPython 3.11-3.13",
)
def test_a_task_that_needs_the_main_module_replaces_a_pool_without_it_for_good() -> None:
    ck.shutdown()
    plain = _pools.process_pool(2)
    assert not shared.process_main
    with_main = _pools.process_pool(2, main=True)
    assert with_main is not plain
    assert _pools.process_pool(2) is with_main
    _pools.discard_process_pool(with_main)  # broken, say: its successor imports it too
    _pools.process_pool(2)
    assert shared.process_main
    ck.shutdown()  # a fresh start forgets
    _pools.process_pool(2)
    assert not shared.process_main


def test_functions_and_classes_of_a_main_script_run_in_worker_processes(tmp_path: Path) -> None:
    lines = _run_program(tmp_path, "program.py")
    assert lines[1:3] == ["['Thing', 'Thing']", "[1, 2]"]


@pytest.mark.usefixtures("pinned")
def test_the_workers_get_chunks_the_moment_they_are_up_while_the_caller_runs_an_item(tmp_path: Path) -> None:
    # Declared CPU-bound, the items sleep while measured (so no pool is pre-started then)
    # and the plan is processes. In run() the pool starts cold and the calling thread runs
    # items meanwhile; its first one waits until a worker has run an item, which only
    # happens if chunks are sent to the workers while the calling thread is busy.
    ck.shutdown()
    items = [(str(tmp_path), index, os.getpid()) for index in range(200)]
    with using_model(SERVER_UP), given(probe=probed(0.005, 0.0)):  # two items of 5 ms
        plan = ck.plan(wait_here_for_a_worker, items, classifier=lambda _fn, _sample: "cpu")
    assert (plan.mode, plan.kind, plan.workers) == ("process", "cpu", 2), plan.reason
    (tmp_path / "planned").touch()
    results = plan.run()
    assert "caller" in results
    assert "worker" in results
    assert set(results) <= {"probe", "caller", "worker"}


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="needs fork")
def test_a_pool_whose_workers_have_the_main_module_anyway_serves_tasks_that_need_it() -> None:
    # fork's workers are copies of this process: a task naming __main__ needs no new pool.
    ck.shutdown()
    ck.configure(start_method="fork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads about
        pool = _pools.process_pool(2)
        assert _pools.process_pool(2, main=True) is pool
