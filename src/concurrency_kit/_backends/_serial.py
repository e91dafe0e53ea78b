"""A plain loop in the calling thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._outcomes import Feed

__all__ = ["SerialBackend", "run_span"]


def run_span(fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, span: range) -> bool:
    """Run the items of ``span`` in order; on the first failure record it and return ``False``."""
    values = feed.outcomes.values
    for index in span:
        try:
            values[index] = fn(items[index])
        except BaseException as exc:  # noqa: BLE001 - recorded; the call re-raises it
            feed.outcomes.fail(index, exc)
            return False
    return True


class SerialBackend:
    """Runs every item in the calling thread, in order."""

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, *, workers: int, chunksize: int) -> None:  # noqa: ARG002 - one signature for every backend
        """Run the feed's items one after another."""
        while (span := feed.take(chunksize)) and run_span(fn, items, feed, span):
            pass
