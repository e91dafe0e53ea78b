"""``python -m concurrency_kit explain MODULE:FUNCTION [ITEMS...]``: why auto chose what it chose.

The command imports the function, plans it with [`plan`][concurrency_kit.plan] on the
items given (or ``range(N)``), and prints the plan with the estimates the cost model
weighed: the plain loop and each pool it could pick for what was measured (the
candidates of ``_decide.choose.weigh``), the chosen one marked and why each other lost; then the
machine figures in force (``_core.costmodel``), each with where it came from. Planning runs
the first items to measure them; the command never runs the plan, so their results are
discarded and the other items never run.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .._backends.outcomes import EMPTY
from .._backends.pools import forkserver_started, process_pool_age
from .._core.config import get_config
from .._core.costmodel import CostModel, Figure, model_in_force, using_model
from .._core.cpu import gil_enabled, planning_cpus
from .._core.kinds import TaskKind
from .._decide.choose import CHOOSING, Candidate, alternatives

# The decision's own readings of a measurement, so that the estimates are the ones it weighed.
from .._decide.fitness import process_fitness
from .._decide.learning import estimated_item_cpu, estimated_item_seconds
from .._decide.memory import recall
from .._decide.plan import Mode, Plan, format_seconds
from .calls import ModeName, plan

__all__ = ["UsageError", "explain", "load_function", "parse_item"]

#: Why the cost model does not weigh a pool for items of a kind (what the pool would do).
_NOT_WEIGHED: dict[tuple[TaskKind, Mode], str] = {
    (TaskKind.CPU, "thread"): "items that hold the GIL take turns in threads, no faster than the loop",
    (TaskKind.GIL_FREE, "process"): "threads already compute side by side, without pickling or a start-up",
    (TaskKind.IO, "process"): (
        "only for items whose computing, which threads take in turns, outweighs their waits, "
        "with more than one CPU, a function that pickles and no --workers"
    ),
}
#: A pool's name in the text.
_POOLS: dict[Mode, str] = {"thread": "threads", "process": "processes"}
#: A machine figure's name in the text.
_FIGURES: dict[Figure, str] = {
    "thread_start": "a thread's start",
    "process_round_trip": "a chunk's round trip through a warm process pool",
    "cold_start": "a process pool's start, cold",
    "restart": "a process pool's start, its server running",
    "byte_cost": "a byte pickled and piped, both ways",
    "process_item": "an item's outcome pickled on its own",
}


class UsageError(ValueError):
    """The command was given what it cannot explain: a target that names no function, or arguments plan() rejects."""


def load_function(target: str) -> Callable[..., Any]:
    """Import ``MODULE:FUNCTION`` (``FUNCTION`` may be dotted: ``Class.method``) and return it.

    The current directory is importable, as under ``python -m``: it goes first on
    ``sys.path`` when it is not there.

    Args:
        target: ``"package.module:function"``.

    Returns:
        The callable named.

    Raises:
        UsageError: there is no colon, the module cannot be imported, an attribute is
            missing, or what it names is not callable.
    """
    module_name, colon, qualname = target.partition(":")
    if not colon or not module_name or not qualname:
        raise UsageError(f"{target!r} is not MODULE:FUNCTION (such as concurrency_kit.tasks:factorize)")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    where = module_name
    for name in qualname.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise UsageError(f"{where!r} has no attribute {name!r}") from None
        where = f"{where}:{name}" if where == module_name else f"{where}.{name}"
    if not callable(found):
        raise UsageError(f"{target!r} is a {type(found).__name__}, not a function")
    return found


def parse_item(text: str) -> object:
    """An item from the command line: a Python literal (``3``, ``-1.5``, ``'a'``, ``(1, 2)``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text  # not a literal: the plain string, as a shell user means it


def explain(  # noqa: PLR0913 - the command's options, by name
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    out: TextIO,
    *,
    name: str,
    mode: ModeName = "auto",
    workers: int | None = None,
) -> None:
    """Plan ``fn`` over ``items`` and write the plan, with the estimates auto weighed, to ``out``.

    Args:
        fn: the function.
        items: its items.
        out: where the text goes.
        name: how to call the function in the text (its ``MODULE:FUNCTION``).
        mode: as [`plan`][concurrency_kit.plan] takes it.
        workers: as [`plan`][concurrency_kit.plan] takes it.

    Raises:
        UsageError: [`plan`][concurrency_kit.plan] rejected the arguments (a
            ``TypeError`` or ``ValueError``, such as a coroutine function with a mode
            that would not await it), named in the message.
    """
    model = model_in_force()  # the estimates below are the decision's: on the same figures
    try:
        with using_model(model):
            chosen = plan(fn, items, mode, workers=workers)
    except (TypeError, ValueError) as exc:  # plan()'s checks of its arguments (fn's own errors are recorded)
        raise UsageError(f"{type(exc).__name__}: {exc}") from exc
    write = out.write
    asked = f"mode={mode!r}" + (f", workers={workers}" if workers else "")
    write(f"{name} over {len(items)} item(s) ({asked})\n")
    measurement = chosen.measurement
    if measurement is not None:
        write(
            f"planning ran the first {measurement.items} item(s) to measure them: fn really ran on them, and their "
            "results are discarded (this command never runs the plan)\n"
        )
    kind = "none (nothing declared it)" if chosen.kind is None else str(chosen.kind)
    write(
        f"\nplan\n  mode       {chosen.mode}\n  kind       {kind}\n  workers    {chosen.workers}\n"
        f"  chunksize  {chosen.chunksize}\n  reason     {chosen.reason}\n\n"
    )
    if chosen.mode == "async":
        write(
            "nothing was measured: a coroutine function's coroutines run on an event loop, so there are no "
            "alternatives to estimate\n"
        )
    elif measurement is None:
        why = "no items" if not items else f"mode={mode!r} was forced"
        write(f"nothing was measured ({why}), so there are no estimates: auto measures and weighs them\n")
    elif chosen.kind is not None:
        _write_estimates(fn, items, chosen, chosen.kind, out, workers=workers, model=model)
        _write_figures(model, out)
    out.flush()


def _write_estimates(  # noqa: PLR0913 - the plan and what it was made of, by name
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    chosen: Plan[Any],
    kind: TaskKind,
    out: TextIO,
    *,
    workers: int | None,
    model: CostModel,
) -> None:
    """The cost model's estimates for the items the measurement left, as it weighed them."""
    measured = chosen.measured  # where the measuring stopped, and its results
    if kind is TaskKind.CPU and not gil_enabled():
        kind = TaskKind.GIL_FREE  # as the decision does: without a GIL, threads compute side by side
    first = measured.results[0] if measured.results else EMPTY
    unpicklable, item_bytes = process_fitness(fn, items, measured.count, first)
    weigh = _Weigher(fn, chosen, kind, workers=workers, model=model, unpicklable=unpicklable, item_bytes=item_bytes)
    left = len(items) - measured.count
    write = out.write
    write(
        f"estimates, at {weigh.describe()} (from the measurement), as the cost model weighed them (a pool must "
        f"beat the loop by {CHOOSING.min_gain:.0%}):\n"
    )
    if measured.failure is not None:
        index, error = measured.failure
        write(
            f"  item {index} raised while measuring ({type(error).__name__}: {error}): the rest "
            "run in a loop, whatever these say\n"
        )
    shown: tuple[Candidate, ...] = ()
    if left == 0:
        write("  none: the measurement ran every item\n")
    else:
        write(f"  for the {left} item(s) the measurement left:\n")
        shown = weigh(left)
        _write_rows(shown, chosen.mode, out)
        if len(shown) == 1:
            write("      no pool weighed: see the reason above\n")
    if left <= 1 and len(items) > 1:
        write(f"  had none been measured first, for all {len(items)} items:\n")
        shown = weigh(len(items))
        _write_rows(shown, None, out)
    _write_not_weighed(shown, kind, unpicklable, out)


class _Weigher:
    """The cost model's candidates for the plan's items, as the decision weighed them, for any count."""

    def __init__(  # noqa: PLR0913 - what the decision weighed, by name
        self,
        fn: Callable[[Any], Any],
        chosen: Plan[Any],
        kind: TaskKind,
        *,
        workers: int | None,
        model: CostModel,
        unpicklable: str | None,
        item_bytes: int,
    ) -> None:
        measurement = chosen.measurement
        assert measurement is not None
        memo = recall(fn)
        self.kind, self.workers, self.model = kind, workers, model
        self.unpicklable, self.item_bytes = unpicklable, item_bytes
        self.item_seconds = estimated_item_seconds(kind, measurement, memo)
        self.item_cpu = estimated_item_cpu(kind, measurement, memo) or 0.0
        self.processes_last = memo is not None and memo.kind is kind and memo.in_processes
        self.cpus = planning_cpus()

    def describe(self) -> str:
        """The item time weighed, for the text."""
        computing = f", of which {format_seconds(self.item_cpu)} computing" if self.kind is TaskKind.IO else ""
        return f"{format_seconds(self.item_seconds)} per item{computing}"

    def __call__(self, count: int) -> tuple[Candidate, ...]:
        return alternatives(
            kind=self.kind,
            item_seconds=self.item_seconds,
            item_cpu=self.item_cpu,
            count=count,
            cpus=self.cpus,
            io_cap=get_config().io_thread_cap(),
            unpicklable=self.unpicklable,
            process_age=process_pool_age(self.workers or min(count, self.cpus)),
            server_started=forkserver_started(),
            bytes_per_item=self.item_bytes,
            workers=self.workers,
            chunksize=None,
            processes_last=self.processes_last,
            model=self.model,
        )


def _write_not_weighed(shown: tuple[Candidate, ...], kind: TaskKind, unpicklable: str | None, out: TextIO) -> None:
    """Why a pool the candidates leave out was not weighed (where any pool was)."""
    if len(shown) <= 1:
        return
    for mode, pool in _POOLS.items():
        if any(candidate.mode == mode for candidate in shown):
            continue
        if mode == "process" and unpicklable is not None:
            out.write(f"  {pool}: not an option ({unpicklable})\n")
        elif (note := _NOT_WEIGHED.get((kind, mode))) is not None:
            out.write(f"  {pool}: not weighed: {note}\n")


def _write_figures(model: CostModel, out: TextIO) -> None:
    """The machine figures the estimates were made of, each with where it came from."""
    out.write(f"\nfigures in force (the cost model's, for the {model.start_method} start method):\n")
    width = max(map(len, _FIGURES.values()))
    for figure, value in model.figures():
        shown = f"{value * 1e9:.1f} ns" if figure == "byte_cost" else format_seconds(value)
        out.write(f"  {_FIGURES[figure]:<{width}}  {shown:>9}  {model.source(figure)}\n")


def _times(ratio: float) -> str:
    """``ratio`` as ``0.35×``, ``7.3×`` or ``1010×``."""
    return f"{ratio:.2f}×" if ratio < 1 else f"{ratio:.2g}×" if ratio < 10 else f"{ratio:.0f}×"


def _write_rows(weighed: tuple[Candidate, ...], chosen: Mode | None, out: TextIO) -> None:
    """One line an option, the ``chosen`` one's marked, with its estimate, against the loop's, and why it lost."""
    width = max(len(candidate.label) for candidate in weighed)
    loop = weighed[0].estimate
    for candidate in weighed:
        mode, estimate, label = candidate.mode, candidate.estimate, candidate.label
        than = "" if mode == "serial" or loop <= 0 else f"  ({_times(estimate / loop)} the loop's)"
        mark, note = ("→ ", "  ← chosen") if mode == chosen else ("  ", "")
        if mode != chosen and candidate.lost is not None:
            note = f"  (lost: {candidate.lost})"
        out.write(f"    {mark}{label:<{width}}  ≈ {format_seconds(estimate):>9}{than}{note}\n")
