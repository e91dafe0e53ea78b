"""A decided call's run: the rest of a list through its backend, or a stream through the engine.

Both take over what the measuring left (a ``Handover``,
taken once): the items it ran, the probe's threads still running some, the first item
still in a worker process.

    Plan.run()  → execute()      the backend runs the items the measuring did not
                                 (_backends/), the probe's threads finish, results in
                                 order or the first failure re-raised
    iter_parallel → open_stream()  the measured items become the stream's first units,
                                 the mode's runner (_backends/) runs the rest as the
                                 engine (engine.py) takes them
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future
from itertools import chain
from typing import Any

import attrs

from .._backends.awaitable import check_results, close_awaitables
from .._backends.outcomes import EMPTY, Feed, Outcomes, iterate_from, noted, run_items, timed_out
from .._backends.pools import process_pool_age
from .._backends.registry import (
    BACKENDS,
    PROCESS_BACKEND,
    ExecutorRunner,
    ProcessRunner,
    Runner,
    Sent,
    ThreadRunner,
    Unit,
)
from .._core.errors import UnpicklableTaskError
from .._core.kinds import is_coroutine_function
from .._core.options import CallOptions
from .engine import StreamEngine
from .handover import Handover, Measuring, RunFacts, Sizing, Taken
from .stream import Progress, ResultStream, loop, told_by

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
    if sizing.mode == "executor":
        return _through_executor(handover, sizing)
    if sizing.mode == "async":
        values: list[Any] = []
        batches = _on_private_loop(
            handover, sizing, handover.items, ordered=True, window=None, total=len(handover.items)
        )
        for batch in batches:
            values += batch
        return values
    taken = handover.take()
    outcomes, resume_at, deadline, sent = taken.outcomes, taken.resume_at, taken.deadline, taken.sent
    if sent is not None and sizing.mode != "process":
        sent.finish()  # nothing else takes it over
        sent = None
    fn, items = handover.fn, handover.items
    if outcomes.failed:
        pass  # an item failed while it was measured: nothing more starts
    elif sizing.mode == "serial" and deadline is None and outcomes.in_order:
        # A loop's items in order, which nothing but the calling thread runs: nothing can
        # stop the call meanwhile, so the rest run at once, as a list comprehension would.
        run_items(fn, items, outcomes, resume_at, len(items))
    else:
        _run_rest(handover, sizing, taken, sent=sent)
    values = outcomes.values
    if outcomes.error is not None:
        # An awaitable before the failing item went wrong first; any after it are closed.
        check_results(values[: outcomes.error_index], items)
        close_awaitables(values)
        raise _noted(outcomes.error, outcomes.error_index, items)
    check_results(values, items)  # every result: a coroutine in the middle is an error too
    return values


def _on_private_loop(  # noqa: PLR0913 - the stream's shape, by name
    handover: Handover,
    sizing: Sizing,
    items: Iterable[Any],
    *,
    ordered: bool,
    window: int | None,
    total: int | None,
) -> Generator[list[Any], None, None]:
    """The batches of results of an async call's coroutines, on an event loop of the call's own.

    Raises:
        RuntimeError: an event loop runs in this thread (checked now, not when the
            batches are first read).
    """
    from .._backends.coroutines import CoroutineStream, check_no_running_loop, private_loop  # noqa: PLC0415 - asyncio

    check_no_running_loop("run_parallel" if total is not None and window is None else "iter_parallel")
    deadline = handover.take().deadline
    context = contextvars.copy_context()  # the caller's, as a task would have it
    fn, options = handover.fn, handover.options

    def make() -> CoroutineStream:
        return CoroutineStream(
            fn,
            items,
            workers=sizing.workers,
            window=window,
            ordered=ordered,
            collect=options.return_exceptions,
            total=total,
            timeout=options.timeout,
            deadline=deadline,
            checked=not is_coroutine_function(fn),
            context=context,
        )

    return private_loop(make)


def _through_executor(handover: Handover, sizing: Sizing) -> list[Any]:
    """``execute`` on an executor: the stream, drained (the items it measured first).

    A second ``run()`` streams every item again, with the whole timeout.
    """
    items = handover.items
    drained = attrs.evolve(handover.options, ordered=True, max_in_flight=None, progress=None)
    return list(
        open_stream(
            handover,
            sizing,
            "",
            items=items,
            head=items,
            source=iter(()),
            sequence=True,
            size=len(items),
            options=drained,
        )
    )


def _run_rest(handover: Handover, sizing: Sizing, taken: Taken, *, sent: Sent | None) -> None:
    """Run the items the measuring left in ``sizing``'s mode; finish the probe's and the pool's, and report."""
    outcomes, resume_at, deadline, measuring = taken.outcomes, taken.resume_at, taken.deadline, taken.measuring
    total = len(handover.items)
    feed = Feed(outcomes, resume_at, total, in_order=sizing.mode == "serial")
    age = process_pool_age(sizing.workers) if sizing.mode == "process" else None
    try:
        if not outcomes.failed and feed.remaining:
            try:
                _run_backend(handover, sizing, feed, deadline, measuring, sent=sent)
            except UnpicklableTaskError:
                if not handover.options.auto:
                    raise
                # Auto checked the function and one item; a later item would not pickle.
                # The items not sent run here instead, as the loop would have run them.
                _run_missing(handover, outcomes, resume_at, deadline)
        waited = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not outcomes.failed and measuring is not None:
            if not measuring.join(waited):  # the items the probe took
                raise TimeoutError
            measuring.finished(RunFacts(sizing, total, time.perf_counter(), feed.cpu, age))
    except TimeoutError:  # only the backends' and the probe's own: fn's exceptions are recorded, not raised
        raise timed_out(handover.options.timeout, outcomes) from None


