"""The façade: :func:`run_parallel`, :func:`iter_parallel` and :func:`plan`; and a plan's run.

A call flows one way::

    run_parallel(fn, items)                 iter_parallel(fn, items)
      │                                       │
      ├─ plan(fn, items)                      ├─ the head of items (auto)
      │    ├─ check arguments, materialise    ├─ plan_sequence(fn, head, expected=…)
      │    ├─ classify: the call's classifier │
      │    │  → @decorator → registered       │
      │    ├─ forced mode: sized, no measuring│
      │    └─ auto: decide()  (_decide.py: named steps, then the cost model in _plan.py)
      │                                       │
      └─ Plan.run()                           └─ the stream (_stream.py): the measured
           ├─ the backend runs the rest          items first, then chunks of the rest
           │  (_backends/)                       while the window has room, yielded
           ├─ the probe's threads finish         in order or as they finish
           └─ results in input order, or the first failure re-raised
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future
from itertools import chain, islice
from typing import Any, TypeVar

import attrs

from ._backends import BACKENDS, PROCESS_BACKEND, Sent
from ._classify import TaskKind, declared_kind
from ._config import get_config
from ._cpu import planning_cpus
from ._decide import Question, decide, final_kind, io_memo, memo_of
from ._errors import UnpicklableTaskError
from ._memory import forget_all, recall, remember
from ._outcomes import EMPTY, Feed, Outcomes, iterate_from, noted, run_items, timed_out
from ._plan import (
    MODES,
    PROCESS_COLD_START,
    Choice,
    Mode,
    Plan,
    Reason,
    forced_choice,
)
from ._pools import (
    process_pool_age,
)
from ._pools import shutdown as stop_pools
from ._probe import Measurement, ProbeRun
from ._stream import ProcessRunner, Progress, ProgressBar, ResultStream, Runner, ThreadRunner, Unit, loop, stream

__all__ = ["iter_parallel", "plan", "run_parallel", "shutdown"]

T = TypeVar("T")
R = TypeVar("R")


@attrs.define(eq=False)
class _Call:
    """What a plan needs to run: the inputs, and what the measurement already ran."""

    fn: Callable[[Any], Any]
    items: Sequence[Any]
    #: The measured items' outcomes and the probe still running some: the first run()
    #: takes them (and the plan then keeps no result alive).
    outcomes: Outcomes | None
    resume_at: int
    probe: ProbeRun | None
    #: The first item, still running in the process pool that measured it.
    sent: Sent | None
    auto: bool = False
    collect: bool = False  # return_exceptions
    timeout: float | None = None
    deadline: float | None = None  # time.monotonic() the first run must end by
    lock: threading.Lock = attrs.field(factory=threading.Lock)


def _check_count(name: str, value: object) -> None:
    """Check a count the caller gave (``None``, not given, is not checked)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _check_timeout(timeout: object) -> float | None:
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
    iterator = _check_options(fn, items, mode, workers, chunksize, classifier)
    return items if iterator is None else list(iterator)  # type: ignore[return-value]


