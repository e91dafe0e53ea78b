"""An ``AutoExecutor``'s worker processes, retired after ``max_tasks_per_worker`` calls each.

A ``ProcessPoolExecutor`` cannot replace one worker (its own ``max_tasks_per_child`` can
deadlock, cpython#115634), so each call runs through ``call_counted``, which counts the
calls a worker ran. A worker that reaches the limit says so: its pool is retired (shut
down without waiting, so its other workers finish what they hold) and the next calls go
to a fresh pool. A call that reaches a retired worker runs nothing and is sent to the
fresh pool; its caller's future is the same throughout::

    submit(fn, args) → the caller's future
      └─ pool.submit(call_counted, …) → (ran, result, retired)
           retired → the pool is replaced
           ran     → the caller's future gets the result (or the exception)
           not ran → sent again, to the current pool
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ProcessPoolExecutor
from typing import Any, final

from .item_calls import Init, call_counted

__all__ = ["Recycling"]


@final
class Recycling:
    """Calls on process pools made by ``make``, each worker retired after ``limit`` calls."""

    def __init__(self, make: Callable[[], ProcessPoolExecutor], limit: int, init: Init | None) -> None:
        self._make, self._limit, self._init = make, limit, init
        self._pool: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a worker within its limit; the caller's future."""
        mine: Future[Any] = Future()
        self._send(mine, fn, args, kwargs)
        return mine

    def pools(self) -> list[ProcessPoolExecutor]:
        """Every pool still to shut down: the current one and those retired."""
        with self._lock:
            return [*self._retired, *([self._pool] if self._pool is not None else [])]

    def _send(self, mine: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = self._make()
            pool = self._pool
        task = pool.submit(call_counted, self._limit, self._init, fn, args, kwargs)
        mine.add_done_callback(lambda done: task.cancel() if done.cancelled() else None)
        task.add_done_callback(lambda done: self._back(done, pool, mine, (fn, args, kwargs)))

    def _back(self, task: Future[Any], pool: ProcessPoolExecutor, mine: Future[Any], call: tuple[Any, ...]) -> None:
        """A task is back: the caller's future gets its outcome, or the call goes to a fresh worker."""
        if task.cancelled():
            mine.cancel()
            return
        error = task.exception()
        if error is not None:
            _settle(mine, error=error)
            return
        ran, result, retired = task.result()
        if retired:
            self._retire(pool)
        if ran:
            _settle(mine, result=result)
        elif not mine.cancelled():
            self._send(mine, *call)

    def _retire(self, pool: ProcessPoolExecutor) -> None:
        """``pool`` has a worker at its limit: new calls go to a fresh pool; it finishes what it holds."""
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
            self._retired.append(pool)
        pool.shutdown(wait=False)


def _settle(mine: Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    """Give the caller's future its outcome, unless it was cancelled meanwhile."""
    try:
        if error is None:
            mine.set_result(result)
        else:
            mine.set_exception(error)
    except InvalidStateError:
        pass  # cancelled by its caller
