"""A process pool started, and warmed, in the background before a call needs it.

``prestart_process_pool`` returns at once; a ``Prestart`` thread makes the shared
process pool (``_backends.pools``) and runs warm-up tasks on it until each worker has
answered once, so that the call that then sends work finds every worker up. Meanwhile
the thread lowers the GIL's switch interval (it needs the GIL back after each of its
many system calls, behind threads running items), and says when a first worker is up.
A ``shutdown`` that comes meanwhile stops it: it makes nothing, or stops the pool once
its workers are up.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, wait
from typing import TYPE_CHECKING, Any

from .._core.costmodel import observe_pool_start
from .._core.errors import MainGuardMissingError
from .guard import check_main_guard
from .pickling import needs_main, pickled, sendable
from .pool_state import shared
from .pools import kill_process_pool, prepared_pool, process_pool, process_pool_ready
from .worker import warm_up_worker

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .item_calls import Prepared
    from .worker_pool import WorkerPool

__all__ = ["QUICK_SWITCH_INTERVAL", "Prestart", "prestart_prepared_pool", "prestart_process_pool"]


def prestart_process_pool(workers: int, fn: Callable[..., Any] | None = None) -> Prestart | None:
    """Start a process pool of ``workers`` in a background thread, unless one is ready.

    Returns at once: the pool and its workers are made in the background thread, so
    the caller is not held up. Given ``fn``, the function the pool is started for,
    each new worker imports its module while it starts (and the main module only when
    ``fn`` comes from it).

    Returns:
        The thread starting the pool (one already in flight is not repeated), or
        ``None`` when a pool of that size is ready.
    """
    function = None if fn is None else pickled(sendable(fn))
    main = _main_for(function)
    if main is None or process_pool_ready(workers, main=main):
        return None
    with shared.lock:
        if (warming := shared.prestart_in_flight()) is not None:
            return warming
        thread = Prestart(workers, shared.generation, function)
        shared.warming = thread
        thread.start()  # under the lock, so that nobody sees it set but not yet alive
    return thread


def prestart_prepared_pool(workers: int, prepared: Prepared, fn: Callable[..., Any]) -> WorkerPool | None:
    """Start the pool kept for ``prepared``'s initializer (for ``fn``), unless it is up: the pool, while it starts.

    Returns at once: its workers start (and run the initializer) in the pool's own thread.

    Returns:
        The pool, while no worker of it is up yet (``WorkerPool.up``); ``None`` once one
        is, or where the main module lacks its guard (the first submission says so).
    """
    main = _main_for(pickled(sendable(fn)))
    if main is None:
        return None
    pool = prepared_pool(workers, prepared, main=main)
    return None if pool.up.is_set() else pool


def _main_for(function: bytes | None) -> bool | None:
    """Whether workers for ``function`` (pickled) import the main module; ``None``: they cannot (no main guard)."""
    main = needs_main(function)
    try:
        check_main_guard(main=main)
    except MainGuardMissingError:
        return None  # its workers would run the script again
    return main


class Prestart(threading.Thread):
    """The thread that starts and warms a process pool in the background.

    Its ``up`` event says when work sent to the pool is taken at once: a first
    worker has answered (the others may still be starting), or the pre-start is over
    (whatever became of it).
    """

    def __init__(self, workers: int, generation: int, function: bytes | None) -> None:
        super().__init__(name="concurrency_kit-prestart", daemon=True)
        self._workers, self._generation, self._function = workers, generation, function
        #: Set once a worker of the new pool has answered, or the pre-start ended.
        self.up = threading.Event()

    def run(self) -> None:
        try:
            _spawn(self._workers, self._generation, self._function, self.up)
        finally:
            self.up.set()


def _spawn(workers: int, generation: int, function: bytes | None, up: threading.Event) -> None:
    with _quick_switches() as put_back:
        began, before, server_running = time.monotonic(), shared.processes, shared.forkserver_started
        try:
            pool = process_pool(workers, generation, main=needs_main(function))
        except RuntimeError:  # the interpreter began to exit (no pool can start now): nothing to warm
            return
        if pool is None:
            return  # shutdown() came first

        def first_up() -> None:
            put_back()  # the workers are started: what is left needs the GIL rarely
            up.set()
            if pool is not before:  # a pool made here: the cost model learns what its start took
                observe_pool_start(
                    time.monotonic() - began, start_method=shared.start_method, server_was_running=server_running
                )

        try:
            warm = _warm_up(pool, workers, generation, _reference(function), first_up)
        except RuntimeError:
            # The pool was shut down meanwhile, or the interpreter began to exit in the middle
            # of the first submission, which then started workers but (Python 3.12+) not the
            # thread that would wait for them: kill them before they fail noisily.
            kill_process_pool(pool)
            return
    if warm:
        with shared.lock:
            shared.warm.add(pool)
    with shared.lock:
        stale = generation != shared.generation
    if stale:  # shutdown() or the exit came while the workers started, and left the pool to us
        # Waiting here (in the background) also keeps its manager thread from closing
        # while the interpreter's exit wakes it (a race in Python 3.11's executor).
        pool.shutdown(wait=True)


#: Warming a pool takes rounds of warm-up tasks until every worker has run one ...
WARM_UP_ROUNDS = 100
#: ... pausing this long between rounds while a worker is still starting.
WARM_UP_PAUSE = 0.005


def _warm_up(
    pool: WorkerPool, workers: int, generation: int, function: bytes | None, on_up: Callable[[], object]
) -> bool:
    """Run warm-up tasks on ``pool`` until each of its ``workers`` workers has run one.

    ``function`` (pickled by reference, or ``None``) is the function the pool is started
    for: each worker imports its module now, not on its first chunk. ``on_up`` is called
    as soon as the first task comes back: a worker is up, and work sent now is taken
    (every worker was started by then, by the first round's submissions).

    One round of ``workers`` tasks is not enough: the first worker up can take them all
    while another is still starting. Stops, returning ``False``, once [`shutdown`][concurrency_kit.shutdown]
    (or the interpreter's exit) has begun: a submission then could start workers that
    nothing waits for. Returns whether every worker answered.

    Raises:
        RuntimeError: the pool was shut down meanwhile.
    """
    seen: set[int] = set()
    for round_ in range(WARM_UP_ROUNDS):
        with shared.start_lock:  # so that shutdown() cannot begin between the check and the submissions
            if generation != shared.generation:
                return False
            futures = [pool.submit(warm_up_worker, function) for _ in range(workers)]
        if not round_:
            if not _waited(futures, generation, FIRST_COMPLETED):
                return False
            on_up()
        if not _waited(futures, generation, ALL_COMPLETED):
            return False
        for future in futures:
            if future.cancelled() or future.exception() is not None:
                return False
            seen.add(future.result())
        if len(seen) >= workers:
            return True
        time.sleep(WARM_UP_PAUSE)
    return False


#: A warm-up waiting for its tasks looks this often whether shutdown() (or the exit) began.
WARM_UP_POLL_SECONDS = 0.05


def _waited(futures: list[Future[Any]], generation: int, return_when: str) -> bool:
    """Wait for ``futures`` (``return_when`` as ``concurrent.futures.wait``); ``False`` once a shutdown began.

    A pool killed or shut down as the interpreter exits may never settle its tasks' futures
    (its manager thread can no longer start): a warm-up must not wait for them for ever,
    nor keep the exit waiting.
    """
    while True:
        done, pending = wait(futures, timeout=WARM_UP_POLL_SECONDS, return_when=return_when)
        if not pending or (return_when == FIRST_COMPLETED and done):
            return True
        if generation != shared.generation:
            return False


#: A function pickled by reference takes no more than this (its module and name).
_REFERENCE_BYTES = 1024


def _reference(function: bytes | None) -> bytes | None:
    """A pickled function, when it pickled by reference (module and name): else ``None``."""
    return function if function is not None and len(function) <= _REFERENCE_BYTES else None


#: While a pool starts in the background, the thread starting it needs the GIL back
#: after each of its many system calls, and waits up to a switch interval (5 ms) each
#: time behind the threads running items: a pool that starts in ~80 ms idle took ~210
#: ms beside one busy thread. The interval is this meanwhile (~115 ms), until a first
#: worker is up, then put back.
QUICK_SWITCH_INTERVAL = 0.001


@contextlib.contextmanager
def _quick_switches() -> Generator[Callable[[], None], None, None]:
    """Lower the GIL switch interval to ``QUICK_SWITCH_INTERVAL`` meanwhile.

    Put back at the end, or sooner by calling the function yielded; unless somebody set
    another meanwhile (theirs then stands).
    """
    before = sys.getswitchinterval()
    if before <= QUICK_SWITCH_INTERVAL:
        yield lambda: None
        return
    sys.setswitchinterval(QUICK_SWITCH_INTERVAL)

    def put_back() -> None:
        if sys.getswitchinterval() == QUICK_SWITCH_INTERVAL:
            sys.setswitchinterval(before)

    try:
        yield put_back
    finally:
        put_back()
