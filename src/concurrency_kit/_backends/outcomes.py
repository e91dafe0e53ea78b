"""Where a call's results land, and how its items are handed out.

``Outcomes`` holds one slot per item; ``Feed`` hands out the indices of a
span of items, each once, to whichever workers ask, and ``run_span`` runs a span
into the outcomes (``run_items`` runs items that nothing else can take). The probe
and then a backend each draw from a feed of their own over the same outcomes, so no
item runs twice.

A call whose items may all run in the calling thread, in order (a loop, or the timed
check before one), starts its outcomes *in order*: the results so far are a list that
grows at its end, as a list comprehension's would, with no slot per item allocated up
front and no copy of the items or of the results; only the last span's results are
moved, once, when the head is put in front of them. The first feed that may write out
of order (another thread's, or a backend's) makes the outcomes dense first: one slot
per item, as before.
"""

from __future__ import annotations

import reprlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from operator import length_hint
from typing import Any, Final

__all__ = [
    "EMPTY",
    "Feed",
    "Outcomes",
    "Stopped",
    "iterate_from",
    "noted",
    "run_items",
    "run_span",
    "run_timed",
    "timed_out",
]

#: Marks a slot that has no result yet.
EMPTY: Any = object()

_NOTE = "concurrency_kit: raised by item {index}: {item}"


def timed_out(timeout: float | None, outcomes: Outcomes) -> TimeoutError:
    """The error of a call that ran past its ``timeout``, saying how far it got."""
    done = sum(value is not EMPTY for value in outcomes.values)
    return TimeoutError(
        f"the call did not finish within its timeout of {timeout:g} s ({done} of {outcomes.total} items "
        "done); worker processes running its items were stopped; an item running in a thread finishes in the "
        "background (threads cannot be stopped)"
    )


def noted(error: BaseException, index: int, item: object) -> BaseException:
    """Add a note naming item ``index`` (``item``, shortened) to ``error``, once; return it."""
    note = _NOTE.format(index=index, item=reprlib.repr(item))
    if note not in getattr(error, "__notes__", ()):
        error.add_note(note)
    return error


class Stopped(BaseException):
    """Raised in a stream whose ``stop`` future was set (by an event loop's reader that went away).

    A ``BaseException``, as ``GeneratorExit`` is: the stream stops its workers for it and
    nobody catches it as a failure of ``fn``.
    """


class Outcomes:
    """Results in input order, plus the earliest failure.

    With ``collect`` (``return_exceptions=True``), an exception raised by ``fn`` takes
    its item's place and work goes on; anything else (``KeyboardInterrupt``, a timeout)
    still stops the call.
    """

    __slots__ = ("_lock", "collect", "error", "error_index", "partial", "total", "values")

    def __init__(self, total: int, *, collect: bool = False, in_order: bool = False, partial: bool = False) -> None:
        """Slots for ``total`` items.

        With ``in_order`` (not with ``collect``), ``values`` starts empty and grows
        as in-order feeds run their spans, until a feed that may write out of order
        makes it dense (``dense``). With ``partial``, the results of a span before
        its failure are kept too (a stream yields them), not only which item failed.
        """
        self.total = total
        self.collect = collect
        self.partial = partial
        self.values: list[Any] = [] if in_order and not collect else [EMPTY] * total
        self.error: BaseException | None = None
        self.error_index = -1
        self._lock = threading.Lock()

    @property
    def in_order(self) -> bool:
        """Whether the results so far are a prefix that only an in-order feed extends."""
        return len(self.values) < self.total

    def dense(self) -> list[Any]:
        """Give every item its slot (``EMPTY`` until written), in place; the values."""
        with self._lock:
            values = self.values
            if len(values) < self.total:
                values += [EMPTY] * (self.total - len(values))
            return values

    def finished_until(self, start: int, stop: int) -> int:
        """The first index from ``start`` on (before ``stop``) with no result yet; ``stop`` if all have one."""
        values = self.dense()
        index = start
        while index < stop and values[index] is not EMPTY:
            index += 1
        return index

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
    """Hands out the indices ``start … stop-1`` in order, each once, until stopped.

    An ``in_order`` feed's spans are run one after another by one thread; any other
    feed makes its outcomes dense (one slot per item) when it is made.
    """

    __slots__ = ("_lock", "cpu", "next", "outcomes", "stop_at", "stopped")

    def __init__(self, outcomes: Outcomes, start: int, stop: int, *, in_order: bool = False) -> None:
        if not in_order:
            outcomes.dense()
        self.outcomes = outcomes
        self.next = start
        self.stop_at = stop
        self.stopped = False
        #: CPU seconds the threads that drained it spent, where they say (``spent``).
        self.cpu = 0.0
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

    def spent(self, seconds: float) -> None:
        """Count ``seconds`` of a draining thread's CPU time."""
        with self._lock:
            self.cpu += seconds

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
    if not check_each:
        return run_items(fn, items, feed.outcomes, span.start, span.stop)
    feed.outcomes.dense()
    return _run_each(fn, items, feed.outcomes, span.start, span.stop, feed=feed)


