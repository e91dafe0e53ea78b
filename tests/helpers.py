"""Module-level functions for tests: importable, so they pickle by reference and run in workers.

Tests import this as ``from helpers import ...`` (pytest puts tests/ on sys.path, and
worker processes get the parent's sys.path).
"""

from __future__ import annotations

import ctypes
import faulthandler
import hashlib
import importlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

import concurrency_kit as ck
from concurrency_kit._backends import worker as _worker
from concurrency_kit.tasks import factorize

#: For tests of choices that only a machine with two CPUs or more makes (on one, auto
#: runs CPU work in a loop, and says so).
needs_two_cpus = pytest.mark.skipif(ck.usable_cpus() < 2, reason="needs two usable CPUs")

#: Set by .ci/run, which installs the whole [test] extra: there a missing dependency is
#: a failure, not a skip (a skipped test would hide a broken install step).
STRICT_DEPENDENCIES = os.environ.get("CONCURRENCY_KIT_STRICT_TESTS") == "1"


def extra_module(name: str) -> ModuleType:
    """Import ``name``, a module of the [test] extra: without it the test skips, except under .ci/run."""
    if STRICT_DEPENDENCIES:
        return importlib.import_module(name)
    return pytest.importorskip(name)


#: A child script's prelude: auto decides on given figures, not a busy machine's: 2 CPUs,
#: a pool's start from a running forkserver (40 ms), and computing items, as the probe
#: finds them 20 ms into the first two.
GIVEN = """
import attrs
from concurrency_kit._api import planning as _planning
from concurrency_kit._core.costmodel import STARTING, using_model
from concurrency_kit._backends.given import Given, using_measurements
from concurrency_kit._decide.probe import Measurement
_planning.planning_cpus = lambda: 2
_forkserver = STARTING["forkserver"]
_in_force = [  # kept for the script's life: a block's end (its context manager collected) would undo it
    using_model(attrs.evolve(_forkserver, cold_start=_forkserver.restart)),
    using_measurements(Given(probe=Measurement(2, 0, 0.02, 0.02, 0.02, 1.0, 1.0, exact=False))),
]
for _block in _in_force:
    _block.__enter__()
"""


def warm_process_pool(workers: int, fn: Any = None) -> None:
    """Start the shared process pool of ``workers`` (for ``fn``), and wait until every worker has answered.

    A busy machine can leave a worker starting past the pre-start's warm-up rounds: the
    pool is then up but not ready, and it is warmed again.
    """
    from concurrency_kit._backends import pools as _pools
    from concurrency_kit._backends.pickling import needs_main, pickled
    from concurrency_kit._backends.prestart import prestart_process_pool

    main = needs_main(None if fn is None else pickled(fn))
    for _ in range(5):
        starting = prestart_process_pool(workers, fn)
        if starting is not None:
            starting.join(timeout=60)
        if _pools.process_pool_ready(workers, main=main):
            return
    raise AssertionError(f"the process pool of {workers} was not ready after five warm-ups")


# --- plain work ------------------------------------------------------------------------


def double(x: int) -> int:
    return 2 * x


class HelperError(Exception):
    """A custom error type that must reach the caller as itself."""


def fail_on_13(x: int) -> int:
    if x == 13:
        raise HelperError(f"item {x} is unlucky")
    return 2 * x


def reciprocal(x: int) -> float:
    return 1 / x


def generate_then_fail(stop: int):
    """Yield 0 … stop-1, then raise (an items generator that breaks midway)."""
    yield from range(stop)
    raise LookupError("the items ran out badly")


def worker_pid(_: object) -> int:
    return os.getpid()


def parent_pid(_: object) -> int:
    return os.getppid()


def exit_on_3(x: int) -> int:
    """Kill the worker process abruptly on item 3 (breaks a process pool)."""
    if x == 3:
        os._exit(1)
    return x


def return_lock(_: object) -> threading.Lock:
    """A result that cannot be pickled."""
    return threading.Lock()


def thread_limits(_: object) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in _worker._THREAD_LIMIT_VARIABLES}


def wait_io(item: object = None) -> object:
    """Block 10 ms in select: waiting, not computing."""
    select.select([], [], [], 0.01)
    return item


class Dummy:
    """An object a weak reference can watch."""


def make_dummy(_: object) -> Dummy:
    return Dummy()


def thread_after_wait(milliseconds: int) -> str:
    """Wait ``milliseconds`` (the GIL released), then name the thread that ran it."""
    time.sleep(milliseconds / 1000)
    return threading.current_thread().name


