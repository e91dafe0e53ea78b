"""``python -m concurrency_kit explain MODULE:FUNCTION [ITEMS...]``: why auto chose what it chose.

The command imports the function, plans it with :func:`concurrency_kit.plan` on the
items given (or ``range(N)``), and prints the plan with the estimates the cost model
weighed: the plain loop and each pool it could pick for what was measured
(:func:`concurrency_kit._plan.alternatives`), the chosen one marked. Planning runs the
first items to measure them; the command never runs the plan, so their results are
discarded and the other items never run.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ._api import ModeName, plan
from ._classify import TaskKind
from ._config import get_config
from ._cpu import gil_enabled, planning_cpus

# The decision's own readings of a measurement, so that the estimates are the ones it weighed.
from ._decide import estimated_item_cpu, estimated_item_seconds, process_fitness
from ._memory import recall
from ._plan import MIN_GAIN, Mode, Plan, alternatives, format_seconds
from ._pools import forkserver_started, process_pool_age
from ._run import Call

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


class UsageError(ValueError):
    """The command was given what it cannot explain: a target that names no function, or arguments plan() rejects."""


def load_function(target: str) -> Callable[..., Any]:
    """Import ``MODULE:FUNCTION`` (``FUNCTION`` may be dotted: ``Class.method``) and return it.

    The current directory is importable, as under ``python -m``: it goes first on
    :data:`sys.path` when it is not there.

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
        mode: as :func:`concurrency_kit.plan` takes it.
        workers: as :func:`concurrency_kit.plan` takes it.

    Raises:
        UsageError: :func:`concurrency_kit.plan` rejected the arguments (a
            ``TypeError`` or ``ValueError``, such as a coroutine function with a mode
            that would not await it), named in the message.
    """
    try:
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
        _write_estimates(fn, items, chosen, chosen.kind, out, workers=workers)
    out.flush()


def _write_estimates(  # noqa: PLR0913 - the plan and what it was made of, by name
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    chosen: Plan[Any],
    kind: TaskKind,
    out: TextIO,
    *,
    workers: int | None,
) -> None:
    """The cost model's estimates for the items the measurement left, as it weighed them."""
    measurement = chosen.measurement
    assert measurement is not None
    call: Call = chosen._state  # noqa: SLF001  # pyright: ignore[reportPrivateUsage] - where the measuring stopped
    if kind is TaskKind.CPU and not gil_enabled():
        kind = TaskKind.GIL_FREE  # as the decision does: without a GIL, threads compute side by side
    memo = recall(fn)
    item_seconds = estimated_item_seconds(kind, measurement, memo)
    item_cpu = estimated_item_cpu(kind, measurement, memo) or 0.0
    cpus = planning_cpus()
    unpicklable, item_bytes = (None, 0)
    if call.outcomes is not None:
        unpicklable, item_bytes = process_fitness(fn, items, call.outcomes, call.resume_at)

    def weigh(count: int) -> list[tuple[Mode, float, str]]:
        return alternatives(
            kind=kind,
            item_seconds=item_seconds,
            item_cpu=item_cpu,
            count=count,
            cpus=cpus,
            io_cap=get_config().io_thread_cap(),
            unpicklable=unpicklable,
            process_age=process_pool_age(workers or min(count, cpus)),
            server_started=forkserver_started(),
            bytes_per_item=item_bytes,
            workers=workers,
            chunksize=None,
        )

    left = len(items) - call.resume_at
    computing = f", of which {format_seconds(item_cpu)} computing" if kind is TaskKind.IO else ""
    write = out.write
    write(
        f"estimates, at {format_seconds(item_seconds)} per item{computing} (from the measurement), as the cost "
        f"model weighed them (a pool must beat the loop by {MIN_GAIN:.0%}):\n"
    )
    if call.outcomes is not None and call.outcomes.failed:
        error = call.outcomes.error
        write(
            f"  item {call.outcomes.error_index} raised while measuring ({type(error).__name__}: {error}): the rest "
            "run in a loop, whatever these say\n"
        )
    shown: list[tuple[Mode, float, str]] = []
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
    for mode, pool in _POOLS.items() if len(shown) > 1 else ():
        if any(weighed == mode for weighed, _, _ in shown):
            continue
        if mode == "process" and unpicklable is not None:
            write(f"  {pool}: not an option ({unpicklable})\n")
        elif (note := _NOT_WEIGHED.get((kind, mode))) is not None:
            write(f"  {pool}: not weighed: {note}\n")


def _times(ratio: float) -> str:
    """``ratio`` as ``0.35×``, ``7.3×`` or ``1010×``."""
    return f"{ratio:.2f}×" if ratio < 1 else f"{ratio:.2g}×" if ratio < 10 else f"{ratio:.0f}×"


def _write_rows(weighed: list[tuple[Mode, float, str]], chosen: Mode | None, out: TextIO) -> None:
    """One line an option, the ``chosen`` one's marked, with its estimate and how it compares with the loop's."""
    width = max(len(label) for _, _, label in weighed)
    loop = weighed[0][1]
    for mode, estimate, label in weighed:
        than = "" if mode == "serial" or loop <= 0 else f"  ({_times(estimate / loop)} the loop's)"
        mark, chosen_note = ("→ ", "  ← chosen") if mode == chosen else ("  ", "")
        out.write(f"    {mark}{label:<{width}}  ≈ {format_seconds(estimate):>9}{than}{chosen_note}\n")
