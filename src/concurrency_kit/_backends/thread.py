"""Threads of the shared pool, as a runner: a run's units on lanes of its own width.

A run in thread mode gets ``workers`` lanes: tasks of the shared thread pool, each of
which takes the next ``step`` items of the oldest unit not yet taken whole, runs them,
and goes back for more until every unit is taken (then the lane ends, and its thread
goes back to the pool; the next unit submitted starts lanes again). The lanes share a
unit as drainers share a queue: a unit may span many steps, so the engine hands over
a unit per many items, and dispatch costs the lanes one lock a step. Each step writes
its items' results into the unit's slots; the unit is done when its last step is (or,
after a failure not collected, the steps up to it). A run's width is its lanes,
whatever the size of the shared pool, and a lane never waits for work while holding a
thread of it.

A thread of the pool takes queued items before the engine can cancel them, so the
items check the run's ``ThreadToken`` before they start. Threads cannot be killed: an
item running when the run ends finishes in the background.

A call made from inside one of the library's workers (nested) gets one lane fewer: the
calling thread runs steps itself while it waits (``help``), so that it makes progress
even when every pool thread is busy waiting for it. A nested call cannot deadlock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, final

from .pools import submit_to_threads
from .stop_tokens import ThreadToken
from .unit import QUEUED_PER_LANE, Done, Unit, Warming, run_chunk, run_into
from .worker import in_worker

__all__ = ["ThreadRunner"]


class _Shared:
    """A unit the lanes take a step at a time; its steps write their results in place.

    The unit is done once its steps are, up to the first that ends it: a step cut short
    by the stop token, or one that failed (unless exceptions are collected). The steps
    after that one are not waited for: the token stops their items.
    """

    __slots__ = ("end", "failed", "front", "future", "later", "next", "step", "unit", "values")

    def __init__(self, unit: Unit, future: Future[Done], step: int) -> None:
        self.unit, self.future, self.step = unit, future, step
        self.values: list[Any] = [None] * len(unit.items)  # each step writes its items' slots
        self.next = 0  # the offset of the first item no lane has taken
        self.end = len(unit.items)  # where the results end: the unit's end, or the first step cut short's
        self.failed = False  # the result before ``end`` is the exception that stops the call
        self.front = 0  # the steps from the front are finished up to here
        self.later: set[int] = set()  # the starts of finished steps beyond the front

    def finish(self, start: int, ran: int, *, failed: bool) -> bool:
        """Note a finished step (``ran`` of its items ran); whether the unit is done now (``True`` once only).

        Done once the finished steps from the front reach where the results end: the front
        only grows and the end only shrinks, so a step that finishes later returns ``False``.
        """
        if self.front >= self.end:
            return False
        stop, step = start + ran, self.step
        if (failed or ran < min(step, len(self.values) - start)) and stop <= self.end:
            self.end, self.failed = stop, failed  # cut here: the steps after it do not matter
        if start == self.front:
            front, later = start + step, self.later
            while front in later:
                later.discard(front)
                front += step
            self.front = front
        else:
            self.later.add(start)
        return self.front >= self.end

    def done(self) -> Done:
        """The unit's results, up to where they end."""
        values = self.values
        return Done(values if self.end == len(values) else values[: self.end], failed=self.failed)


