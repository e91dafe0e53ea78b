"""The façade's stream: ``iter_parallel``, the results as they come.

It checks its arguments into one value (``_core.options.call_options``), as the calls of
``calls.py`` do, then plans on the head of its input and streams the rest
(``_api.planning.open_iter``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar, overload

from .._core.options import ClassifierFn, ModeName, ProgressOption, call_options
from .._core.retrying import RetryDelay, RetryOn
from .._run.stream import ResultStream
from .planning import open_iter

__all__ = ["iter_parallel"]

T = TypeVar("T")
R = TypeVar("R")


@overload
def iter_parallel(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
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
) -> ResultStream[R]: ...


@overload
def iter_parallel(
    fn: Callable[[T], R],
    items: Iterable[T],
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
) -> ResultStream[R]: ...


def iter_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], Any],
    items: Iterable[T],
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
) -> ResultStream[Any]:
    """Yield ``fn(item)`` for every item of ``items``, as the results come, reading ``items`` lazily.

    In ``"auto"`` mode the first items are measured and planned on as
    [`run_parallel`][concurrency_kit.run_parallel] plans a list, for the number of items the input has
    (``len(items)`` when it has one; many when it has none and is longer than its
    head); those results are kept, and the rest stream through the mode chosen. Each
    item runs exactly once. From a list, tuple or range the measuring takes what it
    needs, as in [`run_parallel`][concurrency_kit.run_parallel]; from any other input (or with
    ``max_in_flight``), only its head: ``STREAM_HEAD`` items at most.

    A coroutine function's coroutines are awaited on an event loop of the stream's own,
    in a thread of its own, and go on while the consumer handles a result.

    Args:
        fn: a one-argument function (picklable for process mode, as in
            [`run_parallel`][concurrency_kit.run_parallel]), or a coroutine function.
        items: any iterable, endless ones included; read as the stream needs items.
        mode: ``"auto"``, ``"serial"``, ``"thread"``, ``"process"``, ``"executor"`` or ``"async"``.
        ordered: results in input order; with ``False``, as they finish (a chunk's
            results together, in its order).
        workers: the number of threads or processes.
        chunksize: how many items a worker takes at a time.
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``.
        return_exceptions: yield each exception ``fn`` raised in its item's place and
            go on, instead of raising the first.
        timeout: seconds the whole iteration may take, counted from this call; worker
            processes still running its items are then killed.
        max_in_flight: the most items taken from ``items`` and not yet yielded, at any
            moment (workers wait for a slow consumer rather than pile up results).
            Default: two chunks a worker, and at least the items auto measured (up to
            64 of an input that is not a list, tuple or range); a loop takes one item
            at a time.
        progress: ``True`` for a tqdm progress bar on stderr (the ``progress`` extra:
            ``pip install "concurrency_kit[progress]"``), described by the mode chosen;
            or a callable, called ``(done, total)`` in the consuming thread as each
            result is yielded (``total`` is ``None`` when ``items`` has no length).
            It counts items, whatever the chunks; the last call counts every result.
        executor: run the items on this ``concurrent.futures.Executor`` (a Dask
            client's ``get_executor()``, loky's ``get_reusable_executor()``, a pool of
            your own; default: the one of the enclosing [`use_executor`][concurrency_kit.use_executor] block, in
            auto mode). The first items are timed here and the rest go to it in chunks
            that each carry ten times its per-task cost in work; the plan's mode is
            ``"executor"``. It is never shut down.
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
        The results, as a [`ResultStream`][concurrency_kit.ResultStream]: iterate it, ``close()`` it, or use it
        in a ``with`` block. Closing it early (or dropping it) stops taking items,
        cancels what has not started and kills worker processes running its items;
        an item running in a thread finishes in the background.

    Raises:
        TypeError: bad arguments (see [`plan`][concurrency_kit.plan]), ``max_in_flight`` not an int,
            or ``progress`` neither a bool nor a callable; while iterating, a plain
            ``fn`` that returned an awaitable (a coroutine) for an item, which the
            error names (after the results before it; never collected by
            ``return_exceptions``).
        ImportError: ``progress=True`` without tqdm installed.
        ValueError: bad arguments (see [`plan`][concurrency_kit.plan]), or ``max_in_flight`` below 1.
        UnpicklableTaskError: ``mode="process"`` with a function, item or result that
            cannot be pickled.
        WorkerCrashedError: a worker process died (see [`run_parallel`][concurrency_kit.run_parallel]).
        TimeoutError: ``timeout`` passed, measuring included.
        RuntimeError: a coroutine function, called inside a running event loop (use
            [`aiter_parallel`][concurrency_kit.aiter_parallel] there).
        Exception: while iterating, the first exception ``fn`` raised (in order: after
            the results before its item), noted with its item; nothing new starts.
    """
    started = time.monotonic()
    options, iterator = call_options(
        fn,
        items,
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
    return open_iter(fn, items, options, iterator=iterator)
