"""Threads of the shared pool: draining chunks from a list call's feed, or running a stream's units."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, final

from .outcomes import Feed, run_span
from .pools import submit_to_threads
from .stop_tokens import ThreadToken
from .unit import Outcome, Unit, run_chunk
from .worker import in_worker

__all__ = ["ThreadBackend", "ThreadRunner"]


def _drain(fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, chunksize: int) -> None:
    began = time.thread_time()
    try:
        while (span := feed.take(chunksize)) and run_span(fn, items, feed, span):
            pass
    finally:
        feed.spent(time.thread_time() - began)


class ThreadBackend:
    """Runs a call on ``workers`` threads of the shared pool.

    Each thread is a drainer: it takes chunk after chunk from the feed until it is
    empty, so dispatch costs one lock acquisition per chunk rather than a future per
    item. The calling thread only watches: it returns as soon as an item fails, the
    deadline passes or Ctrl-C arrives. Threads cannot be killed, so an item already
    running goes on in the background, but nothing new starts. Drainers that have not
    started when the call ends are cancelled, never waited for.

    A call made from inside one of the library's workers (nested) drains in the
    calling thread as well, so it makes progress even when every pool thread is busy
    waiting for it: a nested call cannot deadlock.
    """

    def run(  # noqa: PLR0913 - the backend protocol
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        feed: Feed,
        *,
        workers: int,
        chunksize: int,
        deadline: float | None = None,
    ) -> None:
        """Run the feed's items on ``workers`` threads.

        Raises:
            TimeoutError: ``deadline`` (a ``time.monotonic()`` value) passed.
        """
        workers = max(1, min(workers, feed.remaining))
        nested = in_worker()
        helpers = workers - 1 if nested else workers
        futures: list[Future[None]] = []
        try:
            futures = [submit_to_threads(helpers, _drain, fn, items, feed, chunksize) for _ in range(helpers)]
            if nested:
                _drain(fn, items, feed, chunksize)
            else:
                _watch(futures, feed, deadline)
        finally:
            feed.stop()  # on failure, timeout or Ctrl-C: queued items never start
            started = [future for future in futures if not future.cancel()]
        if not feed.outcomes.failed:
            wait(started)  # the chunks other drainers are finishing


def _watch(futures: list[Future[None]], feed: Feed, deadline: float | None) -> None:
    """Wait for the drainers until they finish, an item fails, or the deadline passes."""
    pending = set(futures)
    while pending and not feed.outcomes.failed:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError  # the caller words it
        # A drainer ends when the feed is empty or when it records a failure.
        _, pending = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)


@final
class ThreadRunner:
    """A stream's units as tasks of the shared thread pool (of ``workers`` threads at least).

    A thread of the pool takes a queued unit the moment it is free, before the stream
    can cancel it: the units' items check the stream's ``ThreadToken`` instead.
    """

    def __init__(self, fn: Callable[[Any], Any], workers: int, *, collect: bool) -> None:
        self._fn, self._workers, self._collect = fn, workers, collect
        self._token = ThreadToken()

    def submit(self, unit: Unit) -> Future[list[Outcome]]:
        """Start ``unit`` on a thread."""
        return submit_to_threads(self._workers, run_chunk, self._fn, unit.items, self._collect, unit.start, self._token)

    def read(self, unit: Unit, future: Future[list[Outcome]]) -> list[Outcome]:  # noqa: ARG002 - the protocol
        """Its outcomes."""
        return future.result()

    def halt(self, after: int) -> None:
        """No item after ``after`` starts."""
        self._token.failed(after)

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:  # noqa: ARG002 - threads cannot be killed
        """No item starts; cancel what has not started; an item running in a thread finishes in the background."""
        self._token.stop()
        for future in running:
            future.cancel()
