"""Warm, shared pools: created on first use, reused, rebuilt when broken, stopped at exit.

One thread pool and one process pool serve every call in the process. A call limits
its own concurrency by how many tasks it keeps in flight, so a pool only ever grows:
asking for more workers than a pool has replaces it with a larger one (work already
queued on the old one still completes).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Generator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .._core.config import get_config
from .._core.costmodel import observe_pool_start
from .._core.errors import MainGuardMissingError
from .guard import GUARD_FIX, main_guard_missing
from .launch import forkserver_context_without_main
from .pickling import pickled, sendable
from .stop_tokens import Board
from .worker import init_process_worker, init_thread_worker, warm_up_worker

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor
    from multiprocessing.connection import Connection

T = TypeVar("T")

__all__ = [
    "Prestart",
    "check_main_guard",
    "discard_process_pool",
    "forkserver_started",
    "kill_process_pool",
    "needs_main",
    "new_process_pool",
    "prestart_process_pool",
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

#: What multiprocessing imports only once the first pool starts. The process machinery
#: is imported with this module (above, and these): a pool is started in a background
#: thread while the caller, or the probe's threads, run items holding the GIL, and an
#: import there makes hundreds of file-system calls, each of which then waits for the
#: GIL (up to a switch interval, 5 ms): seconds instead of ~25 ms.
_LATE_IMPORTS = (
    "multiprocessing.popen_fork",
    "multiprocessing.popen_forkserver",  # not on Windows
    "multiprocessing.popen_spawn_posix",  # not on Windows
    "multiprocessing.resource_tracker",
    "multiprocessing.synchronize",
    "tempfile",  # where a forkserver's socket goes
)


def _import_late_imports() -> None:
    for name in _LATE_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


_import_late_imports()

#: What the forkserver imports once, so that the workers it forks start with it: the
#: executor's worker loop, our chunk runner and the class of our workers (which import
#: nothing else of ours).
_PRELOAD_MODULES = (
    "concurrent.futures.process",
    "concurrency_kit._backends.worker",
    "concurrency_kit._backends.launch",
)
#: Pickled bytes that name the main module. A task whose function or items pickle to
#: them needs workers that import the main module; other pools' workers skip it.
_MAIN_REFERENCE = b"__main__"


def needs_main(payload: bytes | None) -> bool:
    """Whether a pickled task refers to the main module (by name, as pickle does)."""
    return payload is not None and _MAIN_REFERENCE in payload


#: How long shutdown() waits for a pool being started in the background to be up.
PRESTART_JOIN_SECONDS = 30.0


class _Shared:
    """The process's pools and what is known about them; every field under ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Held, before ``lock``, while a pre-start submits (which can take a tenth of a
        # second as the forkserver starts) and while shutdown() bumps the generation:
        # shutdown() waits for a submission, a call asking about the pool does not.
        self.start_lock = threading.Lock()
        self.threads: ThreadPoolExecutor | None = None
        self.thread_size = 0
        self.processes: ProcessPoolExecutor | None = None
        self.process_size = 0
        self.process_main = False  # whether its workers import the main module
        self.main_needed = False  # whether a task needed it: later pools import it too
        self.start_method = ""
        self.born = 0.0  # time.monotonic() when the process pool was made
        self.generation = 0  # bumped by shutdown(): a pre-start from before it makes nothing
        self.forkserver_started = False
        self.killed: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()  # pools stopped on purpose
        self.warm: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()  # every worker has run a task
        self.warming: Prestart | None = None  # the pre-start in flight
        self.exit_wait_registered = False
        self.parent_watch: tuple[Connection, Connection] | None = None  # read end, write end
        self.board: Board | None = None  # the streams' stop tokens, shared with every worker


_shared = _Shared()


