"""After a worker's death: the items it took down run again alone, to find the one at fault.

A worker that dies loses the unit it ran. The library's process workers note the item
they run: that item is at fault, and the rest of its unit is sent again. Where nobody
knows which item killed it (an executor's process pool, whose dead worker takes the
units beside it down too), with exceptions collected (or retries), the items of every
unit lost run again, each alone, one at a time, with nothing else of the call running:
only one that dies again is at fault, and gets
``WorkerCrashedError`` (with retries: once it has no attempts left, ``retrying.py``);
then the call goes on. Without, the first loss is raised, naming the items that were
running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, final

from .._backends.registry import Done, Lost, Unit

if TYPE_CHECKING:
    from .retrying import Retrying

__all__ = ["Alone"]


@final
class Alone:
    """The items to run alone, and the one running alone.

    Args:
        collect: a crash takes its item's place (``return_exceptions``).
        retrying: the call's retries, if it has any.
        index: the input index of the item at a position (for the errors).
    """

    def __init__(self, *, collect: bool, retrying: Retrying | None, index: Callable[[int], int]) -> None:
        self.collect, self.retrying, self.index = collect, retrying, index
        self.queue: list[Unit] = []  # to run alone: the last runs first
        self.running: Unit | None = None

    @property
    def busy(self) -> bool:
        """Whether items run alone now or are still to (nothing new of the call starts meanwhile)."""
        return bool(self.queue) or self.running is not None

    def add(self, units: list[Unit]) -> None:
        """Have ``units`` (of an item each) run alone, one at a time, the first item first."""
        self.queue.extend(units)
        self.queue.sort(key=lambda unit: -unit.start)

    def next(self) -> Unit | None:
        """The next unit to run alone, once none does (the engine checks that nothing else runs)."""
        if not self.queue or self.running is not None:
            return None
        self.running = self.queue.pop()
        return self.running

    def read(self, unit: Unit) -> None:
        """``unit`` was read (not sent again): if it ran alone, the next may go."""
        if unit is self.running:
            self.running = None

    def lost(
        self, unit: Unit, loss: Lost, beside: Callable[[], list[Unit]], send: Callable[[Unit], None]
    ) -> tuple[Unit, Done] | None:
        """``unit``'s worker died: what to keep now, if anything; its items may run alone.

        Where the worker noted which item it ran (``Lost.culprit``), that item alone is
        at fault, as if it had died alone: the others are ``send`` again.

        Raises:
            WorkerCrashedError: without ``collect`` or retries, naming the items that were
                running (``unit``'s, and those ``beside`` it where they died with it).
        """
        culprit = loss.culprit
        if culprit is not None and not unit.alone and unit.start <= culprit < unit.stop:
            offset = culprit - unit.start
            goes_on = self.collect or self.retrying is not None
            for part in (Unit(unit.start, unit.items[:offset]), Unit(culprit + 1, unit.items[offset + 1 :])):
                if part.items and goes_on:
                    send(part)
            unit = Unit(culprit, unit.items[offset : offset + 1], alone=True)
        if self.retrying is not None:
            suspects, settled = self.retrying.lost(unit, loss)
            self.add(suspects)
            return settled
        if not self.collect:
            lost = [unit, *beside()] if loss.together else [unit]  # an executor's pool breaks whole; ours does not
            raise loss.blame(sorted(self.index(i) for u in lost for i in range(u.start, u.stop)))
        if unit.alone:
            return unit, Done([loss.blame([self.index(unit.start)])])  # collected: in the item's place
        self.add([Unit(index, [item], alone=True) for index, item in enumerate(unit.items, unit.start)])
        return None
