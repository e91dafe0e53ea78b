"""A plain loop in the calling thread."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .outcomes import Feed, run_span

__all__ = ["SerialBackend"]


#: The calling thread's loop runs spans that grow fourfold from this many items ...
FIRST_SPAN = 16
#: ... while a span takes less than this, checking between spans whether the call was
#: stopped (by a probe thread's failure); within a span it runs unchecked.
SPAN_SECONDS = 0.002


class SerialBackend:
    """Runs every item in the calling thread, in order.

    With a deadline the loop runs in one pool thread instead, so that the calling
    thread can return when the time is up.
    """

    def run(  # noqa: PLR0913 - the backend protocol
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        feed: Feed,
        *,
        workers: int,  # noqa: ARG002 - always one
        chunksize: int,
        deadline: float | None = None,
    ) -> None:
        """Run the feed's items one after another.

        Raises:
            TimeoutError: ``deadline`` (a ``time.monotonic()`` value) passed.
        """
        if deadline is not None:
            from .thread import ThreadBackend  # noqa: PLC0415 - the one place serial needs threads

            ThreadBackend().run(fn, items, feed, workers=1, chunksize=chunksize, deadline=deadline)
            return
        # (A loop's in-order items, which nothing else runs, never get here: the plan runs
        # them at once, with no feed.)
        step = min(chunksize, FIRST_SPAN)
        clock = time.perf_counter
        while span := feed.take(step):
            began = clock()
            if not run_span(fn, items, feed, span, check_each=False):
                return
            if clock() - began < SPAN_SECONDS:
                step = min(step * 4, chunksize)
