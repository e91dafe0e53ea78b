"""The sizing rules: how many workers a call gets, and how many items a chunk.

Auto's pools are sized here from the item time measured (``_decide.choose`` weighs them); a
forced mode, a call of coroutines and a call through an executor are sized here alone.
The policy numbers are the fields of ``Sizing``, each with its reason.
"""

from __future__ import annotations

import math
from typing import final

import attrs

from .._core.kinds import TaskKind
from .plan import Choice, Mode, format_seconds

__all__ = ["SIZING", "Sizing", "async_choice", "chunks", "executor_choice", "forced_choice", "io_threads"]


@final
@attrs.frozen
class Sizing:
    """The sizing rules' policy numbers."""

    #: A process-mode chunk should take about this long (tens of milliseconds): its
    #: round trip through the pool, under a millisecond, is then a few per cent of it ...
    process_chunk_seconds: float = 0.025
    #: ... a thread-mode chunk of CPU work about this long (a lock and a list append a
    #: chunk cost microseconds) ...
    thread_chunk_seconds: float = 0.002
    #: ... and every worker should get at least this many chunks, so that one slow chunk
    #: near the end does not leave the others idle.
    chunks_per_worker: int = 4
    #: A chunk of items whose times vary is sized to take the target even this many
    #: standard deviations over the mean: over two, fewer than one chunk in 40 outlasts
    #: it (for a sum of many items, near normal), whatever the machine.
    spread_margin: float = 2.0
    #: Threads a forced ``mode="thread"`` call gets for work of no declared computing kind:
    #: nothing measured sizes a round, so a fixed number (``max_io_workers``, when lower).
    forced_threads: int = 64
    #: Through an executor, a task should carry at least this many times the executor's
    #: own per-task cost (an empty task's round trip) in work: that cost is then a tenth
    #: of the task's time at most. On a Dask cluster a task costs milliseconds, so 1 ms
    #: items go in chunks of tens; on a thread pool, microseconds, and nearly every item
    #: is a task.
    task_work_per_overhead: int = 10
    #: Coroutines in flight at once, by default, in async mode. A waiting coroutine costs
    #: a few kilobytes and no thread, so the bound is not there for the loop's sake but for
    #: what each one holds open (a socket, a file, a server's attention): generous, yet
    #: below the connection limits servers and the operating system's file limit (often
    #: 1,024) commonly set. ``workers=`` raises it (10,000 waits at once are fine).
    async_workers: int = 256


#: The sizing rules in force.
SIZING = Sizing()


def chunks(  # noqa: PLR0913 - the rule's inputs, by name
    count: int,
    workers: int,
    item_seconds: float,
    target: float,
    *,
    spread: float = 0.0,
    round_trip: float = 0.0,
    sizing: Sizing = SIZING,
) -> int:
    """Items per chunk: about ``target`` seconds, yet ``Sizing.chunks_per_worker`` chunks a worker at least.

    ``spread``: how much one item's time varies (its coefficient of variation, as a run
    measured it; 0: as long as each other). A chunk of ``k`` such items takes ``k`` times
    the mean, give or take ``spread·√k`` times it: the chunk is the most items that
    take ``target`` even ``Sizing.spread_margin`` such deviations over the mean, so
    that one chunk of long items does not hold a worker far longer than the others'.
    Yet not so few that a chunk's ``round_trip`` (the cost model's) is more than a
    ``Sizing.task_work_per_overhead``-th of its work, as for an executor's tasks.
    """
    if count <= 0:
        return 1
    by_time = count
    if item_seconds > 0:
        by_time = _by_time(target, item_seconds, 0.0)
        if spread:
            least = math.ceil(sizing.task_work_per_overhead * round_trip / item_seconds)
            by_time = min(by_time, max(least, _by_time(target, item_seconds, spread * sizing.spread_margin)))
    by_balance = math.ceil(count / (sizing.chunks_per_worker * workers))
    return max(1, min(by_time, by_balance))


def _by_time(target: float, item_seconds: float, deviations: float) -> int:
    """The most items ``k`` with ``k·item_seconds + deviations·√k·item_seconds ≤ target`` (one at least)."""
    room = target / item_seconds
    root = (-deviations + math.sqrt(deviations * deviations + 4 * room)) / 2
    return max(1, math.ceil(root * root)) if deviations else max(1, math.ceil(room))


