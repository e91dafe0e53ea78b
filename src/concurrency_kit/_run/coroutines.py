"""A coroutine function's run: the run engine's steps, waited for on the event loop its coroutines run on.

``LoopEngine`` is the run engine (engine.py) with one step changed: it does not block a
thread until a unit finishes, it awaits. So the engine, the ``AsyncRunner``'s lanes
(``_backends/lanes.py``) and the coroutines share the loop's thread, and a unit costs
no lock and no hop between threads::

    arun_parallel / aiter_parallel    on the caller's loop, read by an AsyncResultStream
    run_parallel / iter_parallel      on a private loop in a thread of its own, read a
                                      batch at a time (_backends/coroutines.private_loop)

    next_batch():
      the results ready (in input order, or as units finish) → returned, at least one
      take()                   units while the window and the lanes have room
      cancel_after_failure()   nothing new starts after a failure
      some_done()              await a unit's end, a new item of an async input, or the deadline
      read()                   a finished unit's results

A list is handed to the lanes in few units, halving toward its end, which the lanes
share an item at a time; a stream in units of as many items as finish together
(``_backends/lanes.Grouping``): one each where results come apart, so that each is read
as it comes.
An async iterable as input is read ahead by a task of its own (``_Fed``), as many items
as the engine found missing, so that results are read while the input waits.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol, cast, final

from .._backends.lanes import AsyncRunner
from .._backends.registry import Unit
from .._core.kinds import is_coroutine_function
from .engine import Engine

if TYPE_CHECKING:
    from .._core.options import PerItem

__all__ = ["STREAM_UNITS_IN_WINDOW", "Fed", "LoopEngine", "coroutine_engine"]

#: A stream's window holds this many units at least: the lanes are never short of items
#: while the units grow (``_backends/lanes.UNIT_SPREAD``).
STREAM_UNITS_IN_WINDOW = 4


class Fed(Protocol):
    """An input fed while a call runs, taken from without blocking (``_Fed``; a pipeline's ``Inbox``)."""

    def take(self, size: int) -> list[Any]:
        """Up to ``size`` of the items there now."""
        ...

    def at_end(self) -> bool:
        """Whether every item was taken and no more will come."""
        ...


@final
class _Fed:
    """The items of an async iterable, read ahead on the loop as the engine asks for them."""

    def __init__(self, source: AsyncIterable[Any], arrived: Callable[[], None]) -> None:
        self.source: AsyncIterator[Any] = aiter(source)
        self.items: deque[Any] = deque()
        self.arrived = arrived  # told of each item, and of the end
        self.asked = 0  # items still to read
        self.ended = False
        self.error: BaseException | None = None  # the input's own failure, raised when it comes up
        self.asking: asyncio.Future[None] | None = None
        self.reader: asyncio.Task[None] | None = None

    def take(self, size: int) -> list[Any]:
        """Up to ``size`` of the items read so far; more are asked for where fewer were there.

        Raises:
            Exception: the input's own failure, once the items before it are taken.
        """
        items = self.items
        chunk = [items.popleft() for _ in range(min(size, len(items)))]
        if not chunk and self.error is not None:
            raise self.error
        if len(chunk) < size:
            self.ask(size - len(chunk))
        return chunk

    def at_end(self) -> bool:
        """Whether every item was taken and the input has no more."""
        return self.ended and not self.items and self.error is None

    def ask(self, count: int) -> None:
        """Read ``count`` more items (fewer were there than the engine could take)."""
        if self.ended:
            return
        self.asked = max(self.asked, count)
        if self.reader is None:
            self.reader = asyncio.get_running_loop().create_task(self.read())
        elif self.asking is not None and not self.asking.done():
            self.asking.set_result(None)

    async def read(self) -> None:
        """Read the items asked for, one at a time, until the input ends (or fails)."""
        try:
            while True:
                while self.asked <= 0:
                    self.asking = asyncio.get_running_loop().create_future()
                    await self.asking
                self.items.append(await anext(self.source))
                self.asked -= 1
                self.arrived()
        except StopAsyncIteration:
            pass
        except Exception as exc:  # noqa: BLE001 - the input's own failure ends the call, when it comes up
            self.error = exc
        self.ended = True
        self.arrived()

    def close(self) -> None:
        """Stop reading ahead."""
        if self.reader is not None:
            self.reader.cancel()


class LoopEngine(Engine):
    """The run engine on the running loop: its results a batch at a time (``next_batch``), its waits awaited.

    ``items`` is an iterable or an async iterable; the rest of the arguments are the
    engine's. Read with ``next_batch`` until it returns ``[]``; ``aclose`` (always, also
    after an error) cancels what is in flight and waits for it.
    """

    awaited = True

    def __init__(self, runner: AsyncRunner, items: Iterable[Any] | AsyncIterable[Any], **shape: Any) -> None:
        fed = _Fed(items, self.wake) if isinstance(items, AsyncIterable) else None
        rest: Iterator[Any] = iter(()) if fed is not None else iter(cast("Iterable[Any]", items))
        self.event_loop: asyncio.AbstractEventLoop | None = None  # an Inbox's writer may wake it from now on
        super().__init__(runner, rest, **shape)
        self.reading = fed  # the async input's reader, stopped with the engine
        if fed is not None:
            self.fed = fed
        self.lanes = runner
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.late = False
        self.closed = False
        self.unread = 0  # results of the last batch: yielded once the next one is asked for
        self.failing: Unit | None = None  # a failed unit whose results before the failure went in the last batch

    async def next_batch(self) -> list[Any]:
        """The results ready now (waiting for one at least), in order or as units finished; ``[]`` at the end.

        Raises:
            TimeoutError: the deadline passed (the coroutines in flight are cancelled).
            Exception: the first exception ``fn`` raised (unless collected), noted with
                its item; in order, after the results before it.
        """
        if self.event_loop is None:
            self.start()
        self.yielded += self.unread
        self.unread = 0
        while True:
            if self.late:
                raise self.timed_out()
            batch = self.ready_now()
            if batch:
                self.unread = len(batch)
                return batch
            if not await self.turn():
                return []

    def start(self) -> None:
        """Note the loop it runs on; set the deadline's timer (``timeout`` counts from now, without a deadline)."""
        self.event_loop = loop = asyncio.get_running_loop()
        if self.deadline is None and self.timeout is not None:
            self.deadline = time.monotonic() + self.timeout
        if self.deadline is not None:
            self.timer = loop.call_at(loop.time() + (self.deadline - time.monotonic()), self.on_deadline)

    def ready_now(self) -> list[Any]:
        """The results ready, up to a failure: raised now if nothing comes before it, else with the next batch."""
        if self.failing is not None:
            self.raise_failure(self.failing)
        batch: list[Any] = []
        while (unit := self.next_ready()) is not None:
            done = unit.done
            assert done is not None
            self.next_index = unit.stop
            if done.failed:
                batch += islice(done.values, len(done.values) - 1)
                if not batch:
                    self.raise_failure(unit)
                self.failing = unit
                return batch
            batch += done.values
        return batch

    async def turn(self) -> bool:
        """Take, stop after a failure, await a unit's end: whether the loop goes on."""
        self.take()
        if not self.taking():
            self.lanes.no_more()
        self.cancel_after_failure()
        if self.has_ready():
            return True
        retrying = self.retrying is not None and self.retrying.next_due() is not None
        if not self.running and not retrying and (self.fed is None or self.exhausted or not self.taking()):
            return False
        await self.some_done()
        return True

    def chunk_size(self) -> int:
        """A list's: halving toward its end; a stream's: as many as finish together, a share of the window at most."""
        if self.window is None:
            return super().chunk_size()
        return min(self.lanes.grouping.size, max(1, self.window // STREAM_UNITS_IN_WINDOW))

    async def some_done(self) -> None:
        """Await a unit's end (or an item, the deadline, or a retry's wait); read the units that ended."""
        completed = self.completed
        if completed.empty():
            loop = asyncio.get_running_loop()
            self.waiter = loop.create_future()
            due = None if self.retrying is None else self.retrying.next_due()
            timer = None if due is None else loop.call_later(max(0.0, due - time.monotonic()), self.wake)
            try:
                await self.waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
        while not completed.empty():
            future = completed.get_nowait()
            unit = self.forget(future)
            if unit is not None:  # else cancelled, and forgotten
                self.read(unit, future)

    def arrived(self, future: Future[Any]) -> None:
        """A unit's future is done (in the loop's thread): on the completion queue, and the engine woken."""
        self.completed.put(future)
        self.wake()

    def input_arrived(self) -> None:
        """An item of a pipeline stage's ``Inbox`` arrived (in another thread): the loop's wait ends."""
        loop = self.event_loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake)

    def wake(self) -> None:
        """End the engine's wait."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_deadline(self) -> None:
        """The deadline passed: nothing more starts, the coroutines in flight are cancelled."""
        self.late = True
        self.lanes.halt(-1)
        self.wake()

    def timed_out(self) -> TimeoutError:
        """The error of the call that ran past its deadline."""
        return TimeoutError(
            f"the call did not finish within its timeout of {self.timeout:g} s ({self.yielded} results read); "
            "its coroutines still in flight were cancelled"
        )

    async def aclose(self) -> None:
        """Cancel what is in flight, take nothing more, and wait until the cancelled coroutines have ended."""
        if self.closed:
            return
        self.abandon()
        await self.lanes.closed()

    def abandon(self) -> None:
        """``aclose`` without waiting (the reader is gone): safe from any thread."""
        loop = self.event_loop
        if loop is None or loop.is_closed():
            self.closed = True
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.cancel_all()
        else:
            loop.call_soon_threadsafe(self.cancel_all)

    def cancel_all(self) -> None:
        """Stop the timer, the reading ahead and every lane."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        if self.reading is not None:
            self.reading.close()
        self.finish(kill=True)


def coroutine_engine(  # noqa: PLR0913 - the run's shape, by name
    fn: Callable[[Any], Any],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    workers: int,
    collect: bool,
    ordered: bool,
    window: int | None,
    total: int | None,
    timeout: float | None,
    deadline: float | None = None,
    context: contextvars.Context | None = None,
    per_item: PerItem | None = None,
) -> LoopEngine:
    """The engine of a coroutine function's run, to be read on the loop its coroutines are to run on.

    ``window``: ``None`` for a list (results read once all are in); ``context``: the
    caller's, where the engine is read in another (default: the reader's, copied);
    ``per_item``: the call's retries (``fn`` returns a ``Raised`` for a failure to
    retry), task timeout (each coroutine's) and initializer.
    """
    checked = not is_coroutine_function(fn)
    task_timeout = None if per_item is None else per_item.task_timeout
    runner = AsyncRunner(fn, workers, collect=collect, checked=checked, context=context, task_timeout=task_timeout)
    listed = window is None and total is not None
    return LoopEngine(
        runner,
        items,
        start=0,
        first=[],
        ordered=ordered,
        collect=collect,
        window=window,
        chunksize=max(1, total or 1) if listed else 1,  # a list: halving toward its end (``balancing.TAIL_SHARE``)
        workers=1 if listed else workers,
        total=total,
        timeout=timeout,
        deadline=deadline,
        per_item=per_item,
    )
