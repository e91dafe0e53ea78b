"""What a call teaches the next calls of its function: the one place memory is written.

A call observes its function's items three ways, each a *lesson*:

- ``Measured``: the decision's steps timed the first items exactly (the calling
  thread's check, a worker, a probe whose items all finished);
- ``Finished``: the probe's figures were lower bounds when the plan was made (items
  were still running); the run, once those items are done, reports their final figures
  and, for waiting items in a pool, how the whole call went;
- ``LoopKept``: the cost model chose a loop on the remembered figures, a verdict the
  next calls of no more items can reuse without asking it again.

``learn`` turns a lesson into what ``._memory`` keeps, and nothing else writes
there. ``ProbeLeft`` is how the run reports a ``Finished`` lesson without knowing
about memory. The estimates the cost model takes from a measurement and a memory
(``estimated_item_seconds``, ``estimated_item_cpu``) are here too: what is kept
is what they read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, final

import attrs

from .._backends.outcomes import Outcomes
from .._core.costmodel import CostModel
from .._core.kinds import TaskKind
from .._run.handover import RunFacts
from .classify import READING, agrees, decisive
from .memory import SURE_AFTER, LoopVerdict, Memo, recall, remember
from .probe import PROBING, Measurement, ProbeRun
from .sizes import BySize
from .sizing import SIZING

__all__ = [
    "REMEMBERING",
    "Finished",
    "LoopKept",
    "Measured",
    "PoolRun",
    "ProbeLeft",
    "Remembering",
    "UnitsTimed",
    "changed",
    "estimated_item_cpu",
    "estimated_item_seconds",
    "learn",
]


@final
@attrs.frozen
class Remembering:
    """When a lesson is worth writing down."""

    #: A measured item time within this factor of the remembered one is not remembered
    #: anew (nothing that depends on it moves much; a tiny call saves the write).
    same_time: float = 1.25


#: The policy in force.
REMEMBERING = Remembering()


@final
@attrs.frozen
class Measured:
    """Exact figures of the first items, as the decision's steps timed them.

    Attributes:
        kind: the kind the call ran them as.
        measurement: their figures.
        mode: the mode chosen for the rest.
        earlier: what memory held as the decision began (its view of it).
        setting: the cost model's setting now (a loop verdict kept in another no longer holds).
    """

    kind: TaskKind
    measurement: Measurement
    mode: str
    earlier: Memo | None
    setting: tuple[object, ...] | None


@final
@attrs.frozen
class PoolRun:
    """How a call of waiting items went in a pool, for their own length (see ``_own_length``).

    Attributes:
        mode: the pool's mode, ``"thread"`` or ``"process"`` (another says nothing).
        workers: its workers.
        chunksize: its chunk size.
        count: the items run after the measuring began.
        seconds: the call's time from the measuring's start.
        cpu: the CPU seconds its items computed (the measured ones too).
        warm: whether a process pool was warm for them when the run began.
    """

    mode: str
    workers: int
    chunksize: int
    count: int
    seconds: float
    cpu: float
    warm: bool


@final
@attrs.frozen
class Finished:
    """The final figures of items the plan was made on while they ran (lower bounds then).

    Attributes:
        kind: the kind the call ran them as (re-read from these figures, see ``_final_kind``).
        measurement: their figures now that they are done.
        pool: for waiting items run in a pool, how the call went; else ``None``.
    """

    kind: TaskKind
    measurement: Measurement
    pool: PoolRun | None = None


@final
@attrs.frozen
class LoopKept:
    """The cost model's verdict for a loop on the remembered figures, kept for the next calls."""

    earlier: Memo
    verdict: LoopVerdict


@final
@attrs.frozen
class UnitsTimed:
    """What a run's timed units said: how closely they followed their items' size, and how much an item's time varies.

    ``None``: the units could not tell (too few; or the items have no size); what an
    earlier run found then stands.
    """

    by_size: BySize | None
    spread: float | None


#: What a call may teach.
Lesson = Measured | Finished | LoopKept | UnitsTimed


