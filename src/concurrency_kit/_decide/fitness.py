"""Whether processes can run a call's items, and a process pool started ahead for items that will want it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._backends.guard import check_main_guard
from .._backends.outcomes import EMPTY
from .._backends.pickling import needs_main, pickled, pickled_size, sendable, why_not_picklable
from .._backends.prestart import prestart_process_pool
from .._core.errors import MainGuardMissingError
from .._core.kinds import TaskKind
from .plan import Choice

__all__ = ["prestarter", "process_fitness", "warm_for_next_calls"]


def warm_for_next_calls(fn: Callable[[Any], Any], warm: Choice) -> None:
    """Start the process pool in the background when ``warm`` (the choice were one warm) is processes.

    For I/O-bound items that compute, on many CPUs: threads take turns for the GIL
    while the items compute, and processes, once warm, would finish sooner; a cold
    pool's start costs more than they would gain in this call, but not in the next.
    """
    if warm.mode == "process":
        prestart_process_pool(warm.workers, fn)


def prestarter(
    fn: Callable[[Any], Any], declared: TaskKind | None, workers: int | None, cpus: int
) -> Callable[[], object] | None:
    """What the probe calls when it sees the GIL held: warm a process pool meanwhile, if ``fn`` can go to one.

    Whether it can is asked then, not before the probe: asking pickles it (by value, with
    cloudpickle imported for it, when it lives in ``__main__``: milliseconds on a fresh
    interpreter's first call), which items too cheap for any pool never need. The probe
    threads start no new batch meanwhile (``probe``'s ``on_gil_held``).
    """
    if cpus == 1 or declared in (TaskKind.IO, TaskKind.GIL_FREE):
        return None

    def prestart() -> None:
        if why_not_picklable(fn) is None:
            prestart_process_pool(workers or cpus, fn)

    return prestart


def process_fitness(
    fn: Callable[[Any], Any], items: Sequence[Any], resume_at: int, result: Any
) -> tuple[str | None, int]:
    """Why processes cannot run this (or None), and the pickled bytes per item and result.

    ``resume_at``: the items measured (the one after them is the sample, or the last);
    ``result``: the first item's result, or ``EMPTY`` when it has none.
    """
    reason = why_not_picklable(fn)
    if reason is not None:
        return reason, 0
    sample = min(resume_at, len(items) - 1)  # a stream's head may be measured whole
    item = pickled(items[sample])
    if item is None:
        return f"item {sample} cannot be pickled", 0
    item_size = len(item)
    try:
        check_main_guard(main=needs_main(item) or needs_main(pickled(sendable(fn))))
    except MainGuardMissingError:
        return (
            "worker processes would import the main module, which runs this call outside "
            '`if __name__ == "__main__":`, and run the script again',
            0,
        )
    result_size = pickled_size(result) if result is not EMPTY else 0
    return None, item_size + (result_size or 0)