def run_items(fn: Callable[[Any], Any], items: Sequence[Any], outcomes: Outcomes, index: int, stop: int) -> bool:
    """Run items ``index … stop-1`` in order, unchecked; return ``False`` once the call stops.

    The items of a span a feed handed out, or, in the calling thread, ones nothing else
    can take (the timed check of a loop: no feed needed). The call stops on a failure,
    unless exceptions are collected.
    """
    if outcomes.partial:  # a failure must leave the results before it
        if outcomes.in_order and index == len(outcomes.values):
            return _extend_kept(fn, items, outcomes, index, stop)
        outcomes.dense()
        return _run_each(fn, items, outcomes, index, stop)
    if outcomes.in_order:
        if index == len(outcomes.values):
            return _extend(fn, items, outcomes, index, stop)
        outcomes.dense()
    if not outcomes.collect:
        # The fastest loop Python has. A failure ends the call, whose other results are
        # then never read: only which item failed matters, and the iterator knows.
        remaining = iter(items[index:stop])
        try:
            outcomes.values[index:stop] = [fn(item) for item in remaining]
        except BaseException as exc:  # noqa: BLE001 - recorded; the call re-raises it
            outcomes.fail(stop - length_hint(remaining) - 1, exc)
            return False
        return True
    return _run_each(fn, items, outcomes, index, stop)


def run_timed(  # noqa: PLR0913 - the items, and when to stop
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    outcomes: Outcomes,
    stop: int,
    *,
    budget: float,
    growth: int,
    start: int = 0,
) -> int:
    """Run items from ``start`` on in the calling thread, until ``stop``, a failure, or ``budget`` seconds.

    Nothing else may take these items. They run in spans of 1, ``growth``,
    ``growth``² … items, with the clock read between spans: a check of items that
    turned out slow costs one item, and tiny ones run about as fast as in a loop.

    Returns:
        How many items were handed out: on a failure, up to the end of its span (the
        items after it in the span never ran, and the call stops).
    """
    clock = time.perf_counter
    end = clock() + budget
    done, count = start, 1
    # Fresh in-order outcomes take each span's results at their end (run_items' own
    # path for them, without its check per span).
    run = _extend if outcomes.in_order and not outcomes.values and not outcomes.partial else run_items
    while done < stop:
        span_end = min(done + count, stop)
        if not run(fn, items, outcomes, done, span_end):
            return span_end
        done = span_end
        if clock() > end:
            break
        count *= growth
    return done


def _run_each(  # noqa: PLR0913 - run_span's inputs
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    outcomes: Outcomes,
    index: int,
    stop: int,
    *,
    feed: Feed | None = None,
) -> bool:
    """Run items into dense outcomes one by one: checking ``feed`` between them, or else collecting exceptions."""
    values = outcomes.values
    while index < stop:
        try:
            if feed is not None:
                for index in range(index, stop):  # noqa: B020, PLR1704 - resumes after a collected failure
                    if feed.stopped or outcomes.error is not None:
                        return False
                    values[index] = fn(items[index])
            else:  # each result written as it comes (a stream may read the finished ones meanwhile)
                for item in items[index:stop]:
                    values[index] = fn(item)
                    index += 1
        except BaseException as exc:  # noqa: BLE001 - recorded; the call re-raises it
            if outcomes.fail(index, exc):
                return False
            index += 1
        else:
            return True
    return True


#: Iterators that can start part-way through their sequence (``__setstate__``).
_RESUMABLE: Final = frozenset({type(iter([])), type(iter(())), type(iter(range(0)))})


def iterate_from(items: Sequence[Any], index: int) -> Iterator[Any]:
    """An iterator over ``items`` from ``index`` on, copying nothing where it can.

    A list's, tuple's or range's own iterator skips ahead; anything else (a subclass
    with an ``__iter__`` of its own) is sliced, as the other spans are.
    """
    iterator: Any = iter(items)
    if type(iterator) not in _RESUMABLE:
        return iter(items[index:])
    if index:
        iterator.__setstate__(index)
    return iterator  # type: ignore[no-any-return]


def _extend(fn: Callable[[Any], Any], items: Sequence[Any], outcomes: Outcomes, index: int, stop: int) -> bool:
    """Run items ``index … stop-1`` onto the end of in-order outcomes; ``False`` on a failure.

    A span that ends the input becomes the results list itself, with the head put in
    front of it: the items' results are never copied, as a list comprehension's are not.
    """
    last = stop == outcomes.total == len(items)
    remaining = iterate_from(items, index) if last else iter(items[index:stop])
    try:
        done = [fn(item) for item in remaining]
    except BaseException as exc:  # noqa: BLE001 - recorded; the call re-raises it
        outcomes.fail(stop - length_hint(remaining) - 1, exc)
        return False
    if not last:
        outcomes.values += done
    else:
        if index:
            done[0:0] = outcomes.values
        outcomes.values = done
    return True


def _extend_kept(fn: Callable[[Any], Any], items: Sequence[Any], outcomes: Outcomes, index: int, stop: int) -> bool:
    """``_extend`` for partial outcomes: on a failure, the results before it stay.

    ``list.extend`` keeps what it appended before its iterator raised, so the span runs
    at ``map``'s speed and the failing item is the one after the last result.
    """
    values = outcomes.values
    remaining = iterate_from(items, index) if stop == len(items) else iter(items[index:stop])
    try:
        values.extend(map(fn, remaining))
    except BaseException as exc:  # noqa: BLE001 - recorded; the call re-raises it
        outcomes.fail(len(values), exc)
        return False
    return True
