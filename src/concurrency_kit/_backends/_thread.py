"""Threads of the shared pool, each draining chunks from the call's feed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from .._outcomes import Feed
from .._pools import submit_to_threads
from .._worker import acting_as_worker
from ._serial import run_span

__all__ = ["ThreadBackend"]


def _drain(fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, chunksize: int) -> None:
    while (span := feed.take(chunksize)) and run_span(fn, items, feed, span):
        pass


class ThreadBackend:
    """Runs a call on ``workers`` threads of the shared pool.

    Each thread is a drainer: it takes chunk after chunk from the feed until it is
    empty, so dispatch costs one lock acquisition per chunk rather than a future per
    item. Without a deadline the calling thread is one of the drainers, so a call always
    makes progress even when every pool thread is busy (a nested call from inside a pool
    thread cannot deadlock). With a deadline the calling thread only watches the clock,
    so it can return on time; threads cannot be killed, so an item already running
    goes on in the background, but nothing new starts. Drainers that have not started
    when the call ends are cancelled, never waited for.
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
        helpers = workers if deadline is not None else workers - 1
        futures: list[Future[None]] = []
        try:
            futures = [submit_to_threads(helpers, _drain, fn, items, feed, chunksize) for _ in range(helpers)]
            if deadline is None:
                with acting_as_worker():  # a nested call from fn runs serially, as in pool threads
                    _drain(fn, items, feed, chunksize)
            else:
                _watch(futures, feed, deadline)
        finally:
            feed.stop()  # on failure, timeout or Ctrl-C: queued items never start
            started = [future for future in futures if not future.cancel()]
        if not feed.outcomes.failed:
            wait(started)  # the chunks other drainers are finishing


def _watch(futures: list[Future[None]], feed: Feed, deadline: float) -> None:
    """Wait for the drainers until they finish, an item fails, or the deadline passes."""
    pending = set(futures)
    while pending and not feed.outcomes.failed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError  # the caller words it
        _, pending = wait(pending, timeout=min(remaining, 0.1), return_when=FIRST_COMPLETED)