def _check_options(  # noqa: PLR0913, PLR0917 - checks every argument of the public call
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


def plan(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: Mode | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
) -> Plan:
    """Decide how ``fn`` should be mapped over ``items``, without running the rest.

    In ``"auto"`` mode the first items are run to measure the task (in up to two
    threads; in the calling thread first when an earlier call found the items tiny, or
    short and holding the GIL with a process pool warm for them, or the input is long;
    see docs/how-auto-decides.md);
    their results are kept, and the plan's first ``run()`` returns them in their place,
    so ``fn`` is still called exactly once per item.

    Args:
        fn: a one-argument function.
        items: any iterable; it is read to the end at once.
        mode: ``"auto"`` (measure and choose), ``"serial"``, ``"thread"`` or
            ``"process"``.
        workers: the number of threads or processes (default: chosen by the mode).
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

    Returns:
        The :class:`Plan`, with the mode, kind, sizing and a reason.

    Raises:
        TypeError: ``fn`` or ``classifier`` is not callable, ``items`` is not
            iterable, or ``workers``/``chunksize`` is not an int.
        ValueError: an unknown mode, ``workers``/``chunksize`` below 1, a timeout
            that is not positive, or a classifier that returned something that is not
            a kind.
        TimeoutError: ``timeout`` passed while the first items were measured.
    """
    started = time.monotonic()
    seconds = None if timeout is None else _check_timeout(timeout)
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
) -> Plan:
    """:func:`plan`, on arguments already checked, for the items of ``sequence``.

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

    def call(resume_at: int = 0, run: ProbeRun | None = None, sent: Sent | None = None) -> _Call:
        return _Call(
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
        )

    decision = declared_kind(fn, sequence, classifier)
    declared = None if decision is None else decision.kind

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

    decided = decide(
        Question(fn, sequence, outcomes, planned, decision, workers, chunksize, cpus, io_cap, seconds, deadline)
    )
    return _make_plan(
        decided.choice,
        decided.kind,
        decided.measurement,
        call(decided.resume_at, decided.run, decided.sent),
        decided.reason,
    )


def _make_plan(
    choice: Choice, kind: TaskKind | None, measurement: Measurement | None, call: _Call, reason: Reason | None = None
) -> Plan:
    """The plan for ``choice``, with ``reason`` (default: the choice's own)."""
    return Plan(
        mode=choice.mode,
        kind=kind,
        workers=choice.workers,
        chunksize=choice.chunksize,
        reason=choice.why if reason is None else reason,
        measurement=measurement,
        runner=_execute,
        state=call,
    )


def _execute(plan: Plan) -> list[Any]:
    call: _Call = plan._state  # noqa: SLF001 - the plan's own runner
    with call.lock:
        taken, run, sent = call.outcomes, call.probe, call.sent
        call.outcomes = call.probe = call.sent = None
    if sent is not None and plan.mode != "process":
        sent.finish()  # nothing else takes it over
        sent = None
    if taken is not None:
        outcomes, resume_at, deadline = taken, call.resume_at, call.deadline
    else:  # a second run() runs everything again, with the whole timeout
        outcomes = Outcomes(len(call.items), collect=call.collect, in_order=True)
        resume_at = 0
        deadline = None if call.timeout is None else time.monotonic() + call.timeout
    if outcomes.failed:
        pass  # an item failed while it was measured: nothing more starts
    elif plan.mode == "serial" and deadline is None and outcomes.in_order:
        # A loop's items in order, which nothing but the calling thread runs: nothing can
        # stop the call meanwhile, so the rest run at once, as a list comprehension would.
        run_items(call.fn, call.items, outcomes, resume_at, len(call.items))
    else:
        _run_rest(plan, call, outcomes, resume_at=resume_at, deadline=deadline, run=run, sent=sent)
    if outcomes.error is not None:
        raise _noted(outcomes.error, outcomes.error_index, call.items)
    return outcomes.values


def _run_rest(  # noqa: PLR0913 - what _execute took from the plan
    plan: Plan,
    call: _Call,
    outcomes: Outcomes,
    *,
    resume_at: int,
    deadline: float | None,
    run: ProbeRun | None,
    sent: Sent | None = None,
) -> None:
    """Run the items from ``resume_at`` on in the plan's mode; finish the probe's (``run``) and the pool's."""
    feed = Feed(outcomes, resume_at, len(call.items), in_order=plan.mode == "serial")
    age = process_pool_age(plan.workers) if plan.mode == "process" and plan.kind is TaskKind.IO else None
    try:
        if not outcomes.failed and feed.remaining:
            try:
                _run_backend(plan, call, feed, deadline, run, sent=sent)
            except UnpicklableTaskError:
                if not call.auto:
                    raise
                # Auto checked the function and one item; a later item would not pickle.
                # The items not sent run here instead, as the loop would have run them.
                _run_missing(call, outcomes, resume_at, deadline)
        waited = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not outcomes.failed and run is not None:
            if not run.join(waited):  # the items the probe took
                raise TimeoutError
            if not run.measurement.exact and plan.kind is not None and not outcomes.failed:
                # The plan was made on lower bounds; now the probe's items are done.
                final = run.final()
                memo = memo_of(final_kind(plan.kind, final), final)
                if plan.kind is TaskKind.IO:
                    memo = io_memo(
                        memo,
                        recall(call.fn),
                        plan,
                        count=len(call.items) - run.first,
                        seconds=time.perf_counter() - run.started,
                        cpu=feed.cpu + final.item_cpu * final.completed,
                        warm=age is not None and age >= PROCESS_COLD_START,
                    )
                remember(call.fn, memo)
    except TimeoutError:  # only the backends' and the probe's own: fn's exceptions are recorded, not raised
        raise timed_out(call.timeout, outcomes) from None


def _run_backend(  # noqa: PLR0913 - what the run has in flight
    plan: Plan, call: _Call, feed: Feed, deadline: float | None, run: ProbeRun | None, *, sent: Sent | None
) -> None:
    """Run the feed's items in the plan's mode.

    ``run``: the probe, whose threads may still run items; ``sent``: the first item, still
    running in the process pool (then the plan's mode is processes, with no deadline).
    """
    if call.auto and plan.mode == "process" and deadline is None:
        # Auto turned the loop down: the calling thread runs items until the pool is up,
        # so that auto never does much worse than that loop while a cold pool starts
        # (once the probe's threads are through the items they took).
        PROCESS_BACKEND.run_helping(
            call.fn,
            call.items,
            feed,
            workers=plan.workers,
            chunksize=plan.chunksize,
            others=() if run is None else run.threads,
            others_compute=plan.kind is TaskKind.CPU,
            sent=sent,
        )
        return
    BACKENDS[plan.mode].run(
        call.fn, call.items, feed, workers=plan.workers, chunksize=plan.chunksize, deadline=deadline
    )


def _noted(error: BaseException, index: int, items: Sequence[Any]) -> BaseException:
    """Add a note naming the item to ``error`` (once)."""
    return noted(error, index, items[index])


def _run_missing(call: _Call, outcomes: Outcomes, start: int, deadline: float | None) -> None:
    """Run, in the calling thread, every item from ``start`` on that has no result yet."""
    values, index, total = outcomes.dense(), start, len(call.items)
    while index < total and not outcomes.failed:
        if values[index] is not EMPTY:
            index += 1
            continue
        stop = index
        while stop < total and values[stop] is EMPTY:
            stop += 1
        feed = Feed(outcomes, index, stop)
        BACKENDS["serial"].run(call.fn, call.items, feed, workers=1, chunksize=stop - index, deadline=deadline)
        index = stop


def shutdown(wait: bool = True) -> None:  # noqa: FBT001, FBT002 - mirrors Executor.shutdown
    """Stop the warm pools and forget what earlier calls measured; later calls start afresh.

    The pools also stop when the interpreter exits.

    Args:
        wait: wait for running work and for the workers to exit.
    """
    stop_pools(wait)
    forget_all()


def run_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: Mode | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
) -> list[R]:
    """Return ``[fn(item) for item in items]``, computed the fastest way.

    ``mode="auto"`` measures the first items and picks a plain loop, threads or
    processes (see :func:`plan`); ``run_parallel(...)`` is ``plan(...).run()``.

    Args:
        fn: a one-argument function. In process mode it must be picklable (defined at
            module level); in auto mode it may be called from two threads at once
            while it is measured.
        items: any iterable.
        mode: ``"auto"``, ``"serial"``, ``"thread"`` or ``"process"``.
        workers: the number of threads or processes.
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
        KeyboardInterrupt: Ctrl-C; worker processes running the call's items are
            killed, queued items never start.
        Exception: the first exception ``fn`` raised, with its own type and message,
            a note naming the item (``add_note``) and, from a worker process, the
            worker's traceback as ``__cause__``. Nothing new starts after it.
    """
    if progress is not None and progress is not False:
        listed = items if isinstance(items, list | tuple | range) else list(items)  # a length to count to
        return list(
            iter_parallel(
                fn,
                listed,
                mode,
                workers=workers,
                chunksize=chunksize,
                classifier=classifier,
                return_exceptions=return_exceptions,
                timeout=timeout,
                progress=progress,
            )
        )
    return plan(
        fn,
        items,
        mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        timeout=timeout,
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
#: A stream's default window: this many chunks a worker (one running, one queued) ...
STREAM_CHUNKS_PER_WORKER = 2
#: ... of this many items at most in a forced mode over an input of unknown length,
#: where nothing measured sizes them.
FORCED_STREAM_CHUNK = 16


def iter_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: Mode | str = "auto",
    *,
    ordered: bool = True,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
) -> ResultStream[R]:
    """Yield ``fn(item)`` for every item of ``items``, as the results come, reading ``items`` lazily.

    In ``"auto"`` mode the head of the input (:data:`STREAM_HEAD` items at most) is
    measured and planned on as :func:`run_parallel` plans a list, for the number of
    items the input has (``len(items)`` when it has one; many when it has none and
    is longer than its head); those results are kept, and the rest stream through the
    mode chosen. Each item runs exactly once.

    Args:
        fn: a one-argument function (picklable for process mode, as in :func:`run_parallel`).
        items: any iterable, endless ones included; read as the stream needs items.
        mode: ``"auto"``, ``"serial"``, ``"thread"`` or ``"process"``.
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
            Default: two chunks a worker, and at least the head auto measures (64
            items); a loop takes one item at a time.
        progress: ``True`` for a tqdm progress bar on stderr (the ``progress`` extra:
            ``pip install "concurrency_kit[progress]"``), described by the mode chosen;
            or a callable, called ``(done, total)`` in the consuming thread as each
            result is yielded (``total`` is ``None`` when ``items`` has no length).
            It counts items, whatever the chunks; the last call counts every result.

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
        Exception: while iterating, the first exception ``fn`` raised (in order: after
            the results before its item), noted with its item; nothing new starts.
    """
    started = time.monotonic()
    seconds = None if timeout is None else _check_timeout(timeout)
    listed = _check_options(fn, items, mode, workers, chunksize, classifier)
    if max_in_flight is not None:
        _check_count("max_in_flight", max_in_flight)
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable, got {type(progress).__name__}")
    source: Iterator[Any] = iter(items) if listed is None else listed
    size = len(items) if isinstance(items, Sized) else None
    head: list[Any] = []
    expected = UNSIZED_ITEMS if size is None else size
    if mode == "auto":
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
    )
    call: _Call = chosen._state  # noqa: SLF001 - the plan made here
    first, collect = _measured_units(chosen, call, head)
    chunk = chosen.chunksize
    if mode != "auto" and chunksize is None and size is None:
        chunk = min(chunk, FORCED_STREAM_CHUNK)
    told: Progress | None = None
    if progress is True:
        told = ProgressBar(size, chosen.mode)
    elif callable(progress):
        told = progress
    if chosen.mode == "serial":
        if listed is None:  # a list, tuple or range: from where the measuring stopped, no copy
            ahead: Sequence[Any] | None = items  # type: ignore[assignment]
            rest: Iterator[Any] = iterate_from(items, call.resume_at)  # type: ignore[arg-type]
        else:
            ahead, rest = None, chain(head[call.resume_at :], source)
        results: Iterator[Any] = loop(
            fn,
            ahead,
            rest,
            start=call.resume_at,
            first=first,
            collect=collect,
            progress=told,
            total=size,
            timeout=seconds,
            deadline=call.deadline,
        )
        return ResultStream(results, chosen.mode, chosen.reason)
    runner: Runner
    if chosen.mode == "thread":
        runner = ThreadRunner(fn, chosen.workers, collect=collect)
    else:
        runner = ProcessRunner(fn, chosen.workers, collect=collect, fallback=mode == "auto")
    window = max_in_flight or max(len(head), STREAM_CHUNKS_PER_WORKER * chosen.workers * chunk)
    results = stream(
        runner,
        chain(head[call.resume_at :], source),
        start=call.resume_at,
        first=first,
        ordered=ordered,
        collect=collect,
        window=window,
        chunksize=chunk,
        workers=chosen.workers,
        total=size,
        progress=told,
        timeout=seconds,
        deadline=call.deadline,
    )
    return ResultStream(results, chosen.mode, chosen.reason)


