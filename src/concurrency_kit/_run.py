"""A plan's run: the rest of a list through its backend, or a stream through the engine.

Both take over what the measuring left in the plan (:class:`Call`): the items it ran,
the probe's threads still running some, the first item still in a worker process.

    Plan.run()  → execute()      the backend runs the items the measuring did not
                                 (_backends/), the probe's threads finish, results in
                                 order or the first failure re-raised
    iter_parallel → open_stream()  the measured items become the stream's first units,
                                 the mode's runner (_backends/) runs the rest as the
                                 engine (_stream.py) takes them
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from itertools import chain
from typing import Any

import attrs

from ._awaitable import check_results, close_awaitables
from ._backends import BACKENDS, PROCESS_BACKEND, ExecutorRunner, ProcessRunner, Runner, Sent, ThreadRunner, Unit
from ._classify import TaskKind, is_coroutine_function
from ._costmodel import model_in_force
from ._decide import final_kind, io_memo, memo_of
from ._errors import UnpicklableTaskError
from ._memory import recall, remember
from ._options import CallOptions
from ._outcomes import EMPTY, Feed, Outcomes, iterate_from, noted, run_items, timed_out
from ._plan import Plan
from ._pools import process_pool_age
from ._probe import ProbeRun
from ._stream import Progress, ResultStream, loop, stream, told_by

__all__ = ["Call", "execute", "open_stream"]

#: A stream's default window: this many chunks a worker (one running, one queued) ...
STREAM_CHUNKS_PER_WORKER = 2
#: ... of this many items at most in a forced mode over an input of unknown length,
#: where nothing measured sizes them.
FORCED_STREAM_CHUNK = 16


@attrs.define(eq=False)
class Call:
    """What a plan needs to run: the inputs, the options, and what the measurement already ran."""

    fn: Callable[[Any], Any]
    items: Sequence[Any]
    #: The measured items' outcomes and the probe still running some: the first run()
    #: takes them (and the plan then keeps no result alive).
    outcomes: Outcomes | None
    options: CallOptions
    resume_at: int = 0
    probe: ProbeRun | None = None
    #: The first item, still running in the process pool that measured it.
    sent: Sent | None = None
    #: The items sent to the executor while the first was timed here (a unit and its task each).
    ahead: tuple[tuple[Unit, Future[Any]], ...] = ()
    #: A stream whose timeout passed while its first items were measured: raised after
    #: the results of those that finished (``resume_at`` of them).
    timed_out: TimeoutError | None = None
    #: The ``time.monotonic()`` the first run must end by.
    deadline: float | None = attrs.field(default=attrs.Factory(lambda self: self.options.deadline, takes_self=True))
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    @property
    def auto(self) -> bool:
        """Whether auto chose the mode."""
        return self.options.auto

    @property
    def collect(self) -> bool:
        """Whether exceptions are collected (``return_exceptions``)."""
        return self.options.return_exceptions

    @property
    def timeout(self) -> float | None:
        """The call's timeout, in seconds."""
        return self.options.timeout

    @property
    def executor(self) -> Executor | None:
        """The executor the call runs on (mode ``"executor"``)."""
        return self.options.executor


def execute(plan: Plan[Any]) -> list[Any]:
    """Run ``plan`` to the end (its ``run()``): the items its measuring left, then the results in input order.

    Raises:
        TimeoutError: the plan's timeout passed.
        TypeError: a plain ``fn`` returned an awaitable (the first such item named;
            not collected with ``return_exceptions``).
        Exception: the first exception ``fn`` raised (unless exceptions are collected), noted with its item.
    """
    call: Call = plan._state  # noqa: SLF001  # pyright: ignore[reportPrivateUsage] - the plan's own runner
    if plan.mode == "executor":
        return _through_executor(plan, call)
    if plan.mode == "async":
        values: list[Any] = []
        for batch in _on_private_loop(plan, call, call.items, ordered=True, window=None, total=len(call.items)):
            values += batch
        return values
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
    values = outcomes.values
    if outcomes.error is not None:
        # An awaitable before the failing item went wrong first; any after it are closed.
        check_results(values[: outcomes.error_index], call.items)
        close_awaitables(values)
        raise _noted(outcomes.error, outcomes.error_index, call.items)
    check_results(values, call.items)  # every result: a coroutine in the middle is an error too
    return values


