"""A decided call's run: its items through the run engine, drained into a list or streamed.

Both take over what the measuring left (a ``Handover``, taken once): the items it ran,
the probe's threads still running some, the first item still in a worker process, the
units sent ahead to an executor. Those become the engine's first units; the mode's
runner (``_backends/``) runs the rest as the engine (engine.py) takes them.

    Plan.run()    → execute()      a loop over a list: the rest at once, as a list
                                   comprehension; else the engine, drained (drain())
    iter_parallel → open_stream()  the engine's stream (results()); a loop's stream is
                                   loop() (stream.py), a generator in the consumer's thread

Coroutines run through the engine too, on an event loop of the call's own (coroutines.py).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future
from itertools import chain
from typing import TYPE_CHECKING, Any

from .._backends.awaitable import check_results
from .._backends.outcomes import iterate_from, noted, run_items
from .._backends.pools import process_pool_age
from .._backends.registry import ExecutorRunner, LoopRunner, ProcessRunner, Runner, ThreadRunner, Unit
from .._core.options import CallOptions
from .balancing import StartOrder, longest_first
from .engine import Engine
from .handover import Handover, RunFacts, Sizing, Taken
from .in_place import per_thread
from .inbox import Inbox
from .results import Progress, close_progress
from .sharing import Throttled
from .stream import ResultStream, loop, told_by
from .warming import Helping

if TYPE_CHECKING:
    from .coroutines import LoopEngine

__all__ = ["STREAM_CHUNKS_PER_WORKER", "execute", "open_stream"]

#: A stream's default window: this many chunks a worker (one running, one queued) ...
STREAM_CHUNKS_PER_WORKER = 2
#: ... of this many items at most in a forced mode over an input of unknown length,
#: where nothing measured sizes them.
FORCED_STREAM_CHUNK = 16


def execute(handover: Handover, sizing: Sizing) -> list[Any]:
    """Run a decided call to the end (its plan's ``run()``): the items its measuring left, then the results in order.

    Raises:
        TimeoutError: the call's timeout passed.
        TypeError: a plain ``fn`` returned an awaitable (the first such item named;
            not collected with ``return_exceptions``).
        Exception: the first exception ``fn`` raised (unless exceptions are collected), noted with its item.
    """
    if sizing.mode == "async":
        values: list[Any] = []
        batches = _on_private_loop(
            handover, sizing, handover.items, ordered=True, window=None, total=len(handover.items)
        )
        for batch in batches:
            values += batch
        return values
    taken = handover.take()
    outcomes, items = taken.outcomes, handover.items
    loops_here = sizing.mode == "serial" and taken.deadline is None and handover.options.retry is None
    if not outcomes.failed and loops_here and outcomes.in_order:
        # A loop's items in order, which nothing but the calling thread runs: nothing can
        # stop the call meanwhile, so the rest run at once, as a list comprehension would
        # (not with retries: the engine settles the failures to retry).
        if taken.sent is not None:
            taken.sent.finish()
        run_items(handover.fn, items, outcomes, taken.resume_at, len(items))
    elif not outcomes.failed:  # else an item failed while it was measured: nothing more starts
        return _drained(handover, sizing, taken)
    if outcomes.error is not None:
        check_results(outcomes.values[: outcomes.error_index], items)  # an awaitable before it went wrong first
        raise noted(outcomes.error, outcomes.error_index, items[outcomes.error_index])
    check_results(outcomes.values, items)  # every result: a coroutine in the middle is an error too
    return outcomes.values


def _drained(handover: Handover, sizing: Sizing, taken: Taken) -> list[Any]:
    """The engine's results, as one list; the decision learns how the run went."""
    items, options, measuring = handover.items, handover.options, taken.measuring
    runner = _runner(handover, sizing, deadline=taken.deadline)
    chunksize = sizing.chunksize
    if sizing.mode == "thread":
        # The lanes share each unit, a chunk at a time, and so balance the tail among
        # themselves: a unit may hold many chunks. A unit per chunk would cost a round trip
        # to the engine (a thread switch) per chunk, where the lanes pay one lock; so the
        # list is handed over in as few units as keep every lane busy. The decision learns
        # from the lanes' CPU time, where it measured.
        collect, count_cpu = options.return_exceptions, measuring is not None
        runner = ThreadRunner(
            per_thread(handover.fn),
            sizing.workers,
            collect=collect,
            step=chunksize,
            count_cpu=count_cpu,
            task_timeout=options.task_timeout,
        )
        chunksize = max(chunksize * sizing.workers, -(-(len(items) - taken.resume_at) // runner.capacity))
    chunksize = _within_limit(chunksize, sizing, options)
    first, others = _measured_units(handover, sizing, taken, items, learn=False)
    cost = handover.cost
    order = None if cost is None or sizing.workers < 2 else longest_first(items, taken.resume_at, cost)
    helping = None
    if options.auto and sizing.mode == "process" and taken.deadline is None and options.task_timeout is None:
        # (Not with a task timeout: an item run here could not be stopped.)
        helping = Helping(others, measuring is not None and measuring.computing)
    age = process_pool_age(sizing.workers) if sizing.mode == "process" else None
    engine = Engine(
        runner,
        iterate_from(items, taken.resume_at) if order is None else order.items(items),
        start=taken.resume_at,
        first=first,
        ordered=True,
        collect=options.return_exceptions,
        window=None,
        chunksize=chunksize,
        workers=sizing.workers,
        total=len(items),
        timeout=options.timeout,
        deadline=taken.deadline,
        helping=helping,
        order=order,
        per_item=options.per_item,
    )
    values = engine.drain()
    if measuring is not None:
        cpu = runner.cpu if isinstance(runner, ThreadRunner) else 0.0
        measuring.finished(RunFacts(sizing, len(items), time.perf_counter(), cpu, age))
    if handover.timing is not None and engine.timed:
        handover.timing([(_indices(start, count, order), seconds) for start, count, seconds in engine.timed])
    return values


def _indices(start: int, count: int, order: StartOrder | None) -> range | list[int]:
    """The input indices of the ``count`` items from position ``start`` on."""
    if order is None:
        return range(start, start + count)
    return [order.index(position) for position in range(start, start + count)]


def _on_private_loop(  # noqa: PLR0913 - the stream's shape, by name
    handover: Handover,
    sizing: Sizing,
    items: Iterable[Any],
    *,
    ordered: bool,
    window: int | None,
    total: int | None,
    stop: Future[None] | None = None,
) -> Generator[list[Any], None, None]:
    """The batches of results of an async call's coroutines, on an event loop of the call's own (until ``stop``).

    Raises:
        RuntimeError: an event loop runs in this thread (checked now, not when the
            batches are first read).
    """
    from .._backends.coroutines import check_no_running_loop, private_loop  # noqa: PLC0415 - asyncio
    from .coroutines import coroutine_engine  # noqa: PLC0415 - likewise

    check_no_running_loop("run_parallel" if total is not None and window is None else "iter_parallel")
    deadline = handover.take().deadline
    context = contextvars.copy_context()  # the caller's, as a task would have it
    options = handover.options

    def make() -> LoopEngine:
        return coroutine_engine(
            handover.fn,
            items,
            workers=sizing.workers,
            collect=options.return_exceptions,
            ordered=ordered,
            window=window,
            total=total,
            timeout=options.timeout,
            deadline=deadline,
            context=context,
            per_item=options.per_item,
        )

    return private_loop(make, stop)


def open_stream(  # noqa: PLR0913 - the call, and its input as iter_parallel split it
    handover: Handover,
    sizing: Sizing,
    reason: str,
    *,
    items: Iterable[Any],
    head: Sequence[Any],
    source: Iterator[Any],
    sequence: bool,
    size: int | None,
    stop: Future[None] | None = None,
) -> ResultStream[Any]:
    """The stream of a decided call's results: the measured items of ``head``, then the rest of ``head`` and ``source``.

    Args:
        handover: what the decision left, made on ``head`` (auto) or on nothing (a forced mode).
        sizing: how the call runs.
        reason: why (the plan's reason), for the stream.
        items: the input.
        head: the items planned on: taken from ``source``, or ``items`` itself (a sequence).
        source: the rest of the input.
        sequence: ``items`` is a list, tuple or range: a loop reads it from where the
            measuring stopped, without a copy.
        size: ``len(items)``, where it has one.
        stop: once done, the stream stops as if closed (an event loop reads it from
            another thread, see ``_run.offload``).
    """
    options = handover.options
    told = told_by(options.progress, size, sizing.mode)
    resume_at = handover.resume_at
    if sizing.mode == "async":
        window = options.max_in_flight or STREAM_CHUNKS_PER_WORKER * sizing.workers
        rest = _after_head(head, resume_at, source)
        batches = _on_private_loop(
            handover, sizing, rest, ordered=options.ordered, window=window, total=size, stop=stop
        )
        return ResultStream(_yielded(batches, told, size), sizing.mode, reason, sizing.workers)
    taken = handover.take()
    first, _ = _measured_units(handover, sizing, taken, head)
    if sizing.mode == "serial" and options.retry is None:
        results = _loop_rest(
            handover,
            taken,
            first,
            items=items,
            head=head,
            source=source,
            sequence=sequence,
            told=told,
            size=size,
            stop=stop,
        )
        return ResultStream(results, sizing.mode, reason, sizing.workers)
    chunk = _within_limit(sizing.chunksize, sizing, options)
    if options.mode not in {"auto", "executor"} and options.chunksize is None and size is None:
        chunk = min(chunk, FORCED_STREAM_CHUNK)
    # Taken and not yet yielded when the stream starts: the head (or what was measured of a sequence).
    ahead_of_stream = taken.resume_at if head is items else len(head)
    runner = _runner(handover, sizing)
    results = Engine(
        runner if options.share is None else Throttled(runner, options.share, sizing.workers),
        _after_head(head, taken.resume_at, source),
        start=taken.resume_at,
        first=first,
        ordered=options.ordered,
        collect=options.return_exceptions,
        window=options.max_in_flight or max(ahead_of_stream, STREAM_CHUNKS_PER_WORKER * sizing.workers * chunk),
        chunksize=chunk,
        workers=sizing.workers,
        total=size,
        progress=told,
        timeout=options.timeout,
        deadline=taken.deadline,
        stop=stop,
        per_item=options.per_item,
    ).results()
    return ResultStream(results, sizing.mode, reason, sizing.workers)


def _after_head(head: Sequence[Any], resume_at: int, source: Iterator[Any]) -> Iterator[Any]:
    """The input after what was measured: the rest of ``head``, then ``source`` (an ``Inbox``: still fed, in place)."""
    if isinstance(source, Inbox):
        return source.prepended(iterate_from(head, resume_at))
    return chain(iterate_from(head, resume_at), source)


def _runner(handover: Handover, sizing: Sizing, *, deadline: float | None = None) -> Runner:
    """The mode's runner of the call's units (a loop with a deadline: one thread, so the caller returns on time)."""
    fn, options = handover.fn, handover.options
    collect, task_timeout = options.return_exceptions, options.task_timeout
    if sizing.mode == "executor":
        assert options.executor is not None
        return ExecutorRunner(options.executor, fn, sizing.workers, collect=collect, task_timeout=task_timeout)
    if sizing.mode == "serial":
        return LoopRunner(fn, collect=collect) if deadline is None else ThreadRunner(fn, 1, collect=collect)
    if sizing.mode == "thread":
        return ThreadRunner(per_thread(fn), sizing.workers, collect=collect, task_timeout=task_timeout)
    limit = options.max_tasks_per_worker
    fallback = options.auto
    return ProcessRunner(
        fn, sizing.workers, collect=collect, fallback=fallback, task_timeout=task_timeout, max_tasks_per_worker=limit
    )


def _within_limit(chunksize: int, sizing: Sizing, options: CallOptions) -> int:
    """A process chunk's size, no more than ``max_tasks_per_worker``: a worker takes a chunk whole or not at all."""
    limit = options.max_tasks_per_worker
    return chunksize if limit is None or sizing.mode != "process" else min(chunksize, limit)


def _loop_rest(  # noqa: PLR0913 - the stream's input, by name
    handover: Handover,
    taken: Taken,
    first: list[tuple[Unit, Future[Any] | None]],
    *,
    items: Iterable[Any],
    head: Sequence[Any],
    source: Iterator[Any],
    sequence: bool,
    told: Progress | None,
    size: int | None,
    stop: Future[None] | None,
) -> Iterator[Any]:
    """A loop's stream in the consumer's thread: the measured items' results, then the rest one by one."""
    if sequence:  # a list, tuple or range: from where the measuring stopped, no copy
        ahead: Sequence[Any] | None = items  # type: ignore[assignment]
        rest: Iterator[Any] = iterate_from(items, taken.resume_at)  # type: ignore[arg-type]
    else:
        ahead, rest = None, _after_head(head, taken.resume_at, source)
    return loop(
        handover.fn,
        ahead,
        rest,
        start=taken.resume_at,
        first=first,
        collect=handover.options.return_exceptions,
        progress=told,
        total=size,
        timeout=handover.options.timeout,
        deadline=taken.deadline,
        stop=stop,
    )


def _yielded(batches: Generator[list[Any], None, None], told: Progress | None, size: int | None) -> Iterator[Any]:
    """The results of ``batches``, one at a time, telling ``told`` of each (``size``: the total, if known)."""
    done = 0
    try:
        for batch in batches:
            batch.reverse()
            while batch:
                done += 1
                if told is not None:
                    told(done, size)
                yield batch.pop()  # the stream keeps no reference to it
    finally:
        batches.close()
        close_progress(told)


def _measured_units(
    handover: Handover, sizing: Sizing, taken: Taken, head: Sequence[Any], *, learn: bool = True
) -> tuple[list[tuple[Unit, Future[Any] | None]], Future[None] | None]:
    """The engine's first units: the items the decision measured of ``head``, each with what it is done with.

    Taken from the hand-over (a plan's first ``run()`` would have them): the first item
    still running in a worker, and the items the measuring ran (the probe's threads may
    still run some). Also: the future the probe's threads are done with (``None``: none
    ran). With ``learn``, the decision learns the measured items' final figures as they
    are read; else the caller tells it, with how the run went.
    """
    sent, ahead, measuring = taken.sent, taken.ahead, taken.measuring
    if sent is not None and sizing.mode != "process":
        sent.finish()  # nothing else takes it over
        sent = None
    first: list[tuple[Unit, Future[Any] | None]] = []
    others = None if measuring is None else _all_done(measuring.threads)
    measured_from = 0
    if sent is not None:
        future, pool = sent.take()
        unit = Unit(0, list(head[:1]))
        unit.pool = pool
        first.append((unit, future))
        measured_from = 1
    measured_to = taken.resume_at - sum(len(unit.items) for unit, _ in ahead)
    if measured_to > measured_from or handover.timed_out is not None:
        unit = Unit(measured_from, list(head[measured_from:measured_to]))
        unit.results = _measured_outcomes(handover, taken, first=measured_from, last=measured_to, learn=learn)
        first.append((unit, others))
    first.extend(ahead)  # sent to the executor meanwhile: its runner reads them
    return first, others


def _measured_outcomes(
    handover: Handover, taken: Taken, *, first: int, last: int, learn: bool
) -> Callable[[Future[Any] | None], tuple[list[Any], BaseException | None]]:
    """What reads the results of the items a stream's plan measured (``first … last-1``), once the probe is done.

    The reader returns the results before the first failure (with exceptions collected:
    every result, exceptions in place), and that failure (``None`` if there was none).
    Asked with no future while the probe's threads still run items (the stream's
    deadline passed), it returns the results that came before the first still running.
    """
    outcomes, measuring = taken.outcomes, taken.measuring

    def read(future: Future[Any] | None) -> tuple[list[Any], BaseException | None]:
        if future is None and measuring is not None and not all(thread.done() for thread in measuring.threads):
            # The deadline passed with items still running: those that finished before, in order.
            return outcomes.values[first : outcomes.finished_until(first, last)], None
        if measuring is not None:
            measuring.join()  # re-raises what escaped a probe thread
            if learn:
                measuring.finished(None)
        stop = last if not outcomes.failed else min(last, outcomes.error_index)
        error = outcomes.error if outcomes.failed and first <= outcomes.error_index < last else None
        if handover.timed_out is not None and error is None:
            error = handover.timed_out
        values = outcomes.values[first:stop]
        outcomes.values = []  # read once: the stream then holds each result only until it is yielded
        return values, error

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
