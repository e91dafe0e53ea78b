"""How a call runs through an executor the caller gave.

The first items are timed here (a long first one: the next go to the executor
meanwhile), then the rest go in chunks sized for the executor's per-task cost.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import Any

from .._backends.registry import (
    ExecutorRunner,
    Unit,
    executor_name,
    executor_workers,
    task_overhead,
)
from .._backends.worker import in_worker
from .._core.kinds import TaskKind
from .classify import kind_from_measurement
from .learning import (
    Measured,
    learn,
)
from .measuring import POLICY, joined, measure_inline
from .memory import recall
from .ordering import balancing
from .plan import Choice
from .probe import Measurement
from .sizing import executor_choice
from .steps import Decided, Question

__all__ = ["for_executor"]


def for_executor(q: Question, executor: Executor) -> Decided:
    """How a call runs through ``executor``: the first items timed here, then chunks sized for its task overhead.

    The items run in the calling thread for ``DecisionPolicy.executor_check_seconds`` (at least
    one), as a loop would; their results are kept. Not for a function an earlier call
    measured (its item time sizes the tasks: a size off by a few times costs a few per
    cent of overhead, while an item timed here takes a CPU, and time, from the
    executor's start), with a timeout (an item running here could outlast it), nor for
    a single item; with neither a measurement nor a memory, every item is a task.
    """
    fn, outcomes = q.fn, q.outcomes
    memo = recall(fn)
    measurement: Measurement | None = None
    resume_at = 0
    workers = q.workers or executor_workers(executor) or q.cpus
    ahead: tuple[tuple[Unit, Future[Any]], ...] = ()
    if memo is None and q.deadline is None and len(q.sequence) > 1 and not in_worker():
        measurement, ahead = _time_first_items(q, executor, workers)
        resume_at = measurement.items + sum(len(unit.items) for unit, _ in ahead)
    declared = None if q.decision is None else q.decision.kind
    kind: TaskKind | None = declared or (None if memo is None else memo.kind)
    if measurement is not None:
        kind = declared or kind_from_measurement(measurement.cpu_share, None, kind, None)
        item_seconds: float | None = measurement.item_wall
        measured = f"{measurement.items} item(s) timed here"
        if not outcomes.failed and memo is None:
            learn(fn, Measured(kind, measurement, "executor", None, None))
    elif memo is not None:
        item_seconds, measured = memo.item_seconds, "what an earlier call measured"
    else:
        item_seconds, measured = None, ""
    name = executor_name(executor)
    if outcomes.failed:
        choice = Choice("executor", 1, 1, f"item {outcomes.error_index} raised while measuring")
    else:
        overhead = None if item_seconds is None or q.chunksize is not None else task_overhead(executor)
        choice = executor_choice(
            name,
            count=max(1, q.planned - resume_at),
            workers=workers,
            overhead=overhead,
            item_seconds=item_seconds,
            chunksize=q.chunksize,
            measured=measured,
        )
    balanced = balancing(fn, q.sequence, recall(fn), choice, q.planned - resume_at)
    return Decided(choice, kind, measurement, choice.why, resume_at, ahead=ahead, balancing=balanced)


def _time_first_items(
    q: Question, executor: Executor, workers: int
) -> tuple[Measurement, tuple[tuple[Unit, Future[Any]], ...]]:
    """Time the first items here, for ``DecisionPolicy.executor_check_seconds`` (one at least).

    While the first item runs here, the executor need not wait: if it is still running
    after ``DecisionPolicy.executor_check_seconds``, the next ``workers`` items go to the executor
    as tasks of one item each (long items: a task each is the right size anyway), and
    the measurement is that first item. Returns the measurement and those tasks.
    """
    fn, items, outcomes = q.fn, q.sequence, q.outcomes
    runner = ExecutorRunner(executor, fn, workers, collect=outcomes.collect)
    sender = _SendAhead(runner, items, range(1, min(len(items), 1 + workers)))
    timer = threading.Timer(POLICY.executor_check_seconds, sender.send)
    timer.daemon = True
    timer.start()
    try:
        first = measure_inline(fn, items, outcomes, 1)
    finally:
        timer.cancel()
        ahead = sender.close()
    if ahead or outcomes.failed or first.seconds >= POLICY.executor_check_seconds or len(items) < 3:
        return first, ahead
    budget = POLICY.executor_check_seconds - first.seconds
    rest = measure_inline(fn, items, outcomes, len(items) - 1, budget, start=1)
    return joined(first, rest), ()


class _SendAhead:
    """Items sent to the executor by a timer, unless closed first."""

    def __init__(self, runner: ExecutorRunner, items: Sequence[Any], indices: range) -> None:
        self._runner, self._items, self._indices = runner, items, indices
        self._lock = threading.Lock()
        self._closed = False
        self._sent: list[tuple[Unit, Future[Any]]] = []

    def send(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                for index in self._indices:
                    unit = Unit(index, [self._items[index]])
                    self._sent.append((unit, self._runner.submit(unit)))
            except Exception:  # noqa: BLE001 - an item that will not go: the stream meets it again, and says so
                return

    def close(self) -> tuple[tuple[Unit, Future[Any]], ...]:
        """Send nothing from now on (a sending under way ends first); what was sent."""
        with self._lock:
            self._closed = True
            return tuple(self._sent)
