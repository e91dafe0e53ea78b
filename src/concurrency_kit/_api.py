"""The façade: :func:`run_parallel`, :func:`iter_parallel`, :func:`plan` and :func:`shutdown`.

Each call checks its arguments here, and then flows one way, through one module a step::

    run_parallel(fn, items)                 iter_parallel(fn, items)
      │  the whole input, as a list            │  the head of the input (auto)
      └─ plan_sequence()                       └─ plan_sequence(expected=…)        (this module)
           ├─ a forced mode: sized, nothing measured                 (_sizing.forced_choice)
           └─ auto: decide(Question)    the named steps, then the cost model   (_decide.py)
      │                                        │
      └─ Plan.run() → execute()                └─ open_stream()                    (_run.py)
           the backend runs the rest             the measured items first, then the
           (_backends/: a feed per list)         mode's runner (_backends/) runs the
           results in input order                rest as the engine takes them (_stream.py)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Executor, Future
from inspect import isawaitable
from itertools import islice
from typing import Any, Literal, TypeVar, cast, overload

from ._backends import Sent
from ._classify import COROUTINE_SOURCE, TaskKind, declared_kind, is_coroutine_function
from ._config import get_config
from ._cpu import planning_cpus
from ._decide import Question, decide, for_executor
from ._memory import forget_all
from ._outcomes import EMPTY, Outcomes, check_not_awaitable
from ._plan import MODES, Choice, Mode, Plan, Reason
from ._pools import shutdown as stop_pools
from ._probe import Measurement, ProbeRun
from ._run import Call, execute, open_stream
from ._scope import check_executor, current_executor
from ._sizing import async_choice, forced_choice
from ._stream import ResultStream

__all__ = ["iter_parallel", "plan", "run_parallel", "shutdown"]

T = TypeVar("T")
R = TypeVar("R")

#: Every mode a caller may ask for (``mode=``).
ModeName = Literal["auto", "serial", "thread", "process", "executor", "async"]


def _check_count(name: str, value: object) -> None:
    """Check a count the caller gave (``None``, not given, is not checked)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def check_timeout(timeout: object) -> float | None:
    """A timeout the caller gave, in seconds; ``None`` for one no wait can reach."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__} {timeout!r}")
    if not timeout > 0:  # also rejects NaN
        raise ValueError(f"timeout must be more than 0 seconds, got {timeout}")
    if timeout >= threading.TIMEOUT_MAX:  # inf, or more than any wait can take: no limit
        return None
    return float(timeout)


def _check_arguments(  # noqa: PLR0913, PLR0917 - checks every argument of the public call
    fn: object, items: object, mode: object, workers: object, chunksize: object, classifier: object
) -> Sequence[Any]:
    iterator = check_options(fn, items, mode, workers, chunksize, classifier)
    return items if iterator is None else list(iterator)  # type: ignore[return-value]


def check_options(  # noqa: PLR0913, PLR0917 - checks every argument of the public call
    fn: object, items: object, mode: object, workers: object, chunksize: object, classifier: object
) -> Iterator[Any] | None:
    """Check the arguments; return an iterator over ``items``, or ``None`` when they are a list, tuple or range."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__} {fn!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if workers is not None:
        _check_count("workers", workers)
    if chunksize is not None:
        _check_count("chunksize", chunksize)
    if classifier is not None and not callable(classifier):
        raise TypeError(f"classifier must be callable or None, got {type(classifier).__name__}")
    if isinstance(items, list | tuple | range):
        return None
    try:
        return iter(items)  # type: ignore[call-overload, no-any-return]
    except TypeError:
        raise TypeError(f"items must be iterable, got {type(items).__name__}") from None