def thread_pool(workers: int) -> ThreadPoolExecutor:
    """Return the shared thread pool, with room for at least ``workers`` threads."""
    with _shared.lock:
        if _shared.threads is None or _shared.thread_size < workers:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            old = _shared.threads
            # Threads start only as tasks need them: room for the largest call costs nothing.
            _shared.thread_size = max(workers, get_config().io_thread_cap())
            _shared.threads = ThreadPoolExecutor(
                max_workers=_shared.thread_size,
                thread_name_prefix="concurrency_kit",
                initializer=init_thread_worker,
            )
            if old is not None:
                old.shutdown(wait=False)  # its threads finish what they run, then exit
        return _shared.threads


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
            if _shared.threads is pool:
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


#: A worker start the forkserver refused is tried again this many times ...
FORKSERVER_RETRIES = 5
#: ... after a pause of this many seconds times the tries so far (a dying server takes milliseconds to go).
FORKSERVER_PAUSE = 0.01


def submit_to_processes(
    workers: int, fn: Callable[..., T], /, *args: Any, main: bool = False
) -> tuple[ProcessPoolExecutor, Future[T]]:
    """Submit ``fn(*args)`` to the shared process pool; return the pool that took it too.

    As with threads, a pool replaced meanwhile hands the task on to the current one;
    work already queued on the old pool still completes there. ``main``: the task
    needs workers that import the main module (see ``needs_main``).

    Raises:
        BrokenProcessPool: the pool broke (a worker died) before it took the task; it
            is forgotten, so the next submission gets a fresh one.
        OSError: a worker could not be started for the task.
        MainGuardMissingError: the task needs the main module, which runs this call
            outside its ``if __name__ == "__main__":`` guard (workers would run it again).
    """
    check_main_guard(main=main)
    refused = 0
    while True:
        pool = process_pool(workers, main=main)
        try:
            return pool, pool.submit(fn, *args)
        except BrokenProcessPool:
            discard_process_pool(pool)
            raise
        except RuntimeError:
            if _shared.processes is pool:
                raise
        except OSError as exc:
            # Python 3.11: submit() starts a worker (a pool starts them as tasks come) while
            # the pool's manager thread, finding another dead, marks the pool broken without
            # the lock submit() holds and closes the queues the new worker is being sent.
            # The forkserver, handed a request cut short, exits (an EOFError it does not
            # catch), and refuses the next starts until multiprocessing sees it gone and
            # starts another.
            broken = getattr(pool, "_broken", False)
            if not broken and not isinstance(exc, ConnectionError):
                raise
            discard_process_pool(pool)
            if broken:
                raise BrokenProcessPool(f"a worker process died while a task was submitted ({exc})") from exc
            if refused == FORKSERVER_RETRIES:
                raise
            refused += 1
            time.sleep(FORKSERVER_PAUSE * refused)


