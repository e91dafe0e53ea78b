"""What a call runs in ``fn``'s place: ``fn`` with its retries' and its initializer's part.

    Retried(fn, retry_on)        a failure ``retry_on`` counts comes back as a ``Raised``
                                 result, for the run engine to settle (``_run/retrying.py``)
    Prepared(fn, init)           ``initializer(*initargs)`` runs once before the first item,
                                 once per scope: a process (this one: a loop, the measuring
                                 here; a worker, pickled), or a thread (``per_thread``)

Both pickle as ``fn`` is sent (by value where it needs it), and are light to import: a
worker process imports this module to rebuild them.
"""

from __future__ import annotations

import contextlib
import threading
import time

from .._core.errors import WorkerInitError
from .stage_calls import AsyncStageCall, StageCall
from .worker import ExceptionCarrier, init_process_worker, items_run

#: ``typing.TYPE_CHECKING``, without importing typing (a tenth of a worker's start-up).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "Init",
    "Prepared",
    "Raised",
    "Retried",
    "call_counted",
    "call_prepared",
    "per_thread",
    "prepared_in",
    "retries_it",
    "start_prepared_worker",
    "unwrapped",
]


class Raised:
    """An exception ``fn`` raised that may be retried (``Retried``): a result, for the run engine to settle.

    Never reaches the caller: the engine runs its item again, or puts the exception in
    its place (``_run/retrying.py``). From a worker process it carries the worker's
    traceback, as a raised exception does.
    """

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __reduce__(self) -> tuple[type[Raised], tuple[Any]]:
        return Raised, (ExceptionCarrier(self.exc),)


def retries_it(retry_on: Any, exc: BaseException) -> bool:
    """Whether ``retry_on`` (an exception type, a tuple of them, or a predicate) counts ``exc`` as worth a retry.

    Never a ``WorkerInitError``: an item cannot run where its worker could not be set up.
    """
    if isinstance(exc, WorkerInitError):
        return False
    if isinstance(retry_on, type | tuple):
        return isinstance(exc, retry_on)
    return bool(retry_on(exc))


class Retried:
    """``fn``, with the failures ``retry_on`` counts returned as ``Raised`` rather than raised.

    So the backends run an item that may be retried as any other, and a failure that
    may not be retried stops the call as it did. Pickled with ``fn`` and ``retry_on``
    each sent as ``fn`` is (by value where they need it).
    """

    __slots__ = ("fn", "retry_on")

    def __init__(self, fn: Callable[[Any], Any], retry_on: Any) -> None:
        self.fn, self.retry_on = fn, retry_on

    def __call__(self, item: Any) -> Any:
        try:
            return self.fn(item)
        except Exception as exc:
            if retries_it(self.retry_on, exc):
                return Raised(exc)
            raise

    def __reduce__(self) -> tuple[type[Retried], tuple[Any, Any]]:
        from .pickling import sendable  # noqa: PLC0415 - the parent's side only

        return Retried, (sendable(self.fn), sendable(self.retry_on))