def learn(fn: Callable[..., Any], lesson: Lesson) -> Memo | None:
    """Remember what ``lesson`` says of ``fn`` for its next calls; return what is kept now.

    The one function that writes memory. A ``Measured`` lesson that changes nothing
    that matters (the kind, a kept verdict, the pool, the times within
    ``Remembering.same_time``) is not written: a tiny call would pay more for the write than
    for its decision.
    """
    if isinstance(lesson, LoopKept):
        memo: Memo | None = attrs.evolve(lesson.earlier, loop=lesson.verdict)
    elif isinstance(lesson, UnitsTimed):
        memo = _timed(recall(fn), lesson)
    elif isinstance(lesson, Measured):
        memo = _measured(lesson)
    else:
        memo = _finished(fn, lesson)
    if memo is not None:
        remember(fn, memo)
    return memo


def _measured(lesson: Measured) -> Memo | None:
    """The memo of exact figures, or ``None`` when it would change nothing that matters."""
    kind, memo = lesson.kind, lesson.earlier
    kept = None if memo is None or memo.loop is None or memo.loop.setting != lesson.setting else memo.loop
    fresh = _memo_of(kind, lesson.measurement, memo, kept)
    if memo is not None and memo.kind is kind and memo.item_alone is not None:
        fresh = attrs.evolve(fresh, item_alone=memo.item_alone)
    if kind is TaskKind.IO and _in_processes(lesson.mode, memo):
        fresh = attrs.evolve(fresh, in_processes=True)
    if memo is not None and memo.kind is kind and _within_spread(memo, fresh.item_seconds, lesson.measurement):
        fresh = attrs.evolve(fresh, item_seconds=memo.item_seconds)  # a sample the known spread allows
    if (
        memo is None
        or memo.kind is not kind
        or memo.loop is not kept
        or memo.in_processes != fresh.in_processes
        or memo.readings != fresh.readings
        or changed(memo.item_seconds, fresh.item_seconds)
        or changed(memo.item_cpu or 0.0, fresh.item_cpu or 0.0)
    ):
        return fresh
    return None


def _finished(fn: Callable[..., Any], lesson: Finished) -> Memo:
    """The memo of final figures: the kind re-read, and waiting items' own length where a pool ran them."""
    final, earlier = lesson.measurement, recall(fn)
    kind = _final_kind(lesson.kind, final)
    # The probe's reading counts here: the decision did not write it (its items were still running).
    memo = _memo_of(kind, final, earlier)
    if lesson.pool is None or lesson.kind is not TaskKind.IO:
        return memo
    return _own_length(memo, earlier, lesson.pool)


def _within_spread(memo: Memo, seconds: float, m: Measurement) -> bool:
    """Whether ``seconds``, the mean of ``m``'s few items, is as far from the remembered mean as their spread allows.

    Items whose times vary widely (``Memo.spread``, as a run measured it) give a mean
    of ``k`` of them that varies ``spread/√k`` times the mean: within
    ``Sizing.spread_margin`` such deviations, the sample says nothing new, and the
    remembered mean stands. Else one small item measured in a worker replaced the mean
    of a varied input, the next call's check found its items longer and measured them
    afresh, and so on, call after call.
    """
    if memo.spread is None:
        return False
    deviation = SIZING.spread_margin * memo.spread / math.sqrt(max(1, m.completed or m.items))
    return abs(seconds - memo.item_seconds) <= deviation * memo.item_seconds


def _timed(earlier: Memo | None, lesson: UnitsTimed) -> Memo | None:
    """The memo with what the timed units said, or ``None`` when it would change nothing (or there is none)."""
    if earlier is None:
        return None
    by_size = earlier.by_size if lesson.by_size is None else lesson.by_size
    spread = earlier.spread if lesson.spread is None else lesson.spread
    if by_size == earlier.by_size and spread == earlier.spread:
        return None
    return attrs.evolve(earlier, by_size=by_size, spread=spread)