def _on_private_loop(  # noqa: PLR0913 - the stream's shape, by name
    plan: Plan[Any], call: Call, items: Iterable[Any], *, ordered: bool, window: int | None, total: int | None
) -> Generator[list[Any], None, None]:
    """The batches of results of an async plan's coroutines, on an event loop of the call's own.

    Raises:
        RuntimeError: an event loop runs in this thread (checked now, not when the
            batches are first read).
    """
    from ._backends._async import CoroutineStream, check_no_running_loop, private_loop  # noqa: PLC0415 - asyncio

    check_no_running_loop("run_parallel" if total is not None and window is None else "iter_parallel")
    with call.lock:
        first_run, call.outcomes = call.outcomes is not None, None
    deadline = call.deadline if first_run else None if call.timeout is None else time.monotonic() + call.timeout
    context = contextvars.copy_context()  # the caller's, as a task would have it

    def make() -> CoroutineStream:
        return CoroutineStream(
            call.fn,
            items,
            workers=plan.workers,
            window=window,
            ordered=ordered,
            collect=call.collect,
            total=total,
            timeout=call.timeout,
            deadline=deadline,
            checked=not is_coroutine_function(call.fn),
            context=context,
        )

    return private_loop(make)


def _through_executor(plan: Plan[Any], call: Call) -> list[Any]:
    """:func:`execute` on an executor: the stream, drained (the items it measured first).

    A second ``run()`` streams every item again, with the whole timeout.
    """
    with call.lock:
        first_run = call.outcomes is not None
    if not first_run:
        again = Outcomes(0, collect=call.collect, in_order=True)
        deadline = None if call.timeout is None else time.monotonic() + call.timeout
        call = attrs.evolve(call, outcomes=again, resume_at=0, probe=None, sent=None, deadline=deadline)
        plan = attrs.evolve(plan, state=call)
    options = attrs.evolve(call.options, ordered=True, max_in_flight=None, progress=None)
    call = attrs.evolve(call, options=options)
    plan = attrs.evolve(plan, state=call)
    return list(open_stream(plan, call.items, call.items, iter(()), sequence=True, size=len(call.items)))


def _run_rest(  # noqa: PLR0913 - what _execute took from the plan
    plan: Plan[Any],
    call: Call,
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
                        warm=age is not None and age >= model_in_force().cold_start,
                    )
                remember(call.fn, memo)
    except TimeoutError:  # only the backends' and the probe's own: fn's exceptions are recorded, not raised
        raise timed_out(call.timeout, outcomes) from None