class Init:
    """A call's ``initializer(*initargs)``, and what tells one call's from another's (``token``).

    ``token``: the same for calls with the same initializer and initargs (their pickled
    bytes' digest), so that a worker process runs it once for all of them.
    """

    __slots__ = ("args", "by_reference", "fn", "token")

    def __init__(
        self, fn: Callable[..., object], args: tuple[Any, ...], token: str, *, by_reference: bool = False
    ) -> None:
        self.fn, self.args, self.token, self.by_reference = fn, args, token, by_reference

    def __reduce__(self) -> tuple[type[Init], tuple[Any, tuple[Any, ...], str]]:
        from .pickling import sendable  # noqa: PLC0415 - the parent's side only

        return Init, (self.fn if self.by_reference else sendable(self.fn), self.args, self.token)

    def run(self) -> float:
        """Run it; its seconds.

        Raises:
            WorkerInitError: it raised (its exception is the cause).
        """
        began = time.perf_counter()
        try:
            self.fn(*self.args)
        except Exception as exc:
            raise self.failed(exc) from exc
        return time.perf_counter() - began

    def failed(self, exc: Exception) -> WorkerInitError:
        """The error of a worker this initializer could not set up (``exc``: what it raised, the cause)."""
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        error = WorkerInitError(f"the initializer {name} raised {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error


class _Once:
    """A process's record of the initializers run in it (shared by its threads).

    A failure is not kept: the next item (of a later call, once this one stopped) tries again.
    """

    def __init__(self) -> None:
        self.done: set[str] = set()  # the tokens of those that ran
        self.lock = threading.Lock()

    def ensure(self, init: Init) -> None:
        """Run ``init`` unless it ran in this process.

        Raises:
            WorkerInitError: it raised.
        """
        if init.token not in self.done:
            with self.lock:
                if init.token not in self.done:
                    init.run()
                    self.done.add(init.token)


class _PerThread(threading.local):
    """Per thread: the tokens of the initializers run in it."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()

    def ensure(self, init: Init) -> None:
        """Run ``init`` unless it ran in this thread.

        Raises:
            WorkerInitError: it raised.
        """
        if init.token not in self.tokens:
            init.run()
            self.tokens.add(init.token)


#: This process's initializers run (a worker process's: once for all its threads).
_in_process = _Once()
_in_thread = _PerThread()
#: The scopes a ``Prepared`` runs its initializer in.
THREAD, PROCESS = "thread", "process"


class Prepared:
    """``fn``, with ``init`` run once in its scope before the first item there."""

    __slots__ = ("fn", "init", "scope")

    def __init__(self, fn: Callable[[Any], Any], init: Init, scope: str = PROCESS) -> None:
        self.fn, self.init, self.scope = fn, init, scope

    def __call__(self, item: Any) -> Any:
        (_in_thread if self.scope == THREAD else _in_process).ensure(self.init)
        return self.fn(item)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        from .pickling import importable_main, sendable  # noqa: PLC0415 - the parent's side only

        init = self.init
        if importable_main(self.fn) or importable_main(init.fn):
            # fn reads what the initializer set in their module: both by reference, so that they
            # share it (sent by value, each would have globals of its own). The workers import
            # the main module, as concurrent.futures' do.
            return Prepared, (self.fn, Init(init.fn, init.args, init.token, by_reference=True), PROCESS)
        return Prepared, (sendable(self.fn), init, PROCESS)  # in another process: once per process

    def ran_here(self) -> float:
        """Run the initializer now, in this process (before the items are measured here): its seconds (0: ran before).

        Raises:
            WorkerInitError: it raised.
        """
        if self.init.token in _in_process.done:
            return 0.0  # an earlier call ran it here: its workers have, as far as is known
        began = time.perf_counter()
        _in_process.ensure(self.init)
        return time.perf_counter() - began

    def per_thread(self) -> Prepared:
        """The same, run once per thread (a thread pool's)."""
        return Prepared(self.fn, self.init, THREAD)


def start_prepared_worker(parent: Any, stop_board: Any, clocks: Any, prepared: Prepared) -> None:
    """Start a worker of a pool kept for one initializer (``pools.prepared_pool``): set up, then its initializer run.

    A failure is left for the first item, which runs the initializer again and raises
    its ``WorkerInitError`` (a worker that died here would only be started again).
    """
    init_process_worker(parent, stop_board, clocks)
    with contextlib.suppress(WorkerInitError):
        _in_process.ensure(prepared.init)


def prepared_in(fn: Callable[[Any], Any]) -> Prepared | None:
    """The ``Prepared`` a call runs in ``fn``'s place (under a ``Retried``), if it has an initializer."""
    inner = fn.fn if isinstance(fn, Retried) else fn
    return inner if isinstance(inner, Prepared) else None


def call_prepared(
    init: Init,
    in_threads: bool,  # noqa: FBT001
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``fn(*args, **kwargs)`` once ``init`` ran in this thread (``in_threads``) or process: an ``AutoExecutor``'s task.

    Raises:
        WorkerInitError: the initializer raised.
    """
    (_in_thread if in_threads else _in_process).ensure(init)
    return fn(*args, **kwargs)


def call_counted(
    limit: int, init: Init | None, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any, bool]:
    """``fn(*args, **kwargs)`` in a worker that retires after ``limit`` calls: whether it ran, its result, retired.

    A worker at its limit runs nothing (the caller sends the call to a fresh worker).

    Raises:
        WorkerInitError: ``init`` (run first, once in this process) raised.
        Exception: what ``fn`` raised (it counts as a call).
    """
    if items_run() >= limit:
        return False, None, True
    if init is not None:
        _in_process.ensure(init)
    try:
        result = fn(*args, **kwargs)
    finally:
        count = items_run(1)
    return True, result, count >= limit


def per_thread(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` as a thread pool runs it: a ``Prepared`` within (under a ``Retried``) runs once per thread."""
    if isinstance(fn, Retried):
        return Retried(per_thread(fn.fn), fn.retry_on)
    return fn.per_thread() if isinstance(fn, Prepared) else fn


def unwrapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The user's function within the wrappers."""
    while isinstance(fn, Retried | Prepared | StageCall | AsyncStageCall):
        fn = fn.fn
    return fn
