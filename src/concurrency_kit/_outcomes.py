"""Where a call's results land, and how its items are handed out.

:class:`Outcomes` holds one slot per item; :class:`Feed` hands out the indices of a
span of items, each once, to whichever workers ask, and :func:`run_span` runs a span
into the outcomes. The probe and then a backend each draw from a feed of their own over
the same outcomes, so no item runs twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from operator import length_hint
from typing import Any

__all__ = ["EMPTY", "Feed", "Outcomes", "run_span"]

#: Marks a slot that has no result yet.
EMPTY: Any = object()


class Outcomes:
    """Results in input order, plus the earliest failure.

    With ``collect`` (``return_exceptions=True``), an exception raised by ``fn`` takes
    its item's place and work goes on; anything else (``KeyboardInterrupt``, a timeout)
    still stops the call.
    """

    __slots__ = ("_lock", "collect", "error", "error_index", "values")

    def __init__(self, total: int, *, collect: bool = False) -> None:
        self.values: list[Any] = [EMPTY] * total
        self.collect = collect
        self.error: BaseException | None = None
        self.error_index = -1
        self._lock = threading.Lock()

    def fail(self, index: int, error: BaseException) -> bool:
        """Record a failure of item ``index``.

        Returns:
            ``True`` when the call stops (every feed stops handing out work; the
            earliest item's failure is the one raised), ``False`` when the exception
            was kept in the item's place and work goes on.
        """
        if self.collect and isinstance(error, Exception):
            self.values[index] = error
            return False
        with self._lock:
            if self.error is None or index < self.error_index:
                self.error, self.error_index = error, index
        return True

    @property
    def failed(self) -> bool:
        """Whether some item failed."""
        return self.error is not None


class Feed:
    """Hands out the indices ``start … stop-1`` in order, each once, until stopped."""

    __slots__ = ("_lock", "next", "outcomes", "stop_at", "stopped")

    def __init__(self, outcomes: Outcomes, start: int, stop: int) -> None:
        self.outcomes = outcomes
        self.next = start
        self.stop_at = stop
        self.stopped = False
        self._lock = threading.Lock()

    def take(self, count: int) -> range:
        """Up to ``count`` indices nobody has had; empty once stopped, failed or drained."""
        with self._lock:
            if self.stopped or self.outcomes.error is not None:
                return range(0)
            start = self.next
            self.next = min(start + count, self.stop_at)
            return range(start, self.next)

    def stop(self) -> int:
        """Hand out nothing more; return the first index never handed out."""
        with self._lock:
            self.stopped = True
            return self.next

    @property
    def remaining(self) -> int:
        """How many indices are still to be handed out."""
        return self.stop_at - self.next


def run_span(
    fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, span: range, *, check_each: bool = True
) -> bool:
    """Run the items of ``span`` in order; return ``False`` once the call stops.

    The call stops on a failure (unless exceptions are collected) or, with
    ``check_each``, when the feed is stopped meanwhile by another thread (a timeout,
    Ctrl-C, another item's failure): the rest of the span then never starts. Without
    it the span runs as a list comprehension (for the calling thread's own loop, and
    for the probe's short batches).
    """
    outcomes = feed.outcomes
    values = outcomes.values
    index, stop = span.start, span.stop
    if not check_each and not outcomes.collect:
        # The fastest loop Python has. A failure ends the call, whose other results are
        # then never read: only which item failed matters, and the iterator knows.
        remaining = iter(items[index:stop])
        try:
            values[index:stop] = [fn(item) for item in remaining]
        except BaseException as exc:  # noqa: BLE001 - recorded; the call re-raises it
            outcomes.fail(stop - length_hint(remaining) - 1, exc)
            return False
        return True
    while index < stop:
        try:
            if check_each:
                for index in range(index, stop):  # noqa: B020 - resumes after a collected failure
                    if feed.stopped or outcomes.error is not None:
                        return False
                    values[index] = fn(items[index])
            else:  # exceptions are collected: every result is kept, the loop goes on
                done: list[Any] = []
                append = done.append
                try:
                    for item in items[index:stop]:
                        append(fn(item))
                finally:  # what ran before a failure is kept; the failure is the next item
                    values[index : index + len(done)] = done
                    index += len(done)
        except BaseException as exc:  # noqa: BLE001 - recorded; the call re-raises it
            if outcomes.fail(index, exc):
                return False
            index += 1
        else:
            return True
    return True