def compute(milliseconds: int) -> int:
    """Compute for ``milliseconds`` of this thread's CPU time, holding the GIL."""
    began = time.thread_time()
    while time.thread_time() - began < milliseconds / 1000:
        pass
    return milliseconds


def wait_then_compute(milliseconds: int) -> int:
    """Block 20 ms in select, then compute for ``milliseconds`` of CPU time, holding the GIL."""
    select.select([], [], [], 0.02)
    return compute(milliseconds)


def nested_plan(_: object) -> tuple[str, str, bool]:
    """Plan and run an I/O call from inside a worker; report its mode and reason."""
    plan = ck.plan(wait_io, range(4))
    assert plan.run() == list(range(4))
    return plan.mode, plan.reason, _worker.in_worker()


def nested_forced_thread(x: int) -> int:
    """A worker that itself asks for mode='thread' (nested use of the shared pool)."""
    return sum(ck.run_parallel(double, range(3), "thread")) + x


def factorize_and_pid(number: int) -> tuple[list[int], int]:
    """Factorize ``number``; say which process did it."""
    return factorize(number), os.getpid()


def spin_and_pid(count: int) -> tuple[int, int]:
    """Pure-Python arithmetic, ``count`` iterations (3,000: ~0.3 ms); say which process did it."""
    total = 0
    for i in range(count):
        total += i * i % 7
    return total, os.getpid()


def factorize_first(item: tuple[int, Any]) -> list[int]:
    """Factorize ``item[0]``; ``item[1]`` is a passenger (maybe unpicklable)."""
    return factorize(item[0])


def overlap(item: tuple[str, int]) -> int:
    """Return how many calls (this one included) were running when this one started.

    Each call marks its start and end with files in a shared directory, so it works
    across processes. It holds on for 0.2 s (a wait, not a sync: it only gives a second
    concurrent call the chance to show up; a correct one-at-a-time run passes regardless).
    """
    directory, index = Path(item[0]), item[1]
    (directory / f"start-{index}").touch()
    started = len(list(directory.glob("start-*")))
    ended = len(list(directory.glob("end-*")))
    select.select([], [], [], 0.2)
    (directory / f"end-{index}").touch()
    return started - ended


# --- counting calls across threads and processes ---------------------------------------
# Each item is (directory, index); every call creates a new, uniquely named file, so the
# number of files per index is the number of calls, whichever process made them.


#: Notified at every record made in this process, so that an item waiting for others
#: to start wakes at once when they run in this process (those elsewhere are polled).
_recorded = threading.Condition()