def _measured_units(chosen: Plan, call: _Call, head: list[Any]) -> tuple[list[tuple[Unit, Future[Any] | None]], bool]:
    """The stream's first units: the items ``chosen`` measured of ``head``, each with what it is done with.

    Taken from the plan (its first ``run()`` would have them): the first item still
    running in a worker, and the items the measuring ran (the probe's threads may still
    run some). Also: whether exceptions are collected.
    """
    with call.lock:
        outcomes, run, sent = call.outcomes, call.probe, call.sent
        call.outcomes = call.probe = call.sent = None
    assert outcomes is not None
    if sent is not None and chosen.mode != "process":
        sent.finish()  # nothing else takes it over
        sent = None
    first: list[tuple[Unit, Future[Any] | None]] = []
    measured_from = 0
    if sent is not None:
        future, pool = sent.take()
        unit = Unit(0, head[:1])
        unit.pool = pool
        first.append((unit, future))
        measured_from = 1
    if call.resume_at > measured_from:
        unit = Unit(measured_from, head[measured_from : call.resume_at])
        unit.read = _measured_outcomes(chosen, call, outcomes, run, measured_from)
        first.append((unit, None if run is None else _all_done(run.threads)))
    return first, outcomes.collect


def _measured_outcomes(
    chosen: Plan, call: _Call, outcomes: Outcomes, run: ProbeRun | None, first: int
) -> Callable[[Future[Any] | None], list[tuple[bool, Any]]]:
    """What reads the outcomes of the items a stream's plan measured (``first …``), once the probe is done."""

    def read(_: Future[Any] | None) -> list[tuple[bool, Any]]:
        if run is not None:
            run.join()  # re-raises what escaped a probe thread
            if not run.measurement.exact and chosen.kind is not None and not outcomes.failed:
                final = run.final()  # the plan was made on lower bounds: remember the real figures
                remember(call.fn, memo_of(final_kind(chosen.kind, final), final))
        values = outcomes.dense()
        stop = call.resume_at if not outcomes.failed else min(call.resume_at, outcomes.error_index)
        read_: list[tuple[bool, Any]] = [(True, values[index]) for index in range(first, stop)]
        if outcomes.failed and outcomes.error is not None and first <= outcomes.error_index < call.resume_at:
            read_.append((False, outcomes.error))
        return read_

    return read


def _all_done(futures: Sequence[Future[Any]]) -> Future[None]:
    """A future done once every one of ``futures`` is."""
    done: Future[None] = Future()
    left = [len(futures)]
    lock = threading.Lock()

    def one(_: Future[Any]) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            done.set_result(None)

    if not futures:
        done.set_result(None)
    for future in futures:
        future.add_done_callback(one)
    return done