def executor_for(mode: object, executor: object, fn: object) -> Executor | None:
    """The executor a call runs on: the one given, else (in auto mode) its :func:`use_executor` block's.

    None for a coroutine function in auto mode: its coroutines run on an event loop.
    """
    if (executor is not None or mode == "executor") and is_coroutine_function(fn):
        raise TypeError(
            "fn is a coroutine function: its coroutines run on an event loop, not on an executor; "
            "drop executor= (mode='auto' runs them on an event loop)"
        )
    if executor is not None:
        check_executor(executor)
        if mode not in {"auto", "executor"}:
            raise ValueError(
                f"executor= runs the items on that executor: mode must be 'auto' or 'executor', got {mode!r}"
            )
        return executor  # type: ignore[return-value]
    if mode not in {"auto", "executor"}:
        return None
    scoped = current_executor()
    if scoped is None and mode == "executor":
        raise ValueError("mode='executor' needs an executor: pass executor=, or call inside use_executor()")
    return None if scoped is None or is_coroutine_function(fn) else scoped


@overload
def plan(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    executor: Executor | None = None,
) -> Plan[R]: ...


@overload
def plan(
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    executor: Executor | None = None,
) -> Plan[R]: ...


def plan(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], Any],
    items: Iterable[T],
    mode: ModeName | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    executor: Executor | None = None,
) -> Plan[Any]:
    """Decide how ``fn`` should be mapped over ``items``, without running the rest.

    In ``"auto"`` mode the first items are run to measure the task (in up to two
    threads; in the calling thread first when an earlier call found the items tiny, or
    short and holding the GIL with a process pool warm for them, or the input is long;
    see docs/how-auto-decides.md);
    their results are kept, and the plan's first ``run()`` returns them in their place,
    so ``fn`` is still called exactly once per item. A coroutine function is recognised
    without running anything: its plan's mode is ``"async"`` (see docs/coroutines.md).

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
            consulted before any other (see :func:`register_classifier`).
        return_exceptions: process every item, and return an exception raised by
            ``fn`` in its item's place instead of raising it (as ``asyncio.gather``).
        timeout: seconds the whole call may take, measuring included, counted from
            this call (a later ``run()`` gets what is left; a second ``run()`` gets
            the whole timeout again).
        executor: run the items on this :class:`concurrent.futures.Executor` (a Dask
            client's ``get_executor()``, loky's ``get_reusable_executor()``, a pool of
            your own; default: the one of the enclosing :func:`use_executor` block, in
            auto mode). The first items are timed here and the rest go to it in chunks
            that each carry ten times its per-task cost in work; the plan's mode is
            ``"executor"``. It is never shut down.

    Returns:
        The :class:`Plan`, with the mode, kind, sizing and a reason.

    Raises:
        TypeError: ``fn`` or ``classifier`` is not callable, ``items`` is not
            iterable, ``workers``/``chunksize`` is not an int, or ``executor`` is not
            an executor.
        ValueError: an unknown mode, ``workers``/``chunksize`` below 1, a timeout
            that is not positive, a classifier that returned something that is not
            a kind, ``executor=`` with a mode other than ``"auto"`` or
            ``"executor"``, or ``mode="executor"`` with no executor.
        TimeoutError: ``timeout`` passed while the first items were measured.
        TypeError: a coroutine function with a mode that would not await it
            (``"serial"``, ``"thread"``, ``"process"``, ``"executor"``, or
            ``executor=``); or a plain function that returned a coroutine for a
            measured item.
    """
    return make_plan(
        fn,
        items,
        mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        timeout=timeout,
        executor=executor,
    )


def make_plan(  # noqa: PLR0913 - plan()'s arguments
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    mode: str,
    *,
    workers: int | None,
    chunksize: int | None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None,
    return_exceptions: bool,
    timeout: float | None,
    executor: Executor | None,
) -> Plan[Any]:
    """:func:`plan`, for any mode string (checked here)."""
    started = time.monotonic()
    seconds = None if timeout is None else check_timeout(timeout)
    sequence = _check_arguments(fn, items, mode, workers, chunksize, classifier)
    return plan_sequence(
        fn,
        sequence,
        mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        seconds=seconds,
        deadline=None if seconds is None else started + seconds,
        executor=executor_for(mode, executor, fn),
    )


