"""What an auto decision hands a list's run for balancing its workers: an order, and what to learn.

    ordering(…)   an earlier run found the item times following their size (``Memo.by_size``):
                  the run starts the items dearest first, by that size (``_run/balancing.py``)
    listening(…)  a run whose workers time its units: once it is done, whether their times
                  followed the size is learnt for the next calls (``sizes.py``)

Only where it can pay: a pool of two workers or more, over two items or more left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._core.options import CostFn
from .._run.handover import OnTimed, TimedUnits
from .learning import SizeFollowed, learn
from .memory import Memo
from .plan import Choice
from .sizes import by_size, size_key

__all__ = ["NO_BALANCING", "Balancing", "balancing"]


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
    key = size_key(items)
    if key is None:
        return NO_BALANCING
    timing = _listener(fn, items, key) if choice.mode == "process" else None
    known = None if memo is None else memo.by_size
    if known is None or known.key != key or not known.follows():
        return Balancing(None, timing, "")
    return Balancing(known.cost(), timing, known.said())


def _listener(fn: Callable[[Any], Any], items: Sequence[Any], key: Any) -> OnTimed:
    """What learns, from a run's timed units, whether their times followed the size read by ``key``."""

    def heard(timed: TimedUnits) -> None:
        found = by_size(items, key, timed)
        if found is not None:  # else too few units to tell: what an earlier run found stands
            learn(fn, SizeFollowed(found))

    return heard
