"""Test-only: the probe with given figures (see ``_backends.given``): items run in probe threads, figures given."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any

import attrs

from .._backends.given import Given
from .._backends.outcomes import Feed, Outcomes, run_span

if TYPE_CHECKING:
    from .probe import Measurement, ProbeRun

__all__ = ["probe_given"]


class _Done:
    """The given figures of a probe's items once done, as a ``ProbeRun`` reads them."""

    def __init__(self, final: Measurement) -> None:
        self.start = time.perf_counter()
        self._final = final

    def measure(self, taken: int) -> Measurement:  # noqa: ARG002 - the monitor's signature
        return self._final


def probe_given(  # noqa: PLR0913 - the probe's inputs that still count
    given: Given,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    outcomes: Outcomes,
    submit: Callable[..., Future[None]],
    *,
    threads: int,
    settled: Callable[[Measurement], bool] | None,
    deadline: float | None,
    start: int,
) -> ProbeRun:
    """The probe with ``given.probe``: its items run in up to ``threads`` probe threads; it reports the given figures.

    Raises:
        TimeoutError: the deadline passed while waiting for items the figures say are done.
    """
    from .probe import ProbeRun  # noqa: PLC0415 - the probe imports this module

    measurement = given.probe
    assert measurement is not None
    stop = min(len(items), start + measurement.items)
    taken = stop - start
    if taken != measurement.items:  # fewer items left than the figures name
        measurement = attrs.evolve(measurement, items=taken, completed=min(taken, measurement.completed))
    final = given.final or attrs.evolve(measurement, completed=taken, exact=True)
    feed = Feed(outcomes, start, stop)
    futures = [submit(_take_each, fn, items, feed) for _ in range(max(1, min(threads, taken)))]
    if measurement.exact:
        _wait(futures, feed, deadline)
    elif settled is not None and not outcomes.failed and not settled(measurement):
        _wait(futures, feed, deadline)  # the decision waits for the items to finish, as the probe would
        measurement = final
    return ProbeRun(measurement, stop, futures, _Done(final))


def _take_each(fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed) -> None:
    """A given probe's thread: the feed's items, one at a time, until it runs out or the call stops."""
    while span := feed.take(1):
        if not run_span(fn, items, feed, span, check_each=False):
            return


def _wait(futures: list[Future[None]], feed: Feed, deadline: float | None) -> None:
    """Wait for the probe threads, up to ``deadline`` (a ``time.monotonic()`` value).

    Raises:
        TimeoutError: the deadline passed first (their feed hands out nothing more).
    """
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    if wait(futures, timeout=timeout).not_done:
        feed.stop()
        raise TimeoutError
