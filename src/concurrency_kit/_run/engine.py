"""The run engine: the units of a decided call through its backend's runner.

One ``Engine`` runs a call whose mode is decided, for every entry point: a stream
(``results``, a generator: ``iter_parallel``, ``AutoExecutor.map``, ``progress=``) or a
list (``drain``: ``run_parallel``). Its loop is a sequence of named steps, as CPython's
``_ExecutorManagerThread.run`` is::

    adopt_first()             the measured units: done, or still running (the probe, a worker)
    help_while_warming()      (a list, auto) items run here while a cold pool starts (warming.py)
    loop:
      next_ready()            a finished unit, in input order or as units finish
        → its outcomes yielded one by one, or added to the list whole (a failure
          raised with its item's note; a list raises the first failure at once)
      take()                  chunks of the input while the window and the runner have room
      cancel_after_failure()  nothing new starts after a failure
      run_alone()             after a worker's death: its items, one at a time (alone.py)
      wait_for_some()         until a unit finishes, the deadline, or a stop
      read()                  a finished unit's outcomes → store(), or lost() to a dead worker
    finish()                  cancel what has not started; kill the workers on close,
                              timeout or Ctrl-C; close the progress bar

The runner (``_backends/registry.py``) knows how to run a unit, read what became of it
and stop them all; the engine knows nothing of how the mode was chosen. A unit done when
it is submitted (a loop's, or one that fell back to the calling thread) is read at once.
The engine waits on a queue its units' futures put themselves on as they finish (and an
input that is fed while it runs, a pipeline stage's ``Inbox``, wakes it as items come).

What is in flight is bounded twice: by the runner's ``capacity`` (units: enough that no
worker waits for the next), and, for a stream, by its window (items taken and not yet
yielded). A list has no window: its results are all kept anyway.

A failure (unless exceptions are collected) stops the taking: in a stream, in order,
the results before it are yielded first; a list raises it at once. Closing the stream
(``break``, ``close()``, garbage collection), a timeout or Ctrl-C cancels the units not
started and kills the worker processes running the call's units (an item in a thread
finishes in the background). No item after the failure (after a close: none) starts, not
even one already queued: the items check the call's stop token (``_backends.stop_tokens``).

A worker that dies: see ``alone.py``. Retries: see ``retrying.py``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from itertools import islice
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from .._backends.awaitable import cut_at_awaitable
from .._backends.outcomes import Stopped, noted
from .._backends.registry import Done, Runner, Unit
from .alone import Alone
from .balancing import StartOrder, guided
from .inbox import WAKE, Inbox
from .results import Progress, call_timed_out, close_progress, done_unread, ends_the_call, handed_over, measured_in_time
from .retrying import settling
from .warming import Helping

if TYPE_CHECKING:
    from .._core.options import PerItem
    from .coroutines import Fed

__all__ = ["Engine"]


class Engine:
    """One call through ``runner``: ``first``'s units, then ``fn`` of every item of ``rest``.

    Args:
        runner: runs the units, with the function.
        rest: the items after the first units'.
        start: the index of ``rest``'s first item.
        first: units already under way (the measured head), each with the future it
            is done with (``None``: done), and ``Unit.results`` set to read them.
        ordered: in input order; else unit by unit as they finish.
        collect: exceptions are yielded in their items' places (``return_exceptions``).
        window: the most items taken from the input and not yet yielded (``None``: a
            list, bounded by the runner's capacity only).
        chunksize: the most items a unit takes.
        workers: the threads or processes the units run on.
        total: how many items the input has, when it says: units then shrink toward
            its end, so that the workers finish together.
        progress: told ``(done, total)`` in the consumer's thread as each result is
            yielded; its ``close()``, where it has one, is called when the stream ends.
        timeout: the seconds the whole call may take (for the message).
        deadline: the ``time.monotonic()`` it must end by.
        stop: once done, the stream stops as if closed (its reader is in another thread).
        helping: the calling thread runs items while the workers start (a list only).
        order: which input item each position of ``rest`` is, where a list starts its
            dearest items first (``balancing.py``): failures name the input's index, and
            ``drain`` returns the results in input order.
        per_item: the call's retries, task timeout and initializer, whose failures
            ``retrying.py`` settles (an item past the timeout: ``Runner.expire``).
    """

    #: The results are what coroutines returned (``LoopEngine``): an awaitable among them
    #: is a result, not a plain function's misuse.
    awaited = False

    def __init__(  # noqa: PLR0913 - the call's inputs, by name
        self,
        runner: Runner,
        rest: Iterator[Any],
        *,
        start: int,
        first: list[tuple[Unit, Future[Any] | None]],
        ordered: bool,
        collect: bool,
        window: int | None,
        chunksize: int,
        workers: int = 1,
        total: int | None = None,
        progress: Progress | None = None,
        timeout: float | None,
        deadline: float | None,
        stop: Future[None] | None = None,
        helping: Helping | None = None,
        order: StartOrder | None = None,
        per_item: PerItem | None = None,
    ) -> None:
        self.runner, self.rest, self.first = runner, rest, first
        self.ordered, self.collect, self.window, self.chunksize = ordered, collect, window, chunksize
        self.workers, self.total, self.progress = workers, total, progress
        self.timeout, self.stop, self.helping, self.order = timeout, stop, helping, order
        #: The input index of the item at a position (they differ where a list starts its dearest items first).
        self.index: Callable[[int], int] = int if order is None else order.index
        self.deadline: float | None = deadline
        self.running: dict[Future[Any], Unit] = {}
        self.measuring = 0  # of those, units the measuring runs (read by their ``results``), not the runner
        self.completed: SimpleQueue[Future[Any]] = SimpleQueue()  # futures done, as they finish
        self.ready: dict[int, Unit] = {}  # finished, by their first index (ordered)
        self.finished: deque[Unit] = deque()  # finished, in the order they did (unordered)
        self.next_index = min((unit.start for unit, _ in first), default=start)
        self.taken = start
        self.yielded: int = 0
        self.failed_at: int | None = None
        self.failure: Unit | None = None  # the unit of the earliest failure that stops the call (its last result)
        self.misused: set[int] = set()  # items whose result was awaitable: raised even when exceptions are collected
        self.exhausted = False
        #: An input fed while the call runs (``inbox.py``): taken without blocking, it wakes the wait.
        self.fed: Fed | None = rest.on_arrival(self.input_arrived) if isinstance(rest, Inbox) else None
        #: Units a worker timed, as ``(first position, items, seconds)``, for the decision (``_decide/sizes.py``).
        self.timed: list[tuple[int, int, float]] = []
        self.retrying = settling(per_item, collect=collect, index=self.index)
        self.alone = Alone(collect=collect, retrying=self.retrying, index=self.index)  # after a worker's death
        if stop is not None:
            stop.add_done_callback(self.arrived)

    # The loops.

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
                yield from measured_in_time(self)
        except BaseException as exc:
            kill = ends_the_call(exc)
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
                done = unit.done
                assert done is not None
                values, last = done.values, len(done.values) - 1
                for offset in range(len(values)):
                    if offset == last and done.failed:
                        self.raise_failure(unit)
                    self.take()  # the pools work on while the consumer has the result
                    self.yielded += 1
                    if self.progress is not None:
                        self.progress(self.yielded, self.total)
                    yield handed_over(values, offset)  # the stream keeps no reference to it
                self.next_index = unit.stop
            if not self.step():
                break

    def drain(self) -> list[Any]:
        """Every result, in input order, as one list (``run_parallel``): the same steps, a unit at a time.

        Raises:
            TimeoutError: the deadline passed.
            WorkerCrashedError: a worker died (unless exceptions are collected).
            Exception: the first exception ``fn`` raised (without ``collect``), noted with its item,
                as soon as it is read.
        """
        values: list[Any] = []
        kill = False
        try:
            self.adopt_first()
            if self.helping is not None:
                from .warming import help_while_warming  # noqa: PLC0415 - one step, one module

                help_while_warming(self, self.helping)
            while True:
                failure = self.failure
                if failure is not None and not self.misuse(failure):
                    self.raise_failure(failure)  # fn's exception: at once (an awaitable: in order)
                while (unit := self.ready.pop(self.next_index, None)) is not None:
                    done = unit.done
                    assert done is not None
                    if done.failed:
                        self.raise_failure(unit)
                    values += done.values
                    self.yielded += len(done.values)
                    self.next_index = unit.stop
                if not self.step():
                    return values if self.order is None else self.order.restored(values)
        except _Late:
            kill = True
            raise call_timed_out(self.timeout, self.yielded + done_unread(self.ready), self.total) from None
        except BaseException as exc:
            kill = ends_the_call(exc)
            raise
        finally:
            self.finish(kill=kill)

    def step(self) -> bool:
        """One turn of the loop after the ready units: take, stop after a failure, wait, read.

        Returns:
            Whether the loop goes on (``False``: every unit is done and read).

        Raises:
            _Late: the deadline passed while units ran.
        """
        self.take()
        self.cancel_after_failure()
        self.run_alone()
        if self.has_ready():  # a unit sent just now may be done already: yield it before waiting
            return True
        retrying = self.retrying is not None and self.retrying.next_due() is not None
        if not self.running and not retrying and (self.fed is None or not self.taking()):
            return False
        for future in self.wait_for_some():
            unit = self.forget(future)
            if unit is not None:  # else cancelled, and forgotten
                self.read(unit, future)
        return True

    # The steps.

    def adopt_first(self) -> None:
        """Take over the measured units: read those done, wait for the others with the rest."""
        for unit, future in self.first:
            if future is None:
                self.read(unit, None)
            else:
                self.watch(future, unit)

    def next_ready(self) -> Unit | None:
        """The next finished unit to yield: the one at the front (in order), or the oldest finished."""
        if self.ordered:
            return self.ready.pop(self.next_index, None)
        return self.finished.popleft() if self.finished else None

    def has_ready(self) -> bool:
        """Whether a finished unit waits to be yielded."""
        return self.next_index in self.ready if self.ordered else bool(self.finished)

    def raise_failure(self, unit: Unit) -> None:
        """Raise the failure that ends ``unit``'s results.

        Raises:
            BaseException: the item's exception, noted with its item; or the call's own
                error for an awaitable result (it names its item itself).
        """
        done = unit.done
        assert done is not None
        assert done.failed
        error, offset = done.values[-1], len(done.values) - 1
        if self.misuse(unit):
            raise error
        raise noted(error, self.index(unit.start + offset), unit.items[offset])

    def misuse(self, unit: Unit) -> bool:
        """Whether ``unit`` ends in an awaitable result's error (not an exception of ``fn``)."""
        done = unit.done
        return done is not None and unit.start + len(done.values) - 1 in self.misused

    def take(self) -> None:
        """Take more items, a unit at a time, while the window and the runner have room (and nothing failed).

        A whole unit, unless nothing runs: room for a few items, taken one by one as the
        consumer reads, would make units of one.
        """
        for unit in () if self.retrying is None else self.retrying.due(time.monotonic(), self.failed_at):
            if unit.alone:
                self.alone.add([unit])  # a retry after a worker's death runs alone
            else:
                self.send(unit)  # a retry whose wait is over goes first
        while self.taking() and self.runner_has_room():
            size = self.chunk_size()
            if self.window is not None:
                room = self.window - (self.taken - self.yielded)
                if room <= 0 or (room < size and self.running):
                    return
                size = min(size, room)
            chunk = self.next_chunk(size)
            if not chunk:
                return
            unit = Unit(self.taken, chunk)
            self.taken += len(chunk)
            self.send(unit)

    def next_chunk(self, size: int) -> list[Any]:
        """Up to ``size`` items of the input (none: its end); of a fed input, those there now."""
        fed = self.fed
        if fed is None:
            chunk = list(islice(self.rest, size))
            self.exhausted = not chunk
            return chunk
        chunk = fed.take(size)
        self.exhausted = fed.at_end()
        return chunk

    def taking(self) -> bool:
        """Whether new items may start: not after the end, a failure, or while items run alone."""
        return not self.exhausted and self.failed_at is None and not self.alone.busy

    def runner_has_room(self) -> bool:
        """Whether the runner takes another unit: fewer in flight than its capacity.

        One fewer than the workers while the call's threads here compute (``Helping``).
        """
        capacity = self.runner.capacity
        helping = self.helping
        if helping is not None and helping.computing and helping.others is not None and not helping.others.done():
            capacity = max(1, self.workers - 1)
        return len(self.running) - self.measuring < capacity

    def chunk_size(self) -> int:
        """The next unit's size: shrinking toward the end of an input of known length (guided), by work where known."""
        size = guided(self.chunksize, None if self.total is None else self.total - self.taken, self.workers)
        return size if self.order is None else self.order.fit(self.taken, size)

    def send(self, unit: Unit) -> None:
        """Hand ``unit`` to the runner; read it at once if it is done already (run here)."""
        future = self.runner.submit(unit)
        if future.done():
            self.read(unit, future)
        else:
            self.watch(future, unit)

    def watch(self, future: Future[Any], unit: Unit) -> None:
        """Wait for ``future`` with the others: it goes on the completion queue when done."""
        self.running[future] = unit
        if unit.results is not None:
            self.measuring += 1
        future.add_done_callback(self.arrived)

    def arrived(self, future: Future[Any]) -> None:
        """``future`` is done: it goes on the completion queue."""
        self.completed.put(future)

    def input_arrived(self) -> None:
        """An item (or the end) of a fed input arrived (in its writer's thread): the wait ends."""
        self.completed.put(WAKE)

    def forget(self, future: Future[Any]) -> Unit | None:
        """Stop waiting for ``future``: its unit, unless it was forgotten already."""
        unit = self.running.pop(future, None)
        if unit is not None and unit.results is not None:
            self.measuring -= 1
        return unit

    def cancel_after_failure(self) -> None:
        """After a failure nothing new starts; in order, only the units before it still matter."""
        if self.failed_at is None:
            return
        for future, unit in list(self.running.items()):
            if unit.start > self.failed_at and future.cancel():
                self.forget(future)

    def run_alone(self) -> None:
        """Send the next suspect once nothing else of the call runs in a pool (a culprit would take it down)."""
        if len(self.running) == self.measuring and (unit := self.alone.next()) is not None:
            self.send(unit)

    def wait_for_some(self) -> list[Future[Any]]:
        """Wait until a running unit finishes (or run one here, where the runner needs that).

        Raises:
            _Late: the deadline passed (the loop yields what the measuring finished in time).
            Stopped: ``stop`` was set.
        """
        done: list[Future[Any]] = []
        if not self.runner.help():
            now = time.monotonic()
            remaining = None if self.deadline is None else self.deadline - now
            if remaining is not None and remaining <= 0:
                raise _Late
            until = None if self.retrying is None else self.retrying.until_next(now)  # a retry, or a timeout check
            late = remaining is not None and (until is None or remaining <= until)
            try:
                done.append(self.completed.get(timeout=remaining if late else until))
            except Empty:
                if late:
                    raise _Late from None
            if self.retrying is not None:
                self.expire()
        if self.stop is not None and self.stop.done():
            raise Stopped
        try:
            while True:
                done.append(self.completed.get_nowait())
        except Empty:
            return done

    def expire(self) -> None:
        """Items past the task timeout fail; the rest of each unit taken back is sent again (``retrying.py``)."""
        assert self.retrying is not None
        failed, again = self.retrying.expired(self.runner, self.forget)
        for unit, done in failed:
            self.keep(unit, done)
        for unit in again:
            self.send(unit)

    def read(self, unit: Unit, future: Future[Any] | None) -> None:
        """What became of a finished unit: store its results, send it again, or (its worker died) ``alone.py``.

        Raises:
            WorkerCrashedError: its worker died (without ``collect`` or retries), naming the items running.
        """
        if unit.results is not None:
            values, error = unit.results(future)
            self.keep(unit, Done(values) if error is None else Done([*values, error], failed=True))
            return
        assert future is not None
        outcome = self.runner.read(unit, future)
        if outcome is not None:
            self.alone.read(unit)
        if isinstance(outcome, Done):
            self.keep(unit, outcome)
        elif outcome is None:
            self.send(unit)
        elif settled := self.alone.lost(
            unit, outcome, lambda: [u for u in self.running.values() if not u.results], self.send
        ):
            self.store(*settled)

    def keep(self, unit: Unit, done: Done) -> None:
        """Store a finished unit's results, once its failed items are settled (with retries)."""
        settled = (unit, done) if self.retrying is None else self.retrying.settle(unit, done)
        if settled is not None:
            self.store(*settled)

    def store(self, unit: Unit, done: Done) -> None:
        """Keep ``unit``'s results for the consumer; an awaitable result or a failure stops the taking."""
        unit.done = done
        values = done.values
        if done.seconds is not None:
            self.timed.append((unit.start, len(values), done.seconds))
        misuse = None if self.awaited else cut_at_awaitable(values, unit.items, unit.start, self.index)
        if misuse is not None:  # an error in the awaitable's place; what came after it is dropped
            self.misused.add(unit.start + len(values))
            values.append(misuse)
            done.failed = True
        if done.failed:
            index = unit.start + len(values) - 1
            if self.failed_at is None or index < self.failed_at:
                self.failed_at, self.failure = index, unit
            self.runner.halt(self.failed_at)
        if self.ordered:
            self.ready[unit.start] = unit
        else:
            self.finished.append(unit)

    def finish(self, *, kill: bool) -> None:
        """Cancel what has not started; with ``kill``, stop the workers running the rest; close the progress bar."""
        try:
            self.runner.stop(self.running, kill=kill)  # also when nothing runs: a stop token is given back
        finally:
            close_progress(self.progress)


class _Late(Exception):  # noqa: N818 - a signal inside the engine, never raised out of it
    """The deadline passed while units ran (the engine raises ``TimeoutError`` in its place)."""
