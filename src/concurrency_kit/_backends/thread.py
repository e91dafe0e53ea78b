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

With ``task_timeout`` the lanes take an item a step and note when each started. An item
that runs longer (``expire``) cannot be stopped: its place gets a ``TaskTimeoutError``
at once, its lane is abandoned (the result it returns some day is dropped, and the lane
ends), and a fresh lane takes its place, so the run keeps its width.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, final

from .._core.errors import task_timed_out
from .item_calls import Raised
from .pools import submit_to_threads
from .stop_tokens import ThreadToken
from .unit import QUEUED_PER_LANE, Done, Unit, Warming, run_chunk, run_into
from .worker import in_worker

__all__ = ["ThreadRunner"]


class _Stuck:
    """Threads of the shared pool still running an item past its task timeout (any run's): the pool grows past them."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def add(self, count: int) -> None:
        with self.lock:
            self.count += count


_stuck = _Stuck()


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

    def __init__(  # noqa: PLR0913 - the run's shape, by name
        self,
        fn: Callable[[Any], Any],
        workers: int,
        *,
        collect: bool,
        step: int | None = None,
        count_cpu: bool = False,
        task_timeout: float | None = None,
    ) -> None:
        self._fn, self._workers, self._collect = fn, workers, collect
        self._step = 1 if task_timeout is not None else step
        self._task_timeout = task_timeout
        self._count_cpu = count_cpu
        self._token = ThreadToken()
        self._queue: deque[_Shared] = deque()
        self._lock = threading.Lock()
        self._nested = in_worker()
        self._lane_limit = workers - 1 if self._nested else workers
        self._lanes = 0
        self._cpu: list[float] = []  # CPU seconds of each step done
        #: With a task timeout: the item each lane runs, by lane, as ``[unit, offset, started, abandoned]``.
        self._running: dict[int, list[Any]] = {}

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
                submit_to_threads(self._workers + _stuck.count, self._lane)
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
        if ran < 0:  # abandoned past its timeout
            _stuck.add(-1)
            return True
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

    def expire(self, seconds: float) -> list[tuple[Future[Any], Unit, int]]:
        """Give each item running longer than ``seconds`` a ``TaskTimeoutError``; replace its lane.

        Returns:
            Nothing for the engine to split: the items' units finish here.
        """
        now, done, fresh = time.monotonic(), list[_Shared](), 0
        with self._lock:
            for record in self._running.values():
                shared, offset, started, abandoned = record
                if abandoned or now - started <= seconds:
                    continue
                record[3] = True
                _stuck.add(1)
                self._lanes -= 1  # it takes no more items
                shared.values[offset] = Raised(task_timed_out(seconds))
                if shared.finish(offset, 1, failed=False):
                    done.append(shared)
            if self._queue:
                fresh = max(0, self._lane_limit - self._lanes)
                self._lanes += fresh
        for _ in range(fresh):
            submit_to_threads(self._workers + _stuck.count, self._lane)  # the pool grows past the stuck threads
        for shared in done:
            shared.future.set_result(shared.done())
        return []

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
                if ran < 0:  # abandoned past its timeout: its place is filled, a fresh lane took over
                    _stuck.add(-1)
                    return
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
        if self._task_timeout is not None:
            return self._run_timed(shared, start)
        if not self._count_cpu:
            return run_into(self._fn, unit.items, shared.values, start, stop, unit.start, self._token, self._collect)
        began = time.thread_time()
        ran = run_into(self._fn, unit.items, shared.values, start, stop, unit.start, self._token, self._collect)
        self._cpu.append(time.thread_time() - began)  # before the engine can read it
        return ran

    def _run_timed(self, shared: _Shared, offset: int) -> tuple[int, bool]:
        """Run one item, noted as running (``expire``): 1 ran, or 0 (stopped first), or -1: abandoned meanwhile.

        Not ``run_into``: an abandoned item's late failure must not lower the stop mark (its
        place holds the timeout's error, which may be retried), so it is known first.
        """
        unit = shared.unit
        index = unit.start + offset
        if index > self._token.last:
            return 0, False  # the run failed before it, or ended
        lane, record = threading.get_ident(), [shared, offset, time.monotonic(), False]
        with self._lock:
            self._running[lane] = record
        try:
            value, failed = self._fn(unit.items[offset]), False
        except Exception as exc:  # noqa: BLE001 - a result, raised or yielded by the consumer
            value, failed = exc, not self._collect
        except BaseException as exc:  # noqa: BLE001 - SystemExit, Ctrl-C: the engine raises it
            value, failed = exc, True
        with self._lock:
            del self._running[lane]
            if record[3]:
                return -1, False  # its place was filled past its timeout: the value is dropped
            shared.values[offset] = value
        if failed:
            self._token.failed(index)
        return 1, failed
