"""The stream: results as they come, from an input read lazily, in bounded memory.

A stream flows one way::

    iter_parallel(fn, items)                                          (_api.py)
      ├─ auto: the head of the input, planned as run_parallel plans a list,
      │        for as many items as the whole input is expected to have
      ├─ open_stream(): the plan's measured items, the mode's runner     (_run.py)
      └─ stream()                                                     (this module)
           ├─ units: the head's measured items (the probe may still run some),
           │         then chunks of the rest, taken while fewer than `window`
           │         items are taken and not yet yielded
           │         for the mode's runner (a backend's, _backends/):
           │           thread  → ThreadRunner: the shared thread pool, a future a chunk
           │           process → ProcessRunner: a pickled chunk to the shared process pool
           │           serial  → no runner: loop(), a generator in the consumer's thread
           └─ yielded in input order, or unit by unit as they finish

A failure (unless exceptions are collected) stops the taking: in order, the results
before it are yielded first. Closing the stream (``break``, ``close()``, the end of a
``with`` block, garbage collection), a timeout or Ctrl-C cancels the chunks not started
and kills the worker processes running the stream's chunks; an item running in a thread
finishes in the background. Either way no item after the failure (after a close or a
timeout: no item at all) starts, not even one of a chunk already queued where it can
no longer be cancelled: the items check the stream's stop token (``_stop_tokens``).

A worker that dies loses the units beside it too (a process pool breaks whole). With
exceptions collected, the items of every unit lost run again, each alone, one at a
time, with nothing else of the stream running (on a fresh pool), and only the one
that dies again gets :class:`~concurrency_kit.WorkerCrashedError`; then the stream
goes on. Without, the first loss is raised, naming the items that were running.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from itertools import chain, groupby, islice
from operator import itemgetter, length_hint
from typing import Any, Self, TypeVar, final

from ._awaitable import (
    awaitable_result,
    close_awaitables,
    cut_at_awaitable,
    is_awaitable,
    may_await,
    settled_type,
    until_awaitable,
)
from ._backends import TAIL_SHARE, Lost, Outcome, Runner, Unit
from ._outcomes import Stopped, noted

__all__ = ["Progress", "ProgressBar", "ResultStream", "loop", "stream", "told_by"]

R = TypeVar("R")

#: What ``progress=`` becomes: told ``(done, total)``, ``total`` ``None`` for an input of no length.
Progress = Callable[[int, "int | None"], object]


class ProgressBar:
    """``progress=True``: a tqdm bar on stderr, counting items, described by the mode chosen."""

    def __init__(self, total: int | None, mode: str) -> None:
        try:
            from tqdm import tqdm  # noqa: PLC0415 - an optional extra, imported when asked for
        except ImportError as exc:
            raise ImportError(
                'progress=True needs tqdm: pip install "concurrency_kit[progress]" (or pass a callable)'
            ) from exc
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


def _timed_out(timeout: float | None, yielded: int) -> TimeoutError:
    return TimeoutError(
        f"the stream did not finish within its timeout of {timeout:g} s ({yielded} results yielded); worker "
        "processes running its items were stopped; an item running in a thread finishes in the background "
        "(threads cannot be stopped)"
    )


def _ends_the_stream(exc: BaseException) -> bool:
    """Whether leaving the stream with ``exc`` should stop the workers running its chunks.

    Closed by the consumer (``GeneratorExit``), Ctrl-C, ``SystemExit`` or a timeout:
    nobody will read what they compute. Not for an exception of ``fn`` (as in
    ``run_parallel``, what runs finishes; nothing new starts).
    """
    return not isinstance(exc, Exception) or isinstance(exc, TimeoutError)


def stream(  # noqa: PLR0912, PLR0913, PLR0915 - the stream's one loop, top to bottom
    runner: Runner,
    rest: Iterator[Any],
    *,
    start: int,
    first: list[tuple[Unit, Future[Any] | None]],
    ordered: bool,
    collect: bool,
    window: int,
    chunksize: int,
    workers: int = 1,
    total: int | None = None,
    progress: Progress | None = None,
    timeout: float | None,
    deadline: float | None,
    stop: Future[None] | None = None,
) -> Iterator[Any]:
    """Yield the outcomes of ``first``'s units, then ``fn`` of every item of ``rest`` (items ``start …``), on a pool.

    Args:
        runner: runs the units, with the function (:func:`loop` runs a stream in this thread).
        rest: the items after the first units'.
        start: the index of ``rest``'s first item.
        first: units already under way (the measured head), each with the future it
            is done with (``None``: done), and ``Unit.results`` set to read them.
        ordered: in input order; else unit by unit as they finish.
        collect: exceptions are yielded in their items' places (``return_exceptions``).
        window: the most items taken from the input and not yet yielded.
        chunksize: the most items a unit takes.
        workers: the threads or processes the units run on.
        total: how many items the input has, when it says: chunks then shrink toward
            its end, so that the workers finish together (as in ``run_parallel``).
        progress: told ``(done, total)`` in this thread as each result is yielded;
            its ``close()``, where it has one, is called when the stream ends.
        timeout: the seconds the whole stream may take (for the message).
        deadline: the ``time.monotonic()`` it must end by.
        stop: once done, the stream stops as if closed (its reader is in another thread).

    Raises:
        TimeoutError: the deadline passed.
        Stopped: ``stop`` was set.
        Exception: the first exception ``fn`` raised (without ``collect``), noted with its item.
    """
    running: dict[Future[Any], Unit] = {}
    ready: dict[int, Unit] = {}  # finished, by their first index (ordered)
    finished: deque[Unit] = deque()  # finished, in the order they did (unordered)
    next_index = min((unit.start for unit, _ in first), default=start)
    taken, yielded = start, 0
    failed_at: int | None = None
    misused: set[int] = set()  # items whose result was awaitable: raised even when exceptions are collected
    exhausted = False
    suspects: list[Unit] = []  # lost with a dead worker, to run alone: the last runs first
    lone: Unit | None = None  # the one running alone

    def store(unit: Unit, outcomes: list[Outcome]) -> None:
        nonlocal failed_at
        unit.outcomes = outcomes
        values = list(map(itemgetter(1), outcomes))
        misuse = cut_at_awaitable(values, unit.items, unit.start)
        if misuse is not None:  # an error in the awaitable's place; what came after it is dropped
            outcomes[len(values) :] = [(False, misuse)]
            misused.add(unit.start + len(values))
        if (not collect or misuse is not None) and outcomes and not outcomes[-1][0]:
            index = unit.start + len(outcomes) - 1
            failed_at = index if failed_at is None else min(failed_at, index)
            runner.halt(failed_at)
        if ordered:
            ready[unit.start] = unit
        else:
            finished.append(unit)

    def read(unit: Unit, future: Future[Any] | None) -> None:
        nonlocal lone
        if unit.results is not None:
            values, error = unit.results(future)
            store(unit, [(True, value) for value in values] + ([] if error is None else [(False, error)]))
            return
        assert future is not None
        outcome = runner.read(unit, future)
        if unit is lone and outcome is not None:
            lone = None
        if isinstance(outcome, list):
            store(unit, outcome)
        elif outcome is None:
            running[runner.submit(unit)] = unit
        else:
            lost(unit, outcome)

    def lost(unit: Unit, loss: Lost) -> None:
        """``unit``'s worker died: raise, give its item the error (alone), or have its items run alone."""
        if not collect:
            beside = [u for u in running.values() if u.results is None] if loss.together else []
            raise loss.blame(sorted(index for u in (unit, *beside) for index in range(u.start, u.stop)))
        if unit.alone:
            store(unit, [(False, loss.blame([unit.start]))])
            return
        suspects.extend(Unit(index, [item], alone=True) for index, item in enumerate(unit.items, unit.start))
        suspects.sort(key=lambda suspect: -suspect.start)

    def run_alone() -> None:
        """Send the next suspect once nothing else of the stream runs in a pool (a culprit would take it down)."""
        nonlocal lone
        if suspects and lone is None and all(u.results is not None for u in running.values()):
            lone = suspects.pop()
            running[runner.submit(lone)] = lone

    def take() -> None:
        """Take more items, a chunk at a time, while the window has room for one (and nothing failed or runs alone).

        A whole chunk, unless nothing runs: room for a few items, taken one by one as the
        consumer reads, would make chunks of one.
        """
        nonlocal taken, exhausted
        while (
            not exhausted
            and failed_at is None
            and not suspects
            and lone is None
            and (room := window - (taken - yielded)) > 0
        ):
            size = chunksize if total is None else max(1, min(chunksize, -(-(total - taken) // (TAIL_SHARE * workers))))
            if room < size and running:
                return
            chunk = list(islice(rest, min(size, room)))
            if not chunk:
                exhausted = True
                return
            unit = Unit(taken, chunk)
            running[runner.submit(unit)] = unit
            taken += len(chunk)

    def wait_for(futures: set[Future[Any]] | dict[Future[Any], Unit]) -> set[Future[Any]]:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise _timed_out(timeout, yielded)
        done, _ = wait(futures if stop is None else [*futures, stop], timeout=remaining, return_when=FIRST_COMPLETED)
        if stop is not None and stop.done():
            raise Stopped
        if not done:
            raise _timed_out(timeout, yielded)
        return done

    kill = False
    try:
        for unit, future in first:
            if future is None:
                read(unit, None)
            else:
                running[future] = unit
        while True:
            # Yield what is ready, in order or as finished.
            while True:
                done = ready.pop(next_index, None) if ordered else (finished.popleft() if finished else None)
                if done is None:
                    break
                outcomes = done.outcomes
                assert outcomes is not None
                for offset in range(len(outcomes)):
                    if not outcomes[offset][0] and (not collect or done.start + offset in misused):
                        error = outcomes[offset][1]
                        if done.start + offset in misused:  # the call's error, not fn's: it names its item
                            raise error
                        raise noted(error, done.start + offset, done.items[offset])
                    take()  # the pools work on while the consumer has the result
                    yielded += 1
                    if progress is not None:
                        progress(yielded, total)
                    yield _handed_over(outcomes, offset)  # the stream keeps no reference to it
                next_index = done.stop
            take()
            if failed_at is not None:
                # Nothing new starts; in order, only the units before the failure still matter.
                for future, unit in list(running.items()):
                    if unit.start > failed_at and future.cancel():
                        del running[future]
            run_alone()
            if not running:
                if ordered and next_index in ready:
                    continue
                if not ordered and finished:
                    continue
                break
            try:
                ended = wait_for(running)
            except TimeoutError:
                # In order, the measured items that finished before the deadline come first.
                front = next((u for u in running.values() if u.start == next_index), None)
                misuse = None
                if ordered and front is not None and front.results is not None:
                    values = front.results(None)[0]
                    misuse = cut_at_awaitable(values, front.items, front.start)
                    for value in _handing_over(values):
                        yielded += 1
                        if progress is not None:
                            progress(yielded, total)
                        yield value
                raise misuse or _timed_out(timeout, yielded) from None
            for future in ended:
                read(running.pop(future), future)
    except BaseException as exc:
        kill = _ends_the_stream(exc)
        raise
    finally:
        runner.stop(running, kill=kill)  # also when nothing runs: a stop token is given back
        _close(progress)


#: Marks the end of a list being handed over (:func:`_handing_over`).
_END: Any = object()
#: What a yielded outcome leaves in its place.
_YIELDED: Outcome = (True, None)


def _handed_over(outcomes: list[Outcome], offset: int) -> Any:
    """The value of ``outcomes[offset]``, taken out of the list: once yielded, only the consumer holds it."""
    value = outcomes[offset][1]
    outcomes[offset] = _YIELDED
    return value


def _close(progress: Progress | None) -> None:
    close = getattr(progress, "close", None)
    if close is not None:
        close()


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
    """:func:`stream` in this thread: the first units' outcomes, then ``fn`` of each item of ``rest``, one at a time.

    ``items``: the input, when it is a list, tuple or range: ``rest`` is then an
    iterator over it from ``start`` on, whose length hint tells which item failed, and
    the items run as ``map`` runs them, their results taken in runs of one type
    (``itertools.groupby``: no step of ours per result). Else each item is counted as
    it is taken. ``stop``: as :func:`stream` takes it, seen between items.

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
        _close(progress)


def _measured(  # noqa: PLR0913, PLR0917 - loop()'s, for its first units
    first: list[tuple[Unit, Future[Any] | None]],
    progress: Progress | None,
    total: int | None,
    timeout: float | None,
    deadline: float | None,
    stop: Future[None] | None,
) -> Generator[Any, None, int]:
    """:func:`loop`'s first units: the measured items, already run (the probe's threads may still run some).

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
        yield from _handing_over(values) if progress is None else _told(values, yielded, progress, total)
        yielded += count
        if misuse is not None:
            raise misuse
        if late:
            raise _timed_out(timeout, yielded)
        if error is not None:
            if count == len(unit.items):  # past the unit's items: the stream's own (a timeout)
                raise error
            raise noted(error, unit.start + count, unit.items[count])
    return yielded


def _handing_over(values: list[Any]) -> Iterator[Any]:
    """The items of ``values``, each taken out of the list as it is yielded (the list ends empty).

    At ``list.pop``'s speed, no step of ours per item: the list is reversed behind an
    end marker once, then popped from its end until the marker comes.
    """
    values.append(_END)
    values.reverse()
    return iter(values.pop, _END)


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
    """:func:`loop`'s items one at a time, counted, with the clock read, progress told and ``stop`` seen where given.

    Each result waits in ``box`` and leaves it as it is yielded: the generator keeps no
    reference to a result the consumer has. Each is checked: its type is the one before,
    or it is asked whether it may be awaitable. Returns the count of results yielded
    (``yielded`` included).
    """
    box: list[Any] = []
    kind: type | None = None
    for index, item in enumerate(rest, start):
        if deadline is not None and time.monotonic() >= deadline:
            raise _timed_out(timeout, yielded)
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
    """The results of :func:`~concurrency_kit.iter_parallel`, as they come.

    An iterator: ``iter(stream) is stream``, and iterating it yields the results at a
    generator's speed (it is an :class:`itertools.chain` of the one generator that runs
    the stream, so each step is the generator's own, with no Python call of ours). It
    has :meth:`close`; as a context manager, leaving the ``with`` block closes it.
    Closing it, or dropping the last reference to it, stops taking items from the
    input, cancels what has not started and kills the worker processes running its items.

    Attributes:
        mode: how the items run: ``"serial"``, ``"thread"``, ``"process"``,
            ``"executor"`` or ``"async"``.
        reason: why (the plan's reason).
    """

    __slots__ = ("_results", "mode", "reason")

    _results: Iterator[R]
    mode: str
    reason: str

    def __new__(cls, results: Iterator[R], mode: str, reason: str) -> Self:
        stream = super().__new__(cls, results)
        stream._results = results
        stream.mode = mode
        stream.reason = reason
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
