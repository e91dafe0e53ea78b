"""Threads of the shared pool, as a runner: a run's units on lanes of its own width.

A run in thread mode gets ``workers`` lanes: tasks of the shared thread pool, each of
which takes the run's next unit from a queue the moment it is free, until the queue is
empty (then the lane ends, and its thread goes back to the pool; the next unit
submitted starts a lane again). Dispatch costs a lock and a future a unit, and no lane
waits for the engine between units: the engine keeps a second unit queued per lane.
A run's width is its lanes, whatever the size of the shared pool, and a lane never
waits for work while holding a thread of it.

A thread of the pool takes a queued unit before the engine can cancel it, so the
units' items check the run's ``ThreadToken`` before they start. Threads cannot be
killed: an item running when the run ends finishes in the background.

A call made from inside one of the library's workers (nested) gets one lane fewer: the
calling thread runs queued units itself while it waits (``help``), so that it makes
progress even when every pool thread is busy waiting for it. A nested call cannot
deadlock.
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
from .unit import Outcome, Unit, Warming, run_chunk
from .worker import in_worker

__all__ = ["QUEUED_PER_LANE", "ThreadRunner"]

#: Units in flight per lane: one running, one queued behind it (so a lane never waits for the engine).
QUEUED_PER_LANE = 2


@final
class ThreadRunner:
    """A run's units on ``workers`` lanes of the shared thread pool."""

    def __init__(self, fn: Callable[[Any], Any], workers: int, *, collect: bool) -> None:
        self._fn, self._workers, self._collect = fn, workers, collect
        self._token = ThreadToken()
        self._queue: deque[tuple[Unit, Future[list[Outcome]]]] = deque()
        self._lock = threading.Lock()
        self._nested = in_worker()
        self._lane_limit = workers - 1 if self._nested else workers
        self._lanes = 0
        self._cpu: list[float] = []  # CPU seconds of each unit done

    @property
    def capacity(self) -> int:
        """Two units a lane: one running, one queued."""
        return QUEUED_PER_LANE * self._workers

    @property
    def cpu(self) -> float:
        """CPU seconds the run's units took in their threads (those done)."""
        return sum(self._cpu)

    def warming(self) -> Warming | None:
        """Threads start as units come."""
        return None

    def submit(self, unit: Unit) -> Future[list[Outcome]]:
        """Queue ``unit`` for the next free lane; start a lane if the run has fewer than its width."""
        future: Future[list[Outcome]] = Future()
        with self._lock:
            self._queue.append((unit, future))
            start = self._lanes < self._lane_limit
            if start:
                self._lanes += 1
        if start:
            try:
                submit_to_threads(self._workers, self._lane)
            except BaseException:
                with self._lock:
                    self._lanes -= 1
                raise
        return future

    def run_here(self, unit: Unit) -> list[Outcome]:
        """Run ``unit`` in the calling thread."""
        return run_chunk(self._fn, unit.items, self._collect, unit.start, self._token)

    def help(self) -> bool:
        """In a nested call: run the next queued unit in the calling thread."""
        if not self._nested:
            return False
        with self._lock:
            if not self._queue:
                return False
            unit, future = self._queue.popleft()
        self._run(unit, future)
        return True

    def read(self, unit: Unit, future: Future[list[Outcome]]) -> list[Outcome]:  # noqa: ARG002 - the protocol
        """Its outcomes."""
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
        """Run queued units until the queue is empty."""
        while True:
            with self._lock:
                if not self._queue:
                    self._lanes -= 1
                    return
                unit, future = self._queue.popleft()
            self._run(unit, future)

    def _run(self, unit: Unit, future: Future[list[Outcome]]) -> None:
        """Run ``unit`` into its future, unless it was cancelled."""
        if not future.set_running_or_notify_cancel():
            return
        began = time.thread_time()
        try:
            outcomes = run_chunk(self._fn, unit.items, self._collect, unit.start, self._token)
        except BaseException as exc:  # noqa: BLE001 - handed to the engine through the future
            future.set_exception(exc)
        else:
            self._cpu.append(time.thread_time() - began)  # before the engine can read it
            future.set_result(outcomes)
