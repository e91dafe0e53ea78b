"""A plain loop in the calling thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._outcomes import Feed

__all__ = ["SerialBackend", "run_span"]


def run_span(
    fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, span: range, *, check_each: bool = True
) -> bool:
    """Run the items of ``span`` in order; return ``False`` once the call stops.

    The call stops on a failure (unless exceptions are collected) or, with
    ``check_each``, when the feed is stopped meanwhile by another thread (a timeout,
    Ctrl-C, another item's failure): the rest of the span then never starts. Without
    it the loop is as lean as a list comprehension, for the calling thread's own loop.
    """
    outcomes = feed.outcomes
    values = outcomes.values
    index, stop = span.start, span.stop
    while index < stop:
        try:
            if check_each:
                for index in range(index, stop):  # noqa: B020 - resumes after a collected failure
                    if feed.stopped or outcomes.error is not None:
                        return False
                    values[index] = fn(items[index])
            else:
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


#: The calling thread's loop checks between chunks of this many items whether the call
#: was stopped (by a probe thread's failure); within a chunk it runs unchecked.
SERIAL_CHUNK = 1024


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
            from ._thread import ThreadBackend  # noqa: PLC0415 - the one place serial needs threads

            ThreadBackend().run(fn, items, feed, workers=1, chunksize=chunksize, deadline=deadline)
            return
        step = min(chunksize, SERIAL_CHUNK)
        while (span := feed.take(step)) and run_span(fn, items, feed, span, check_each=False):
            pass
