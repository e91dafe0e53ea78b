"""The awaitable façade: ``arun_parallel`` and ``aiter_parallel``, for code inside an event loop.

    aiter_parallel(fn, items)            arun_parallel(fn, items): the stream, drained
      ├─ a coroutine function (or mode="async"): planned here (nothing to measure), its
      │    coroutines on the caller's loop, the run engine with them      (_run/coroutines.py)
      └─ a plain function: iter_parallel in a driver thread, measuring included, its
           results handed to the loop as they come  (_run.offload.Offloaded)

Neither ever blocks the loop: nothing that waits, measures or runs a plain function
runs in its thread.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from typing import Any, TypeVar, cast, overload

import attrs

from .._core.kinds import is_coroutine_function
from .._core.options import CallOptions, ClassifierFn, ModeName, ProgressOption, call_options
from .._core.retrying import RetryDelay, RetryOn
from .._decide.plan import Mode
from .._run.call import STREAM_CHUNKS_PER_WORKER
from .._run.in_place import what_runs
from .._run.stream import Progress, ResultStream, told_by
from .async_stream import AsyncResultStream
from .planning import UNSIZED_ITEMS, open_iter, plan_sequence

__all__ = ["AsyncResultStream", "aiter_parallel", "arun_parallel"]

T = TypeVar("T")
R = TypeVar("R")


def _check_async_items(items: object) -> Sequence[Any] | None:
    """``items`` itself when it is a list, tuple or range; ``None`` for another iterable or an async iterable.

    Raises:
        TypeError: ``items`` is neither iterable nor async iterable.
    """
    if isinstance(items, list | tuple | range):
        return cast("Sequence[Any]", items)
    if isinstance(items, AsyncIterable | Iterable):
        return None
    raise TypeError(f"items must be iterable or async iterable, got {type(items).__name__}")


def _check_loop(what: str) -> None:
    """Raise unless an asyncio event loop runs in this thread.

    Raises:
        RuntimeError: none runs (under trio, say how to call the library there).
    """
    import asyncio  # noqa: PLC0415 - only the async façade needs it

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = sys.modules.get("trio")
        under_trio = False
        if trio is not None:
            try:
                trio.lowlevel.current_trio_token()
                under_trio = True
            except RuntimeError:
                pass
        hint = (
            "Under trio, run the synchronous form in a thread: await trio.to_thread.run_sync(run_parallel, fn, items)"
            if under_trio
            else "From synchronous code, call run_parallel or iter_parallel, which run their own loop"
        )
        raise RuntimeError(f"{what} must be used inside a running asyncio event loop. {hint}") from None


@overload
def aiter_parallel(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    mode: ModeName = "auto",
    *,
    ordered: bool = True,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> AsyncResultStream[R]: ...


@overload
def aiter_parallel(
    fn: Callable[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    mode: ModeName = "auto",
    *,
    ordered: bool = True,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> AsyncResultStream[R]: ...


def aiter_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], Any],
    items: Iterable[T] | AsyncIterable[T],
    mode: ModeName | str = "auto",
    *,
    ordered: bool = True,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> AsyncResultStream[Any]:
    """Yield ``fn(item)`` for every item, as the results come, inside a running event loop: ``async for``.

    The streaming form of [`arun_parallel`][concurrency_kit.arun_parallel], with
    [`iter_parallel`][concurrency_kit.iter_parallel]'s options.
    A coroutine function's coroutines run on the caller's loop, at most ``workers`` at
    a time (default ``async_workers``, 256); a plain function
    streams in the mode auto picks (or the one forced), measured and run in a thread of
    its own, so the loop never waits for it.

    Args:
        fn: a coroutine function (``async def``, a partial of one, an object whose
            ``__call__`` is one), or a plain one-argument function.
        items: any iterable, or an async iterable; read as the stream needs items.
        mode: ``"auto"``, ``"async"``, ``"serial"``, ``"thread"``, ``"process"`` or ``"executor"``.
        ordered: results in input order; with ``False``, as they finish.
        workers: the most coroutines in flight, or the threads or processes.
        chunksize: how many items a worker takes at a time (plain functions).
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``.
        return_exceptions: yield each exception ``fn`` raised in its item's place and go on.
        timeout: seconds the whole iteration may take, counted from the first result
            asked for; the coroutines in flight are then cancelled, worker processes
            running its items killed.
        max_in_flight: the most items taken and not yet yielded (default: two a worker
            for coroutines, as [`iter_parallel`][concurrency_kit.iter_parallel] for plain functions, whose
            results wait for the loop on top of these: ``HANDOFF_BOUND`` at most,
            or one with ``max_in_flight``).
        progress: ``True`` for a tqdm bar, or a callable told ``(done, total)`` in the
            loop's thread as each result is yielded.
        executor: run a plain function's items on this executor (see [`run_parallel`][concurrency_kit.run_parallel]).
        retries: run an item whose call failed again, up to this many more times;
            a worker process's death counts as a failure too (see
            [stuck, flaky and stateful work](per_item.md)).
        retry_on: which failures are retried: an exception type, a tuple of them, or a
            predicate ``exc -> bool`` (default ``Exception``).
        retry_delay: seconds to wait before each retry, or a callable ``attempt ->
            seconds`` ([`backoff`][concurrency_kit.backoff] makes exponential waits).
            A retry that waits holds no worker.
        task_timeout: seconds one item may run, from its start in a worker (queue
            time does not count). Past it the item fails with
            [`TaskTimeoutError`][concurrency_kit.TaskTimeoutError] and the other items go on:
            its worker process is killed and replaced, its coroutine cancelled, or (a
            thread cannot be stopped) its thread abandoned and replaced. Not with
            ``mode="serial"``; auto never picks a loop with it (see
            [stuck, flaky and stateful work](per_item.md)).
        initializer: run as ``initializer(*initargs)`` once in each worker before its
            first item (each thread, each worker process, once for a loop or a
            coroutine call), as ``concurrent.futures``' own: to load a model once, not
            once an item. If it raises, the call raises
            [`WorkerInitError`][concurrency_kit.WorkerInitError].
        initargs: the initializer's arguments.
        max_tasks_per_worker: a worker process is replaced after it has run this many
            items (counted by item: a chunk never takes it over), to let go of what
            leaks; the new one runs the initializer again. No effect in thread, async or
            serial mode.

    Returns:
        An [`AsyncResultStream`][concurrency_kit.AsyncResultStream]: ``async for`` over it, ``await stream.aclose()``,
        or ``async with`` it.

    Raises:
        TypeError: bad arguments (see [`plan`][concurrency_kit.plan]); a coroutine function with a
            mode other than ``"auto"`` or ``"async"``, or with ``executor=``; while
            iterating, a plain ``fn`` that returned an awaitable for an item (see
            [`iter_parallel`][concurrency_kit.iter_parallel]).
        ValueError: bad arguments (see [`plan`][concurrency_kit.plan]).
        RuntimeError: no asyncio event loop is running (raised when iterating).
        TimeoutError: while iterating, ``timeout`` passed.
        Exception: while iterating, the first exception ``fn`` raised (in order: after
            the results before its item), noted with its item; nothing new starts.
    """
    return _open(
        fn,
        items,
        mode,
        ordered=ordered,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        timeout=timeout,
        max_in_flight=max_in_flight,
        progress=progress,
        executor=executor,
        drained=False,
        retries=retries,
        retry_on=retry_on,
        retry_delay=retry_delay,
        task_timeout=task_timeout,
        initializer=initializer,
        initargs=initargs,
        max_tasks_per_worker=max_tasks_per_worker,
    )


@overload
async def arun_parallel(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> list[R]: ...


@overload
async def arun_parallel(
    fn: Callable[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> list[R]: ...


async def arun_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], Any],
    items: Iterable[T] | AsyncIterable[T],
    mode: ModeName | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> list[Any]:
    """Return the results of ``fn`` over ``items``, in input order, without blocking the running event loop.

    A coroutine function's coroutines run on this loop, at most ``workers`` at a time
    (default 256); a plain function runs as [`run_parallel`][concurrency_kit.run_parallel] would run it (a loop,
    threads or processes, measured first in auto mode), in a thread of its own: the
    loop goes on serving its other tasks meanwhile. Cancelling the task that awaits
    this (or ``asyncio.timeout`` around it) cancels the coroutines in flight, kills the
    worker processes running its items, and re-raises ``CancelledError``.

    Args:
        fn: a coroutine function, or a plain one-argument function.
        items: any iterable, or an async iterable.
        mode: ``"auto"``, ``"async"``, ``"serial"``, ``"thread"``, ``"process"`` or ``"executor"``.
        workers: the most coroutines in flight, or the threads or processes.
        chunksize: how many items a worker takes at a time (plain functions).
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``.
        return_exceptions: return each exception ``fn`` raised in its item's place.
        timeout: seconds the call may take.
        progress: ``True`` for a tqdm bar, or a callable told ``(done, total)`` in the
            loop's thread.
        executor: run a plain function's items on this executor (see [`run_parallel`][concurrency_kit.run_parallel]).
        retries: run an item whose call failed again, up to this many more times;
            a worker process's death counts as a failure too (see
            [stuck, flaky and stateful work](per_item.md)).
        retry_on: which failures are retried: an exception type, a tuple of them, or a
            predicate ``exc -> bool`` (default ``Exception``).
        retry_delay: seconds to wait before each retry, or a callable ``attempt ->
            seconds`` ([`backoff`][concurrency_kit.backoff] makes exponential waits).
            A retry that waits holds no worker.
        task_timeout: seconds one item may run, from its start in a worker (queue
            time does not count). Past it the item fails with
            [`TaskTimeoutError`][concurrency_kit.TaskTimeoutError] and the other items go on:
            its worker process is killed and replaced, its coroutine cancelled, or (a
            thread cannot be stopped) its thread abandoned and replaced. Not with
            ``mode="serial"``; auto never picks a loop with it (see
            [stuck, flaky and stateful work](per_item.md)).
        initializer: run as ``initializer(*initargs)`` once in each worker before its
            first item (each thread, each worker process, once for a loop or a
            coroutine call), as ``concurrent.futures``' own: to load a model once, not
            once an item. If it raises, the call raises
            [`WorkerInitError`][concurrency_kit.WorkerInitError].
        initargs: the initializer's arguments.
        max_tasks_per_worker: a worker process is replaced after it has run this many
            items (counted by item: a chunk never takes it over), to let go of what
            leaks; the new one runs the initializer again. No effect in thread, async or
            serial mode.

    Returns:
        The results, in input order.

    Raises:
        TypeError: bad arguments (see [`aiter_parallel`][concurrency_kit.aiter_parallel]); a plain ``fn`` that
            returned an awaitable for an item (see [`run_parallel`][concurrency_kit.run_parallel]).
        ValueError: bad arguments (see [`plan`][concurrency_kit.plan]).
        RuntimeError: no asyncio event loop is running.
        TimeoutError: ``timeout`` passed.
        WorkerCrashedError: a worker process died (see [`run_parallel`][concurrency_kit.run_parallel]).
        Exception: the first exception ``fn`` raised, noted with its item.
    """
    stream = _open(
        fn,
        items,
        mode,
        ordered=True,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        timeout=timeout,
        max_in_flight=None,
        progress=progress,
        executor=executor,
        drained=True,
        retries=retries,
        retry_on=retry_on,
        retry_delay=retry_delay,
        task_timeout=task_timeout,
        initializer=initializer,
        initargs=initargs,
        max_tasks_per_worker=max_tasks_per_worker,
    )
    async with stream:
        return [value async for value in stream]


def _open(  # noqa: PLR0913 - the public calls' arguments
    fn: Callable[[Any], Any],
    items: Iterable[Any] | AsyncIterable[Any],
    mode: Mode | str,
    *,
    ordered: bool,
    workers: int | None,
    chunksize: int | None,
    classifier: ClassifierFn | None,
    return_exceptions: bool,
    timeout: float | None,
    max_in_flight: int | None,
    progress: ProgressOption,
    executor: Executor | None,
    drained: bool,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> AsyncResultStream[Any]:
    """The stream both calls read (``drained``: all of it, into a list: no window)."""
    started = time.monotonic()
    _check_loop("arun_parallel" if drained else "aiter_parallel")
    sequence = _check_async_items(items)
    options, _ = call_options(
        fn,
        [] if sequence is None else sequence,
        started=started,
        mode=mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        timeout=timeout,
        executor=executor,
        ordered=ordered,
        max_in_flight=max_in_flight,
        progress=progress,
        retries=retries,
        retry_on=retry_on,
        retry_delay=retry_delay,
        task_timeout=task_timeout,
        initializer=initializer,
        initargs=initargs,
        max_tasks_per_worker=max_tasks_per_worker,
    )
    size = None if sequence is None else len(sequence)
    coroutines = mode == "async" or is_coroutine_function(fn)
    told = told_by(progress, size, "async" if coroutines else str(mode))
    if coroutines:
        return _coroutines(fn, items, sequence, options, drained=drained, progress=told)
    from .._run.offload import HANDOFF_BOUND, Offloaded  # noqa: PLC0415 - threads, only for plain functions

    driven = attrs.evolve(options, progress=None)  # told here, in the loop's thread

    def open_stream(stop: Future[None], source: Iterable[Any]) -> ResultStream[Any]:
        # The timeout counts from the driver's start, as when it checked the arguments itself.
        return open_iter(
            fn, source, attrs.evolve(driven, started=time.monotonic()), iterator=_iterator(source), stop=stop
        )

    bound = 1 if max_in_flight is not None else HANDOFF_BOUND
    return AsyncResultStream(Offloaded(open_stream, items, bound=bound), progress=told, total=size)


def _iterator(source: Iterable[Any]) -> Iterator[Any] | None:
    """An iterator over ``source``; ``None`` when it is a list, tuple or range (read in place)."""
    return None if isinstance(source, list | tuple | range) else iter(source)


def _coroutines(  # noqa: PLR0913 - the items twice: as given, and as a sequence where they are one
    fn: Callable[[Any], Any],
    items: Iterable[Any] | AsyncIterable[Any],
    sequence: Sequence[Any] | None,
    options: CallOptions,
    *,
    drained: bool,
    progress: Progress | None,
) -> AsyncResultStream[Any]:
    """A coroutine function's stream on the running loop, planned here (an async plan measures nothing).

    ``sequence``: ``items`` when they are a list, tuple or range (``_check_async_items``), else ``None``.
    """
    from .._run.coroutines import coroutine_engine  # noqa: PLC0415 - asyncio, only for coroutines

    chosen = plan_sequence(
        fn, [] if sequence is None else sequence, options, expected=None if sequence is not None else UNSIZED_ITEMS
    )
    total = None if sequence is None else len(sequence)
    stream = coroutine_engine(
        what_runs(fn, options, awaited=True),
        items,
        workers=chosen.workers,
        collect=options.return_exceptions,
        ordered=options.ordered,
        window=None if drained else options.max_in_flight or STREAM_CHUNKS_PER_WORKER * chosen.workers,
        total=total,
        timeout=options.timeout,
        per_item=options.per_item,
    )
    return AsyncResultStream(stream, progress=progress, total=total, mode=chosen.mode, reason=chosen.reason)
