"""One worker budget for a pipeline's computing stages: the CPUs, split by measured work, moved as it drifts.

Each stage that computes (in processes, or in threads whose C code releases the GIL) was
planned as if it ran alone: with as many workers as there are CPUs. Run side by side,
they would each take them all. So the budget gives each a share of the CPUs::

    work of a stage   = its worker-seconds per item × its items per source item
                        (worker-seconds: its share × the seconds it was busy, over the items it took)
    shares            = the CPUs in proportion to the work, each rounded up (at least
                        one, at most the stage's pool): ``allocate``

and a stage keeps only its share of its workers busy (``_run/sharing.py``). Every
``INTERVAL`` seconds the work is measured again (smoothed), and the shares move only
where the pipeline's predicted rate (the slowest stage's share over its work) gains
``GAIN`` or more: a near tie never flips back and forth.

A stage that waits (I/O threads, coroutines) is not in the budget: its threads cost no CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import final

import attrs

from .._core.share import Share

__all__ = ["GAIN", "INTERVAL", "Balancer", "allocate", "rate"]

#: Seconds between two looks at the stages' work: long enough to count items of tens of
#: milliseconds, short enough to follow a drift within a second.
INTERVAL = 0.5
#: How much faster (predicted) a new split must make the pipeline before the shares move.
GAIN = 1.1
#: How much of a new measure of a stage's work goes into its estimate (the rest: the old).
SMOOTHING = 0.5


def allocate(work: Sequence[float], planned: Sequence[int], cpus: int) -> list[int]:
    """Shares of ``cpus`` for stages of ``work`` per source item: in proportion to it, each rounded up.

    A stage never gets more than it was ``planned`` with (its pool's size): what it
    cannot take goes to the others, in proportion. A share is a cap, not a reservation:
    rounded up, a stage that needs a tenth of a CPU keeps one worker, and the CPU it
    leaves idle serves the others.
    """
    shares: list[float] = [0.0] * len(work)
    left, open_ = float(cpus), set(range(len(work)))
    while open_:
        total = sum(max(work[number], 1e-12) for number in open_)
        capped = {number for number in open_ if left * max(work[number], 1e-12) / total >= planned[number]}
        if not capped:
            for number in open_:
                shares[number] = left * max(work[number], 1e-12) / total
            break
        for number in capped:
            shares[number] = planned[number]
            left -= planned[number]
        open_ -= capped
    return [max(1, min(planned[number], math.ceil(share - 1e-9))) for number, share in enumerate(shares)]


def rate(shares: Sequence[int], work: Sequence[float]) -> float:
    """The pipeline's predicted rate under ``shares``: its slowest stage's share over its work."""
    return min(share / max(each, 1e-12) for share, each in zip(shares, work, strict=True))


@attrs.define
class _Member:
    """A computing stage in the budget."""

    place: int
    share: Share
    planned: int
    work: float | None = None  # worker-seconds per source item, smoothed
    seen: tuple[float, int] = (0.0, 0)  # (busy seconds, items in) at the last look
    moves: list[int] = attrs.field(factory=list[int])  # each share it was given, in order


@final
class Balancer:
    """The budget of one run (see the module's docstring)."""

    def __init__(self, cpus: int) -> None:
        self.cpus = cpus
        self.members: list[_Member] = []
        self.last = 0.0

    def add(self, place: int, share: Share, planned: int) -> None:
        """Running stage ``place`` computes, planned with ``planned`` workers (from its driver's thread)."""
        self.members = [*self.members, _Member(place, share, planned)]

    def moves(self, place: int) -> list[int]:
        """The shares stage ``place`` was given, in order (none: it was not in the budget)."""
        for member in self.members:
            if member.place == place:
                return member.moves
        return []

    def due(self, now: float) -> bool:
        """Whether it is time to look again (two stages or more compute, ``INTERVAL`` passed)."""
        return len(self.members) > 1 and now - self.last >= INTERVAL

    def look(self, now: float, busy: Sequence[float], items: Sequence[int], source: int) -> None:
        """Measure the members' work from each running stage's ``busy`` seconds and ``items`` in; move the shares.

        ``source``: the items taken from the source so far.
        """
        self.last = now
        members = self.members
        if source == 0:
            return
        for member in members:
            _measure(member, busy[member.place], items[member.place], source)
        if any(member.work is None for member in members):
            return
        work = [member.work or 0.0 for member in members]
        current = [member.share.workers or member.planned for member in members]
        shares = allocate(work, [member.planned for member in members], self.cpus)
        first = not any(member.moves for member in members)
        if first or (shares != current and rate(shares, work) >= GAIN * rate(current, work)):
            for member, share in zip(members, shares, strict=True):
                member.share.workers = share
                member.moves.append(share)


def _measure(member: _Member, busy: float, items: int, source: int) -> None:
    """A new measure of ``member``'s work per source item, smoothed into its estimate."""
    was_busy, was_items = member.seen
    member.seen = (busy, items)
    taken = items - was_items
    if taken <= 0 or busy <= was_busy:
        return
    workers = member.share.workers or member.planned
    per_item = workers * (busy - was_busy) / taken
    measured = per_item * items / source  # a stage after a flat_map takes more than one item per source item
    member.work = measured if member.work is None else SMOOTHING * measured + (1 - SMOOTHING) * member.work