def _run_backend(  # noqa: PLR0913 - what the run has in flight
    handover: Handover,
    sizing: Sizing,
    feed: Feed,
    deadline: float | None,
    measuring: Measuring | None,
    *,
    sent: Sent | None,
) -> None:
    """Run the feed's items in ``sizing``'s mode.

    ``measuring``: the probe, whose threads may still run items; ``sent``: the first item,
    still running in the process pool (then the mode is processes, with no deadline).
    """
    fn, items = handover.fn, handover.items
    if handover.options.auto and sizing.mode == "process" and deadline is None:
        # Auto turned the loop down: the calling thread runs items until the pool is up,
        # so that auto never does much worse than that loop while a cold pool starts
        # (once the probe's threads are through the items they took).
        PROCESS_BACKEND.run_helping(
            fn,
            items,
            feed,
            workers=sizing.workers,
            chunksize=sizing.chunksize,
            others=() if measuring is None else measuring.threads,
            others_compute=measuring is not None and measuring.computing,
            sent=sent,
        )
        return
    BACKENDS[sizing.mode].run(fn, items, feed, workers=sizing.workers, chunksize=sizing.chunksize, deadline=deadline)


def _noted(error: BaseException, index: int, items: Sequence[Any]) -> BaseException:
    """Add a note naming the item to ``error`` (once)."""
    return noted(error, index, items[index])


def _run_missing(handover: Handover, outcomes: Outcomes, start: int, deadline: float | None) -> None:
    """Run, in the calling thread, every item from ``start`` on that has no result yet."""
    values, index, total = outcomes.dense(), start, len(handover.items)
    while index < total and not outcomes.failed:
        if values[index] is not EMPTY:
            index += 1
            continue
        stop = index
        while stop < total and values[stop] is EMPTY:
            stop += 1
        feed = Feed(outcomes, index, stop)
        BACKENDS["serial"].run(handover.fn, handover.items, feed, workers=1, chunksize=stop - index, deadline=deadline)
        index = stop


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
    options: CallOptions | None = None,
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
        options: how to stream (order, window, progress, timeout); default: the call's.
    """
    options = options or handover.options
    told = told_by(options.progress, size, sizing.mode)
    resume_at = handover.resume_at
    if sizing.mode == "async":
        window = options.max_in_flight or STREAM_CHUNKS_PER_WORKER * sizing.workers
        rest = chain(iterate_from(head, resume_at), source)
        batches = _on_private_loop(handover, sizing, rest, ordered=options.ordered, window=window, total=size)
        return ResultStream(_yielded(batches, told, size), sizing.mode, reason)
    taken = handover.take()
    first = _measured_units(handover, sizing, taken, head)
    if sizing.mode == "serial":
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
        return ResultStream(results, sizing.mode, reason)
    chunk = sizing.chunksize
    if options.mode not in {"auto", "executor"} and options.chunksize is None and size is None:
        chunk = min(chunk, FORCED_STREAM_CHUNK)
    # Taken and not yet yielded when the stream starts: the head (or what was measured of a sequence).
    ahead_of_stream = taken.resume_at if head is items else len(head)
    results = StreamEngine(
        _runner(handover, sizing),
        chain(iterate_from(head, taken.resume_at), source),
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
    ).results()
    return ResultStream(results, sizing.mode, reason)


def _runner(handover: Handover, sizing: Sizing) -> Runner:
    """The mode's runner of a stream's units."""
    fn, options = handover.fn, handover.options
    collect = options.return_exceptions
    if sizing.mode == "executor":
        assert options.executor is not None
        return ExecutorRunner(options.executor, fn, collect=collect)
    if sizing.mode == "thread":
        return ThreadRunner(fn, sizing.workers, collect=collect)
    return ProcessRunner(fn, sizing.workers, collect=collect, fallback=options.auto)


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
        ahead, rest = None, chain(iterate_from(head, taken.resume_at), source)
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
        close = getattr(told, "close", None)
        if close is not None:
            close()


def _measured_units(
    handover: Handover, sizing: Sizing, taken: Taken, head: Sequence[Any]
) -> list[tuple[Unit, Future[Any] | None]]:
    """The stream's first units: the items the decision measured of ``head``, each with what it is done with.

    Taken from the hand-over (a plan's first ``run()`` would have them): the first item
    still running in a worker, and the items the measuring ran (the probe's threads may
    still run some).
    """
    sent, ahead, measuring = taken.sent, taken.ahead, taken.measuring
    if sent is not None and sizing.mode != "process":
        sent.finish()  # nothing else takes it over
        sent = None
    first: list[tuple[Unit, Future[Any] | None]] = []
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
        unit.results = _measured_outcomes(handover, taken, first=measured_from, last=measured_to)
        first.append((unit, None if measuring is None else _all_done(measuring.threads)))
    first.extend(ahead)  # sent to the executor meanwhile: its runner reads them
    return first


def _measured_outcomes(
    handover: Handover, taken: Taken, *, first: int, last: int
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
