"""What an earlier call's memory says of this one.

A loop verdict that still covers the call, short or long computing items with a process
pool warm for them, and the setting a verdict holds in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._backends.pools import (
    forkserver_started,
    process_pool_age,
    process_pool_ready_for,
)
from .._backends.worker import in_worker
from .._core.cpu import gil_enabled
from .._core.kinds import TaskKind
from .learning import (
    LoopKept,
    learn,
)
from .measuring import POLICY, as_measured
from .memory import LoopVerdict, Memo
from .plan import Choice, format_seconds
from .probe import Measurement

__all__ = [
    "cpu_for_warm_pool",
    "kept_loop_choice",
    "loop_expected",
    "setting_of",
    "settled",
]


def loop_expected(
    fn: Callable[[Any], Any],
    memo: Memo,
    count: int,
    setting: tuple[object, ...] | None,
    decide: Callable[..., Choice],
) -> Memo | None:
    """Whether the cost model, fed the remembered estimate, picks the plain loop.

    Returns the memo (with the verdict for a loop it kept: one that holds whatever the
    items pickle to, for the next calls) when it does, else ``None``. A verdict kept
    from an earlier call answers without asking it.
    """
    if memo.loop is not None and memo.loop.covers(count, memo.item_seconds, setting):
        return memo
    guess = as_measured(memo)
    if decide(guess, 0, memo.kind, free=True).mode == "serial":
        if setting is None:
            return memo
        # Items measured slower on a busy machine would ask the cost model again, and be
        # remembered anew: the verdict covers items ``drift`` times as long where it holds.
        roomy = decide(as_measured(memo, POLICY.drift), 0, memo.kind, free=True).mode == "serial"
        most = memo.item_seconds * POLICY.drift if roomy else memo.item_seconds
        return learn(fn, LoopKept(memo, LoopVerdict(count, most, setting)))
    return memo if decide(guess, 0, memo.kind).mode == "serial" else None


def cpu_for_warm_pool(  # noqa: PLR0913 - what the check depends on
    fn: Callable[[Any], Any],
    memo: Memo | None,
    declared: TaskKind | None,
    *,
    longer: bool,
    count: int,
    workers: int | None,
    cpus: int,
    window: float,
) -> bool:
    """Whether an earlier call found ``fn``'s items computing, a pool is warm, and they are long or short enough.

    ``longer``: the items must be longer than ``window``; else no longer.

    Short items: the calling thread checks the first ones itself. A probe thread, which
    the calling thread watches, holds the GIL for a switch interval (5 ms) before the
    check can end, while the warm workers wait. An item longer than remembered runs
    whole before the check ends, so only short ones are checked so.

    Long items (with two CPUs or more): the first is measured in a worker (see
    ``_backends.process.send_first``).
    """
    if memo is None or (declared or memo.kind) is not TaskKind.CPU or (memo.item_seconds > window) is not longer:
        return False
    if declared is None and not memo.sure:
        return False  # read once: the probe reads it again, watching the GIL (``Memo.sure``)
    if longer and cpus < 2:
        return False
    if not gil_enabled():
        return False  # threads compute side by side: no pool is the answer
    return not in_worker() and process_pool_ready_for(workers or min(count, cpus), fn)


def setting_of(  # noqa: PLR0913 - every input the cost model's choice depends on, but the items
    declared: TaskKind | None,
    workers: int | None,
    chunksize: int | None,
    *,
    cpus: int,
    io_cap: int,
    count: int,
    warm_after: float,
) -> tuple[object, ...] | None:
    """What the cost model's choice depends on besides the items: a verdict's setting.

    ``None`` while a process pool is warming up (its start-up cost falls by the moment):
    for ``warm_after`` seconds (the cost model's cold start) after it was made.
    """
    age = process_pool_age(workers or max(1, min(count, cpus)))
    if age is None:
        pool = "server" if forkserver_started() else "none"
    elif age >= warm_after:
        pool = "warm"
    else:
        return None
    return (declared, workers, chunksize, cpus, io_cap, pool, in_worker())


def kept_loop_choice(memo: Memo | None, left: int, m: Measurement, setting: tuple[object, ...] | None) -> Choice | None:
    """The loop, when the verdict an earlier call kept covers the ``left`` items as measured."""
    verdict = None if memo is None else memo.loop
    if verdict is None or not verdict.covers(left, m.item_wall, setting):
        return None
    most, count = verdict.item_seconds, verdict.count

    def reason() -> str:
        return (
            f"{left} item(s) left, of no more than the {format_seconds(most)} per item for which "
            f"an earlier call's cost model chose a loop for {count} items; too little work to pay for a pool"
        )

    return Choice("serial", 1, max(1, left), reason, by_cost=True)


def settled(choice: Choice) -> bool:
    """Whether a choice made on lower-bound figures stands (longer items only favour pools)."""
    return not choice.by_cost
