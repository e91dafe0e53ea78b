"""Warm, shared pools: created on first use, reused, rebuilt when broken, stopped at exit.

One thread pool and one process pool serve every call in the process (the process
pool is the library's own, ``_backends.worker_pool``: one worker can die, or be killed,
alone). A call limits its own concurrency by how many tasks it keeps in flight, so a
pool only ever grows:
asking for more workers than a pool has replaces it with a larger one (work already
queued on the old one still completes). What is known about them is kept in
``_backends.pool_state``; a process pool started ahead of a call, in the background, is
``_backends.prestart``'s.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .._core.config import get_config
from .guard import check_main_guard
from .item_calls import start_prepared_worker
from .launch import forkserver_context_without_main
from .mp_machinery import preload_worker_modules
from .pickling import needs_main, pickled, sendable
from .pool_state import Kept, shared
from .worker import init_process_worker, init_thread_worker
from .worker_pool import WorkerPool

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from .item_calls import Prepared
    from .prestart import Prestart
    from .stop_tokens import Board

T = TypeVar("T")

__all__ = [
    "discard_process_pool",
    "forkserver_started",
    "kill_process_pool",
    "new_process_pool",
    "prepared_pool",
    "process_pool",
    "process_pool_age",
    "process_pool_ready",
    "process_pool_ready_for",
    "process_pool_size",
    "shutdown",
    "stop_board",
    "submit_daemon",
    "submit_to_processes",
    "submit_to_threads",
    "thread_pool",
    "was_killed",
]


def thread_pool(workers: int) -> ThreadPoolExecutor:
    """Return the shared thread pool, with room for at least ``workers`` threads."""
    with shared.lock:
        if shared.threads is None or shared.thread_size < workers:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            old = shared.threads
            # Threads start only as tasks need them: room for the largest call costs nothing.
            shared.thread_size = max(workers, get_config().io_thread_cap())
            shared.threads = ThreadPoolExecutor(
                max_workers=shared.thread_size,
                thread_name_prefix="concurrency_kit",
                initializer=init_thread_worker,
            )
            if old is not None:
                old.shutdown(wait=False)  # its threads finish what they run, then exit
        return shared.threads


def submit_to_threads(capacity: int, fn: Callable[..., T], /, *args: Any) -> Future[T]:
    """Submit ``fn(*args)`` to the shared thread pool (of at least ``capacity`` threads).

    Another call may replace the pool (to grow it) between our reading it and
    submitting: then the new one takes the task.
    """
    while True:
        pool = thread_pool(capacity)
        try:
            return pool.submit(fn, *args)
        except RuntimeError:  # shut down by a replacement (or by shutdown()): try the current one
            if shared.threads is pool:
                raise


def submit_daemon(fn: Callable[..., T], /, *args: Any, name: str = "concurrency_kit-probe") -> Future[T]:
    """Run ``fn(*args)`` in a new daemon thread marked as a library worker.

    For the probe: its threads may still be running a long item when the call ends
    early (a failure, a timeout, Ctrl-C), and a pool thread would then hold up the
    interpreter's exit until that item finished. A daemon thread does not.
    """
    from concurrent.futures import Future  # noqa: PLC0415 - light, and already imported by the probe

    future: Future[T] = Future()

    def run() -> None:
        init_thread_worker()
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def submit_to_processes(
    workers: int,
    fn: Callable[..., T],
    /,
    *args: Any,
    main: bool = False,
    queue: bool = True,
    prepared: Prepared | None = None,
) -> tuple[WorkerPool, Future[T]]:
    """Submit ``fn(*args)`` to the shared process pool (``prepared``'s, with one); return the pool that took it too.

    As with threads, a pool replaced meanwhile hands the task on to the current one;
    work already queued on the old pool still completes there. ``main``: the task
    needs workers that import the main module (see ``needs_main``). ``queue``: it may
    wait behind a busy worker's task (``WorkerPool.submit``). ``prepared``: the call's
    initializer, which the workers of its own pool run as they start (``prepared_pool``).

    Raises:
        BrokenProcessPool: the pool could not start a worker; it is forgotten, so the
            next submission gets a fresh one.
        MainGuardMissingError: the task needs the main module, which runs this call
            outside its ``if __name__ == "__main__":`` guard (workers would run it again).
    """
    check_main_guard(main=main)
    while True:
        pool = process_pool(workers, main=main) if prepared is None else prepared_pool(workers, prepared, main=main)
        try:
            return pool, pool.submit(fn, *args, queue=queue)
        except BrokenProcessPool:
            discard_process_pool(pool)  # the next submission gets a fresh one
            raise
        except RuntimeError:  # shut down by a replacement (or by shutdown()): try the current one
            if shared.processes is pool or (prepared is not None and _kept(prepared) is pool):
                raise


def _kept(prepared: Prepared) -> WorkerPool | None:
    """The pool kept for ``prepared``'s initializer, if any."""
    with shared.lock:
        kept = shared.prepared.get(prepared.init.token)
        return None if kept is None else kept.pool


def new_process_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of its own (not the shared one), for an ``AutoExecutor``: its caller shuts it down.

    Its workers start by the configured method and watch this process, as the shared
    pool's do (they end with it); they import the main module, as the standard
    executor's do.
    """
    context = multiprocessing.get_context(get_config().resolved_start_method())
    with shared.lock:
        initargs = shared.worker_initargs()
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=init_process_worker, initargs=initargs
    )


def process_pool_age(workers: int) -> float | None:
    """Seconds since a process pool of at least ``workers`` workers was made, or ``None``."""
    with shared.lock:
        if shared.processes is None or shared.process_size < workers:
            return None
        return time.monotonic() - shared.born


def process_pool_ready(workers: int, *, main: bool = False) -> bool:
    """Whether a process pool of at least ``workers`` workers is up, every worker started.

    With ``main``, only a pool whose workers import the main module will do.
    """
    with shared.lock:
        return shared.serves(workers, main=main) and shared.processes in shared.warm


def process_pool_ready_for(workers: int, fn: Callable[..., Any]) -> bool:
    """``process_pool_ready``, for ``fn``: with workers that import the main module if it needs them."""
    return process_pool_ready(workers, main=needs_main(pickled(sendable(fn))))


def process_pool_size() -> int:
    """How many workers the current process pool has (0 when there is none)."""
    return shared.process_size


def forkserver_started() -> bool:
    """Whether this process already started a forkserver (new workers then start fast)."""
    return shared.forkserver_started


@overload
def process_pool(workers: int, *, main: bool = False) -> WorkerPool: ...
@overload
def process_pool(workers: int, generation: int, *, main: bool = False) -> WorkerPool | None: ...
def process_pool(workers: int, generation: int | None = None, *, main: bool = False) -> WorkerPool | None:
    """Return the shared process pool, with at least ``workers`` worker processes.

    Args:
        workers: the fewest workers the pool must have.
        generation: with a value, make a pool only if [`shutdown`][concurrency_kit.shutdown] has not been
            called since that generation was read (returns ``None`` otherwise).
        main: the pool's workers must import the main module. A pool replaced for
            that keeps its size, and later pools keep importing it (a program whose
            tasks come from its main module goes on sending them).
    """
    start_method = get_config().resolved_start_method()
    with shared.lock:
        current = shared.processes
        if current is not None and shared.serves(workers, main=main) and shared.start_method == start_method:
            return current
        if generation is not None and generation != shared.generation:
            return None
        if current is not None and shared.start_method == start_method:
            workers = max(workers, shared.process_size)
        shared.processes, shared.process_main = _new_pool(workers, start_method, main=main)
        shared.process_size = workers
        shared.start_method = start_method
        shared.born = time.monotonic()
    if current is not None:
        current.shutdown(wait=False)  # work already queued there still completes
    return shared.processes


#: Pools whose workers ran a call's initializer as they started, kept warm beside the
#: shared pool, one for each initializer and initargs, the least recently used going
#: first: a program that switches between two models keeps both loaded.
PREPARED_POOLS = 2


def prepared_pool(workers: int, prepared: Prepared, *, main: bool = False) -> WorkerPool:
    """The pool of ``workers`` (at least) whose workers each ran ``prepared``'s initializer as they started.

    Calls with the same initializer and initargs share it (its token says so); a call
    with others gets a pool of its own. ``main`` as for ``process_pool``.
    """
    token, start_method = prepared.init.token, get_config().resolved_start_method()
    with shared.lock:
        kept = shared.prepared.get(token)
        if (
            kept is not None
            and kept.pool.max_workers >= workers
            and (kept.main or not main)
            and kept.start_method == start_method
        ):
            shared.prepared.move_to_end(token)
            return kept.pool
        pool, with_main = _new_pool(workers, start_method, main=main, prepared=prepared)
        shared.prepared[token] = Kept(pool, with_main, start_method)
        shared.prepared.move_to_end(token)
        old = [kept.pool] if kept is not None else []
        while len(shared.prepared) > PREPARED_POOLS:
            old.append(shared.prepared.popitem(last=False)[1].pool)
    for each in old:
        each.shutdown(wait=False)  # work already queued there still completes
    return pool


def _new_pool(
    workers: int, start_method: str, *, main: bool, prepared: Prepared | None = None
) -> tuple[WorkerPool, bool]:
    """A pool by ``start_method`` (its workers set up, ``prepared``'s initializer run); whether they import main.

    Called under ``shared.lock``.
    """
    _register_exit_wait()
    shared.main_needed = shared.main_needed or main
    context = multiprocessing.get_context(start_method)
    with_main = True  # fork's workers have it already; spawn's import it
    if start_method == "forkserver":
        preload_worker_modules(context)
        shared.forkserver_started = True
        without = None if shared.main_needed else forkserver_context_without_main()
        if without is not None:
            context, with_main = without, False
    board = shared.stop_board()
    initializer: Callable[..., object] = init_process_worker
    initargs: tuple[Any, ...] = shared.worker_initargs()
    if prepared is not None:
        initializer, initargs = start_prepared_worker, (*initargs, prepared)
    pool = WorkerPool(workers, context, initializer, initargs, on_up=lambda pid: board.give_clocks([pid]))
    return pool, with_main


#: How long shutdown() waits for a pool being started in the background to be up.
PRESTART_JOIN_SECONDS = 30.0


def _register_exit_wait() -> None:
    """Have the interpreter's exit wait for a pool being started in the background.

    ``concurrent.futures`` stops every process pool at exit through
    ``threading._register_atexit``, before ``atexit`` handlers run; a pool stopped while
    its workers start leaves them failing noisily (a traceback on stderr). Hooks
    registered there run last-registered first, so ours, registered once the module is
    loaded, runs before its own. Called under ``shared.lock``.

    Raises:
        RuntimeError: the interpreter is already exiting (no pool should start now).
    """
    if shared.exit_wait_registered:
        return
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # not CPython 3.9+: atexit is the best there is
        atexit.register(_wait_for_prestart)
    else:
        register(_wait_for_prestart)
    shared.exit_wait_registered = True


def _stop_prestart() -> Prestart | None:
    """Have a pre-start in flight make and submit nothing more; return its thread, if any."""
    with shared.start_lock, shared.lock:
        shared.generation += 1
        return shared.prestart_in_flight()


def _wait_for_prestart() -> None:
    """Stop a pre-start in flight from submitting more, and wait for it to end."""
    warming = _stop_prestart()
    if warming is not None:
        warming.join(PRESTART_JOIN_SECONDS)


def discard_process_pool(pool: WorkerPool) -> None:
    """Forget ``pool`` (its workers were stopped, or could not start) so the next call builds a new one."""
    with shared.lock:
        if shared.processes is pool:
            shared.processes = None
            shared.process_size = 0
        for token, kept in list(shared.prepared.items()):
            if kept.pool is pool:
                del shared.prepared[token]
    pool.shutdown(wait=False, cancel_futures=True)


def kill_process_pool(pool: WorkerPool) -> None:
    """Kill ``pool``'s workers at once and forget it (a pre-start stopped as the interpreter exits).

    ``was_killed`` then tells calls that lost tasks there to send them again. A call that
    stops its own tasks kills just their workers (``WorkerPool.kill_running``).
    """
    with shared.lock:
        shared.killed.add(pool)
    discard_process_pool(pool)
    pool.kill()


def was_killed(pool: WorkerPool) -> bool:
    """Whether ``pool`` was killed whole on purpose (``kill_process_pool``), not by a crash."""
    with shared.lock:
        return pool in shared.killed


def shutdown(wait: bool = True) -> None:  # noqa: FBT001, FBT002 - mirrors Executor.shutdown
    """Stop the warm pools; the next call starts new ones.

    They also stop when the interpreter exits. A pool being started in the background
    stops there: it is not made if it was not yet, and one whose workers are starting
    is stopped once they are up (with ``wait``, before this returns; without, in the
    background), since workers stopped while they start fail noisily.

    Args:
        wait: wait for running work and for the workers to exit.
    """
    warming = _stop_prestart()
    if warming is not None and wait:
        warming.join(PRESTART_JOIN_SECONDS)
    with shared.lock:
        threads, processes = shared.threads, shared.processes
        shared.threads = shared.processes = None
        shared.thread_size = shared.process_size = 0
        shared.process_main = shared.main_needed = False
        prepared = [kept.pool for kept in shared.prepared.values()]
        shared.prepared.clear()
    if processes is not None and (wait or warming is None):  # else the pre-start stops it once started
        processes.shutdown(wait=wait, cancel_futures=True)
    for pool in prepared:
        pool.shutdown(wait=wait, cancel_futures=True)
    if threads is not None:
        threads.shutdown(wait=wait, cancel_futures=True)


def stop_board() -> Board:
    """The board of stop tokens that every worker process of this process's pools reads (made on first use)."""
    with shared.lock:
        return shared.stop_board()


atexit.register(shutdown)