def plan_sequence(  # noqa: PLR0913 - one flow, top to bottom, as the module docstring draws it
    fn: Callable[[Any], Any],
    sequence: Sequence[Any],
    mode: Mode | str,
    *,
    workers: int | None,
    chunksize: int | None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None,
    return_exceptions: bool,
    seconds: float | None,
    deadline: float | None,
    expected: int | None = None,
    executor: Executor | None = None,
) -> Plan[Any]:
    """:func:`plan`, on arguments already checked, for the items of ``sequence``.

    ``executor``: the executor the call runs on (given, or its :func:`use_executor`
    block's): the items it measures size the executor's tasks.

    ``expected``: how many items the call has in all, when ``sequence`` is only its head
    (a stream's, see ``_stream``): the cost model decides for that many; the measuring
    takes items from ``sequence`` alone, and keeps every result it got before a
    failure (a stream yields them).
    """
    count = len(sequence)
    planned = count if expected is None else max(count, expected)
    cpus = planning_cpus()
    io_cap = get_config().io_thread_cap()
    outcomes = Outcomes(count, collect=bool(return_exceptions), in_order=True, partial=expected is not None)

    def call(resume_at: int = 0, run: ProbeRun | None = None, sent: Sent | None = None) -> Call:
        return Call(
            fn,
            sequence,
            outcomes,
            resume_at,
            run,
            sent,
            auto=mode == "auto",
            collect=outcomes.collect,
            timeout=seconds,
            deadline=deadline,
            executor=executor,
        )

    decision = declared_kind(fn, sequence, classifier)
    declared = None if decision is None else decision.kind

    if mode == "async" or declared is TaskKind.ASYNC:
        if mode not in {"auto", "async"}:
            raise TypeError(
                f"fn is a coroutine function ({decision.source if decision else ''}): mode={mode!r} would return its "
                "coroutines un-awaited. Use mode='auto' or 'async' (inside an event loop: await arun_parallel(...))"
            )
        if mode == "async":
            why = "mode='async' was asked for"
        elif decision is not None and decision.source == COROUTINE_SOURCE:
            why = "fn is a coroutine function"
        else:
            why = f"kind async from {decision.source if decision else '?'}"
        sized = None if expected == UNSIZED_ITEMS else planned
        return _make_plan(async_choice(count=sized, workers=workers, why=why), TaskKind.ASYNC, None, call())

    if executor is not None:
        question = Question(
            fn, sequence, outcomes, planned, decision, workers, chunksize, cpus, io_cap, seconds, deadline
        )
        decided = for_executor(question, executor)
        made = call(decided.resume_at)
        made.ahead = decided.ahead
        return _make_plan(decided.choice, decided.kind, decided.measurement, made, decided.reason)

    if mode != "auto":
        choice = forced_choice(
            mode,  # type: ignore[arg-type]
            kind=declared,
            count=planned,
            cpus=cpus,
            io_cap=io_cap,
            workers=workers,
            chunksize=chunksize,
        )
        reason = choice.reason if decision is None else f"{choice.reason}; kind {declared} from {decision.source}"
        return _make_plan(choice, declared, None, call(), reason)

    if count == 0:
        choice = Choice("serial", 1, 1, "no items")
        return _make_plan(choice, declared, None, call())

    try:
        decided = decide(
            Question(fn, sequence, outcomes, planned, decision, workers, chunksize, cpus, io_cap, seconds, deadline)
        )
    except TimeoutError as exc:
        if expected is None:
            raise
        # A stream yields the results measured before the deadline, then raises this.
        done = outcomes.finished_until(0, count)
        made = call(done)
        made.timed_out = exc
        return _make_plan(Choice("serial", 1, 1, str(exc)), declared, None, made)
    measured = outcomes.values[0] if outcomes.values else EMPTY
    if measured is not EMPTY and isawaitable(measured):  # a coroutine function in disguise
        if decided.run is not None:
            decided.run.join()  # the probe's last items, whose coroutines are closed too
        check_not_awaitable(measured, 0, sequence[0], outcomes.values)
    return _make_plan(
        decided.choice,
        decided.kind,
        decided.measurement,
        call(decided.resume_at, decided.run, decided.sent),
        decided.reason,
    )


def _make_plan(
    choice: Choice, kind: TaskKind | None, measurement: Measurement | None, call: Call, reason: Reason | None = None
) -> Plan[Any]:
    """The plan for ``choice``, with ``reason`` (default: the choice's own)."""
    return Plan(
        mode=choice.mode,
        kind=kind,
        workers=choice.workers,
        chunksize=choice.chunksize,
        reason=choice.why if reason is None else reason,
        measurement=measurement,
        runner=execute,
        state=call,
    )


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
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
    executor: Executor | None = None,
) -> list[R]: ...


