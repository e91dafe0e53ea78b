"""Any ``concurrent.futures.Executor`` the caller gave: a stream's units as its tasks.

Each unit goes to the executor as one task, submitted with ``submit`` (never ``map``:
Dask's ``map`` wants every item at once, loky's ignores keywords it does not know),
positional arguments only (Dask takes keywords such as ``key`` and ``pure`` for
itself). A task runs ``run_pickled_chunk`` on the chunk
pickled here, so an item that cannot be pickled is named here, each item's outcome
comes back on its own, and an exception raised by ``fn`` comes back as an outcome (the
executor never sees a failed task; Dask logs none). An executor whose tasks run in
this process (a ``ThreadPoolExecutor``) gets the chunk as it is, unpickled.

concurrency_kit never shuts down, restarts or kills an executor it was given: closing a
stream early or a timeout cancels the tasks not started; a task already running
finishes on its worker. A task the executor takes before it can be cancelled runs its
items anyway, unless the executor runs them in this process (a ``ThreadPoolExecutor``),
where they check the stream's stop token (``_backends.stop_tokens``) first.

A task the executor loses (its worker died) is ``Lost``: the stream runs
its items again, each alone, one at a time, and the one lost again gets the executor's
exception (with ``return_exceptions``; without, the first loss is raised).

With a task timeout every task is one item, timed from when its future says it runs,
or, for an executor whose futures do not say (Dask's), from its submission. Past the
timeout its future is cancelled where the executor can (Dask cancels the task, a
``ThreadPoolExecutor`` cannot stop a running one), and the item fails either way.
"""

from __future__ import annotations

import statistics
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, final

from .process import pickle_chunk, unpack_outcomes
from .stop_tokens import ThreadToken
from .unit import Done, Lost, Read, Unit, Warming, run_chunk
from .worker import ping, run_pickled_chunk

__all__ = ["ExecutorRunner", "executor_name", "executor_workers", "in_process", "task_overhead"]

#: Empty tasks timed to find an executor's per-task overhead (the median is kept).
OVERHEAD_PINGS = 3
#: ... each waited for this long at most (a cluster that does not answer is reported as slow).
PING_TIMEOUT = 30.0


def executor_name(executor: Executor) -> str:
    """The executor's type, as a reason names it (``distributed.cfexecutor.ClientExecutor``)."""
    kind = type(executor)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def in_process(executor: Executor) -> bool:
    """Whether the executor's tasks run in this process (its threads), so that nothing needs pickling."""
    return isinstance(executor, ThreadPoolExecutor)


def executor_workers(executor: Executor) -> int | None:
    """How many tasks the executor runs at once, where it says.

    A Dask client's executor: the threads of the cluster's workers; the standard
    executors, loky's and mpi4py's: their ``_max_workers``. ``None`` when it says nothing.
    """
    client: Any = getattr(executor, "_client", None)
    nthreads: Any = getattr(client, "nthreads", None)
    if callable(nthreads):
        try:
            counts: Any = nthreads()
            threads = sum(counts.values())
        except Exception:  # noqa: BLE001 - an executor we do not know: no figure
            threads = 0
        if threads > 0:
            return int(threads)
    count = getattr(executor, "_max_workers", None)
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        return count
    return None


_overheads: weakref.WeakKeyDictionary[Executor, float] = weakref.WeakKeyDictionary()
_overheads_lock = threading.Lock()


def task_overhead(executor: Executor) -> float:
    """Seconds an empty task takes through ``executor``, submit to result (measured once per executor).

    The median of ``OVERHEAD_PINGS`` empty tasks, one after another; the first
    call through an executor pays them (a lazily started pool's start-up included).
    """
    with _overheads_lock:
        known = _overheads.get(executor)
    if known is not None:
        return known
    times: list[float] = []
    for _ in range(OVERHEAD_PINGS):
        began = time.perf_counter()
        executor.submit(ping).result(timeout=PING_TIMEOUT)
        times.append(time.perf_counter() - began)
    overhead = statistics.median(times)
    try:
        with _overheads_lock:
            _overheads[executor] = overhead
    except TypeError:  # an executor that takes no weak reference: measured every call
        pass
    return overhead


