"""Coroutines on an event loop, as a runner: a run's units awaited by lane tasks, an item at a time.

Everything here runs in the loop's thread, the run engine's steps included
(``_run/coroutines.py``): handing a unit over, reading it and stopping take no lock and
no wake-up through the loop's self-pipe::

    submit(unit) ──► queue ◄── lanes (at most ``workers`` tasks, each in a copy of the
                               caller's context) take the next item of the oldest unit
    the unit's future ◄──────  set once its last item is done (or a failure cut it)
    halt(after) / stop() ────► the lanes awaiting items after it are cancelled

- A lane awaits ``fn(item)`` in place (a coroutine that never suspends costs no task of
  its own) and writes the result into the unit's slot. With nothing queued it waits,
  idle; once the engine has taken the last item (``no_more``), it ends.
- A unit wakes a lane for each of its items while the coroutines suspend. While they
  do not, one lane runs them all, and lanes are woken a few at a time (``_fan_out``).
- A stream's units hold as many items as finish together (``Grouping``): one each
  while results come apart, more while they come in bursts.
- A failure (not collected) stops the items after it at once, as the thread runner's
  stop token does. An item's own ``CancelledError`` (not the lanes') is its failure; so
  is ``SystemExit`` or Ctrl-C raised in it, which is never collected.
- A lane whose coroutines finish without suspending gives the loop a turn every
  ``SLICE_SECONDS``.
- ``stop`` cancels every lane; ``closed()`` waits until they have ended.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from inspect import isawaitable
from types import CoroutineType
from typing import Any, final

from .._core.errors import task_timed_out
from .coroutines import SLICE_SECONDS, not_awaitable
from .item_calls import Raised
from .loop_future import LoopFuture
from .outcomes import noted
from .unit import QUEUED_PER_LANE, Done, Unit, Warming

__all__ = ["UNIT_SPREAD", "AsyncRunner", "Grouping"]

#: A stream's units hold more items (twice as many each time) while their items finish
#: within this long of each other: grouping them delays no result by more than that,
#: and coroutines that finish together (never suspending, or waiting alike) cost the
#: engine a unit per many. A unit whose items finish further apart puts them back to one.
UNIT_SPREAD = SLICE_SECONDS
#: After this many misses in a row, a stream's units of one wait ``2 ** MAX_BACKOFF`` units to grow.
MAX_BACKOFF = 10
#: A lane that takes an item while more are queued wakes at most this many more lanes.
FAN_OUT = 2
#: The index a lane awaits when it awaits no item.
_NONE = -1
#: No item's index is above it: nothing is halted.
_NO_MARK = 2**63 - 1


@final
class Grouping:
    """How many items the next unit of a stream should hold: as many as finish together (``UNIT_SPREAD``).

    The size doubles with each unit whose items finished together (and the backoff
    below shrinks), and goes back to one with the first that did not. A unit of one
    item says nothing either way, so after each such miss the size stays at one for
    twice as many units as after the one before (up to ``2 ** MAX_BACKOFF``): where
    results come apart, almost every unit holds one.
    """

    __slots__ = ("backoff", "size", "waited")

    def __init__(self) -> None:
        self.size = 1
        self.backoff = 0  # units of one to settle before the size grows again: 2 ** backoff - 1
        self.waited = 0  # of those, settled so far

    def settled(self, items: int, spread: float) -> None:
        """A unit of ``items`` items settled, which finished within ``spread`` seconds of each other."""
        if spread > UNIT_SPREAD:
            self.size, self.waited = 1, 0
            self.backoff = min(self.backoff + 1, MAX_BACKOFF)
        elif items > 1:
            self.size *= 2
            self.backoff = max(self.backoff - 1, 0)
        elif self.waited >= (1 << self.backoff) - 1:
            self.size, self.waited = 2, 0
        else:
            self.waited += 1


class _Slots:
    """A unit the lanes take an item at a time; each item's result goes into its slot."""

    __slots__ = ("busy", "end", "failed", "first", "future", "grouping", "next", "unit", "values")

    def __init__(self, unit: Unit, future: Future[Done], grouping: Grouping) -> None:
        self.unit, self.future, self.grouping = unit, future, grouping
        self.first = 0.0  # when the first of its items finished
        self.values: list[Any] = [None] * len(unit.items)
        self.next = 0  # the offset of the next item to take
        self.end = len(unit.items)  # where its results end: the first failure's, or the first item cut short
        self.failed = False  # the result before ``end`` is the exception that stops the call
        self.busy = 0  # items before ``end`` being awaited

    def finished(self, offset: int) -> None:
        """Item ``offset`` is no longer awaited; settle the unit if it was the last."""
        if not self.first:
            self.first = time.perf_counter()
        if offset < self.end:
            self.busy -= 1
            if not self.busy and self.next >= self.end:
                self.settle()

    def cut(self, offset: int, lanes: dict[asyncio.Task[None], int], *, failed: bool) -> None:
        """The results end at ``offset`` (after it, with ``failed``) unless they end sooner already.

        ``lanes``: the index each lane awaits, to count the items still awaited before the new end.
        """
        end = offset + 1 if failed else offset
        if end < self.end or (failed and end == self.end):  # a failure's end stays one
            start = self.unit.start
            self.busy = sum(1 for index in lanes.values() if start <= index < start + end)
            self.end, self.failed = end, failed

    def settle(self) -> None:
        """Set the future once every item before ``end`` is done (once only)."""
        if self.future.done() or self.next < self.end or self.busy:
            return
        if self.first:
            self.grouping.settled(self.end, time.perf_counter() - self.first)
        values = self.values if self.end == len(self.values) else self.values[: self.end]
        self.future.set_result(Done(values, failed=self.failed))


