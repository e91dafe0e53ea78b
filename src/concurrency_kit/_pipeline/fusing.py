"""Which stages run together: fused stages share a worker, with no queue (and no thread hop) between them.

A hop between two stages costs about a thread's wake-up (the cost model's
``thread_start``): a stage whose item costs less than that is cheaper to run inside its
neighbour's worker than behind a queue of its own. Two stages that compute, next to
each other, are cheaper in one worker too: an item then does not travel back through
the parent between them. So, before a run starts::

    the first source items, one at a time through the stages, in the consumer's thread
      (timed; the first goes on past the first dear stage, and past later ones while it
      has taken a few milliseconds; a later item stops after the first stage that is dear
      on it, and the pass ends there; no pass where a stage's memory says it is dear)
    every stage cheap on ``CONFIRM_ITEMS`` items: the whole pipeline runs in the
      consumer's thread, a chain of iterators (``inline.py``)
    else groups (``grouped``): a cheap stage joins the group of the stage after it
      (the last ones, the stage before); two stages that compute (as the pass timed
      them, or as their memory says) join one another; a group of more than one runs as one stage (``Fused``)

Only plain stages fuse: a sync function, ``mode="auto"`` and no per-stage option; a
``batch`` never does, and the pass stops before the first stage that is not plain (a
pipeline with one does not run in the consumer's thread). What the pass ran is not run
again: its outputs go on from where the pass left each item.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from .._backends.stage_calls import BATCH, outputs
from .._core.costmodel import model_in_force
from .._core.kinds import TaskKind, is_coroutine_function
from .._decide.classify import declaration
from .._decide.memory import recall
from .stages import Stage, StageState

__all__ = ["Pass", "first_pass", "grouped", "to_boundaries"]

#: How many source items the pass runs through a pipeline that stays cheap: enough that
#: one quick first call does not decide, few enough to cost nothing.
CONFIRM_ITEMS = 32
#: How long the first item may go on through the stages after dear ones, to time them
#: all: a few milliseconds, a small part of a run whose stages are that dear (the
#: workers wait meanwhile). Past it, a second dear stage ends its pass: the stages after
#: it are known by their memory only.
WHOLE_SECONDS = 0.005
#: A stage this many hops dear on an item ends the pass there: clearly not cheap, however
#: noisy one reading (below it, the pass goes on and judges on the median).
CLEARLY_DEAR = 10
#: A stage whose calls on the pass kept its thread's CPU busy this share of their time
#: computes: a wait shows a share near 0, bytecode or C code near 1 (as a lone item
#: shows the probe), and one timed call can lose part of its CPU to another process on
#: a busy machine; half-way leaves the widest margin on both sides.
COMPUTING_SHARE = 0.5


@attrs.define
class Pass:
    """What the pass found and ran.

    Attributes:
        seconds: each stage's seconds per item on the pass (the median), where it ran (``None``: not run).
        cpu: each stage's CPU share on the pass (its thread's CPU seconds over its wall
            seconds), where it ran.
        cheap: every stage was cheaper than a hop on every item of the pass.
        depths: the items the pass left, by the stage they go to next (``len(stages)``: done).
        ins: the items each stage took on the pass.
        outs: the items each stage made on the pass.
    """

    seconds: list[float | None]
    cpu: list[float | None]
    cheap: bool
    depths: list[list[tuple[int, Any]]]
    ins: list[int]
    outs: list[int]

    @classmethod
    def empty(cls, stages: int) -> Pass:
        """No pass: nothing timed, nothing left."""
        return cls(
            [None] * stages,
            [None] * stages,
            cheap=False,
            depths=[[] for _ in range(stages + 1)],
            ins=[0] * stages,
            outs=[0] * stages,
        )

    def count(self, states: Sequence[StageState]) -> None:
        """Count what the pass ran in each stage's state (for the report)."""
        for number, state in enumerate(states):
            state.done += self.ins[number]
            state.items_out += self.outs[number]