@final
class ThreadRunner:
    """A run's units on ``workers`` lanes of the shared thread pool, ``step`` items at a time (default: a unit).

    With ``count_cpu``, the CPU time of every step is read (``cpu``), at two clock
    reads a step (a system call each, about half a microsecond).
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int,
        *,
        collect: bool,
        step: int | None = None,
        count_cpu: bool = False,
    ) -> None:
        self._fn, self._workers, self._collect, self._step = fn, workers, collect, step
        self._count_cpu = count_cpu
        self._token = ThreadToken()
        self._queue: deque[_Shared] = deque()
        self._lock = threading.Lock()
        self._nested = in_worker()
        self._lane_limit = workers - 1 if self._nested else workers
        self._lanes = 0
        self._cpu: list[float] = []  # CPU seconds of each step done

    @property
    def capacity(self) -> int:
        """Two units a lane: one running, one queued."""
        return QUEUED_PER_LANE * self._workers

    @property
    def cpu(self) -> float:
        """CPU seconds the run's steps took in their threads (those done; 0 without ``count_cpu``)."""
        return sum(self._cpu)

    def warming(self) -> Warming | None:
        """Threads start as units come."""
        return None

    def submit(self, unit: Unit) -> Future[Done]:
        """Queue ``unit`` for the lanes; start lanes, up to the run's width, for its steps."""
        future: Future[Done] = Future()
        step = self._step or len(unit.items)
        steps = -(-len(unit.items) // step)
        with self._lock:
            self._queue.append(_Shared(unit, future, step))
            start = max(0, min(self._lane_limit - self._lanes, steps))
            self._lanes += start
        for started in range(start):
            try:
                submit_to_threads(self._workers, self._lane)
            except BaseException:
                with self._lock:
                    self._lanes -= start - started
                raise
        return future

    def run_here(self, unit: Unit) -> Done:
        """Run ``unit`` in the calling thread."""
        return run_chunk(self._fn, unit.items, self._collect, unit.start, self._token)

    def help(self) -> bool:
        """In a nested call: run the next step in the calling thread."""
        if not self._nested:
            return False
        with self._lock:
            taken = self._take()
        if taken is None:
            return False
        shared, start, _ = taken
        ran, failed = self._run(*taken)
        with self._lock:
            finished = shared.finish(start, ran, failed=failed)
        if finished:
            shared.future.set_result(shared.done())
        return True

    def read(self, unit: Unit, future: Future[Done]) -> Done:  # noqa: ARG002 - the protocol
        """Its results."""
        return future.result()

    def halt(self, after: int) -> None:
        """No item after ``after`` starts."""
        self._token.failed(after)

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:  # noqa: ARG002 - threads cannot be killed
        """No item starts; cancel the units not started; an item running in a thread finishes in the background."""
        self._token.stop()
        for future in running:
            future.cancel()

    def _lane(self) -> None:
        """Run steps until every unit is taken: each step's end and the next one's start under one lock."""
        with self._lock:
            taken = self._take()
            if taken is None:
                self._lanes -= 1
                return
        while taken is not None:
            shared, start, _ = taken
            ran, failed = self._run(*taken)
            with self._lock:
                finished = shared.finish(start, ran, failed=failed)
                taken = self._take()
                if taken is None:
                    self._lanes -= 1  # under the lock: a unit submitted now starts a lane
            if finished:
                shared.future.set_result(shared.done())

    def _take(self) -> tuple[_Shared, int, int] | None:
        """The next step (the lock held): a unit and the offsets of its items; ``None`` if none is left."""
        queue = self._queue
        while queue:
            shared = queue[0]
            if shared.next == 0 and not shared.future.set_running_or_notify_cancel():
                queue.popleft()  # cancelled before it started
                continue
            start, items = shared.next, len(shared.unit.items)
            shared.next = stop = min(start + shared.step, items)
            if stop == items:
                queue.popleft()
            return shared, start, stop
        return None

    def _run(self, shared: _Shared, start: int, stop: int) -> tuple[int, bool]:
        """Run a step's items into the unit's slots: how many ran, and whether the last failed (see ``run_into``)."""
        unit = shared.unit
        if not self._count_cpu:
            return run_into(self._fn, unit.items, shared.values, start, stop, unit.start, self._token, self._collect)
        began = time.thread_time()
        ran = run_into(self._fn, unit.items, shared.values, start, stop, unit.start, self._token, self._collect)
        self._cpu.append(time.thread_time() - began)  # before the engine can read it
        return ran