@overload
def run_parallel(
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: ModeName = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
    executor: Executor | None = None,
) -> list[R]: ...


def run_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], Any],
    items: Iterable[T],
    mode: ModeName | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
    executor: Executor | None = None,
) -> list[Any]:
    """Return ``[fn(item) for item in items]``, computed the fastest way.

    ``mode="auto"`` measures the first items and picks a plain loop, threads or
    processes (see :func:`plan`); ``run_parallel(...)`` is ``plan(...).run()``. A
    coroutine function's coroutines are awaited on an event loop of the call's own, in a
    thread of its own, at most ``workers`` (default 256) at a time.

    Args:
        fn: a one-argument function. In process mode it must be picklable (defined at
            module level); in auto mode it may be called from two threads at once
            while it is measured. Or a coroutine function (see docs/coroutines.md).
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
            total)`` in the calling thread (see :func:`iter_parallel`). With it the
            call is ``list(iter_parallel(...))``, which returns the same.
        executor: run the items on this :class:`concurrent.futures.Executor` (a Dask
            client's ``get_executor()``, loky's ``get_reusable_executor()``, a pool of
            your own; default: the one of the enclosing :func:`use_executor` block, in
            auto mode). The first items are timed here and the rest go to it in chunks
            that each carry ten times its per-task cost in work; the plan's mode is
            ``"executor"``. It is never shut down.

    Returns:
        The results, in input order (with ``return_exceptions``, exceptions in the
        places of the items that raised them).

    Raises:
        TypeError: bad arguments (see :func:`plan`).
        ValueError: bad arguments (see :func:`plan`).
        UnpicklableTaskError: ``mode="process"`` with a function, item or result that
            cannot be pickled.
        WorkerCrashedError: a worker process died; the error names the items it
            was running (with ``return_exceptions``, the item that kills its worker
            gets this error in its place and the others complete).
        TimeoutError: ``timeout`` passed.
        RuntimeError: a coroutine function, called inside a running event loop (await
            :func:`arun_parallel` there).
        KeyboardInterrupt: Ctrl-C; worker processes running the call's items are
            killed, queued items never start, coroutines in flight are cancelled.
        Exception: the first exception ``fn`` raised, with its own type and message,
            a note naming the item (``add_note``) and, from a worker process, the
            worker's traceback as ``__cause__``. Nothing new starts after it.
    """
    if progress is not None and progress is not False:
        listed = cast("Sequence[T]", items) if isinstance(items, list | tuple | range) else list(items)  # a length
        return list(
            open_iter(
                fn,
                listed,
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
            )
        )
    return make_plan(
        fn,
        items,
        mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        timeout=timeout,
        executor=executor,
    ).run()


#: The head of an input that auto measures and plans on: at most this many items (as
#: many as ``max_in_flight`` allows). The probe takes a few items to tens of
#: milliseconds' worth; the head is all there is to take from before the plan is made.
STREAM_HEAD = 64
#: How many items an input of unknown length, longer than its head, is planned for.
#: More items only favour pools, and a stream's pool starts once: a long stream kept in
#: a loop loses up to the CPUs' count in time, a short one sent to a pool loses its
#: start-up, once.
UNSIZED_ITEMS = 1_000_000


@overload
def iter_parallel(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    mode: ModeName = "auto",
    *,
    ordered: bool = True,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
    executor: Executor | None = None,
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
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
    executor: Executor | None = None,
) -> ResultStream[R]: ...