def _lost(exc: BaseException) -> Lost:
    """A task the executor lost (a worker died, the task was cancelled), with ``exc``, its own exception."""

    def blame(indices: Sequence[int]) -> BaseException:
        first, last = indices[0], indices[-1]
        if len(indices) == 1:
            items = f"item {first}"
        elif last - first + 1 == len(indices):
            items = f"items {first}-{last}"
        else:
            items = "items " + ", ".join(map(str, indices[:10])) + (", …" if len(indices) > 10 else "")
        exc.add_note(f"concurrency_kit: the executor's task for {items} failed ({type(exc).__name__})")
        return exc

    return Lost(blame, together=False)


@final
class ExecutorRunner:
    """A run's units as tasks of ``executor``, each a chunk; ``workers``: the tasks it runs at once."""

    def __init__(
        self,
        executor: Executor,
        fn: Callable[[Any], Any],
        workers: int,
        *,
        collect: bool,
        task_timeout: float | None = None,
    ) -> None:
        self._executor, self._fn, self._workers, self._collect = executor, fn, workers, collect
        self._local = in_process(executor)
        self._token = ThreadToken() if self._local else None
        #: With a task timeout: each task not yet back, and when it started (``None``: not yet).
        self._timed = task_timeout is not None
        self._started: dict[Future[Any], tuple[Unit, float | None]] = {}
        self._says_running = not executor_name(executor).startswith("distributed.")

    @property
    def capacity(self) -> int:
        """Two tasks a worker: one running, one queued behind it."""
        return 2 * self._workers

    def warming(self) -> Warming | None:
        """An executor we were given starts its workers itself."""
        return None

    def run_here(self, unit: Unit) -> Done:
        """Run ``unit`` in the calling thread."""
        return run_chunk(self._fn, unit.items, self._collect, unit.start, self._token)

    def help(self) -> bool:
        """The executor runs every task."""
        return False

    def submit(self, unit: Unit) -> Future[Any]:
        """Send ``unit`` to the executor as one task.

        A unit run alone again (after a lost task) that the executor refuses is lost
        again, its item given the executor's exception; else that exception is raised.

        Raises:
            UnpicklableTaskError: an item (or the function) cannot be pickled.
            RuntimeError: the executor was shut down.
        """
        task: Callable[..., Any]
        args: tuple[Any, ...]
        if self._local:
            task, args = run_chunk, (self._fn, unit.items, self._collect, unit.start, self._token)
        else:
            task, args = run_pickled_chunk, (pickle_chunk(self._fn, unit.items, unit.start, collect=self._collect),)
        try:
            future = self._executor.submit(task, *args)
        except Exception as exc:
            if not unit.alone:
                raise
            refused: Future[Any] = Future()
            refused.set_exception(exc)
            return refused
        if self._timed:
            self._started[future] = (unit, None if self._says_running else time.monotonic())
            future.add_done_callback(self._back)
        return future

    def read(self, unit: Unit, future: Future[Any]) -> Read:
        """Its outcomes; ``Lost``, for a task the executor lost."""
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - the executor's, not fn's: fn's come back as outcomes
            return _lost(exc)
        if self._local:
            return result  # type: ignore[no-any-return]
        done, seconds = unpack_outcomes(result, unit.start, collect=self._collect)
        done.seconds = seconds  # as the worker timed it, without the executor's own costs
        return done

    def halt(self, after: int) -> None:
        """No item after ``after`` starts (where the executor runs them in this process)."""
        if self._token is not None:
            self._token.failed(after)

    def expire(self, seconds: float) -> list[tuple[Future[Any], Unit, int]]:
        """Cancel the tasks running longer than ``seconds`` where the executor can: their units (of an item each)."""
        now, expired = time.monotonic(), list[tuple[Future[Any], Unit, int]]()
        for future, (unit, started) in list(self._started.items()):
            if started is None:
                if future.running():
                    self._started[future] = (unit, now)  # seen running now: counted from here
                continue
            if now - started > seconds and self._started.pop(future, None) is not None:
                future.cancel()
                expired.append((future, unit, 0))
        return expired

    def _back(self, future: Future[Any]) -> None:
        """A task is back: it no longer runs."""
        self._started.pop(future, None)

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:  # noqa: ARG002 - never kills
        """Cancel the tasks not started; the executor is not ours to stop, so running tasks finish there."""
        if self._token is not None:
            self._token.stop()
        for future in running:
            future.cancel()