def changed(remembered: float, seconds: float, factor: float = REMEMBERING.same_time) -> bool:
    """Whether ``seconds`` differs from the ``remembered`` item time by more than ``factor``."""
    return not remembered / factor <= seconds <= remembered * factor


def _memo_of(kind: TaskKind, m: Measurement, earlier: Memo | None, loop: LoopVerdict | None = None) -> Memo:
    """What to remember of exact figures ``m`` of items of ``kind``, where ``earlier`` was remembered.

    With the readings in a row that name ``kind`` (``_readings``), and what the units an
    earlier run timed said (``UnitsTimed``): that stands until a run times units again.
    """
    by_size, spread = (None, None) if earlier is None else (earlier.by_size, earlier.spread)
    return Memo(
        kind,
        estimated_item_seconds(kind, m),
        loop,
        estimated_item_cpu(kind, m),
        readings=_readings(kind, m, earlier),
        by_size=by_size,
        spread=spread,
    )


def _readings(kind: TaskKind, m: Measurement, earlier: Memo | None) -> int:
    """The readings in a row (``Memo.readings``) that name ``kind``, now that ``m`` was measured.

    ``m`` counts where it watched the GIL (the probe's GIL samples, or its two threads
    side by side), as ``SURE_AFTER`` readings where its figures were decisive; else the
    earlier readings of the same kind stand.
    """
    before = earlier.readings if earlier is not None and earlier.kind is kind else 0
    if m.gil_share is None and m.parallelism is None:
        return before
    if decisive(m.gil_share, m.parallelism):
        return SURE_AFTER
    return min(SURE_AFTER, before + 1)


def _final_kind(kind: TaskKind, final: Measurement) -> TaskKind:
    """The kind to remember of items decided to be ``kind`` while they ran, now that ``final`` has their figures.

    Computing items that the GIL monitor did not see holding the GIL, but that waited
    most of their time once done, are I/O-bound (they computed first, then waited): a
    call that misread them does not teach the next ones.
    """
    if kind is TaskKind.IO or not agrees(TaskKind.IO, final.cpu_share):
        return kind
    return TaskKind.IO if final.gil_share is None or final.gil_share < READING.get().gil_bound_share else kind


def _own_length(memo: Memo, earlier: Memo | None, pool: PoolRun) -> Memo:
    """``memo`` of waiting items that ran in a pool, with their own length.

    The call took ``pool.seconds`` from the probe's start, and its items computed
    ``pool.cpu``.

    In processes, an item's own length is the probe items' wall time, or, when the
    pool was warm, the call's time per round of chunks if longer (which counts every
    item, not only the first ones, and what it cost to send them): ``Memo.item_alone``.

    In threads, a probe item's wall time counts the turns it waited for the GIL while
    the other threads' items computed. While they take turns, the GIL runs their
    computing one after another, so no item computed for ``seconds - cpu``: an item's
    wait. An item's own length is that wait plus its share of the computing, and at
    least twice its computing (an I/O-bound item waits at least half its time: on two
    CPUs the cost model then picks processes only for a few items, two, or four to
    eight computing 40 % of their time or more). The threads' own CPU time (waking to
    ask for the GIL), and items that overlap their waits unevenly, can make this too
    short: so it is never less than what a call in processes measured, and a call that
    tries processes on it settles it.
    """
    alone = None if earlier is None or earlier.kind is not TaskKind.IO else earlier.item_alone
    pooled = _in_processes(pool.mode, earlier)
    count, cpu = pool.count, pool.cpu
    if pool.mode == "process":
        rounds = math.ceil(count / (pool.workers * pool.chunksize)) * pool.chunksize
        own = max(memo.item_seconds, pool.seconds / rounds if pool.warm else 0.0)
        return attrs.evolve(memo, item_seconds=own, item_alone=own, in_processes=pooled)
    if pool.mode != "thread" or not memo.item_cpu or count < 2:
        return attrs.evolve(memo, item_alone=alone, in_processes=pooled)
    own = max(2 * memo.item_cpu, pool.seconds - cpu + cpu / count, alone or 0.0)
    return attrs.evolve(memo, item_seconds=min(memo.item_seconds, own), item_alone=alone, in_processes=pooled)