def io_threads(count: int, item_seconds: float, cap: int, thread_start: float) -> int:
    """Threads for ``count`` waits of ``item_seconds`` each: what makes the fewest rounds pay.

    ``w`` threads take ``⌈count / w⌉`` rounds of waits, and cost ``thread_start`` each
    (the cost model's figure): one thread per item, unless fewer, in more rounds, cost
    less in all (tens of thousands of short waits), and never more than ``cap``. Of the
    thread counts that make the same number of rounds, the fewest: 1,000 items of 50 ms
    under a cap of 512 get two rounds of 500.
    """
    most = max(1, min(count, cap))
    threads = math.ceil(count / math.ceil(count / most))
    best, cost = threads, math.inf
    while True:  # each number of rounds once, from the fewest: at most 2·√count of them
        rounds = math.ceil(count / threads)
        if rounds * item_seconds >= cost:
            return best  # fewer threads cannot make up for these rounds' waits alone
        this = rounds * item_seconds + threads * thread_start
        if this <= cost:
            best, cost = threads, this
        if threads == 1:
            return best
        threads = min(threads - 1, math.ceil(count / (rounds + 1)))  # the most that take a round more


def forced_choice(  # noqa: PLR0913 - every input, by name
    mode: Mode,
    *,
    kind: TaskKind | None,
    count: int,
    cpus: int,
    io_cap: int,
    workers: int | None,
    chunksize: int | None,
    sizing: Sizing = SIZING,
) -> Choice:
    """Size a mode the caller forced, without measuring."""
    if mode == "serial":
        return Choice("serial", 1, chunksize or max(1, count), "mode='serial' was asked for")
    if mode == "thread":
        computing = kind in (TaskKind.CPU, TaskKind.GIL_FREE)
        default = min(count, cpus) if computing else min(count, io_cap, sizing.forced_threads)
        w = workers or max(1, default)
        return Choice("thread", w, chunksize or 1, "mode='thread' was asked for")
    w = workers or max(1, min(count, cpus))
    chunk = chunksize or max(1, math.ceil(count / (sizing.chunks_per_worker * w)))
    return Choice("process", w, chunk, "mode='process' was asked for")


def async_choice(*, count: int | None, workers: int | None, why: str, sizing: Sizing = SIZING) -> Choice:
    """Size a call of coroutines: ``workers`` (default ``Sizing.async_workers``) at a time, an item each.

    ``count``: how many items, where known; ``why``: why the call is async, for the reason.
    """
    most = sizing.async_workers
    w = workers or most
    if count is not None:
        w = max(1, min(w, count))
    if workers:
        limit = f"workers={workers}"
    elif w < most:
        limit = f"one an item; {most} at most by default"
    else:
        limit = "the default; workers= changes it"
    return Choice("async", w, 1, f"{why}: its coroutines run on an event loop, at most {w} at a time ({limit})")


def executor_choice(  # noqa: PLR0913 - every input of the rule, by name
    name: str,
    *,
    count: int,
    workers: int,
    overhead: float | None,
    item_seconds: float | None,
    chunksize: int | None,
    measured: str,
    sizing: Sizing = SIZING,
) -> Choice:
    """Size a call through an executor (``name``, its type) of ``workers`` slots.

    A chunk carries ``Sizing.task_work_per_overhead`` times the task ``overhead`` in
    work, at ``item_seconds`` per item, and every slot gets
    ``Sizing.chunks_per_worker`` chunks at least, to balance load; without an item
    time (nothing measured), a task an item. ``measured``: what the item time came
    from, for the reason.
    """
    if chunksize is not None:
        chunk, rule = chunksize, "the chunksize asked for"
    elif overhead is None or not item_seconds:
        chunk, rule = 1, "a task per item"
    else:
        per_overhead, per_worker = sizing.task_work_per_overhead, sizing.chunks_per_worker
        wanted = math.ceil(per_overhead * overhead / item_seconds)
        balanced = max(1, math.ceil(count / (per_worker * workers)))
        chunk = max(1, min(wanted, balanced))
        rule = f"≥ {per_overhead}× its task overhead of {format_seconds(overhead)} in work a task"
        if chunk < wanted:
            rule += f", but {per_worker} tasks a slot at least"
    each = "" if item_seconds is None else f"{format_seconds(item_seconds)} per item ({measured}); "
    why = f"executor={name} ({workers} at a time): {each}chunks of {chunk} ({rule})"
    return Choice("executor", workers, chunk, why)