def plain(stage: Stage) -> bool:
    """Whether ``stage`` may fuse: a sync function, auto, no per-stage option."""
    options = stage.options
    if stage.shape == BATCH or stage.fn is None or options is None or is_coroutine_function(stage.fn):
        return False
    return (
        options.mode == "auto"
        and options.workers is None
        and options.chunksize is None
        and options.classifier is None
        and options.executor is None
        and options.per_item is None
        and options.max_tasks_per_worker is None
    )


def hop_seconds() -> float:
    """What a hop between two stages costs: about a thread's wake-up."""
    return model_in_force().thread_start


def dear(stage: Stage, hop: float) -> bool:
    """Whether an earlier call found ``stage``'s function dearer than a hop."""
    memo = None if stage.fn is None else recall(stage.fn)
    return memo is not None and memo.item_seconds >= hop


def first_pass(stages: Sequence[Stage], source: Iterator[Any], *, limit: int, collect: bool) -> tuple[Pass, int]:
    """Run the source's first items through the plain stages while they stay cheap (see the docstring).

    Args:
        stages: the pipeline's stages.
        source: the source's iterator: at most ``limit`` items are taken from it.
        limit: the most items to take (the run's bound on items in flight).
        collect: a failure takes its item's place (``return_exceptions``).

    Returns:
        What the pass found and left, and how many source items it took.

    Raises:
        Exception: a stage's failure on one of these items (without ``collect``), noted
            with its stage and source item; or the source's own.
    """
    hop = hop_seconds()
    found = Pass.empty(len(stages))
    if not stages or not plain(stages[0]) or any(dear(stage, hop) for stage in stages):
        return found, 0
    taken, times, went_on = 0, [list[float]() for _ in stages], False
    collecting = gc.isenabled()
    gc.disable()  # as timeit does: a collection inside a timed call of a microsecond would read as a dear stage
    try:
        for index, item in enumerate(itertools.islice(source, min(limit, CONFIRM_ITEMS))):
            taken += 1
            went_on = _through(stages, (index, item), found, times, hop, collect=collect, whole=index == 0)
            if not went_on:
                break
    finally:
        if collecting:
            gc.enable()
    found.seconds = [statistics.median(each) if each else None for each in times]
    found.cheap = went_on and all(each is not None and each < hop for each in found.seconds)
    return found, taken


def _through(  # noqa: PLR0913 - the pass's state, by name
    stages: Sequence[Stage],
    tagged: tuple[int, Any],
    found: Pass,
    times: list[list[float]],
    hop: float,
    *,
    collect: bool,
    whole: bool,
) -> bool:
    """One item through the stages in turn, each stage's seconds added to ``times``: whether the pass goes on.

    A stage that is clearly dear on it (``CLEARLY_DEAR`` hops) ends the pass: the first
    item (``whole``) goes on past the first such stage, and past later ones while it has
    taken less than ``WHOLE_SECONDS``, so that each stage is timed once; another stops
    there. A stage a little over a hop on one item is judged on the median of the pass
    (one call can be held up by another process).
    """
    items, first, began_item = [tagged], True, time.perf_counter()
    for number, stage in enumerate(stages):
        if not plain(stage):  # not run here (a batch gathers across items): its input is what the pass leaves
            found.depths[number] += items
            return False
        call = stage.call()
        began, began_cpu = time.perf_counter(), time.thread_time()
        made = [output for each in items for output in _outputs(call, each, collect=collect)]
        wall = time.perf_counter() - began
        took = wall / max(1, len(items))
        if wall > 0:
            found.cpu[number] = (time.thread_time() - began_cpu) / wall
        found.ins[number] += len(items)
        found.outs[number] += len(made)
        times[number].append(took)
        items = made
        if took >= CLEARLY_DEAR * hop:
            first_dear, first = first, False
            if not whole or (not first_dear and time.perf_counter() - began_item >= WHOLE_SECONDS):
                found.depths[number + 1] += items
                return False
    found.depths[len(stages)] += items
    return first