def _record(item: tuple[str, int]) -> int:
    directory, index = item
    name = f"{index}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex}"
    fd = os.open(os.path.join(directory, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    with _recorded:
        _recorded.notify_all()
    return index


def record_trivial(item: tuple[str, int]) -> int:
    return _record(item)


def record_io(item: tuple[str, int]) -> int:
    select.select([], [], [], 0.01)
    return _record(item)


def record_cpu(item: tuple[str, int]) -> int:
    factorize(400_000 + item[1])  # tens of ms of bytecode holding the GIL
    return _record(item)


def record_gil_free(item: tuple[str, int]) -> int:
    hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 20_000)  # C code, GIL released
    return _record(item)


def calls_per_index(directory: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for path in directory.iterdir():
        index = int(path.name.split(".", 1)[0])
        counts[index] = counts.get(index, 0) + 1
    return counts


# --- declared kinds ---------------------------------------------------------------------


@ck.io_bound
def declared_io(x: int) -> int:
    return x


@ck.cpu_bound
def declared_cpu(x: int) -> int:
    return x


@ck.cpu_bound
def declared_compute(milliseconds: int) -> int:
    """:func:`compute`, declared CPU-bound."""
    return compute(milliseconds)


@ck.gil_free
def declared_gil_free(x: int) -> int:
    return x


# --- multiprocessing's own helper processes ----------------------------------------------


def multiprocessing_helper_pids() -> set[int]:
    """Pids of the session-wide multiprocessing helpers: forkserver and resource trackers."""
    pids: set[int] = set()
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is not None:
        pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
        if pid is not None:
            pids.add(pid)
    # loky (test_executors.py) keeps a resource tracker of its own for the session.
    for name in ("multiprocessing.resource_tracker", "loky.backend.resource_tracker"):
        tracker = sys.modules.get(name)
        if tracker is not None:
            pid = getattr(tracker._resource_tracker, "_pid", None)
            if pid is not None:
                pids.add(pid)
    return pids


# --- fault injection (test_reliability.py) ----------------------------------------------
# Items that wait or spin never do so for longer than WAIT_LIMIT seconds, so a test that
# fails before releasing them still ends. They wait for a "release" file to exist: an
# Event that works across processes.

#: The longest any helper below waits or spins.
WAIT_LIMIT = 30.0


def wait_for_path(path: str, limit: float = WAIT_LIMIT) -> bool:
    """Poll until ``path`` exists (True) or ``limit`` seconds pass (False)."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        select.select([], [], [], 0.005)
    return True


def started_items(directory: str) -> list[tuple[int, int]]:
    """``(index, pid)`` of every call recorded by ``_record`` in ``directory``."""
    found = []
    for name in os.listdir(directory):
        index, pid = name.split(".")[:2]
        found.append((int(index), int(pid)))
    return found


def still_running(pids: set[int]) -> set[int]:
    """The pids among ``pids`` that still run (a zombie has stopped running)."""
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def wait_until_gone(pids: set[int], limit: float) -> set[int]:
    """Poll until none of ``pids`` runs or ``limit`` seconds pass; return those still running."""
    deadline = time.monotonic() + limit
    while (alive := still_running(pids)) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling, not synchronisation
    return alive


def wait_for_starts(
    directory: str, count: int, limit: float = 30.0, child: subprocess.Popen[str] | None = None
) -> None:
    """Poll until ``count`` items have recorded their start in ``directory``."""
    deadline = time.monotonic() + limit
    while len(os.listdir(directory)) < count:
        if child is not None and child.poll() is not None:
            _, err = child.communicate()
            pytest.fail(f"the child exited early ({child.returncode}): {err}")
        if time.monotonic() > deadline:
            pytest.fail(f"only {len(os.listdir(directory))} of {count} items started within {limit} s")
        time.sleep(0.01)  # polling, not synchronisation


def wait_for_release(item: tuple[str, int, str]) -> int:
    """Record the start of ``(directory, index, release)``, then wait for ``release`` (up to 30 s)."""
    directory, index, release = item
    _record((directory, index))
    wait_for_path(release)
    return index


def released(item: tuple[str, int, str]) -> bool:
    """Record the start of ``(directory, index, release)``, then wait for ``release``: whether it came (within 30 s)."""
    directory, index, release = item
    _record((directory, index))
    return wait_for_path(release)


def spin_until_released(item: tuple[str, int, str]) -> int:
    """Record the start, then burn CPU until ``release`` exists (up to 30 s)."""
    directory, index, release = item
    _record((directory, index))
    end = time.monotonic() + WAIT_LIMIT
    while not os.path.exists(release) and time.monotonic() < end:
        pass
    return index


def compute_until_released(item: tuple[str, int, str]) -> int:
    """Record the start, then compute in bytecode, holding the GIL, until ``release`` exists (up to 30 s).

    Unlike :func:`spin_until_released`, it looks for the file only every 10 ms: a
    look is a system call, which lets the GIL go, and auto would see the items as
    partly GIL-free.
    """
    directory, index, release = item
    _record((directory, index))
    end = time.monotonic() + WAIT_LIMIT
    look = 0.0
    while (now := time.monotonic()) < end:
        if now >= look:
            if os.path.exists(release):
                break
            look = now + 0.010
    return index


#: A search that fails after backtracking over the whole text: about half a millisecond
#: in the regular expression engine, C code that keeps the GIL throughout.
_BACKTRACKING = re.compile(r"a*b")
_NO_MATCH = "a" * 1000


def backtrack_between_sleeps(rounds: int) -> int:
    """``rounds`` short C calls that keep the GIL, each followed by a 50 µs sleep that lets it go.

    Like parsing files read one by one: the GIL monitor, whose wake-up is due while a
    C call runs, gets the GIL at the next sleep, less than its lateness threshold later.
    """
    for _ in range(rounds):
        _BACKTRACKING.search(_NO_MATCH)
        time.sleep(0.00005)
    return rounds


def backtrack(rounds: int) -> int:
    """``rounds`` of the C calls of :func:`backtrack_between_sleeps`, without the sleeps."""
    for _ in range(rounds):
        _BACKTRACKING.search(_NO_MATCH)
    return rounds


def hold_gil_in_c(item: tuple[str, int, str]) -> int:
    """Record the start, then sleep in one C call that keeps the GIL (for WAIT_LIMIT seconds).

    ``ctypes.PyDLL`` calls do not release the GIL: no other thread of the process runs
    meanwhile, and nothing but a signal's default action can end the process early.
    """
    directory, index, _ = item
    _record((directory, index))
    ctypes.PyDLL(None).sleep(int(WAIT_LIMIT))
    return index


def fail_first_others_wait(item: tuple[str, int, str, int, int]) -> int:
    """Item 0, and any item the test's own main thread runs, raise; the others wait.

    ``item`` is ``(directory, index, release, caller_pid, others)``. Every call records
    its start in ``directory``. An item that raises first waits (up to 10 s) until
    ``others`` other items have started, so that every worker of the call holds work
    when the failure comes. An item run by a worker (a pool thread, a probe thread, a
    worker process) waits for ``release``; the caller's thread never does (in thread
    mode it drains items too, and it must not block the call).
    """
    directory, index, release, caller_pid, others = item
    _record((directory, index))
    in_caller = os.getpid() == caller_pid and threading.current_thread() is threading.main_thread()
    if index == 0 or in_caller:
        deadline = time.monotonic() + 10
        with _recorded:  # a start in this process wakes it at once: auto's probe must not decide first
            while len(os.listdir(directory)) < others + 1 and time.monotonic() < deadline:
                _recorded.wait(0.005)
        raise HelperError(f"item {index} fails at once")
    wait_for_path(release)
    return index


def record_fail_on_multiples_of_3(item: tuple[str, int]) -> int:
    """Record the call; raise HelperError on every index divisible by 3."""
    index = _record(item)
    if index % 3 == 0:
        raise HelperError(f"item {index} is a multiple of 3")
    return index


def record_fail_on_3(item: tuple[str, int]) -> int:
    """Record the call; raise HelperError on item 3."""
    index = _record(item)
    if index == 3:
        raise HelperError("item 3 fails")
    return index


def record_then_wait_from_1(item: tuple[str, int, str]) -> int:
    """Record the call of ``(directory, index, release)``; from item 1 on, wait for ``release`` (up to 30 s)."""
    directory, index, release = item
    _record((directory, index))
    if index >= 1:
        wait_for_path(release)
    return index


def fail_on_long(item: str) -> int:
    """Raise ValueError for a string longer than 20 characters."""
    if len(item) > 20:
        raise ValueError(f"too long: {len(item)} characters")
    return len(item)


def sigkill_on_3(x: int) -> int:
    """Kill the worker process with SIGKILL on item 3."""
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


#: The items :func:`die_on_culprits` dies on: two in one chunk of ten, one at a chunk's start.
CULPRITS = (40, 133, 134, 251)


def die_on_culprits(x: int) -> int:
    """Kill the worker process on the items of :data:`CULPRITS` (``os._exit`` on odd ones, SIGKILL on even)."""
    if x in CULPRITS:
        if x % 2:
            os._exit(1)
        os.kill(os.getpid(), signal.SIGKILL)
    return -x


def negate(x: int) -> int:
    """What :func:`die_on_culprits` returns, without dying."""
    return -x


def segfault_on_3(x: int) -> int:
    """Crash the worker process with a real segmentation fault on item 3 (reads address 0)."""
    if x == 3:
        ctypes.string_at(0)
    return x


def faulthandler_sigsegv_on_3(x: int) -> int:
    """Crash the worker process with SIGSEGV raised by faulthandler on item 3."""
    if x == 3:
        faulthandler._sigsegv()
    return x


def return_lock_on_5(x: int) -> object:
    """A result that cannot be pickled, on item 5 only."""
    return threading.Lock() if x == 5 else x


class TwoArgumentError(Exception):
    """Pickles, but cannot be rebuilt by unpickling: ``__init__`` needs two arguments."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def raise_unrebuildable_on_3(x: int) -> int:
    """Raise an exception that pickles in the worker but cannot be unpickled, on item 3."""
    if x == 3:
        raise TwoArgumentError("item 3 failed", 3)
    return x


def return_unrebuildable_on_3(x: int) -> object:
    """Return a value that pickles in the worker but cannot be unpickled, on item 3."""
    return TwoArgumentError("a value", 3) if x == 3 else x


def slow_if_positive(x: int) -> int:
    """Trivial for negative items; a 20 ms wait for positive ones (work that drifts)."""
    if x >= 0:
        select.select([], [], [], 0.02)
    return x


def wait_here_for_a_worker(item: tuple[str, int, int]) -> str:
    """In a worker, mark that one ran; in the parent, sleep 5 ms (measured), or, once the
    "planned" file exists (run() has begun), wait until a worker has run an item."""
    directory, _, parent = item
    if os.getpid() != parent:
        Path(directory, "worker-ran").touch()
        return "worker"
    if not os.path.exists(os.path.join(directory, "planned")):
        select.select([], [], [], 0.005)  # waits without the GIL: no pool is pre-started
        return "probe"
    if not wait_for_path(os.path.join(directory, "worker-ran"), limit=20):
        raise HelperError("no worker ran an item while the calling thread was running one")
    return "caller"


def compute_then_wait(milliseconds: int) -> int:
    """Compute for ``milliseconds`` of CPU time, holding the GIL, then block 20 ms in select."""
    compute(milliseconds)
    select.select([], [], [], 0.02)
    return milliseconds


def fail_twice_with_connection_error(item: tuple[str, int]) -> int:
    """Record the call; the first two calls of each item raise ``ConnectionError``."""
    directory, index = item
    _record(item)
    if calls_per_index(Path(directory)).get(index, 0) <= 2:
        raise ConnectionError(f"item {index} is not reachable yet")
    return index


def record_value_error(item: tuple[str, int]) -> int:
    """Record the call; raise ``ValueError``."""
    _record(item)
    raise ValueError(f"item {item[1]} is wrong")


def record_exit_on(item: tuple[str, int, int]) -> int:
    """Record the call; kill the worker process when the item is the culprit."""
    directory, index, culprit = item
    _record((directory, index))
    if index == culprit:
        os._exit(3)
    return index


def hang_on(item: tuple[str, int, str, tuple[int, ...]]) -> int:
    """Record the call; an item of ``hung`` waits for ``release`` (up to 30 s), the others return at once."""
    directory, index, release, hung = item
    _record((directory, index))
    if index in hung:
        wait_for_path(release)
    return index


def hang_hard_on(item: tuple[str, int, tuple[int, ...]]) -> int:
    """Record the call; an item of ``hung`` blocks SIGTERM and SIGINT and spins for good (only SIGKILL ends it)."""
    directory, index, hung = item
    _record((directory, index))
    if index in hung:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        while True:
            pass
    return index


def hang_on_first_attempt(item: tuple[str, int, str]) -> int:
    """Record the call; the first call of each item waits for ``release`` (up to 30 s), later ones return."""
    directory, index, release = item
    _record((directory, index))
    if calls_per_index(Path(directory)).get(index, 0) == 1:
        wait_for_path(release)
    return index


def sleep_for(seconds: float) -> float:
    """Sleep ``seconds`` (an item that blocks, as I/O does); return them."""
    time.sleep(seconds)
    return seconds


#: What ``load_model`` set up in this worker process (or thread), for ``use_model`` to read.
model: dict[str, Any] = {}
_model_local = threading.local()


def load_model(directory: str, name: str) -> None:
    """An initializer: record its run (pid and thread) in ``directory``, and set up ``name`` here."""
    marker = f"{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex}"
    Path(directory, marker).touch()
    model["name"] = name
    _model_local.name = name


def use_model(index: int) -> tuple[str, str | None, int]:
    """An item that needs the model: its name (module global), its name in this thread (or None), its pid."""
    select.select([], [], [], 0.005)  # long enough that every worker takes some items
    return model.get("name", ""), getattr(_model_local, "name", None), os.getpid()


def use_model_crash_on_10(index: int) -> tuple[str, str | None, int]:
    """``use_model``; item 10 kills its worker."""
    if index == 10:
        os._exit(3)
    return use_model(index)


def failing_initializer(*args: object) -> None:
    """An initializer that cannot set up its worker."""
    raise OSError(f"no model here ({args})")


def initializer_runs(directory: str) -> list[tuple[int, int]]:
    """``(pid, thread id)`` of each run of ``load_model`` recorded in ``directory``."""
    return [(int(name.split(".")[0]), int(name.split(".")[1])) for name in os.listdir(directory)]


def slow_initializer(seconds: float) -> None:
    """An initializer that takes ``seconds`` (a model that loads slowly), then sets up "slow"."""
    time.sleep(seconds)
    model["name"] = "slow"


def pid_after_a_moment(index: int) -> int:
    """This worker's pid, after 10 ms (long enough that every worker takes items)."""
    select.select([], [], [], 0.01)
    return os.getpid()


def record_die_on_13(item: tuple[str, int]) -> int:
    """``record_trivial``; item 13 then kills its worker process."""
    index = _record(item)
    if index == 13:
        os._exit(1)
    return index
