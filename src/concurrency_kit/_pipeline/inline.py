"""A pipeline of cheap stages, run in the consumer's thread: no thread, no queue, no hop (``fusing.py`` decides).

    the pass's results, then:
    source ─ zip(·, count) ─ map(fn₁) ─ filter(fn₂) ─ zip(·, count) ─ chain(map(fn₃)) ─ zip(·, count) ─▶

A chain of the builtin iterators, as a chain of generator expressions would be. The
source's items, and the outputs of each stage that is not a ``map`` (a ``map`` makes
as many as it takes), are counted by an ``itertools.count`` (for the report), at the
cost of two steps in C. A failure is noted with its stage (the function its traceback ran last) and
its source item (the count of source items taken).

With ``return_exceptions``, a progress callback or a timeout, each item goes through the
stages one at a time instead (``StageCall``), so that each can be told or caught.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any

from .._backends.stage_calls import FILTER, MAP, Failed, outputs, stage_note
from .progress import Told
from .stages import Stage, StageState

__all__ = ["inline"]

#: Each stage's input, counted: ``zip(items, count)`` reads the item first, so a count
#: moves only for an item that came.
_FIRST = itemgetter(0)


def inline(  # noqa: PLR0913 - the run's pieces, by name
    stages: Sequence[Stage],
    states: Sequence[StageState],
    done: list[tuple[int, Any]],
    source: Iterator[Any],
    *,
    start: int,
    collect: bool,
    told: Told | None = None,
    deadline: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """The results: ``done`` (what the pass finished), then the rest of ``source`` through ``stages``.

    Args:
        stages: the pipeline's stages, all plain and cheap.
        states: each stage's state, for the report.
        done: the pass's results, with their source indices.
        source: the rest of the source (closed at the end, where it has ``close``).
        start: the source index of its next item.
        collect: a failure takes its item's place (``return_exceptions``).
        told: told after each item (progress), in this thread.
        deadline: called after each item: raises once the run's time is up.

    Raises:
        Exception: a stage's failure (without ``collect``), noted with its stage and source item.
    """
    for state in states:
        state.mode, state.workers, state.started = "inline", 1, time.monotonic()
        state.reason = "cheaper than a hop between threads: run in the consumer's thread, fused with its neighbours"
    counters: list[itertools.count[int] | None] = []
    try:
        for _, value in done:
            yield value.error if type(value) is Failed else value
        if collect or told is not None or deadline is not None:
            yield from _one_by_one(stages, states, source, start, collect=collect, told=told, deadline=deadline)
            return
        chained, counters = _chained(stages, source)
        yield from chained
    except Exception as exc:
        if counters:
            exc.add_note(_where(exc, stages, start + _counts(counters)[0] - 1))
        raise
    finally:
        counts = _counts(counters) if counters else []
        for number, state in enumerate(states):
            if counts:
                state.done += counts[number]
                state.items_out += counts[number + 1]
            state.ended = time.monotonic()
        close = getattr(source, "close", None)
        if close is not None:
            close()
        if told is not None:
            told.close()


def _chained(stages: Sequence[Stage], source: Iterator[Any]) -> tuple[Iterator[Any], list[itertools.count[int] | None]]:
    """The stages as a chain of builtin iterators (see the module's docstring), and the counts along it.

    ``counts[0]`` counts the source's items, ``counts[k + 1]`` stage ``k``'s outputs:
    ``None`` after a ``map``, whose outputs are as many as its inputs.
    """
    taken = itertools.count()
    counters: list[itertools.count[int] | None] = [taken]
    chained: Iterator[Any] = map(_FIRST, zip(source, taken, strict=False))
    for stage in stages:
        fn = stage.fn
        assert fn is not None
        if stage.shape == MAP:
            counters.append(None)
            chained = map(fn, chained)
            continue
        chained = filter(fn, chained) if stage.shape == FILTER else itertools.chain.from_iterable(map(fn, chained))
        counter = itertools.count()
        counters.append(counter)
        chained = map(_FIRST, zip(chained, counter, strict=False))
    return chained, counters


def _counts(counters: list[itertools.count[int] | None]) -> list[int]:
    """What ``_chained``'s counters counted: the source's items, then each stage's outputs."""
    counts: list[int] = []
    for counter in counters:
        counts.append(_counted(counter) if counter is not None else counts[-1])
    return counts


def _one_by_one(  # noqa: PLR0913 - the run's pieces, by name
    stages: Sequence[Stage],
    states: Sequence[StageState],
    source: Iterator[Any],
    start: int,
    *,
    collect: bool,
    told: Told | None,
    deadline: Callable[[], None] | None,
) -> Iterator[Any]:
    """The stages, an item at a time (a failure collected in its place when asked)."""
    calls = [stage.call() for stage in stages]
    for index, item in enumerate(source, start):
        items = [item]
        for call, state in zip(calls, states, strict=True):
            state.done += len(items)
            # a failure in its item's place, past the later stages (each hands it on as it is)
            items = [output for each in items for output in outputs(call, (index, each), collect=collect)]
            state.items_out += len(items)
        for value in items:
            yield value.error if type(value) is Failed else value
        if told is not None:
            told()
        if deadline is not None:
            deadline()


def _counted(counter: itertools.count[int]) -> int:
    """Where ``counter`` stands (the items counted), without moving it."""
    return int(repr(counter)[len("count(") : -1])


def _where(exc: BaseException, stages: Sequence[Stage], index: int) -> str:
    """The note of a failure in the chain: its stage (the last stage function its traceback ran), its source item."""
    codes = {_code(stage.fn): stage.name for stage in stages if stage.fn is not None}
    name = None
    trace = exc.__traceback__
    while trace is not None:
        name = codes.get(trace.tb_frame.f_code, name)
        trace = trace.tb_next
    return (
        stage_note(name, index) if name is not None else f"concurrency_kit: in the pipeline, from source item {index}"
    )


def _code(fn: Callable[..., Any]) -> object:
    """The code object ``fn`` runs (a method's function's), or ``fn`` itself for one without."""
    return getattr(getattr(fn, "__func__", fn), "__code__", fn)