def iter_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], Any],
    items: Iterable[T],
    mode: ModeName | str = "auto",
    *,
    ordered: bool = True,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
    executor: Executor | None = None,
) -> ResultStream[Any]:
    """Yield ``fn(item)`` for every item of ``items``, as the results come, reading ``items`` lazily.

    In ``"auto"`` mode the first items are measured and planned on as
    :func:`run_parallel` plans a list, for the number of items the input has
    (``len(items)`` when it has one; many when it has none and is longer than its
    head); those results are kept, and the rest stream through the mode chosen. Each
    item runs exactly once. From a list, tuple or range the measuring takes what it
    needs, as in :func:`run_parallel`; from any other input (or with
    ``max_in_flight``), only its head: :data:`STREAM_HEAD` items at most.

    A coroutine function's coroutines are awaited on an event loop of the stream's own,
    in a thread of its own, and go on while the consumer handles a result.

    Args:
        fn: a one-argument function (picklable for process mode, as in
            :func:`run_parallel`), or a coroutine function.
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
        executor: run the items on this :class:`concurrent.futures.Executor` (a Dask
            client's ``get_executor()``, loky's ``get_reusable_executor()``, a pool of
            your own; default: the one of the enclosing :func:`use_executor` block, in
            auto mode). The first items are timed here and the rest go to it in chunks
            that each carry ten times its per-task cost in work; the plan's mode is
            ``"executor"``. It is never shut down.

    Returns:
        The results, as a :class:`ResultStream`: iterate it, ``close()`` it, or use it
        in a ``with`` block. Closing it early (or dropping it) stops taking items,
        cancels what has not started and kills worker processes running its items;
        an item running in a thread finishes in the background.

    Raises:
        TypeError: bad arguments (see :func:`plan`), ``max_in_flight`` not an int,
            or ``progress`` neither a bool nor a callable.
        ImportError: ``progress=True`` without tqdm installed.
        ValueError: bad arguments (see :func:`plan`), or ``max_in_flight`` below 1.
        UnpicklableTaskError: ``mode="process"`` with a function, item or result that
            cannot be pickled.
        WorkerCrashedError: a worker process died (see :func:`run_parallel`).
        TimeoutError: ``timeout`` passed, measuring included.
        RuntimeError: a coroutine function, called inside a running event loop (use
            :func:`aiter_parallel` there).
        Exception: while iterating, the first exception ``fn`` raised (in order: after
            the results before its item), noted with its item; nothing new starts.
    """
    return open_iter(
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
    )


def check_stream_options(max_in_flight: object, progress: object) -> None:
    """Check the options only a stream takes."""
    if max_in_flight is not None:
        _check_count("max_in_flight", max_in_flight)
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable, got {type(progress).__name__}")


def open_iter(  # noqa: PLR0913 - iter_parallel's arguments
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    mode: str,
    *,
    ordered: bool,
    workers: int | None,
    chunksize: int | None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None,
    return_exceptions: bool,
    timeout: float | None,
    max_in_flight: int | None,
    progress: bool | Callable[[int, int | None], object] | None,
    executor: Executor | None,
    stop: Future[None] | None = None,
) -> ResultStream[Any]:
    """:func:`iter_parallel`; ``stop``: once done, the stream stops as if closed (its reader is an event loop)."""
    started = time.monotonic()
    seconds = None if timeout is None else check_timeout(timeout)
    iterator = check_options(fn, items, mode, workers, chunksize, classifier)
    check_stream_options(max_in_flight, progress)
    source: Iterator[Any] = iter(items) if iterator is None else iterator
    size = len(items) if isinstance(items, Sized) else None
    on = executor_for(mode, executor, fn)
    measures = (mode == "auto" or on is not None) and not is_coroutine_function(fn)
    head: Sequence[Any] = []
    expected = UNSIZED_ITEMS if size is None else size
    if measures and iterator is None and max_in_flight is None:
        # A list, tuple or range is in memory already: measured as run_parallel measures it.
        head, source = items, iter(())  # type: ignore[assignment]
    elif measures:
        wanted = STREAM_HEAD if max_in_flight is None else min(STREAM_HEAD, max_in_flight)
        head = list(islice(source, wanted))
        if len(head) < wanted:
            expected = len(head)
    chosen = plan_sequence(
        fn,
        head,
        mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        seconds=seconds,
        deadline=None if seconds is None else started + seconds,
        expected=expected,
        executor=on,
    )
    return open_stream(
        chosen,
        items,
        head,
        source,
        sequence=iterator is None,
        size=size,
        mode=mode,
        chunksize=chunksize,
        ordered=ordered,
        max_in_flight=max_in_flight,
        progress=progress,
        seconds=seconds,
        stop=stop,
    )
