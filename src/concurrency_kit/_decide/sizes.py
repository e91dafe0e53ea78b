"""Whether a function's item times follow a size its items carry, as a run measured them.

Many computing items cost what their size says: ``factorize(n)`` loops ``n`` times,
parsing a file costs its length. Where a call's items carry such a size (an int or a
float is its own; anything else with a ``len()`` has that) and the times its run
measured follow it, the next calls start their items dearest first (``_run/balancing.py``),
so that a long one does not start last while the other workers idle.

"Follow" is a rank correlation (Spearman's) between the sizes and the measured times,
unit by unit: a worker times each unit (chunk) it runs, and a unit's size is the mean
of its items'. It asks only that a larger size means a longer time, in whatever
proportion; a correlation of ``FOLLOWS`` or more over ``least_units`` units or more
counts. Where the sizes say nothing (all equal, or a mix that does not order), nothing
is learnt and the items start in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from typing import Any, Literal, final

import attrs

__all__ = ["BY_SIZE", "BySize", "SizeRule", "by_size", "rank_correlation", "size_key"]

#: How an item's size is read: an int's or a float's value, or ``len()``.
SizeKey = Literal["value", "len"]


@final
@attrs.frozen
class SizeRule:
    """When measured times count as following the items' size."""

    #: The least rank correlation between sizes and times that counts. Well above
    #: chance: over 8 units, a correlation of 0.7 or more arises by chance in under 3% of
    #: orders; and a wrong order costs no more than input order does on average.
    follows: float = 0.7
    #: The fewest timed units (of distinct sizes) a correlation is read from.
    least_units: int = 4


#: The rule in force.
BY_SIZE = SizeRule()


@final
@attrs.frozen
class BySize:
    """An earlier run found its items' times following their size.

    Attributes:
        key: how the size is read.
        correlation: the rank correlation it measured.
        units: over how many units.
    """

    key: SizeKey
    correlation: float
    units: int

    def follows(self, rule: SizeRule = BY_SIZE) -> bool:
        """Whether the times counted as following the size."""
        return self.correlation >= rule.follows

    def cost(self) -> Callable[[Any], Any]:
        """What an item costs, by its size (larger: dearer)."""
        return _identity if self.key == "value" else len

    def said(self) -> str:
        """For a plan's reason."""
        size = "value" if self.key == "value" else "len()"
        return (
            f"items start dearest first: their times followed their {size} "
            f"(rank correlation {self.correlation:.2f} over {self.units} timed units, an earlier call)"
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

    ``None`` where there are too few units of distinct sizes to tell.
    """
    read = _identity if key == "value" else len
    sizes: list[float] = []
    times: list[float] = []
    for indices, seconds in timed:
        if indices:
            sizes.append(sum(read(items[i]) for i in indices) / len(indices))
            times.append(seconds / len(indices))
    if len(set(sizes)) < rule.least_units:
        return None
    correlation = rank_correlation(sizes, times)
    return BySize(key, 0.0 if correlation is None else correlation, len(sizes))


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation of ``xs`` and ``ys`` (ties share their mean rank); ``None``: one is constant."""
    rx, ry = _ranks(xs), _ranks(ys)
    n = len(rx)
    mean = (n - 1) / 2
    cov = sum((a - mean) * (b - mean) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mean) ** 2 for a in rx)
    vy = sum((b - mean) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return float(cov / (vx * vy) ** 0.5)


def _ranks(values: Sequence[float]) -> list[float]:
    """The rank of each value (from 0), ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks
