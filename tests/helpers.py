"""Module-level functions for tests: importable, so they pickle by reference and run in workers.

Tests import this as ``from helpers import ...`` (pytest puts tests/ on sys.path, and
worker processes get the parent's sys.path).
"""

from __future__ import annotations

import hashlib
import os
import select
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import concurrency_kit as ck
from concurrency_kit import _worker
from concurrency_kit.tasks import factorize

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


def nested_plan(_: object) -> tuple[str, str, bool]:
    """Plan and run an I/O call from inside a worker; report its mode and reason."""
    plan = ck.plan(wait_io, range(4))
    assert plan.run() == list(range(4))
    return plan.mode, plan.reason, _worker.in_worker()


def nested_forced_thread(x: int) -> int:
    """A worker that itself asks for mode='thread' (nested use of the shared pool)."""
    return sum(ck.run_parallel(double, range(3), "thread")) + x


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


def _record(item: tuple[str, int]) -> int:
    directory, index = item
    name = f"{index}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex}"
    fd = os.open(os.path.join(directory, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
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


@ck.gil_free
def declared_gil_free(x: int) -> int:
    return x


# --- multiprocessing's own helper processes ----------------------------------------------


def multiprocessing_helper_pids() -> set[int]:
    """Pids of the session-wide multiprocessing helpers: forkserver and resource tracker."""
    pids: set[int] = set()
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is not None:
        pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
        if pid is not None:
            pids.add(pid)
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None:
        pid = getattr(tracker._resource_tracker, "_pid", None)
        if pid is not None:
            pids.add(pid)
    return pids
