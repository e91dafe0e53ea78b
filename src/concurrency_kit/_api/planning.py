"""From a call's checked options to its plan, and to what its run takes over.

    run_parallel, plan: the whole input     iter_parallel: its head (auto), then a stream
      └─ plan_call()                          └─ open_iter() → plan_call(expected=…)
           ├─ a coroutine function: async, nothing measured         (_decide/sizing.py)
           ├─ an executor: timed here, chunks for its task cost     (_decide/executor.py)
           ├─ a forced mode: sized, nothing measured                (_decide/sizing.py)
           └─ auto: decide(Question): the named steps, the cost model (_decide/steps.py)
         → the Plan (what was decided, why), and the Handover its run takes (_run/handover.py)
      └─ Plan.run() → execute()               └─ open_stream()                  (_run/call.py)

The façade (``calls.py``) checks the arguments; this module never checks one again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future
from itertools import islice
from typing import Any, NamedTuple

import attrs

from .._backends.awaitable import check_not_awaitable, is_awaitable
from .._backends.outcomes import EMPTY, Outcomes
from .._core.config import get_config
from .._core.cpu import planning_cpus
from .._core.kinds import TaskKind, is_coroutine_function
from .._core.options import CallOptions
from .._decide.classify import COROUTINE_SOURCE, Decision, declared_kind
from .._decide.executor import for_executor
from .._decide.memory import recall
from .._decide.plan import Choice, Plan, Reason
from .._decide.probe import Measurement
from .._decide.sizing import async_choice, forced_choice
from .._decide.steps import Decided, Question, decide
from .._decide.stoppable import stoppable_choice
from .._run.call import execute, open_stream
from .._run.handover import Handover
from .._run.in_place import initialized_here, what_runs
from .._run.inbox import Inbox
from .._run.stream import ResultStream

__all__ = ["DEAREST_FIRST", "STREAM_HEAD", "UNSIZED_ITEMS", "Planned", "open_iter", "plan_call", "plan_sequence"]


def plan_sequence(
    fn: Callable[[Any], Any], sequence: Sequence[Any], options: CallOptions, expected: int | None = None
) -> Plan[Any]:
    """``plan``, on arguments already checked, for the items of ``sequence`` (see ``plan_call``).

    Its run (a list) starts the items dearest first where there is a cost to go by.
    """
    made, handover = plan_call(fn, sequence, options, expected)
    if handover.cost is None or made.mode in {"serial", "async"} or made.workers < 2:
        return made
    said, why = made.reason, handover.cost_said or DEAREST_FIRST
    return attrs.evolve(made, reason=lambda: f"{said}; {why}")


#: What a plan's reason adds where its items start dearest first.
DEAREST_FIRST = "items start dearest first by cost= (results in input order)"


def plan_call(
    fn: Callable[[Any], Any], sequence: Sequence[Any], options: CallOptions, expected: int | None = None
) -> Planned:
    """The plan of a call on checked options, for the items of ``sequence``, and what its run takes over.

    ``expected``: how many items the call has in all, when ``sequence`` is only its head
    (a stream's, see ``_run.stream``): the cost model decides for that many; the measuring
    takes items from ``sequence`` alone, and keeps every result it got before a
    failure (a stream yields them).
    """
    count = len(sequence)
    outcomes = Outcomes(count, collect=options.return_exceptions, in_order=True, partial=expected is not None)
    decision = declared_kind(fn, sequence, options.classifier)
    declared = None if decision is None else decision.kind
    planned = count if expected is None else max(count, expected)
    if options.mode == "async" or declared is TaskKind.ASYNC:
        choice = _async_choice(options, decision, None if expected == UNSIZED_ITEMS else planned)
        awaited = what_runs(fn, options, awaited=True)
        return _make_plan(choice, TaskKind.ASYNC, None, Handover(awaited, sequence, options, outcomes))
    fn = what_runs(fn, options, awaited=False)  # the user's fn, or with its initializer's and retries' parts
    if options.task_timeout is not None and (options.auto or options.executor is not None):
        return _stoppable_plan(fn, declared, Handover(fn, sequence, options, outcomes), planned)
    # Measured here, the items find the initializer run, and the cost model knows its time.
    init_seconds = initialized_here(fn) if options.auto and count else 0.0
    question = Question(
        fn=fn,
        sequence=sequence,
        outcomes=outcomes,
        planned=planned,
        decision=decision,
        workers=options.workers,
        chunksize=options.chunksize,
        cpus=planning_cpus(),
        io_cap=get_config().io_thread_cap(),
        seconds=options.timeout,
        deadline=options.deadline,
        init_seconds=init_seconds,
    )
    if options.executor is not None:
        decided = for_executor(question, options.executor)
        made = _handover(fn, sequence, options, outcomes, decided)
        return _make_plan(decided.choice, decided.kind, decided.measurement, made, decided.reason)
    if options.mode != "auto":
        choice = forced_choice(
            options.mode,  # type: ignore[arg-type]
            kind=declared,
            count=planned,
            cpus=question.cpus,
            io_cap=question.io_cap,
            workers=options.workers,
            chunksize=options.chunksize,
        )
        reason = choice.reason if decision is None else f"{choice.reason}; kind {declared} from {decision.source}"
        return _make_plan(choice, declared, None, Handover(fn, sequence, options, outcomes), reason)
    if count == 0:
        none = Handover(fn, sequence, options, outcomes)
        return _make_plan(Choice("serial", 1, 1, "no items"), declared, None, none)
    return _auto_plan(question, options, declared, streamed=expected is not None)


def _stoppable_plan(fn: Callable[[Any], Any], declared: TaskKind | None, made: Handover, planned: int) -> Planned:
    """Auto's plan with a ``task_timeout``: no item measured here, where it could not be stopped (``stoppable.py``)."""
    options, memo = made.options, recall(fn)
    kind = declared or (None if memo is None else memo.kind)
    choice = stoppable_choice(
        fn,
        kind,
        executor=options.executor,
        count=planned,
        cpus=planning_cpus(),
        io_cap=get_config().io_thread_cap(),
        workers=options.workers,
        chunksize=options.chunksize,
    )
    return _make_plan(choice, kind, None, made)


def _async_choice(options: CallOptions, decision: Decision | None, count: int | None) -> Choice:
    """The choice for a coroutine function (or ``mode="async"``): nothing to measure.

    Raises:
        TypeError: a coroutine function with a mode that would not await it.
    """
    source = decision.source if decision is not None else ""
    if options.mode not in {"auto", "async"}:
        raise TypeError(
            f"fn is a coroutine function ({source}): mode={options.mode!r} would return its "
            "coroutines un-awaited. Use mode='auto' or 'async' (inside an event loop: await arun_parallel(...))"
        )
    if options.mode == "async":
        why = "mode='async' was asked for"
    elif source == COROUTINE_SOURCE:
        why = "fn is a coroutine function"
    else:
        why = f"kind async from {source or '?'}"
    return async_choice(count=count, workers=options.workers, why=why)


def _auto_plan(question: Question, options: CallOptions, declared: TaskKind | None, *, streamed: bool) -> Planned:
    """Auto's plan: the decision's steps measure the first items (``streamed``: of a stream's head).

    Raises:
        TimeoutError: the timeout passed while measuring (a stream instead yields what
            finished in time, then raises it).
        TypeError: a measured item returned an awaitable.
    """
    fn, sequence, outcomes = question.fn, question.sequence, question.outcomes
    try:
        decided = decide(question)
    except TimeoutError as exc:
        if not streamed:
            raise
        # A stream yields the results measured before the deadline, then raises this.
        done = outcomes.finished_until(0, len(sequence))
        made = Handover(fn, sequence, options, outcomes, resume_at=done, timed_out=exc)
        return _make_plan(Choice("serial", 1, 1, str(exc)), declared, None, made)
    measured = outcomes.values[0] if outcomes.values else EMPTY
    if measured is not EMPTY and is_awaitable(measured):  # a coroutine function in disguise
        if decided.measuring is not None:
            decided.measuring.join()  # the probe's last items, whose coroutines are closed too
        check_not_awaitable(measured, 0, sequence[0], outcomes.values)
    made = _handover(fn, sequence, options, outcomes, decided)
    return _make_plan(decided.choice, decided.kind, decided.measurement, made, decided.reason)


def _handover(
    fn: Callable[[Any], Any], sequence: Sequence[Any], options: CallOptions, outcomes: Outcomes, decided: Decided
) -> Handover:
    """What the run of a measured call takes over: what the steps left, and how its list is balanced."""
    balanced = decided.balancing
    return Handover(
        fn,
        sequence,
        options,
        outcomes,
        resume_at=decided.resume_at,
        measuring=decided.measuring,
        sent=decided.sent,
        ahead=decided.ahead,
        cost=balanced.cost,
        timing=balanced.timing,
        cost_said=balanced.said if options.cost is None else "",
    )


class Planned(NamedTuple):
    """A call's plan, and the hand-over its run takes (the plan runs it itself; a stream takes it here)."""

    plan: Plan[Any]
    handover: Handover


def _make_plan(
    choice: Choice,
    kind: TaskKind | None,
    measurement: Measurement | None,
    handover: Handover,
    reason: Reason | None = None,
) -> Planned:
    """The plan for ``choice``, with ``reason`` (default: the choice's own), and its hand-over."""
    made: Plan[Any] = Plan(
        mode=choice.mode,
        kind=kind,
        workers=choice.workers,
        chunksize=choice.chunksize,
        reason=choice.why if reason is None else reason,
        measurement=measurement,
        runner=functools.partial(execute, handover),
        handover=handover,
    )
    return Planned(made, handover)


#: The head of an input that auto measures and plans on: at most this many items (as
#: many as ``max_in_flight`` allows). The probe takes a few items to tens of
#: milliseconds' worth; the head is all there is to take from before the plan is made.
STREAM_HEAD = 64


#: How many items an input of unknown length, longer than its head, is planned for.
#: More items only favour pools, and a stream's pool starts once: a long stream kept in
#: a loop loses up to the CPUs' count in time, a short one sent to a pool loses its
#: start-up, once.
UNSIZED_ITEMS = 1_000_000


def open_iter(  # noqa: PLR0913 - the stream's input, by name
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    options: CallOptions,
    *,
    iterator: Iterator[Any] | None,
    stop: Future[None] | None = None,
    size: int | None = None,
) -> ResultStream[Any]:
    """[`iter_parallel`][concurrency_kit.iter_parallel] on checked options.

    Args:
        fn: the function.
        items: the input.
        options: the call's options.
        iterator: an iterator over ``items``, or ``None`` when they are a list, tuple
            or range (read in place).
        stop: once done, the stream stops as if closed (its reader is an event loop).
        size: how many items ``items`` has, where it knows without a ``len``
            (a pipeline stage's input).
    """
    source: Iterator[Any] = iter(items) if iterator is None else iterator
    size = len(items) if isinstance(items, Sized) else size
    measures = (options.auto or options.executor is not None) and not is_coroutine_function(fn)
    head: Sequence[Any] = []
    expected = UNSIZED_ITEMS if size is None else size
    if measures and iterator is None and options.max_in_flight is None:
        # A list, tuple or range is in memory already: measured as run_parallel measures it.
        head, source = items, iter(())  # type: ignore[assignment]
    elif measures:
        wanted = STREAM_HEAD if options.max_in_flight is None else min(STREAM_HEAD, options.max_in_flight)
        if isinstance(source, Inbox):  # a pipeline stage's input: what has come, never waiting for more than one
            head = source.head(wanted)
            ended = source.at_end()
        else:
            head = list(islice(source, wanted))
            ended = len(head) < wanted
        if ended:
            expected = len(head)
    chosen, handover = plan_call(fn, head, options, expected=expected)
    stream = open_stream(
        handover,
        chosen.sizing,
        chosen.reason,
        items=items,
        head=head,
        source=source,
        sequence=iterator is None,
        size=size,
        stop=stop,
    )
    stream.kind = chosen.kind
    return stream
