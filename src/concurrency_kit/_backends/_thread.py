"""Threads of the shared pool, each draining chunks from the call's feed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from typing import Any

from .._outcomes import Feed
from .._pools import thread_pool
from .._worker import acting_as_worker
from ._serial import run_span

__all__ = ["ThreadBackend"]


def _drain(fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, chunksize: int) -> None:
    while (span := feed.take(chunksize)) and run_span(fn, items, feed, span):
        pass


class ThreadBackend:
    """Runs a call on ``workers`` threads: the calling thread and ``workers - 1`` pool threads.

    Each is a drainer: it takes chunk after chunk from the feed until it is empty, so
    dispatch costs one lock acquisition per chunk rather than a future per item. The
    calling thread drains too, so a call always makes progress, even when every pool
    thread is busy (a nested call from inside a pool thread cannot deadlock). Drainers
    that have not started by the time the feed is empty are cancelled, never waited for.
    """

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, *, workers: int, chunksize: int) -> None:
        """Run the feed's items on ``workers`` threads, the calling one included."""
        helpers = max(0, min(workers, feed.remaining) - 1)
        futures: list[Future[None]] = []
        try:
            if helpers:
                pool = thread_pool(helpers)
                futures = [pool.submit(_drain, fn, items, feed, chunksize) for _ in range(helpers)]
            with acting_as_worker():  # a nested call from fn runs serially, as in pool threads
                _drain(fn, items, feed, chunksize)
        finally:
            feed.stop()  # on failure or Ctrl-C: queued items never start
            started = [future for future in futures if not future.cancel()]
        if not feed.outcomes.failed:
            wait(started)  # the chunks other drainers are finishing
