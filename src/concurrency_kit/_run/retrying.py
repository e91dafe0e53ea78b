"""Retries in the run engine: a failed item runs again, without holding a worker while it waits.

With ``retries=`` the call's items run through ``Retried`` (``_backends/worker.py``): a
failure that ``retry_on`` counts comes back as a ``Raised`` result, so every backend runs
the item as any other and a failure that is not retried stops the call as before. The
engine hands each unit it reads to ``Retrying.settle`` before it keeps it::

    settle(unit, done)   each Raised among its results:
                           attempts left → a unit of that item alone, due after its wait
                                           (its place in ``done`` stays open)
                           none left     → the exception in its place (collected), or
                                           ``done`` cut there: it fails the call
                         the unit is kept once none of its places is open
    due(now)             the retries whose wait is over: the engine sends them before
                         new items; one after a worker's death runs alone
    lost(unit, loss)     a worker died: each item it took down counts an attempt; those
                         with attempts left run again alone, one at a time (the engine's
                         suspects); one that dies alone with none left fails with
                         ``WorkerCrashedError``

Results keep input order, each item has one outcome, and progress counts an item
once: the engine yields a unit only once it is settled. The final failure is the
item's last exception, with a note of its attempts and what each earlier one raised.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, final

from .._backends.item_calls import Raised, retries_it
from .._backends.registry import Done, Lost, Runner, Unit
from .._core.errors import TaskTimeoutError, WorkerInitError, task_timed_out
from .._core.options import PerItem
from .._core.retrying import RetryPolicy

__all__ = ["Retrying", "settling"]

#: The retries of a call without any: its items stopped past ``task_timeout`` are settled all the same.
NO_RETRY = RetryPolicy(0)
#: Items past ``task_timeout`` are looked for this often at least (a fraction of it, for short
#: timeouts): an item is stopped within a few tenths of a second of its deadline.
EXPIRY_CHECK_SECONDS = 0.2


def settling(per_item: PerItem | None, *, collect: bool, index: Callable[[int], int]) -> Retrying | None:
    """What settles a run's failed items (``None``: nothing to).

    With retries; a task timeout (items stopped fail); or an initializer whose
    ``WorkerInitError`` stops the call though exceptions are collected.
    """
    if per_item is None or (per_item.retry is None and per_item.task_timeout is None and not collect):
        return None  # only an initializer, whose error a call that collects nothing raises as any
    policy = per_item.retry or NO_RETRY
    return Retrying(policy, collect=collect, index=index, task_timeout=per_item.task_timeout)


#: Where a retry's outcome goes: the unit, its results, and the item's offset in them.
_Place = tuple[Unit, Done, int]


@final
class Retrying:
    """The retries of one run: attempts counted by position, retries waiting, units with places open.

    Args:
        policy: the call's retries.
        collect: a final failure takes its item's place (``return_exceptions``);
            else it fails the call.
        index: the input index of the item at a position (for the notes).
        task_timeout: the seconds an item may run (``expired``).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        collect: bool,
        index: Callable[[int], int],
        task_timeout: float | None = None,
    ) -> None:
        self.policy, self.collect, self.index, self.task_timeout = policy, collect, index, task_timeout
        self.failures: dict[int, list[BaseException]] = {}  # by position: what its attempts raised so far
        self.waiting: list[tuple[float, int, Unit]] = []  # a heap: when each retry is due, and its unit
        self.place: dict[Unit, _Place] = {}  # a retry's unit → the place its outcome fills
        self.open: dict[Unit, int] = {}  # a unit → how many of its places wait for a retry
        self._order = itertools.count()  # ties in the heap: first scheduled, first sent

    def settle(self, unit: Unit, done: Done) -> tuple[Unit, Done] | None:
        """What to keep of a finished unit: it, or the unit a retry's outcome completes; ``None``: places still open."""
        place = self.place.pop(unit, None)
        if place is None:
            opened = self._resolve(unit, done)
            if not opened:
                return unit, done
            self.open[unit] = opened
            return None
        owner, owner_done, offset = place
        values = done.values
        if values and type(values[0]) is Raised and not done.failed:
            position = unit.start
            if self._again(position, values[0].exc, unit.items[0], place, alone=unit.alone):
                return None  # the place stays open
            _fill(owner_done, offset, self._final(position, values[0].exc), failed=not self.collect)
        elif values:  # a result, or a failure that stops the call (an initializer's is never collected)
            _fill(owner_done, offset, values[0], failed=done.failed or type(values[0]) is WorkerInitError)
        else:  # stopped before it started: the call ends before this item
            _fill(owner_done, offset, None, failed=False, cut=True)
        return self._closed(owner, owner_done)

    def lost(self, unit: Unit, loss: Lost) -> tuple[list[Unit], tuple[Unit, Done] | None]:
        """A worker died running ``unit``: the items to run alone next, and what to keep now (if anything).

        Each of its items counts an attempt. Run beside others, nobody knows which one
        killed the worker, so each runs again alone. Alone, the death is its own: it runs
        again alone while it has attempts left (and ``retry_on`` counts a crash), else it
        fails with the ``WorkerCrashedError``.
        """
        place = self.place.pop(unit, None)
        crashed = [loss.blame([self.index(unit.start + offset)]) for offset in range(len(unit.items))]
        if unit.alone or place is not None:
            position, error = unit.start, crashed[0]
            if place is None:  # a suspect of an earlier loss: it becomes the place its retries fill
                place = (unit, Done([None]), 0)
                self.open[unit] = 1
            if self._again(position, error, unit.items[0], place, alone=True):
                return [], None
            owner, owner_done, offset = place
            _fill(owner_done, offset, self._final(position, error), failed=not self.collect)
            return [], self._closed(owner, owner_done)
        for offset, error in enumerate(crashed):
            self.failures.setdefault(unit.start + offset, []).append(error)
        suspects = [Unit(position, [item], alone=True) for position, item in enumerate(unit.items, unit.start)]
        return suspects, None

    def due(self, now: float, failed_at: int | None) -> list[Unit]:
        """The retries whose wait is over, first due first (none of an item after ``failed_at``: nobody reads it)."""
        units: list[Unit] = []
        waiting = self.waiting
        while waiting and waiting[0][0] <= now:
            unit = heapq.heappop(waiting)[2]
            if failed_at is None or unit.start <= failed_at:
                units.append(unit)
        return units

    def next_due(self) -> float | None:
        """When the next retry is due (``time.monotonic()``), if one waits."""
        return self.waiting[0][0] if self.waiting else None

    def until_next(self, now: float) -> float | None:
        """Seconds from ``now`` until a retry is due (0: due already), or items past the timeout are looked for."""
        due = max(0.0, self.waiting[0][0] - now) if self.waiting else None
        if self.task_timeout is None:
            return due
        check = min(EXPIRY_CHECK_SECONDS, self.task_timeout / 4)
        return check if due is None else min(due, check)

    def expired(
        self, runner: Runner, forget: Callable[[Future[Any]], Unit | None]
    ) -> tuple[list[tuple[Unit, Done]], list[Unit]]:
        """The items ``runner`` stopped past the task timeout, failed; and the rest of their units, to send again."""
        failed: list[tuple[Unit, Done]] = []
        again: list[Unit] = []
        seconds = self.task_timeout
        if seconds is None:
            return failed, again
        for future, unit, offset in runner.expire(seconds):
            if forget(future) is None:
                continue  # read already
            stopped = Unit(unit.start + offset, unit.items[offset : offset + 1])
            failed.append((stopped, Done([Raised(task_timed_out(seconds))])))
            before = Unit(unit.start, unit.items[:offset])
            after = Unit(unit.start + offset + 1, unit.items[offset + 1 :])
            again += [part for part in (before, after) if part.items]
        return failed, again

    def _resolve(self, unit: Unit, done: Done) -> int:
        """Settle each ``Raised`` of a unit's first run; return how many of its places wait for a retry."""
        values, opened = done.values, 0
        for offset, value in enumerate(values):
            if type(value) is WorkerInitError:  # never collected, never retried: the call stops
                del values[offset + 1 :]
                done.failed = True
                break
            if type(value) is not Raised:
                continue
            position = unit.start + offset
            if self._again(position, value.exc, unit.items[offset], (unit, done, offset), alone=False):
                opened += 1
                continue
            values[offset] = self._final(position, value.exc)
            if not self.collect:  # the results end here; the retries before it go on
                del values[offset + 1 :]
                done.failed = True
                break
        return opened

    def _counts(self, position: int, error: BaseException) -> bool:
        """Count a failed attempt of the item at ``position``: whether it may run again."""
        failures = self.failures.setdefault(position, [])
        failures.append(error)
        return len(failures) <= self.policy.retries and retries_it(self.policy.retry_on, error)

    def _again(self, position: int, error: BaseException, item: Any, place: _Place, *, alone: bool) -> bool:
        """Count a failed attempt; if it may run again, schedule it into ``place`` and return ``True``."""
        if not self._counts(position, error):
            return False
        self._schedule(position, item, place, alone=alone)
        return True

    def _schedule(self, position: int, item: Any, place: _Place, *, alone: bool) -> None:
        """A unit of the item alone, due once the wait for its next attempt is over."""
        retry = Unit(position, [item], alone=alone)
        self.place[retry] = place
        wait = self.policy.delay(len(self.failures[position]))
        heapq.heappush(self.waiting, (time.monotonic() + wait, next(self._order), retry))

    def _final(self, position: int, error: BaseException) -> BaseException:
        """The item's last exception, with a note of its attempts (where it had more than one)."""
        earlier = self.failures.pop(position, [])[:-1]
        if isinstance(error, TaskTimeoutError):
            error.index = self.index(position)
        if earlier:
            said = "; ".join(f"{type(exc).__name__}: {exc}" for exc in earlier)
            attempts = len(earlier) + 1
            error.add_note(f"concurrency_kit: item {self.index(position)} failed {attempts} attempts; before: {said}")
        return error

    def _closed(self, owner: Unit, owner_done: Done) -> tuple[Unit, Done] | None:
        """One of ``owner``'s places is filled: the unit to keep, once none is open."""
        left = self.open[owner] - 1
        if left:
            self.open[owner] = left
            return None
        del self.open[owner]
        return owner, owner_done


def _fill(done: Done, offset: int, value: Any, *, failed: bool, cut: bool = False) -> None:
    """Put a retry's outcome in its place; a failure (or a stop) cuts the results there."""
    values = done.values
    if offset >= len(values):
        return  # cut before it already
    if cut:
        del values[offset:]
        return
    values[offset] = value
    if failed:
        del values[offset + 1 :]
        done.failed = True