def _run_backend(  # noqa: PLR0913 - what the run has in flight
    plan: Plan[Any], call: Call, feed: Feed, deadline: float | None, run: ProbeRun | None, *, sent: Sent | None
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


def _run_missing(call: Call, outcomes: Outcomes, start: int, deadline: float | None) -> None:
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


def open_stream(  # noqa: PLR0913 - the input, as iter_parallel split it
    chosen: Plan[Any],
    items: Iterable[Any],
    head: Sequence[Any],
    source: Iterator[Any],
    *,
    sequence: bool,
    size: int | None,
    stop: Future[None] | None = None,
) -> ResultStream[Any]:
    """The stream of ``chosen``'s results: the items it measured of ``head``, then the rest of ``head`` and ``source``.

    Args:
        chosen: the plan, made on ``head`` (auto) or on nothing (a forced mode); its
            call's options say how to stream (order, window, progress, timeout).
        items: the input.
        head: the items planned on: taken from ``source``, or ``items`` itself (a sequence).
        source: the rest of the input.
        sequence: ``items`` is a list, tuple or range: a loop reads it from where the
            measuring stopped, without a copy.
        size: ``len(items)``, where it has one.
        stop: once done, the stream stops as if closed (an event loop reads it from
            another thread, see ``_offload``).
    """
    call: Call = chosen._state  # noqa: SLF001  # pyright: ignore[reportPrivateUsage] - the plan made for this stream
    options = call.options
    ordered, max_in_flight, seconds = options.ordered, options.max_in_flight, options.timeout
    told = told_by(options.progress, size, chosen.mode)
    if chosen.mode == "async":
        batches = _on_private_loop(
            chosen,
            call,
            chain(iterate_from(head, call.resume_at), source),
            ordered=ordered,
            window=max_in_flight or STREAM_CHUNKS_PER_WORKER * chosen.workers,
            total=size,
        )
        return ResultStream(_yielded(batches, told, size), chosen.mode, chosen.reason)
    first, collect = _measured_units(chosen, call, head)
    chunk = chosen.chunksize
    if options.mode not in {"auto", "executor"} and options.chunksize is None and size is None:
        chunk = min(chunk, FORCED_STREAM_CHUNK)
    if chosen.mode == "serial":
        if sequence:  # a list, tuple or range: from where the measuring stopped, no copy
            ahead: Sequence[Any] | None = items  # type: ignore[assignment]
            rest: Iterator[Any] = iterate_from(items, call.resume_at)  # type: ignore[arg-type]
        else:
            ahead, rest = None, chain(iterate_from(head, call.resume_at), source)
        results: Iterator[Any] = loop(
            call.fn,
            ahead,
            rest,
            start=call.resume_at,
            first=first,
            collect=collect,
            progress=told,
            total=size,
            timeout=seconds,
            deadline=call.deadline,
            stop=stop,
        )
        return ResultStream(results, chosen.mode, chosen.reason)
    runner: Runner
    if chosen.mode == "executor":
        assert call.executor is not None
        runner = ExecutorRunner(call.executor, call.fn, collect=collect)
    elif chosen.mode == "thread":
        runner = ThreadRunner(call.fn, chosen.workers, collect=collect)
    else:
        runner = ProcessRunner(call.fn, chosen.workers, collect=collect, fallback=options.auto)
    # Taken and not yet yielded when the stream starts: the head (or what was measured of a sequence).
    ahead_of_stream = call.resume_at if head is items else len(head)
    window = max_in_flight or max(ahead_of_stream, STREAM_CHUNKS_PER_WORKER * chosen.workers * chunk)
    results = stream(
        runner,
        chain(iterate_from(head, call.resume_at), source),
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
        stop=stop,
    )
    return ResultStream(results, chosen.mode, chosen.reason)


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
    chosen: Plan[Any], call: Call, head: Sequence[Any]
) -> tuple[list[tuple[Unit, Future[Any] | None]], bool]:
    """The stream's first units: the items ``chosen`` measured of ``head``, each with what it is done with.

    Taken from the plan (its first ``run()`` would have them): the first item still
    running in a worker, and the items the measuring ran (the probe's threads may still
    run some). Also: whether exceptions are collected.
    """
    with call.lock:
        outcomes, run, sent, ahead = call.outcomes, call.probe, call.sent, call.ahead
        call.outcomes = call.probe = call.sent = None
        call.ahead = ()
    assert outcomes is not None
    if sent is not None and chosen.mode != "process":
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
    measured_to = call.resume_at - sum(len(unit.items) for unit, _ in ahead)
    if measured_to > measured_from or call.timed_out is not None:
        unit = Unit(measured_from, list(head[measured_from:measured_to]))
        unit.results = _measured_outcomes(chosen, call, outcomes, run, first=measured_from, last=measured_to)
        first.append((unit, None if run is None else _all_done(run.threads)))
    first.extend(ahead)  # sent to the executor meanwhile: its runner reads them
    return first, outcomes.collect


def _measured_outcomes(  # noqa: PLR0913 - what the reader reads
    chosen: Plan[Any], call: Call, outcomes: Outcomes, run: ProbeRun | None, *, first: int, last: int
) -> Callable[[Future[Any] | None], tuple[list[Any], BaseException | None]]:
    """What reads the results of the items a stream's plan measured (``first … last-1``), once the probe is done.

    The reader returns the results before the first failure (with exceptions collected:
    every result, exceptions in place), and that failure (``None`` if there was none).
    Asked with no future while the probe's threads still run items (the stream's
    deadline passed), it returns the results that came before the first still running.
    """

    def read(future: Future[Any] | None) -> tuple[list[Any], BaseException | None]:
        if future is None and run is not None and not all(thread.done() for thread in run.threads):
            # The deadline passed with items still running: those that finished before, in order.
            return outcomes.values[first : outcomes.finished_until(first, last)], None
        if run is not None:
            run.join()  # re-raises what escaped a probe thread
            if not run.measurement.exact and chosen.kind is not None and not outcomes.failed:
                final = run.final()  # the plan was made on lower bounds: remember the real figures
                remember(call.fn, memo_of(final_kind(chosen.kind, final), final))
        stop = last if not outcomes.failed else min(last, outcomes.error_index)
        error = outcomes.error if outcomes.failed and first <= outcomes.error_index < last else None
        if call.timed_out is not None and error is None:
            error = call.timed_out
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
