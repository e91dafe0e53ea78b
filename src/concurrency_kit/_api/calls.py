"""The façade: ``run_parallel``, ``plan`` and ``shutdown`` (``iter_parallel``: ``streaming.py``).

Each call checks its arguments into one value (``_core.options.call_options``), then flows one
way: to its plan (``_api.planning.plan_call``: the decision), then to its run (``_run/call.py``:
the backends under it). ``run_parallel`` is ``plan(...).run()``, or, with ``progress=``,
``list(iter_parallel(...))``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar, cast, overload

from .._backends.pools import shutdown as stop_pools
from .._core.options import ClassifierFn, CostFn, ModeName, ProgressOption, call_options
from .._core.retrying import RetryDelay, RetryOn
from .._decide.memory import forget_all
from .._decide.plan import Plan
from .planning import (
    open_iter,
    plan_sequence,
)

__all__ = ["ModeName", "plan", "run_parallel", "shutdown"]

T = TypeVar("T")
R = TypeVar("R")


@overload
def plan(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    executor: Executor | None = None,
    cost: CostFn | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> Plan[R]: ...


@overload
def plan(
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    executor: Executor | None = None,
    cost: CostFn | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> Plan[R]: ...


def plan(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], Any],
    items: Iterable[T],
    mode: ModeName | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    executor: Executor | None = None,
    cost: CostFn | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> Plan[Any]:
    """Decide how ``fn`` should be mapped over ``items``, without running the rest.

    In ``"auto"`` mode the first items are run to measure the task (in up to two
    threads; in the calling thread first when an earlier call found the items tiny, or
    short and holding the GIL with a process pool warm for them, or the input is long;
    see [how auto decides](how-auto-decides.md));
    their results are kept, and the plan's first ``run()`` returns them in their place,
    so ``fn`` is still called exactly once per item. A coroutine function is recognised
    without running anything: its plan's mode is ``"async"`` (see [coroutines](coroutines.md)).

    Args:
        fn: a one-argument function, or a coroutine function.
        items: any iterable; it is read to the end at once.
        mode: ``"auto"`` (measure and choose), ``"serial"``, ``"thread"``,
            ``"process"``, ``"executor"`` (an executor is required), or ``"async"``
            (await what ``fn`` returns, on an event loop).
        workers: the number of threads or processes (default: chosen by the mode); in
            async mode, the most coroutines in flight (default 256).
        chunksize: how many items a worker takes at a time (default: from the
            measured time per item); in process mode the last chunks are smaller, so
            that the workers finish together.
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``
            consulted before any other (see [`register_classifier`][concurrency_kit.register_classifier]).
        return_exceptions: process every item, and return an exception raised by
            ``fn`` in its item's place instead of raising it (as ``asyncio.gather``).
        timeout: seconds the whole call may take, measuring included, counted from
            this call (a later ``run()`` gets what is left; a second ``run()`` gets
            the whole timeout again).
        executor: run the items on this ``concurrent.futures.Executor`` (a Dask
            client's ``get_executor()``, loky's ``get_reusable_executor()``, a pool of
            your own; default: the one of the enclosing [`use_executor`][concurrency_kit.use_executor] block, in
            auto mode). The first items are timed here and the rest go to it in chunks
            that each carry ten times its per-task cost in work; the plan's mode is
            ``"executor"``. It is never shut down.
        cost: ``cost(item)``, what an item costs (a number, or any value that orders:
            an int item itself, ``len``): the items start dearest first, so that a long
            one does not start last and keep one worker busy while the others idle
            (see [balancing](balancing.md)). The results are still in input order.
            Without it, auto orders the items so itself where it measured that their
            times follow their size. Called once an item, in the calling thread.
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
        The [`Plan`][concurrency_kit.Plan], with the mode, kind, sizing and a reason.

    Raises:
        TypeError: ``fn``, ``classifier`` or ``cost`` is not callable, ``items`` is not
            iterable, ``workers``/``chunksize`` is not an int, or ``executor`` is not
            an executor.
        ValueError: an unknown mode, ``workers``/``chunksize`` below 1, a timeout
            that is not positive, a classifier that returned something that is not
            a kind, ``executor=`` with a mode other than ``"auto"`` or
            ``"executor"``, or ``mode="executor"`` with no executor.
        TimeoutError: ``timeout`` passed while the first items were measured.
        TypeError: a coroutine function with a mode that would not await it
            (``"serial"``, ``"thread"``, ``"process"``, ``"executor"``, or
            ``executor=``); or a plain function that returned an awaitable (a
            coroutine) for a measured item.
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
        cost=cost,
        retries=retries,
        retry_on=retry_on,
        retry_delay=retry_delay,
        task_timeout=task_timeout,
        initializer=initializer,
        initargs=initargs,
        max_tasks_per_worker=max_tasks_per_worker,
    )
    return plan_sequence(fn, items if iterator is None else list(iterator), options)  # type: ignore[arg-type]


