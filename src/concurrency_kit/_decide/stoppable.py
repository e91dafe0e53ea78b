"""Auto's choice with a ``task_timeout``: where an item that runs too long can be stopped.

Auto measures a call's first items in the calling thread and in probe threads, where
an item that never returns cannot be stopped. With a ``task_timeout`` it measures
nothing: the kind the function declares, or the one an earlier call measured, picks
the mode, and the workers are sized as for that mode asked by name::

    io, gil_free      threads: a stuck item's thread is abandoned and replaced
    cpu, or unknown   processes: a stuck item's worker is killed and replaced
                      (threads for a function that cannot be pickled)
    an executor       the executor, an item a task, cancelled where it can be

Never a loop: the calling thread cannot stop an item it runs.
"""

from __future__ import annotations

from concurrent.futures import Executor

from .._backends.executor import executor_workers
from .._backends.pickling import why_not_picklable
from .._core.kinds import TaskKind
from .plan import Choice, Mode
from .sizing import forced_choice

__all__ = ["stoppable_choice"]


def stoppable_choice(  # noqa: PLR0913 - every input, by name
    fn: object,
    kind: TaskKind | None,
    *,
    executor: Executor | None,
    count: int,
    cpus: int,
    io_cap: int,
    workers: int | None,
    chunksize: int | None,
) -> Choice:
    """The mode and sizing of an auto call with a ``task_timeout`` (``kind``: declared or remembered, if known)."""
    known = "unknown" if kind is None else str(kind)
    if executor is not None:
        w = workers or executor_workers(executor) or cpus
        why = "task_timeout: the items go to the executor an item a task, so that one past its timeout is cancelled"
        return Choice("executor", w, 1, why)
    mode: Mode
    if kind in (TaskKind.IO, TaskKind.GIL_FREE):
        mode, where = "thread", "threads (one past its timeout is abandoned, and its thread replaced)"
    elif why_not_picklable(fn) is not None:
        mode, where = "thread", "threads, as fn cannot go to a worker process (one past its timeout is abandoned)"
    else:
        mode, where = "process", "processes (one past its timeout has its worker killed and replaced)"
    sized = forced_choice(mode, kind=kind, count=count, cpus=cpus, io_cap=io_cap, workers=workers, chunksize=chunksize)
    why = f"task_timeout: kind {known}, not measured (an item measured here could not be stopped): {where}"
    return Choice(sized.mode, sized.workers, sized.chunksize, why)