def _in_processes(mode: str, earlier: Memo | None) -> bool:
    """``Memo.in_processes`` of I/O-bound items after a call that ran them in ``mode``.

    A pool's mode is the answer; a call run in the calling thread tells nothing of which
    pool wins, so the last pool's (``earlier``'s) stands.
    """
    if mode in ("thread", "process"):
        return mode == "process"
    return earlier is not None and earlier.kind is TaskKind.IO and earlier.in_processes


def estimated_item_seconds(kind: TaskKind, m: Measurement, memo: Memo | None = None) -> float:
    """How long one item takes run alone, from the probe's figures.

    Items that run in two threads under the GIL take turns, so their wall time is
    about twice their CPU time. When items were still running, the figures are lower
    bounds: an item that has run for L seconds is, on a scale-free prior, expected to
    take about 2·L in all. So the mean is scaled by 1 + (share of items still running):
    2 when none has finished, unless an earlier call measured items of this kind longer,
    and close to 1 when most have. I/O items are never taken shorter than a call in
    processes measured them (``Memo.item_alone``): the first items can be short
    ones.
    """
    seconds = m.item_wall if kind is TaskKind.IO else max(m.item_cpu, m.item_wall / PROBING.get().threads)
    if not m.exact and m.completed == 0:
        seconds = max(2 * seconds, memo.item_seconds if memo is not None and memo.kind is kind else 0.0)
    elif not m.exact:
        seconds *= 1 + (m.items - m.completed) / m.items
    alone = memo.item_alone if kind is TaskKind.IO and memo is not None and memo.kind is kind else None
    return seconds if alone is None else max(seconds, alone)


def estimated_item_cpu(kind: TaskKind, m: Measurement, memo: Memo | None = None) -> float | None:
    """Of an I/O-bound item's time, the seconds it computes (``None`` for other kinds).

    Threads take turns for the GIL while I/O items compute. Items still running have
    not computed all they will (an item that waits first may compute last): the figure
    is then at least what an earlier call measured.
    """
    if kind is not TaskKind.IO:
        return None
    if m.exact or memo is None or memo.kind is not kind or memo.item_cpu is None:
        return m.item_cpu
    return max(m.item_cpu, memo.item_cpu)


class ProbeLeft:
    """The probe's threads still running measured items, as the run takes them over (a ``Measuring``).

    When they are done, the run says so (``finished``): a plan made on lower bounds
    (items still running) learns their final figures then. ``model`` is the cost model the
    decision weighed: whether the run's process pool was warm is read against its cold start.
    """

    def __init__(
        self, fn: Callable[[Any], Any], run: ProbeRun, kind: TaskKind, outcomes: Outcomes, model: CostModel
    ) -> None:
        self._fn, self._run, self._kind, self._outcomes, self._model = fn, run, kind, outcomes, model

    @property
    def threads(self) -> tuple[Future[None], ...]:
        """The probe threads' futures."""
        return self._run.threads

    @property
    def computing(self) -> bool:
        """Whether the items compute holding the GIL."""
        return self._kind is TaskKind.CPU

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the probe's threads (see ``ProbeRun.join``)."""
        return self._run.join(timeout)

    def finished(self, facts: RunFacts | None) -> None:
        """The measured items are done: learn their final figures, where the plan had lower bounds only."""
        run = self._run
        if run.measurement.exact or self._outcomes.failed:
            return
        final = run.final()
        pool = None
        if facts is not None and self._kind is TaskKind.IO:
            sizing, age = facts.sizing, facts.pool_age
            pool = PoolRun(
                mode=sizing.mode,
                workers=sizing.workers,
                chunksize=sizing.chunksize,
                count=facts.total - run.first,
                seconds=facts.ended - run.started,
                cpu=facts.cpu + final.item_cpu * final.completed,
                warm=age is not None and age >= self._model.cold_start,
            )
        learn(self._fn, Finished(self._kind, final, pool))
