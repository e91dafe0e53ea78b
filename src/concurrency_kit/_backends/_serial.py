"""A plain loop in the calling thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._outcomes import Feed

__all__ = ["SerialBackend", "run_span"]


def run_span(fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, span: range) -> bool:
    """Run the items of ``span`` in order; return ``False`` once the call stops.

    The call stops on a failure (unless exceptions are collected) or when the feed is
    stopped (a timeout, Ctrl-C): the rest of the span then never starts.
    """
    outcomes = feed.outcomes
    values = outcomes.values
    for index in span:
        if feed.stopped or outcomes.error is not None:
            return False
        try:
            values[index] = fn(items[index])
        except BaseException as exc:  # noqa: BLE001 - recorded; the call re-raises it
            if outcomes.fail(index, exc):
                return False
    return True


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
        while (span := feed.take(chunksize)) and run_span(fn, items, feed, span):
            pass
