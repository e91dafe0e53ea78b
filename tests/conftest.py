"""Shared fixtures: a deadline for every test, and no threads or processes left behind.

Warm pools belong to the library and normally outlive a call, so after each test the
guard stops them with ``concurrency_kit.shutdown()`` and then requires that every
thread and child process the test started is gone. Two multiprocessing helpers are
allowed to stay, identified by pid rather than by name: the forkserver (it serves the
whole session) and the resource tracker. Their own children are not exempt, so worker
processes forked by the forkserver still count.
"""

from __future__ import annotations

import faulthandler
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import settings

import concurrency_kit as ck
from concurrency_kit._api import explain as _explain
from concurrency_kit._api import planning as _planning
from concurrency_kit._core import costmodel as _costmodel
from concurrency_kit._core.costmodel import CostModel, using_model
from concurrency_kit._decide import classify as _classify
from helpers import multiprocessing_helper_pids
from measured import COLD

settings.register_profile("concurrency_kit", deadline=None, database=None, print_blob=True)
settings.load_profile("concurrency_kit")

#: Seconds a test body may run before it is interrupted (the slowest takes a few).
TEST_DEADLINE = 60
#: Seconds the clean-up may take to see threads and workers exit.
CLEANUP_DEADLINE = 20

MODES = ("auto", "serial", "thread", "process")  # the public contract spells them out


class DeadlineExceededError(Exception):
    """A test (or its clean-up) ran past its deadline: probably a deadlock."""


def _on_alarm(signum: int, frame: object) -> None:
    faulthandler.dump_traceback(all_threads=True)
    raise DeadlineExceededError("deadline exceeded: see the thread dump above")


def _live_children() -> list[psutil.Process]:
    live = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:  # exited, waiting to be reaped
                live.append(child)
        except psutil.NoSuchProcess:
            pass
    return live


@pytest.fixture(autouse=True)
def isolation() -> Iterator[None]:
    """Deadline, restored global state (the cost model's figures unrefined), and nothing left running after."""
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in _live_children()}
    config = ck.get_config()
    with _classify._registry_lock:
        registry = _classify._registry
    declared = dict(_classify._declared)
    _costmodel.OBSERVED.clear()  # each test starts from the cost model's starting values

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(TEST_DEADLINE)
    try:
        yield
    finally:
        signal.alarm(CLEANUP_DEADLINE)
        try:
            _clean_up(threads_before, children_before)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
            ck.configure(start_method=config.start_method, max_io_workers=config.max_io_workers)
            with _classify._registry_lock:
                _classify._registry = registry
            _classify._declared.clear()
            _classify._declared.update(declared)


def _clean_up(threads_before: set[threading.Thread], children_before: set[int]) -> None:
    # A pool being prestarted in the background is finished first: it ends on its own,
    # and shutting down before it has made its pool would race with it (see
    # test_pools.py::test_shutdown_stops_a_pool_being_prestarted for that race).
    for thread in set(threading.enumerate()) - threads_before:
        if thread.name.startswith("concurrency_kit-prestart"):
            thread.join()
    ck.shutdown(wait=True)

    new_threads = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    for thread in new_threads:
        thread.join(timeout=5)  # pools shut down without waiting end soon after
    left = [t for t in new_threads if t.is_alive()]
    assert not left, f"threads left running after the test: {[t.name for t in left]}"

    allowed = children_before | multiprocessing_helper_pids()
    extra = [p for p in _live_children() if p.pid not in allowed]
    _, alive = psutil.wait_procs(extra, timeout=5)  # workers of discarded pools exit soon
    alive = [p for p in alive if p.pid in {c.pid for c in _live_children()}]
    assert not alive, f"child processes left running after the test: {[(p.pid, p.cmdline()) for p in alive]}"


@pytest.fixture
def release(tmp_path: Path) -> Iterator[str]:
    """A path whose creation lets waiting items finish (``helpers.wait_for_release``); created at teardown anyway."""
    path = str(tmp_path / "release")
    try:
        yield path
    finally:
        Path(path).touch()


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> Iterator[CostModel]:
    """Decisions that do not depend on this machine: 2 usable CPUs, and the figures of :data:`measured.COLD`.

    With a measurement given (``measured.given``), auto's choice then follows from the figures alone.
    """
    for planner in (_planning, _explain):  # the decision's, and the estimates explain prints
        monkeypatch.setattr(planner, "planning_cpus", lambda: 2)
    with using_model(COLD) as model:
        yield model


@pytest.fixture
def without_cloudpickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if cloudpickle were not installed: lambdas and closures cannot go to worker processes."""
    from concurrency_kit._backends import pickling as _pickling

    monkeypatch.setattr(_pickling, "_cloudpickle", None)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Every mode a caller may ask for, one test each."""
    return request.param


@pytest.fixture
def calls_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty directory where helpers.record_* leave one file per call."""
    return str(tmp_path_factory.mktemp("calls"))
