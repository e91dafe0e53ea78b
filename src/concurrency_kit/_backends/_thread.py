"""Threads of the shared pool, each draining chunks from the call's feed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._outcomes import Feed
from .._pools import thread_pool
from ._serial import run_span

__all__ = ["ThreadBackend"]


class _Countdown:
    """Set when every drainer has finished, or at once on failure."""

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()
        self._count = count
        self.event = threading.Event()

    def done(self, _: object = None) -> None:
        """One drainer has ended: finished, failed, or cancelled before it started."""
        with self._lock:
            self._count -= 1
            if self._count == 0:
                self.event.set()


def _drain(fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, chunksize: int, countdown: _Countdown) -> None:
    while (span := feed.take(chunksize)) and run_span(fn, items, feed, span):
        pass
    if feed.outcomes.failed:
        countdown.event.set()


class ThreadBackend:
    """Keeps ``workers`` drainers running in the shared thread pool.

    A drainer is one pool task that takes chunk after chunk until the feed is empty,
    so dispatch costs one lock acquisition per chunk rather than a future per item.
    """

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, *, workers: int, chunksize: int) -> None:
        """Run the feed's items on ``workers`` pool threads."""
        workers = max(1, min(workers, feed.remaining))
        pool = thread_pool(workers)
        countdown = _Countdown(workers)
        submitted = 0
        try:
            for _ in range(workers):
                # The callback also fires for a drainer cancelled by shutdown(), so none is waited for forever.
                pool.submit(_drain, fn, items, feed, chunksize, countdown).add_done_callback(countdown.done)
                submitted += 1
        finally:
            for _ in range(workers - submitted):  # submit() refused: the pool was shut down meanwhile
                countdown.done()
        try:
            countdown.event.wait()
        finally:
            feed.stop()  # on failure or Ctrl-C: queued items never start
