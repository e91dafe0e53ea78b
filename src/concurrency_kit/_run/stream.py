"""Results as they come: the serial loop in the consumer's thread, the stream object, progress.

    iter_parallel(fn, items)                                     (_api/calls.py, _api/planning.py)
      └─ open_stream(): the plan's measured items, the mode's runner  (call.py)
           ├─ serial: loop(), a generator in the consumer's thread   (this module)
           ├─ async: the engine on a private event loop              (coroutines.py)
           └─ else: the run engine, units through the runner         (engine.py)
      → ResultStream                                                 (this module)

A loop takes one item at a time, as ``map`` does, and reads the clock, the progress
callback and the stop future only where the call needs them. A failure (unless
exceptions are collected) is raised after the results before it; an awaitable result
is the call's error, naming its item. Closing the stream stops it between items.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from itertools import chain, groupby
from operator import length_hint
from typing import Any, Self, TypeVar, final

from .._backends.awaitable import (
    awaitable_result,
    close_awaitables,
    cut_at_awaitable,
    is_awaitable,
    may_await,
    settled_type,
    until_awaitable,
)
from .._backends.outcomes import Stopped, noted
from .._backends.registry import Unit
from .._core.kinds import TaskKind
from .results import Progress, close_progress, handing_over, stream_timed_out

__all__ = ["NEEDS_TQDM", "Progress", "ProgressBar", "ResultStream", "loop", "told_by"]

R = TypeVar("R")

#: What ``progress=True`` says without tqdm installed.
NEEDS_TQDM = 'progress=True needs tqdm: pip install "concurrency_kit[progress]" (or pass a callable)'


class ProgressBar:
    """``progress=True``: a tqdm bar on stderr, counting items, described by the mode chosen."""

    def __init__(self, total: int | None, mode: str) -> None:
        try:
            from tqdm import tqdm  # noqa: PLC0415 - an optional extra, imported when asked for
        except ImportError as exc:
            raise ImportError(NEEDS_TQDM) from exc
        self._bar = tqdm(total=total, desc=f"concurrency_kit ({mode})", unit="item")

    def __call__(self, done: int, total: int | None) -> None:  # noqa: ARG002 - the bar knows its total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        """Leave the bar as it ended."""
        self._bar.close()


def told_by(
    progress: bool | Callable[[int, int | None], object] | None,  # noqa: FBT001 - the public calls' progress=
    total: int | None,
    mode: str,
) -> Progress | None:
    """What ``progress=`` (as the public calls take it) becomes: a tqdm bar for ``True``, the callable, or nothing."""
    if progress is True:
        return ProgressBar(total, mode)
    return progress if callable(progress) else None


def loop(  # noqa: PLR0913 - the loop's inputs, by name
    fn: Callable[[Any], Any],
    items: Sequence[Any] | None,
    rest: Iterator[Any],
    *,
    start: int,
    first: list[tuple[Unit, Future[Any] | None]],
    collect: bool,
    progress: Progress | None = None,
    total: int | None = None,
    timeout: float | None,
    deadline: float | None,
    stop: Future[None] | None = None,
) -> Iterator[Any]:
    """``stream`` in this thread: the first units' outcomes, then ``fn`` of each item of ``rest``, one at a time.

    ``items``: the input, when it is a list, tuple or range: ``rest`` is then an
    iterator over it from ``start`` on, whose length hint tells which item failed, and
    the items run as ``map`` runs them, their results taken in runs of one type
    (``itertools.groupby``: no step of ours per result). Else each item is counted as
    it is taken. ``stop``: as ``stream`` takes it, seen between items.

    Every result is checked: an awaitable means ``fn`` is a coroutine function in
    disguise, a ``TypeError`` raised in its place (after the results before it).
    """
    try:
        yielded = yield from _measured(first, progress, total, timeout, deadline, stop)
        if items is None or deadline is not None or progress is not None or stop is not None:
            yield from _checked(fn, rest, start, yielded, collect, progress, total, timeout, deadline, stop)
            return
        # As map runs them, in runs of results of one type: each run's type is asked once
        # whether it may be awaitable, and a run of any other type is yielded at C speed.
        while True:  # each map runs to a failure (collected: yielded in place, then the next map)
            try:
                for kind, run in groupby(map(fn, rest), type):
                    if not may_await(kind):
                        yield from run
                    elif (found := (yield from until_awaitable(run))) is not None:
                        break
                else:
                    return
            except Exception as exc:  # noqa: BLE001 - raised with its item's note, or yielded in its place
                index = len(items) - length_hint(rest) - 1
                if not collect:
                    raise noted(exc, index, items[index])  # noqa: B904 - the exception itself, noted
                yield exc
                continue
            index = len(items) - length_hint(rest) - 1  # the run stopped at it: nothing after it was taken
            close_awaitables((found,))
            raise awaitable_result(found, index, items[index])
    finally:
        close_progress(progress)


def _measured(  # noqa: PLR0913, PLR0917 - loop()'s, for its first units
    first: list[tuple[Unit, Future[Any] | None]],
    progress: Progress | None,
    total: int | None,
    timeout: float | None,
    deadline: float | None,
    stop: Future[None] | None,
) -> Generator[Any, None, int]:
    """``loop``'s first units: the measured items, already run (the probe's threads may still run some).

    Returns how many results it yielded.
    """
    yielded = 0
    for unit, future in first:
        late = False
        if future is not None:
            remaining = None if deadline is None else deadline - time.monotonic()
            wait((future,) if stop is None else (future, stop), timeout=remaining, return_when=FIRST_COMPLETED)
            if stop is not None and stop.done():
                raise Stopped
            late = not future.done()
        assert unit.results is not None
        # Late: those that finished in time, then the timeout.
        values, error = unit.results(None if late else future)
        misuse = cut_at_awaitable(values, unit.items, unit.start)
        count = len(values)
        yield from handing_over(values) if progress is None else _told(values, yielded, progress, total)
        yielded += count
        if misuse is not None:
            raise misuse
        if late:
            raise stream_timed_out(timeout, yielded)
        if error is not None:
            if count == len(unit.items):  # past the unit's items: the stream's own (a timeout)
                raise error
            raise noted(error, unit.start + count, unit.items[count])
    return yielded


def _told(values: list[Any], yielded: int, progress: Progress, total: int | None) -> Iterator[Any]:
    """Yield ``values``, telling ``progress`` of each (``yielded`` before them), each taken out of the list."""
    values.reverse()
    for done in range(yielded + 1, yielded + 1 + len(values)):
        progress(done, total)
        yield values.pop()


def _checked(  # noqa: PLR0913, PLR0917 - loop()'s, item by item
    fn: Callable[[Any], Any],
    rest: Iterator[Any],
    start: int,
    yielded: int,
    collect: bool,  # noqa: FBT001
    progress: Progress | None,
    total: int | None,
    timeout: float | None,
    deadline: float | None,
    stop: Future[None] | None = None,
) -> Generator[Any, None, int]:
    """``loop``'s items one at a time, counted, with the clock read, progress told and ``stop`` seen where given.

    Each result waits in ``box`` and leaves it as it is yielded: the generator keeps no
    reference to a result the consumer has. Each is checked: its type is the one before,
    or it is asked whether it may be awaitable. Returns the count of results yielded
    (``yielded`` included).
    """
    box: list[Any] = []
    kind: type | None = None
    for index, item in enumerate(rest, start):
        if deadline is not None and time.monotonic() >= deadline:
            raise stream_timed_out(timeout, yielded)
        if stop is not None and stop.done():
            raise Stopped
        try:
            box.append(fn(item))
        except Exception as exc:  # noqa: BLE001 - raised with its item's note, or yielded in its place
            if not collect:
                raise noted(exc, index, item)  # noqa: B904 - the exception itself, noted
            box.append(exc)
        if type(box[0]) is not kind and (kind := settled_type(box[0])) is None and is_awaitable(box[0]):
            close_awaitables(box)
            raise awaitable_result(box.pop(), index, item)
        yielded += 1
        if progress is not None:
            progress(yielded, total)
        yield box.pop()
    return yielded


@final
class ResultStream(chain[R]):
    """The results of [`iter_parallel`][concurrency_kit.iter_parallel], as they come.

    An iterator: ``iter(stream) is stream``, and iterating it yields the results at a
    generator's speed (it is an ``itertools.chain`` of the one generator that runs
    the stream, so each step is the generator's own, with no Python call of ours). It
    has ``close``; as a context manager, leaving the ``with`` block closes it.
    Closing it, or dropping the last reference to it, stops taking items from the
    input, cancels what has not started and kills the worker processes running its items.

    Attributes:
        mode: how the items run: ``"serial"``, ``"thread"``, ``"process"``,
            ``"executor"`` or ``"async"``.
        reason: why (the plan's reason).
        workers: how many threads, processes or coroutines at once.
        kind: the items' kind, as measured or declared (``None``: not known).
    """

    __slots__ = ("_results", "kind", "mode", "reason", "workers")

    _results: Iterator[R]
    mode: str
    reason: str
    workers: int
    kind: TaskKind | None

    def __new__(cls, results: Iterator[R], mode: str, reason: str, workers: int = 1) -> Self:
        stream = super().__new__(cls, results)
        stream._results = results
        stream.mode = mode
        stream.reason = reason
        stream.workers = workers
        stream.kind = None
        return stream

    def close(self) -> None:
        """Stop: take no more items, cancel what has not started, kill worker processes running its items."""
        close = getattr(self._results, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
