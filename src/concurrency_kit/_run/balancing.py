"""Spreading a call's items so that the workers finish together: unit sizes, and the order they start in.

Guided scheduling: over an input of known length, a unit (a chunk) is at most the items
left over ``TAIL_SHARE`` times the workers, so that units shrink toward the end of the
input (a long item near the end does not share its unit, and its worker, with many
more). Every mode and entry point sizes its units so (``guided``).

The dearest first: a few long items, or many uneven ones, on a handful of workers finish late when a long
one starts last: its worker runs on alone while the others idle. Started longest first
(the LPT rule), the short items fill in around the long ones and the workers finish
together: four items of 2.1, 1.2, 1.5 and 1.9 s on two workers take 4.0 s in that
order, and 3.4 s longest first.

The cost of each item comes from a key (``cost=``, or the size the decision found the
item times follow): ``StartOrder`` holds the input index of each position of the run,
the engine runs the items in that order, names a failing item by its input index, and
hands the results back in input order. Where the costs are numbers, a unit carries a
given amount of work rather than a count of items: the first units, of the dearest
items, hold fewer of them. Only a list's run (``run_parallel``) starts out
of order: a stream yields its first results first, so it takes its items as they come.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, final

__all__ = ["TAIL_SHARE", "StartOrder", "guided", "longest_first"]

#: Guided scheduling: a unit is at most the items left over this many times the workers.
TAIL_SHARE = 2


def guided(chunksize: int, left: int | None, workers: int) -> int:
    """The next unit's size: at most ``chunksize``, and the ``left`` items over ``TAIL_SHARE`` times ``workers``.

    ``left``: the items not yet taken, where the input's length is known (else ``None``).
    """
    if left is None:
        return chunksize
    return max(1, min(chunksize, -(-left // (TAIL_SHARE * workers))))


@final
class StartOrder:
    """Which input item each position of a run holds, from ``start`` on (those before it ran in input order).

    Args:
        start: the first position run out of order (the items measured before it ran first).
        indices: the input index of each position from ``start`` on.
        weights: each position's cost over the mean cost, where the costs are numbers
            (``None``: they only order): units then carry work, not a count (``fit``).
    """

    __slots__ = ("indices", "start", "weights")

    def __init__(self, start: int, indices: Sequence[int], weights: Sequence[float] | None = None) -> None:
        self.start, self.indices, self.weights = start, indices, weights

    def fit(self, position: int, size: int) -> int:
        """How many items from ``position`` on make a unit of ``size`` items' worth of work (one at least).

        Started dearest first, a unit of ``size`` items would hold the longest of them
        all together: a unit holds instead as many as cost, in all, ``size`` items of
        mean cost (as many as ``size`` where the costs only order).
        """
        weights = self.weights
        if weights is None or position < self.start:
            return size
        at = position - self.start
        taken, total = 0, 0.0
        for weight in weights[at : at + size]:
            total += weight
            if taken and total > size:
                break
            taken += 1
        return max(1, taken)

    def index(self, position: int) -> int:
        """The input index of the item at ``position``."""
        return position if position < self.start else self.indices[position - self.start]

    def items(self, items: Sequence[Any]) -> Iterator[Any]:
        """The items from ``start`` on, in this order."""
        return (items[i] for i in self.indices)

    def restored(self, values: list[Any]) -> list[Any]:
        """``values``, one a position, put back in input order."""
        start = self.start
        restored = values[:start] + [None] * (len(values) - start)
        for position, index in enumerate(self.indices, start):
            restored[index] = values[position]
        return restored


def longest_first(items: Sequence[Any], start: int, cost: Callable[[Any], Any]) -> StartOrder:
    """The items from ``start`` on, the dearest by ``cost`` first; items of equal cost in input order.

    Raises:
        Exception: what ``cost`` raised for an item.
    """
    costs = [cost(items[i]) for i in range(start, len(items))]
    ranked = sorted(range(len(costs)), key=costs.__getitem__, reverse=True)  # stable: ties keep input order
    return StartOrder(start, [start + k for k in ranked], _weights([costs[k] for k in ranked]))


def _weights(costs: list[Any]) -> list[float] | None:
    """Each cost over their mean, where they are non-negative numbers with a positive mean (else ``None``)."""
    if not costs or not all(isinstance(c, int | float) and not isinstance(c, bool) and c >= 0 for c in costs):
        return None
    mean = sum(costs) / len(costs)
    return None if mean <= 0 else [c / mean for c in costs]
