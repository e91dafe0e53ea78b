"""What an auto decision hands a list's run for balancing its workers: an order, and what to learn.

    ordering(…)   an earlier run found the item times following their size (``Memo.by_size``):
                  the run starts the items dearest first, by that size (``_run/balancing.py``)
    listening(…)  a run whose workers time its units (processes, a cluster's workers): once it
                  is done, whether their times followed the size is learnt for the next
                  calls (``sizes.py``)

Only where it can pay: a pool of two workers or more, over two items or more left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._core.options import CostFn
from .._run.handover import OnTimed, TimedUnits
from .learning import UnitsTimed, learn
from .memory import Memo
from .plan import Choice
from .sizes import by_size, size_key, spread

__all__ = ["NO_BALANCING", "Balancing", "balancing", "dearest_first"]


class Balancing(NamedTuple):
    """The order a list's run starts its items in, and what learns from its timed units."""

    #: What an item costs (``None``: input order).
    cost: CostFn | None
    #: Told the run's timed units (``None``: nothing to learn).
    timing: OnTimed | None
    #: For the plan's reason (empty: input order).
    said: str


#: Input order, nothing to learn.
NO_BALANCING = Balancing(None, None, "")


def balancing(
    fn: Callable[[Any], Any], items: Sequence[Any], memo: Memo | None, choice: Choice, left: int
) -> Balancing:
    """How a list's run of ``choice`` balances ``left`` items of ``items``: see the module's docstring."""
    if choice.mode not in {"process", "thread", "executor"} or choice.workers < 2 or left < 2:
        return NO_BALANCING
    timing = _listener(fn, items) if choice.mode in {"process", "executor"} else None
    # Every item's size is checked (a pass over the input) only where an order would
    # apply: the sort that follows reads them all anyway.
    known = memo.by_size if memo is not None and dearest_first(memo) else None
    if known is None or size_key(items) != known.key:
        return Balancing(None, timing, "")
    return Balancing(known.cost(), timing, known.said())


def dearest_first(memo: Memo | None) -> bool:
    """Whether the items of a call would start dearest first, by what an earlier run found (neighbours alike)."""
    return memo is not None and memo.by_size is not None and memo.by_size.follows()


def _listener(fn: Callable[[Any], Any], items: Sequence[Any]) -> OnTimed:
    """What learns, from a run's timed units, whether their times followed the items' size, and their spread.

    How the size is read (``size_key``) is found once the run is done, not while the
    call is decided. The spread is learnt from units in input order only: started
    dearest first, neighbours are alike, and the units' spread would understate the items'.
    """

    def heard(timed: TimedUnits) -> None:
        key = size_key(items)
        found = None if key is None else by_size(items, key, timed)
        ordered = all(isinstance(indices, range) for indices, _ in timed)
        learn(fn, UnitsTimed(found, spread(timed) if ordered else None))

    return heard
