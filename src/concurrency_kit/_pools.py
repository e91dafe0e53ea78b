"""Warm, shared pools: created on first use, reused, rebuilt when broken, stopped at exit.

One thread pool and one process pool serve every call in the process. A call limits
its own concurrency by how many tasks it keeps in flight, so a pool only ever grows:
asking for more workers than a pool has replaces it with a larger one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ._config import get_config
from ._worker import init_process_worker, init_thread_worker

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

__all__ = [
    "discard_process_pool",
    "prestart_process_pool",
    "process_pool",
    "process_pool_age",
    "shutdown",
    "thread_pool",
]

_lock = threading.Lock()
_threads: ThreadPoolExecutor | None = None
_thread_size = 0
_processes: ProcessPoolExecutor | None = None
_process_size = 0
_process_start_method = ""
_process_born = 0.0
_WORKER_MODULE = "concurrency_kit._worker"  # time.monotonic() when the process pool was created


def thread_pool(workers: int) -> ThreadPoolExecutor:
    """Return the shared thread pool, with room for at least ``workers`` threads."""
    global _threads, _thread_size  # noqa: PLW0603 - the shared pool
    with _lock:
        if _threads is None or _thread_size < workers:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            old = _threads
            _thread_size = max(workers, get_config().max_io_workers)
            _threads = ThreadPoolExecutor(
                max_workers=_thread_size,
                thread_name_prefix="concurrency_kit",
                initializer=init_thread_worker,
            )
            if old is not None:
                old.shutdown(wait=False)  # its threads finish what they run, then exit
        return _threads


def process_pool_age(workers: int) -> float | None:
    """Seconds since a process pool of at least ``workers`` workers was created, or ``None``."""
    with _lock:
        if _processes is None or _process_size < workers:
            return None
        return time.monotonic() - _process_born


def _noop() -> None:
    """Runs once in each new worker, to start it."""


def _spawn(workers: int) -> None:
    from concurrent.futures import wait  # noqa: PLC0415

    pool = process_pool(workers)
    # A ProcessPoolExecutor starts a worker per submission until it has max_workers.
    # RuntimeError: the pool was shut down meanwhile, so there is nothing to warm.
    with contextlib.suppress(RuntimeError):
        wait([pool.submit(_noop) for _ in range(workers)])


def prestart_process_pool(workers: int) -> None:
    """Start a process pool of ``workers`` in a background thread, unless one is warm.

    Returns at once: the imports, the pool and its workers are all made in the
    background thread, so the caller (the probe's GIL monitor) is not held up.
    """
    if process_pool_age(workers) is None:
        threading.Thread(target=_spawn, args=(workers,), name="concurrency_kit-prestart", daemon=True).start()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """Return the shared process pool, with at least ``workers`` worker processes."""
    global _processes, _process_size, _process_start_method, _process_born  # noqa: PLW0603 - the shared pool
    start_method = get_config().resolved_start_method()
    with _lock:
        if _processes is None or _process_size < workers or _process_start_method != start_method:
            import multiprocessing  # noqa: PLC0415 - heavy, imported on first use
            from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

            old = _processes
            context = multiprocessing.get_context(start_method)
            if start_method == "forkserver":
                _preload_worker_module(context)
            _processes = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=init_process_worker,
            )
            _process_size = workers
            _process_start_method = start_method
            _process_born = time.monotonic()
            if old is not None:
                old.shutdown(wait=False)  # work already queued there still completes
        return _processes


def _preload_worker_module(context: Any) -> None:
    """Have the forkserver import our worker module once, so forked workers start warm.

    Without it each worker imports the package (and attrs) on its first task. The
    preload list is process-wide and has no public getter: extend what is there, never
    replace it. It only matters before the server starts, and is harmless after.
    """
    from multiprocessing import forkserver  # noqa: PLC0415

    current = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", None) or ["__main__"])
    if _WORKER_MODULE not in current:
        context.set_forkserver_preload([*current, _WORKER_MODULE])


def discard_process_pool(pool: ProcessPoolExecutor) -> None:
    """Forget ``pool`` (broken, or its workers were stopped) so the next call builds a new one."""
    global _processes, _process_size  # noqa: PLW0603 - the shared pool
    with _lock:
        if _processes is pool:
            _processes = None
            _process_size = 0
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown(wait: bool = True) -> None:  # noqa: FBT001, FBT002 - mirrors Executor.shutdown
    """Stop the warm pools; the next call starts new ones.

    They also stop when the interpreter exits.

    Args:
        wait: wait for running work and for the workers to exit.
    """
    global _threads, _processes, _thread_size, _process_size  # noqa: PLW0603 - the shared pools
    with _lock:
        threads, processes = _threads, _processes
        _threads = _processes = None
        _thread_size = _process_size = 0
    if processes is not None:
        processes.shutdown(wait=wait, cancel_futures=True)
    if threads is not None:
        threads.shutdown(wait=wait, cancel_futures=True)


def _forget_after_fork() -> None:
    # A forked child inherits the pool objects but none of their threads or pipes.
    global _lock, _threads, _processes, _thread_size, _process_size  # noqa: PLW0603
    _lock = threading.Lock()
    _threads = _processes = None
    _thread_size = _process_size = 0


atexit.register(shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