def shutdown(wait: bool = True) -> None:  # noqa: FBT001, FBT002 - mirrors Executor.shutdown
    """Stop the warm pools and forget what earlier calls measured; later calls start afresh.

    The pools also stop when the interpreter exits.

    Args:
        wait: wait for running work and for the workers to exit.
    """
    stop_pools(wait)
    forget_all()


@overload
def run_parallel(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    cost: CostFn | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> list[R]: ...


@overload
def run_parallel(
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    cost: CostFn | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> list[R]: ...


def run_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], Any],
    items: Iterable[T],
    mode: ModeName | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: ClassifierFn | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
    executor: Executor | None = None,
    cost: CostFn | None = None,
    retries: int = 0,
    retry_on: RetryOn = Exception,
    retry_delay: RetryDelay = 0.0,
    task_timeout: float | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_tasks_per_worker: int | None = None,
) -> list[Any]:
    """Return ``[fn(item) for item in items]``, computed the fastest way.

    ``mode="auto"`` measures the first items and picks a plain loop, threads or
    processes (see [`plan`][concurrency_kit.plan]); ``run_parallel(...)`` is ``plan(...).run()``. A
    coroutine function's coroutines are awaited on an event loop of the call's own, in a
    thread of its own, at most ``workers`` (default 256) at a time.

    Args:
        fn: a one-argument function. In process mode it must be picklable (defined at
            module level); in auto mode it may be called from two threads at once
            while it is measured. Or a coroutine function (see [coroutines](coroutines.md)).
        items: any iterable.
        mode: ``"auto"``, ``"serial"``, ``"thread"``, ``"process"``, ``"executor"`` or ``"async"``.
        workers: the number of threads or processes; in async mode, the most
            coroutines in flight.
        chunksize: how many items a worker takes at a time (at most: in process
            mode the last chunks shrink, so that the workers finish together).
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``.
        return_exceptions: process every item and return each exception ``fn``
            raised in its item's place, instead of raising the first.
        timeout: seconds the whole call may take. Worker processes still running
            its items are then killed (the pool is rebuilt by the next call);
            threads cannot be killed, so an item running in a thread finishes in the
            background, but the call returns on time and nothing new starts.
        progress: ``True`` for a tqdm progress bar, or a callable told ``(done,
            total)`` in the calling thread (see [`iter_parallel`][concurrency_kit.iter_parallel]). With it the
            call is ``list(iter_parallel(...))``, which returns the same.
        executor: run the items on this ``concurrent.futures.Executor`` (a Dask
            client's ``get_executor()``, loky's ``get_reusable_executor()``, a pool of
            your own; default: the one of the enclosing [`use_executor`][concurrency_kit.use_executor] block, in
            auto mode). The first items are timed here and the rest go to it in chunks
            that each carry ten times its per-task cost in work; the plan's mode is
            ``"executor"``. It is never shut down.
        cost: ``cost(item)``, what an item costs (a number, or any value that orders:
            an int item itself, ``len``): the items start dearest first, so that a long
            one does not start last and keep one worker busy while the others idle
            (see [balancing](balancing.md)). The results are still in input order.
            Without it, auto orders the items so itself where it measured that their
            times follow their size. Called once an item, in the calling thread.
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
        The results, in input order (with ``return_exceptions``, exceptions in the
        places of the items that raised them).

    Raises:
        TypeError: bad arguments (see [`plan`][concurrency_kit.plan]); a plain ``fn`` that returned an
            awaitable (a coroutine) for an item, which the error names (never
            collected by ``return_exceptions``: the call is wrong, not the item).
        ValueError: bad arguments (see [`plan`][concurrency_kit.plan]).
        UnpicklableTaskError: ``mode="process"`` with a function, item or result that
            cannot be pickled.
        WorkerCrashedError: a worker process died; the error names the items it
            was running (with ``return_exceptions``, the item that kills its worker
            gets this error in its place and the others complete).
        TimeoutError: ``timeout`` passed.
        RuntimeError: a coroutine function, called inside a running event loop (await
            [`arun_parallel`][concurrency_kit.arun_parallel] there).
        KeyboardInterrupt: Ctrl-C; worker processes running the call's items are
            killed, queued items never start, coroutines in flight are cancelled.
        Exception: the first exception ``fn`` raised, with its own type and message,
            a note naming the item (``add_note``) and, from a worker process, the
            worker's traceback as ``__cause__``. Nothing new starts after it.
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
        progress=progress,
        cost=cost,
        retries=retries,
        retry_on=retry_on,
        retry_delay=retry_delay,
        task_timeout=task_timeout,
        initializer=initializer,
        initargs=initargs,
        max_tasks_per_worker=max_tasks_per_worker,
    )
    listed = cast("Sequence[T]", items) if iterator is None else list(iterator)
    if progress is not None and progress is not False:
        return list(open_iter(fn, listed, options, iterator=None))  # with a length: the bar knows its total
    return plan_sequence(fn, listed, options).run()
