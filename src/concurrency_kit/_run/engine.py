"""The stream engine: units of a call through a backend's runner, in a bounded window.

One ``StreamEngine`` runs a stream whose mode is decided; its generator,
``StreamEngine.results``, is a loop of named steps, as CPython's
``_ExecutorManagerThread.run`` is::

    adopt_first()           the measured units: done, or still running (the probe, a worker)
    loop:
      next_ready()          a finished unit, in input order or as units finish
        → its outcomes yielded one by one (a failure raised with its item's note;
          take() between them, so the pools work on while the consumer has a result)
      take()                chunks of the input while the window has room
      cancel_after_failure() nothing new starts after a failure
      run_alone()           after a worker's death: the suspects, one at a time
      wait_for_some()       until a unit finishes, the deadline, or a stop
      read()                a finished unit's outcomes → store(), or lost() to a dead worker
    finish()                cancel what has not started; kill the workers on close,
                            timeout or Ctrl-C; close the progress bar

The runner (``_backends.registry``) knows how to run a unit, read what became of it and stop
them all; the engine knows nothing of how the mode was chosen.

A failure (unless exceptions are collected) stops the taking: in order, the results
before it are yielded first. Closing the stream (``break``, ``close()``, the end of a
``with`` block, garbage collection), a timeout or Ctrl-C cancels the chunks not started
and kills the worker processes running the stream's chunks; an item running in a thread
finishes in the background. Either way no item after the failure (after a close or a
timeout: no item at all) starts, not even one of a chunk already queued where it can
no longer be cancelled: the items check the stream's stop token (``_backends.stop_tokens``).

A worker that dies loses the units beside it too (a process pool breaks whole). With
exceptions collected, the items of every unit lost run again, each alone, one at a
time, with nothing else of the stream running (on a fresh pool), and only the one
that dies again gets ``WorkerCrashedError``; then the stream goes on. Without, the
first loss is raised, naming the items that were running.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from itertools import islice
from operator import itemgetter
from typing import Any, final

from .._backends.awaitable import cut_at_awaitable
from .._backends.outcomes import Stopped, noted
from .._backends.registry import TAIL_SHARE, Lost, Outcome, Runner, Unit

__all__ = ["Progress", "StreamEngine", "close_progress", "handing_over", "stream_timed_out"]

#: A progress callback, told ``(done, total)`` as each result is yielded.
Progress = Callable[[int, "int | None"], object]
#: Marks the end of a list being handed over (``handing_over``).
_END: Any = object()
#: What a yielded outcome leaves in its place.
_YIELDED: Outcome = (True, None)


@final
class StreamEngine:
    """One stream of a call through ``runner``: ``first``'s units, then ``fn`` of every item of ``rest``.

    Args:
        runner: runs the units, with the function.
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
        progress: told ``(done, total)`` in the consumer's thread as each result is
            yielded; its ``close()``, where it has one, is called when the stream ends.
        timeout: the seconds the whole stream may take (for the message).
        deadline: the ``time.monotonic()`` it must end by.
        stop: once done, the stream stops as if closed (its reader is in another thread).
    """

    def __init__(  # noqa: PLR0913 - the stream's inputs, by name
        self,
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
    ) -> None:
        self.runner, self.rest, self.first = runner, rest, first
        self.ordered, self.collect, self.window, self.chunksize = ordered, collect, window, chunksize
        self.workers, self.total, self.progress = workers, total, progress
        self.timeout, self.deadline, self.stop = timeout, deadline, stop
        self.running: dict[Future[Any], Unit] = {}
        self.ready: dict[int, Unit] = {}  # finished, by their first index (ordered)
        self.finished: deque[Unit] = deque()  # finished, in the order they did (unordered)
        self.next_index = min((unit.start for unit, _ in first), default=start)
        self.taken = start
        self.yielded = 0
        self.failed_at: int | None = None
        self.misused: set[int] = set()  # items whose result was awaitable: raised even when exceptions are collected
        self.exhausted = False
        self.suspects: list[Unit] = []  # lost with a dead worker, to run alone: the last runs first
        self.lone: Unit | None = None  # the one running alone

    # The loop.

    def results(self) -> Iterator[Any]:
        """Yield the results: the loop of named steps (see the module's docstring).

        Raises:
            TimeoutError: the deadline passed.
            Stopped: ``stop`` was set.
            WorkerCrashedError: a worker died (unless exceptions are collected).
            Exception: the first exception ``fn`` raised (without ``collect``), noted with its item.
        """
        kill = False
        try:
            try:
                yield from self.loop()
            except _Late:
                yield from self.measured_in_time()
        except BaseException as exc:
            kill = _ends_the_stream(exc)
            raise
        finally:
            self.finish(kill=kill)

    def loop(self) -> Iterator[Any]:
        """The steps, until every unit is yielded.

        Raises:
            _Late: the deadline passed while units ran.
        """
        self.adopt_first()
        while True:
            while (unit := self.next_ready()) is not None:
                outcomes = unit.outcomes
                assert outcomes is not None
                for offset in range(len(outcomes)):
                    if not outcomes[offset][0]:
                        self.raise_failure(unit, offset)
                    self.take()  # the pools work on while the consumer has the result
                    self.yielded += 1
                    if self.progress is not None:
                        self.progress(self.yielded, self.total)
                    yield _handed_over(outcomes, offset)  # the stream keeps no reference to it
                self.next_index = unit.stop
            self.take()
            self.cancel_after_failure()
            self.run_alone()
            if not self.running:
                if self.has_ready():
                    continue
                break
            for future in self.wait_for_some():
                self.read(self.running.pop(future), future)

    # The steps.

    def adopt_first(self) -> None:
        """Take over the measured units: read those done, wait for the others with the rest."""
        for unit, future in self.first:
            if future is None:
                self.read(unit, None)
            else:
                self.running[future] = unit

    def next_ready(self) -> Unit | None:
        """The next finished unit to yield: the one at the front (in order), or the oldest finished."""
        if self.ordered:
            return self.ready.pop(self.next_index, None)
        return self.finished.popleft() if self.finished else None

    def has_ready(self) -> bool:
        """Whether a finished unit waits to be yielded."""
        return self.next_index in self.ready if self.ordered else bool(self.finished)

    def raise_failure(self, unit: Unit, offset: int) -> None:
        """Raise the failure of ``unit``'s item ``offset``, unless exceptions are collected (then: nothing).

        Raises:
            BaseException: the item's exception, noted with its item; or the call's own
                error for an awaitable result (it names its item itself).
        """
        index = unit.start + offset
        if self.collect and index not in self.misused:
            return
        assert unit.outcomes is not None
        error = unit.outcomes[offset][1]
        if index in self.misused:
            raise error
        raise noted(error, index, unit.items[offset])

    def take(self) -> None:
        """Take more items, a chunk at a time, while the window has room for one (and nothing failed or runs alone).

        A whole chunk, unless nothing runs: room for a few items, taken one by one as the
        consumer reads, would make chunks of one.
        """
        while self.taking() and (room := self.window - (self.taken - self.yielded)) > 0:
            size = self.chunk_size()
            if room < size and self.running:
                return
            chunk = list(islice(self.rest, min(size, room)))
            if not chunk:
                self.exhausted = True
                return
            unit = Unit(self.taken, chunk)
            self.running[self.runner.submit(unit)] = unit
            self.taken += len(chunk)

    def taking(self) -> bool:
        """Whether new items may start: not after the end, a failure, or while suspects run alone."""
        return not self.exhausted and self.failed_at is None and not self.suspects and self.lone is None

    def chunk_size(self) -> int:
        """The next chunk's size: shrinking toward the end of an input of known length (guided)."""
        if self.total is None:
            return self.chunksize
        return max(1, min(self.chunksize, -(-(self.total - self.taken) // (TAIL_SHARE * self.workers))))

    def cancel_after_failure(self) -> None:
        """After a failure nothing new starts; in order, only the units before it still matter."""
        if self.failed_at is None:
            return
        for future, unit in list(self.running.items()):
            if unit.start > self.failed_at and future.cancel():
                del self.running[future]

    def run_alone(self) -> None:
        """Send the next suspect once nothing else of the stream runs in a pool (a culprit would take it down)."""
        if self.suspects and self.lone is None and all(u.results is not None for u in self.running.values()):
            self.lone = lone = self.suspects.pop()
            self.running[self.runner.submit(lone)] = lone

    def wait_for_some(self) -> set[Future[Any]]:
        """Wait until a running unit finishes.

        Raises:
            _Late: the deadline passed (the loop yields what the measuring finished in time).
            Stopped: ``stop`` was set.
        """
        deadline, stop = self.deadline, self.stop
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise _Late
        futures = self.running if stop is None else [*self.running, stop]
        done, _ = wait(futures, timeout=remaining, return_when=FIRST_COMPLETED)
        if stop is not None and stop.done():
            raise Stopped
        if not done:
            raise _Late
        return done

    def read(self, unit: Unit, future: Future[Any] | None) -> None:
        """What became of a finished unit: store its outcomes, send it again, or have its items run alone."""
        if unit.results is not None:
            values, error = unit.results(future)
            self.store(unit, [(True, value) for value in values] + ([] if error is None else [(False, error)]))
            return
        assert future is not None
        outcome = self.runner.read(unit, future)
        if unit is self.lone and outcome is not None:
            self.lone = None
        if isinstance(outcome, list):
            self.store(unit, outcome)
        elif outcome is None:
            self.running[self.runner.submit(unit)] = unit
        else:
            self.lost(unit, outcome)

    def store(self, unit: Unit, outcomes: list[Outcome]) -> None:
        """Keep ``unit``'s outcomes for the consumer; an awaitable result or a failure stops the taking."""
        unit.outcomes = outcomes
        values = list(map(itemgetter(1), outcomes))
        misuse = cut_at_awaitable(values, unit.items, unit.start)
        if misuse is not None:  # an error in the awaitable's place; what came after it is dropped
            outcomes[len(values) :] = [(False, misuse)]
            self.misused.add(unit.start + len(values))
        if (not self.collect or misuse is not None) and outcomes and not outcomes[-1][0]:
            index = unit.start + len(outcomes) - 1
            self.failed_at = index if self.failed_at is None else min(self.failed_at, index)
            self.runner.halt(self.failed_at)
        if self.ordered:
            self.ready[unit.start] = unit
        else:
            self.finished.append(unit)

    def lost(self, unit: Unit, loss: Lost) -> None:
        """``unit``'s worker died: raise, give its item the error (alone), or have its items run alone.

        Raises:
            WorkerCrashedError: without ``collect``, naming the items that were running.
        """
        if not self.collect:
            beside = [u for u in self.running.values() if u.results is None] if loss.together else []
            raise loss.blame(sorted(index for u in (unit, *beside) for index in range(u.start, u.stop)))
        if unit.alone:
            self.store(unit, [(False, loss.blame([unit.start]))])
            return
        self.suspects.extend(Unit(index, [item], alone=True) for index, item in enumerate(unit.items, unit.start))
        self.suspects.sort(key=lambda suspect: -suspect.start)

    def measured_in_time(self) -> Iterator[Any]:
        """After the deadline: in order, the measured items that finished in time; then the timeout.

        Raises:
            TimeoutError: the deadline passed (or the error of an awaitable result among those items).
        """
        front = next((u for u in self.running.values() if u.start == self.next_index), None)
        misuse = None
        if self.ordered and front is not None and front.results is not None:
            values = front.results(None)[0]
            misuse = cut_at_awaitable(values, front.items, front.start)
            for value in handing_over(values):
                self.yielded += 1
                if self.progress is not None:
                    self.progress(self.yielded, self.total)
                yield value
        raise misuse or stream_timed_out(self.timeout, self.yielded)

    def finish(self, *, kill: bool) -> None:
        """Cancel what has not started; with ``kill``, stop the workers running the rest; close the progress bar."""
        try:
            self.runner.stop(self.running, kill=kill)  # also when nothing runs: a stop token is given back
        finally:
            close_progress(self.progress)


class _Late(Exception):  # noqa: N818 - a signal inside the engine, never raised out of it
    """The deadline passed while units ran (the engine raises ``TimeoutError`` in its place)."""


def _ends_the_stream(exc: BaseException) -> bool:
    """Whether leaving the stream with ``exc`` should stop the workers running its chunks.

    Closed by the consumer (``GeneratorExit``), Ctrl-C, ``SystemExit`` or a timeout:
    nobody will read what they compute. Not for an exception of ``fn`` (as in
    ``run_parallel``, what runs finishes; nothing new starts).
    """
    return not isinstance(exc, Exception) or isinstance(exc, TimeoutError)


def stream_timed_out(timeout: float | None, yielded: int) -> TimeoutError:
    """The error of a stream that ran past its ``timeout``, saying how far it got."""
    return TimeoutError(
        f"the stream did not finish within its timeout of {timeout:g} s ({yielded} results yielded); worker "
        "processes running its items were stopped; an item running in a thread finishes in the background "
        "(threads cannot be stopped)"
    )


def _handed_over(outcomes: list[Outcome], offset: int) -> Any:
    """The value of ``outcomes[offset]``, taken out of the list: once yielded, only the consumer holds it."""
    value = outcomes[offset][1]
    outcomes[offset] = _YIELDED
    return value


def handing_over(values: list[Any]) -> Iterator[Any]:
    """The items of ``values``, each taken out of the list as it is yielded (the list ends empty).

    At ``list.pop``'s speed, no step of ours per item: the list is reversed behind an
    end marker once, then popped from its end until the marker comes.
    """
    values.append(_END)
    values.reverse()
    return iter(values.pop, _END)


def close_progress(progress: Progress | None) -> None:
    """Call ``progress.close()``, where it has one (a tqdm bar)."""
    close = getattr(progress, "close", None)
    if close is not None:
        close()