@final
class AsyncRunner:
    """A run's units awaited by at most ``workers`` lanes on the running loop, an item at a time.

    Every method is called in the loop's thread.

    Args:
        fn: returns an awaitable for an item (with ``checked``, any function: a
            result that is not awaitable stops the call with a ``TypeError``).
        workers: the most coroutines in flight.
        collect: an exception ``fn`` raised is a result (``return_exceptions``).
        checked: check that each ``fn(item)`` is awaitable.
        context: the caller's context: each lane runs in a copy (default: the one
            current when the first unit is submitted).
        task_timeout: the seconds each coroutine may take: past it, it is cancelled (its
            ``finally`` blocks run) and its place gets a ``Raised`` ``TaskTimeoutError``.
    """

    def __init__(  # noqa: PLR0913 - the run's shape, by name
        self,
        fn: Callable[[Any], Any],
        workers: int,
        *,
        collect: bool,
        checked: bool,
        context: contextvars.Context | None = None,
        task_timeout: float | None = None,
    ) -> None:
        self._fn, self._workers, self._task_timeout = fn, workers, task_timeout
        self._collect, self._checked, self._context = collect, checked, context
        self._queue: deque[_Slots] = deque()
        self._lanes: dict[asyncio.Task[None], int] = {}  # lane → the index it awaits (_NONE: none)
        self._idle: list[asyncio.Future[None]] = []  # what the idle lanes wait on
        self._pending = 0  # lanes woken (or started) that have not run yet
        self._taken = 0  # items taken by the lanes
        self._suspending = True  # the last coroutine awaited let another lane take an item meanwhile
        self._mark = _NO_MARK  # no item after it starts
        self._closing = False
        self._last = False  # no unit comes after those queued: a lane with none to take ends
        #: How many items a stream's next unit should hold.
        self.grouping = Grouping()

    @property
    def capacity(self) -> int:
        """Two units a lane: one being awaited, one queued."""
        return QUEUED_PER_LANE * self._workers

    def warming(self) -> Warming | None:
        """Lanes start as units come."""
        return None

    def submit(self, unit: Unit) -> Future[Done]:
        """Queue ``unit``; wake a lane for each of its items (one, while the coroutines do not suspend)."""
        future = LoopFuture()
        self._queue.append(_Slots(unit, future, self.grouping))
        if self._suspending:
            self._wake(len(unit.items))
        elif not self._pending:
            self._wake(1)
        return future

    def no_more(self) -> None:
        """No unit comes after those submitted: the lanes end once nothing is queued."""
        if self._last:
            return
        self._last = True
        self._wake(len(self._idle))

    def run_here(self, unit: Unit) -> Done:
        """Never asked: no pool warms (coroutines run on the loop only).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(f"coroutines run on their event loop, not here ({len(unit.items)} items)")

    def help(self) -> bool:
        """The lanes need no help."""
        return False

    def read(self, unit: Unit, future: Future[Done]) -> Done:  # noqa: ARG002 - the protocol
        """Its results."""
        return future.result()

    def halt(self, after: int) -> None:
        """No item after ``after`` starts; those being awaited are cancelled."""
        if after >= self._mark:
            return
        self._mark = after
        for lane, index in self._lanes.items():
            if index > after:
                lane.cancel()

    def expire(self, seconds: float) -> list[tuple[Future[Any], Unit, int]]:  # noqa: ARG002 - the protocol
        """Nothing to do: each coroutine is awaited under its own ``task_timeout``, cancelled past it."""
        return []

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:  # noqa: ARG002 - every way: cancelled
        """Cancel every unit and every lane (``closed()`` waits for the coroutines to end)."""
        for future in running:
            future.cancel()
        self._closing, self._mark = True, -1
        for lane in self._lanes:
            lane.cancel()

    async def closed(self) -> None:
        """Wait until every lane has ended (after ``stop``)."""
        lanes = list(self._lanes)
        if lanes:
            await asyncio.wait(lanes)

    # The lanes.

    def _wake(self, count: int) -> None:
        """Wake ``count`` idle lanes, or start new ones while fewer than ``workers`` are."""
        idle = self._idle
        while count and idle:
            waiter = idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                self._pending += 1
                count -= 1
        count = min(count, self._workers - len(self._lanes))
        if count > 0:
            loop = asyncio.get_running_loop()
            if self._context is None:
                self._context = contextvars.copy_context()
            for _ in range(count):
                self._lanes[loop.create_task(self._lane(), context=self._context.copy())] = _NONE
            self._pending += count

    def _fan_out(self) -> None:
        """Items are still queued after a lane took one, and the coroutines did not suspend: wake a few more lanes.

        A coroutine that suspends after all is not left holding up the items behind it:
        up to ``FAN_OUT`` lanes are woken, as many as run already (and are not waiting
        to wake), so that they double each loop iteration. While coroutines finish
        without suspending, the first lane runs them all, and the one lane woken beside
        it finds nothing: that is the whole cost of not waking a lane an item.
        """
        busy = len(self._lanes) - len(self._idle) - self._pending
        if busy > self._pending:
            self._wake(min(FAN_OUT, busy - self._pending))

    def _take(self) -> tuple[_Slots, int] | None:
        """The next item to await: its unit and offset; ``None`` if none is queued."""
        queue = self._queue
        while queue:
            slots = queue[0]
            offset = slots.next
            if offset == 0 and not slots.future.set_running_or_notify_cancel():
                queue.popleft()  # cancelled before it started
                continue
            if offset >= slots.end or slots.unit.start + offset > self._mark:
                queue.popleft()  # nothing more of it starts
                slots.cut(offset, self._lanes, failed=False)
                slots.next = slots.end
                slots.settle()
                continue
            slots.next = offset + 1
            if slots.next == slots.end:
                queue.popleft()
            slots.busy += 1
            self._taken += 1
            if queue and not self._suspending:
                self._fan_out()
            return slots, offset
        return None

    async def _lane(self) -> None:
        """Await items as they are queued, until the run stops.

        A failure (not collected) lowers the mark to its item at once; a cancellation of
        ours stops the item (halted: the lane goes on with the items before the mark).
        """
        me = asyncio.current_task()
        assert me is not None
        lanes, fn, checked = self._lanes, self._fn, self._checked
        clock = time.perf_counter
        turn = clock() + SLICE_SECONDS
        self._pending -= 1
        try:
            while True:
                taken = self._take()
                if taken is None:
                    if self._last:
                        return
                    await self._wait_idle(me)
                    turn = clock() + SLICE_SECONDS
                    continue
                slots, offset = taken
                index = slots.unit.start + offset
                item = slots.unit.items[offset]
                lanes[me] = index
                mark = self._taken
                try:
                    awaitable = fn(item)
                    if checked and type(awaitable) is not CoroutineType and not isawaitable(awaitable):
                        lanes[me] = _NONE
                        self._failed(slots, offset, not_awaitable(awaitable, index, item))  # never collected
                        continue
                    slots.values[offset] = await (awaitable if self._task_timeout is None else self._timed(awaitable))
                    self._suspending = self._taken != mark  # another lane ran meanwhile
                    lanes[me] = _NONE
                    slots.finished(offset)
                except BaseException as exc:  # noqa: BLE001 - sorted out by _caught
                    lanes[me] = _NONE
                    self._caught(me, slots, offset, exc)
                if self._suspending:
                    turn = clock() + SLICE_SECONDS  # the coroutine gave the loop a turn itself
                elif clock() >= turn:
                    await self._yield_turn(me)
                    turn = clock() + SLICE_SECONDS
        finally:
            del lanes[me]

    async def _timed(self, awaitable: Any) -> Any:
        """``await awaitable``, cancelled past the task timeout: then a ``Raised`` ``TaskTimeoutError``."""
        seconds = self._task_timeout
        assert seconds is not None
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                return Raised(task_timed_out(seconds))
            raise  # the coroutine's own

    def _caught(self, me: asyncio.Task[None], slots: _Slots, offset: int, exc: BaseException) -> None:
        """Item ``offset`` of ``slots``, awaited by the lane ``me``, raised ``exc``.

        A cancellation of ours (halted, closing) cuts the unit's results short; the
        item's own exception (its own ``CancelledError`` too) is its result, or the
        failure that stops the call; ``SystemExit`` or Ctrl-C in ``fn`` is never collected.

        Raises:
            asyncio.CancelledError: the run is closing.
        """
        if isinstance(exc, asyncio.CancelledError) and me.cancelling():
            slots.cut(offset, self._lanes, failed=False)
            slots.settle()
            self._uncancel(me)
        elif isinstance(exc, Exception | asyncio.CancelledError):
            unit = slots.unit
            self._failed(slots, offset, noted(exc, unit.start + offset, unit.items[offset]), collected=self._collect)
        else:
            self._failed(slots, offset, exc)

    async def _wait_idle(self, me: asyncio.Task[None]) -> None:
        """Wait for a unit to be queued.

        Raises:
            asyncio.CancelledError: the run is closing.
        """
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            self._uncancel(me)
        else:
            self._pending -= 1

    async def _yield_turn(self, me: asyncio.Task[None]) -> None:
        """Give the loop's other tasks a turn.

        Raises:
            asyncio.CancelledError: the run is closing.
        """
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._uncancel(me)

    def _uncancel(self, me: asyncio.Task[None]) -> None:
        """A cancellation of ours while halting: the lane goes on; closing: it ends.

        Raises:
            asyncio.CancelledError: the run is closing.
        """
        if self._closing:
            raise asyncio.CancelledError
        while me.cancelling():
            me.uncancel()

    def _failed(self, slots: _Slots, offset: int, error: BaseException, *, collected: bool = False) -> None:
        """Item ``offset`` raised ``error``: its result; unless collected, its unit's results end there."""
        slots.values[offset] = error
        if collected:
            slots.finished(offset)
            return
        slots.cut(offset, self._lanes, failed=True)
        slots.settle()
        self.halt(slots.unit.start + offset)
