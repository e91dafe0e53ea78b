"""Whether a function's item times follow a size its items carry, as a run measured them.

Many computing items cost what their size says: ``factorize(n)`` loops ``n`` times,
parsing a file costs its length. Where a call's items carry such a size (an int or a
float is its own; anything else with a ``len()`` has that) and the times its run
measured follow it, the next calls start their items dearest first (``_run/balancing.py``),
so that a long one does not start last while the other workers idle.

"Follow" is read unit by unit: a worker times each unit (chunk) it runs, and a unit's
size is the mean of its items'. Of the pairs of units of different sizes, the share in
which the larger one took longer per item (``concordance``: 1 where every larger one
did, about 0.5 where size says nothing) must reach ``SizeRule.follows``. It asks only
that a larger size means a longer time, in whatever proportion, and units of equal size
(most of them, where a few long items stand among many alike) neither count for it nor
against it. Where the sizes say nothing (all equal), nothing is learnt and the items
start in input order.

The same units tell how much one item's time varies (``spread``): the next calls size
their chunks for it (``sizing.chunks``), where the items start in input order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence, Sized
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal, final

import attrs

__all__ = ["BY_SIZE", "BySize", "SizeKey", "SizeRule", "by_size", "concordance", "size_key", "spread"]

#: How an item's size is read: an int's or a float's value, or ``len()``.
SizeKey = Literal["value", "len"]


@final
@attrs.frozen
class SizeRule:
    """When measured times count as following the items' size."""

    #: The least share of pairs of units of different sizes in which the larger took
    #: longer. Well above chance (a half): all of 6 pairs (4 units) agree by chance in 1
    #: order of 24; and a wrong order costs no more than input order does on average.
    follows: float = 0.85
    #: The fewest pairs of units of different sizes it is read from.
    least_pairs: int = 6
    #: The fewest units the spread of item times is read from.
    least_units: int = 4


#: The rule in force.
BY_SIZE = SizeRule()


@final
@attrs.frozen
class BySize:
    """How closely an earlier run found its items' times following their size.

    Attributes:
        key: how the size is read.
        concordance: of the pairs of units of different sizes, the share in which the
            larger took longer per item.
        pairs: how many such pairs.
    """

    key: SizeKey
    concordance: float
    pairs: int

    def follows(self, rule: SizeRule = BY_SIZE) -> bool:
        """Whether the times counted as following the size."""
        return self.concordance >= rule.follows

    def cost(self) -> Callable[[Any], Any]:
        """What an item costs, by its size (larger: dearer)."""
        return _identity if self.key == "value" else len

    def said(self) -> str:
        """For a plan's reason."""
        size = "value" if self.key == "value" else "len()"
        return (
            f"items start dearest first: their times followed their {size} "
            f"(the larger took longer in {self.concordance:.0%} of {self.pairs} pairs of units, an earlier call)"
        )


def _identity(item: Any) -> Any:
    return item


def size_key(items: Sequence[Any]) -> SizeKey | None:
    """How every item's size is read, if every item has one of the same kind (``None``: not all do)."""
    if not items:
        return None
    if all(isinstance(item, int | float) and not isinstance(item, bool) for item in items):
        return "value"
    if all(isinstance(item, Sized) for item in items):
        return "len"
    return None


def by_size(
    items: Sequence[Any], key: SizeKey, timed: Sequence[tuple[Sequence[int], float]], rule: SizeRule = BY_SIZE
) -> BySize | None:
    """How closely the times of ``timed`` units (their items' indices, and the seconds the unit took) follow the size.

    ``None`` where there are too few pairs of units of different sizes to tell.
    """
    read = _identity if key == "value" else len
    units = [
        (sum(map(read, map(items.__getitem__, indices))) / len(indices), seconds / len(indices))
        for indices, seconds in timed
        if indices
    ]
    share, pairs = concordance(units)
    if pairs < rule.least_pairs:
        return None
    return BySize(key, share, pairs)


def concordance(points: Sequence[tuple[float, float]]) -> tuple[float, int]:
    """Of the pairs of ``(size, time)`` points of different sizes: the share where the larger took longer; how many.

    A pair of equal times counts half (Goodman and Kruskal's gamma, as a share). Each
    point is compared with all those of smaller sizes at once, by bisecting their
    sorted times: ``n log n``, so that a run of thousands of units is read in a moment.
    """
    agree, pairs = 0.0, 0
    smaller: list[float] = []  # the times of the points of smaller sizes, sorted
    for _, group in groupby(sorted(points), key=itemgetter(0)):
        times = [time for _, time in group]
        for time in times:
            below, upto = bisect_left(smaller, time), bisect_right(smaller, time)
            agree += below + (upto - below) / 2
            pairs += len(smaller)
        for time in times:
            insort(smaller, time)
    return (agree / pairs if pairs else 0.0), pairs


def spread(timed: Sequence[tuple[Sequence[int], float]], rule: SizeRule = BY_SIZE) -> float | None:
    """How much one item's time varies, from units of several: the coefficient of variation per item.

    A unit of ``k`` items averages them: its per-item mean varies ``√k`` times less than
    one item's time does. So each unit's squared deviation from the overall per-item
    mean, times ``k``, estimates an item's variance. ``None`` with fewer than
    ``least_units`` units, or no time at all.
    """
    units = [(len(indices), seconds) for indices, seconds in timed if indices]
    if len(units) < rule.least_units:
        return None
    items, total = sum(k for k, _ in units), sum(seconds for _, seconds in units)
    if total <= 0:
        return None
    mean = total / items
    variance = sum(k * (seconds / k - mean) ** 2 for k, seconds in units) / len(units)
    return float(variance**0.5 / mean)