def new_process_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of its own (not the shared one), for an ``AutoExecutor``: its caller shuts it down.

    Its workers start by the configured method and watch this process, as the shared
    pool's do (they end with it); they import the main module, as the standard
    executor's do.
    """
    context = multiprocessing.get_context(get_config().resolved_start_method())
    with _shared.lock:
        initargs = (_parent_watch(), _board().memory)
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=init_process_worker, initargs=initargs
    )


def check_main_guard(*, main: bool) -> None:
    """Raise ``MainGuardMissingError`` where workers importing the main module would run the script again.

    ``main``: the task needs the main module. ``spawn`` workers import it whatever the
    task; ``forkserver`` workers only for a task that needs it; ``fork`` workers never
    (they have it already). Not for a call from a thread other than the script's own
    (the script's line is not on its stack).
    """
    method = get_config().resolved_start_method()
    if method == "fork" or (not main and method != "spawn"):
        return
    if main_guard_missing():
        raise MainGuardMissingError(
            "this task needs worker processes that import the main module (its function, or an item's class, "
            f"is defined there{'' if main else ', or they start by spawn'}), and the main module runs this call "
            "outside its guard: each worker would run "
            f"the script again. {GUARD_FIX.capitalize()}, or define the function and classes in a module of "
            'their own (pip install "concurrency_kit[cloudpickle]" sends a function by value); '
            "mode='thread' or 'serial' need neither."
        )


def process_pool_age(workers: int) -> float | None:
    """Seconds since a process pool of at least ``workers`` workers was made, or ``None``."""
    with _shared.lock:
        if _shared.processes is None or _shared.process_size < workers:
            return None
        return time.monotonic() - _shared.born


def process_pool_ready(workers: int, *, main: bool = False) -> bool:
    """Whether a process pool of at least ``workers`` workers is up, every worker started.

    With ``main``, only a pool whose workers import the main module will do.
    """
    with _shared.lock:
        return _serves(workers, main=main) and _shared.processes in _shared.warm


def process_pool_ready_for(workers: int, fn: Callable[..., Any]) -> bool:
    """``process_pool_ready``, for ``fn``: with workers that import the main module if it needs them."""
    return process_pool_ready(workers, main=needs_main(pickled(sendable(fn))))


def _serves(workers: int, *, main: bool) -> bool:
    """Whether the current process pool has ``workers`` workers (importing the main module, with ``main``).

    Called under ``_shared.lock``.
    """
    return _shared.processes is not None and _shared.process_size >= workers and (_shared.process_main or not main)


def process_pool_size() -> int:
    """How many workers the current process pool has (0 when there is none)."""
    return _shared.process_size


def forkserver_started() -> bool:
    """Whether this process already started a forkserver (new workers then start fast)."""
    return _shared.forkserver_started


@overload
def process_pool(workers: int, *, main: bool = False) -> ProcessPoolExecutor: ...
@overload
def process_pool(workers: int, generation: int, *, main: bool = False) -> ProcessPoolExecutor | None: ...
def process_pool(workers: int, generation: int | None = None, *, main: bool = False) -> ProcessPoolExecutor | None:
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
    with _shared.lock:
        current = _shared.processes
        if current is not None and _serves(workers, main=main) and _shared.start_method == start_method:
            return current
        if generation is not None and generation != _shared.generation:
            return None
        _register_exit_wait()
        _shared.main_needed = _shared.main_needed or main
        context = multiprocessing.get_context(start_method)
        with_main = True  # fork's workers have it already; spawn's import it
        if start_method == "forkserver":
            _preload_worker_modules(context)
            _shared.forkserver_started = True
            without = None if _shared.main_needed else forkserver_context_without_main()
            if without is not None:
                context, with_main = without, False
        if current is not None and _shared.start_method == start_method:
            workers = max(workers, _shared.process_size)
        _shared.processes = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=init_process_worker,
            initargs=(_parent_watch(), _board().memory),
        )
        _shared.process_size = workers
        _shared.process_main = with_main
        _shared.start_method = start_method
        _shared.born = time.monotonic()
        if current is not None:
            current.shutdown(wait=False)  # work already queued there still completes
        return _shared.processes


def _register_exit_wait() -> None:
    """Have the interpreter's exit wait for a pool being started in the background.

    ``concurrent.futures`` stops every process pool at exit through
    ``threading._register_atexit``, before ``atexit`` handlers run; a pool stopped while
    its workers start leaves them failing noisily (a traceback on stderr). Hooks
    registered there run last-registered first, so ours, registered once the module is
    loaded, runs before its own. Called under ``_shared.lock``.

    Raises:
        RuntimeError: the interpreter is already exiting (no pool should start now).
    """
    if _shared.exit_wait_registered:
        return
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # not CPython 3.9+: atexit is the best there is
        atexit.register(_wait_for_prestart)
    else:
        register(_wait_for_prestart)
    _shared.exit_wait_registered = True


def _prestart_in_flight() -> Prestart | None:
    """The thread starting a pool in the background, while it runs (another's only)."""
    warming = _shared.warming
    if warming is None or warming is threading.current_thread() or not warming.is_alive():
        return None
    return warming


def _stop_prestart() -> Prestart | None:
    """Have a pre-start in flight make and submit nothing more; return its thread, if any."""
    with _shared.start_lock, _shared.lock:
        _shared.generation += 1
        return _prestart_in_flight()


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
        if generation != _shared.generation:
            return False


def _wait_for_prestart() -> None:
    """Stop a pre-start in flight from submitting more, and wait for it to end."""
    warming = _stop_prestart()
    if warming is not None:
        warming.join(PRESTART_JOIN_SECONDS)


#: Warming a pool takes rounds of warm-up tasks until every worker has run one ...
WARM_UP_ROUNDS = 100
#: ... pausing this long between rounds while a worker is still starting.
WARM_UP_PAUSE = 0.005


def _warm_up(
    pool: ProcessPoolExecutor, workers: int, generation: int, function: bytes | None, on_up: Callable[[], object]
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
        with _shared.start_lock:  # so that shutdown() cannot begin between the check and the submissions
            if generation != _shared.generation:
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
        began, before, server_running = time.monotonic(), _shared.processes, _shared.forkserver_started
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
                    time.monotonic() - began, start_method=_shared.start_method, server_was_running=server_running
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
        with _shared.lock:
            _shared.warm.add(pool)
    with _shared.lock:
        stale = generation != _shared.generation
    if stale:  # shutdown() or the exit came while the workers started, and left the pool to us
        # Waiting here (in the background) also keeps its manager thread from closing
        # while the interpreter's exit wakes it (a race in Python 3.11's executor).
        pool.shutdown(wait=True)


#: A function pickled by reference takes no more than this (its module and name).
_REFERENCE_BYTES = 1024


def _reference(function: bytes | None) -> bytes | None:
    """A pickled function, when it pickled by reference (module and name): else ``None``."""
    return function if function is not None and len(function) <= _REFERENCE_BYTES else None


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
    try:
        check_main_guard(main=needs_main(function))
    except MainGuardMissingError:
        return None  # its workers would run the script again: nothing to warm
    if process_pool_ready(workers, main=needs_main(function)):
        return None
    with _shared.lock:
        if (warming := _prestart_in_flight()) is not None:
            return warming
        thread = Prestart(workers, _shared.generation, function)
        _shared.warming = thread
        thread.start()  # under the lock, so that nobody sees it set but not yet alive
    return thread


def _preload_worker_modules(context: Any) -> None:
    """Have the forkserver import the worker modules once, so forked workers start warm.

    Without it each worker imports them on its first task. The preload list is
    process-wide and has no public getter: extend what is there, never replace it. It
    only matters before the server starts, and is harmless after.
    """
    from multiprocessing import forkserver  # noqa: PLC0415

    current = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", None) or ["__main__"])
    missing = [name for name in _PRELOAD_MODULES if name not in current]
    if missing:
        context.set_forkserver_preload([*current, *missing])


def discard_process_pool(pool: ProcessPoolExecutor) -> None:
    """Forget ``pool`` (broken, or its workers were stopped) so the next call builds a new one."""
    with _shared.lock:
        if _shared.processes is pool:
            _shared.processes = None
            _shared.process_size = 0
    pool.shutdown(wait=False, cancel_futures=True)


def kill_process_pool(pool: ProcessPoolExecutor) -> None:
    """Kill ``pool``'s workers at once and forget it (after a timeout or Ctrl-C).

    Every worker goes: a ``ProcessPoolExecutor`` breaks when any one of its workers
    dies, so it cannot be done for one call's workers alone. ``was_killed`` then
    tells other calls that lost chunks there to send them again. Python 3.14 has
    ``ProcessPoolExecutor.kill_workers()``; before it the worker processes are only
    reachable through the executor's ``_processes`` mapping, read defensively here.
    """
    running: dict[int, Any] = getattr(pool, "_processes", None) or {}
    processes: list[Any] = list(running.values())
    with _shared.lock:
        _shared.killed.add(pool)
    discard_process_pool(pool)
    for process in processes:
        with contextlib.suppress(Exception):  # already gone: nothing to kill
            process.kill()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=1.0)
    # The pool's manager thread, seeing its workers gone, closes the pool's wake-up pipe.
    # Let it finish: at interpreter exit CPython's own hook writes to that pipe without
    # its lock (3.11-3.13), and a close racing with it prints an EBADF traceback there.
    manager = getattr(pool, "_executor_manager_thread", None)
    if isinstance(manager, threading.Thread) and manager is not threading.current_thread():
        manager.join(timeout=1.0)


def was_killed(pool: ProcessPoolExecutor) -> bool:
    """Whether ``pool`` broke because a call killed it (timeout, Ctrl-C), not by a crash."""
    with _shared.lock:
        return pool in _shared.killed


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
    with _shared.lock:
        threads, processes = _shared.threads, _shared.processes
        _shared.threads = _shared.processes = None
        _shared.thread_size = _shared.process_size = 0
        _shared.process_main = _shared.main_needed = False
    if processes is not None and (wait or warming is None):  # else the pre-start stops it once started
        processes.shutdown(wait=wait, cancel_futures=True)
    if threads is not None:
        threads.shutdown(wait=wait, cancel_futures=True)


def _parent_watch() -> Connection:
    """The read end of the pipe by which worker processes learn that this process died.

    This process holds the only write end: the kernel closes it when the process dies,
    however it dies, and every worker watching the read end then ends itself (see
    ``watch_parent``). Both ends are not inherited by
    programs it executes; a child it forks closes its copy of the write end
    (``_forget_after_fork``). Called under ``_shared.lock``.
    """
    if _shared.parent_watch is None:
        _shared.parent_watch = multiprocessing.Pipe(duplex=False)
    return _shared.parent_watch[0]


def stop_board() -> Board:
    """The board of stop tokens that every worker process of this process's pools reads (made on first use)."""
    with _shared.lock:
        return _board()


def _board() -> Board:
    """``stop_board``, called under ``_shared.lock``."""
    if _shared.board is None:
        _shared.board = Board()
    return _shared.board


def _forget_after_fork() -> None:
    """In a child made by ``os.fork()``: none of the parent's pools, and no hold on its processes.

    The child inherits the pool objects but none of their threads; its pools start
    afresh when first needed. It must not keep the parent's workers or forkserver
    alive after the parent dies: it closes its copy of the write end they watch, and
    multiprocessing's record of the parent's forkserver (which the child cannot wait
    for: ``ChildProcessError``, and whose "alive" pipe it would hold open).
    """
    global _shared
    inherited, _shared = _shared, _Shared()
    if inherited.parent_watch is not None:
        # The read end stays open: a worker started by fork watches it. Elsewhere it
        # closes when the inherited pools are collected.
        inherited.parent_watch[1].close()
    _detach_forkserver()


#: The attributes of multiprocessing's forkserver client that name a running server
#: (``_forkserver_authkey`` from Python 3.14).
_SERVER_STATE = ("_forkserver_address", "_forkserver_alive_fd", "_forkserver_pid", "_forkserver_authkey")


def _detach_forkserver() -> None:
    """Have multiprocessing start a forkserver of this process's own when one is next needed.

    For a child made by ``os.fork()``. Private attributes, read defensively: where they
    are missing nothing is done (and a process pool in such a child may then fail).
    """
    module = sys.modules.get("multiprocessing.forkserver")
    server = getattr(module, "_forkserver", None)
    if server is None:
        return
    alive = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(alive, int):
        with contextlib.suppress(OSError):
            os.close(alive)
    for name in _SERVER_STATE:
        if hasattr(server, name):
            setattr(server, name, None)
    reinit = getattr(getattr(server, "_lock", None), "_at_fork_reinit", None)
    if reinit is not None:
        reinit()  # another thread of the parent may have held it while it forked


atexit.register(shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