def grouped(stages: Sequence[Stage], found: Pass) -> list[Stage]:
    """The stages, those that run as one fused (``Stage.fused``; see the module's docstring)."""
    hop = hop_seconds()
    cheap = [_cheap(stage, found.seconds[number], hop) for number, stage in enumerate(stages)]
    kinds = [_kind(stage, found.cpu[number]) for number, stage in enumerate(stages)]
    computing = [kind in {TaskKind.CPU, TaskKind.GIL_FREE} for kind in kinds]
    groups: list[list[Stage]] = []
    pending: list[Stage] = []  # cheap stages waiting for the next dear one
    for number, stage in enumerate(stages):
        if cheap[number] and plain(stage):
            pending.append(stage)
            continue
        joins = groups and plain(stage) and plain(groups[-1][-1]) and computing[number] and computing[number - 1]
        if joins and not pending:
            groups[-1].append(stage)
        elif plain(stage):
            groups.append([*pending, stage])
        else:  # cheap stages before one that does not fuse: after the one before them, else on their own
            if pending and groups and plain(groups[-1][-1]):
                groups[-1].extend(pending)
            elif pending:
                groups.append(pending)
            groups.append([stage])
        pending = []
    if pending:
        if groups and plain(groups[-1][-1]):
            groups[-1].extend(pending)
        else:
            groups.append(pending)
    kind_of = {stage.name: kind for stage, kind in zip(stages, kinds, strict=True)}
    return [Stage.fused(tuple(group), _group_kind([kind_of[stage.name] for stage in group])) for group in groups]


def _cheap(stage: Stage, seconds: float | None, hop: float) -> bool:
    """Whether ``stage`` costs less than a hop: as the pass timed it, else as its memory says."""
    if seconds is not None:
        return seconds < hop
    memo = None if stage.fn is None else recall(stage.fn)
    return memo is not None and memo.item_seconds < hop


def _kind(stage: Stage, share: float | None) -> TaskKind | None:
    """What ``stage`` is known as: as declared, else its memory's kind, else computing where the pass found it so.

    ``None``: unknown.
    """
    declared = None if stage.fn is None else declaration(stage.fn)
    if declared is not None:
        return declared
    memo = None if stage.fn is None else recall(stage.fn)
    if memo is not None:
        return memo.kind
    if share is not None and share >= COMPUTING_SHARE:
        return TaskKind.CPU  # one thread cannot tell bytecode from C code that lets go of the GIL
    return None


def _group_kind(kinds: list[TaskKind | None]) -> TaskKind | None:
    """A fused group's kind: its computing members' (bytecode before C code), where one computes."""
    for kind in (TaskKind.CPU, TaskKind.GIL_FREE):
        if kind in kinds:
            return kind
    return None


def to_boundaries(stages: Sequence[Stage], found: Pass, firsts: list[int], *, collect: bool) -> None:
    """Run the pass's items left inside a group of fused stages on through the group, here (a few at most)."""
    for depth in range(len(stages)):
        if depth in firsts or not found.depths[depth]:
            continue
        items, found.depths[depth] = found.depths[depth], []
        end = next((first for first in firsts if first > depth), len(stages))
        for number in range(depth, end):
            call = stages[number].call()
            found.ins[number] += len(items)
            items = [(index, output) for tagged in items for index, output in _outputs(call, tagged, collect=collect)]
            found.outs[number] += len(items)
        found.depths[end] += items


def _outputs(call: Callable[[Any], Any], tagged: tuple[int, Any], *, collect: bool) -> list[tuple[int, Any]]:
    """A stage's outputs for one ``(index, item)``, tagged with the index (its failure in its place, with ``collect``).

    Raises:
        Exception: its failure, without ``collect``.
    """
    return [(tagged[0], output) for output in outputs(call, tagged, collect=collect)]
