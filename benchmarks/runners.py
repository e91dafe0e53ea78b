"""The runners: ways of mapping a function over items, each with an executor it may keep warm.

A runner is opened for one workload, called any number of times, and closed. ``open`` is
where a peer makes its executor, so a cold measurement (``open`` then one ``map`` in a
fresh interpreter) counts pool start-up, and a warm one (later ``map`` calls) reuses it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, ClassVar

# The names, not just the package: concurrency_kit imports its planner when a name is
# first used, and a cold measurement must not time that import (it times no other).
from concurrency_kit import Plan
from concurrency_kit import plan as ck_plan
from concurrency_kit import shutdown as ck_shutdown

__all__ = ["PEERS", "RUNNERS", "SMOKE_RUNNERS", "Runner", "get_runner", "joblib_available", "shutdown_peers"]

Fn = Callable[[Any], Any]

#: The most threads the thread-per-item runner starts; above it the cell is skipped.
MAX_THREADS_PER_ITEM = 20_000


def joblib_available() -> bool:
    """Whether joblib (an optional peer) can be imported."""
    return importlib.util.find_spec("joblib") is not None


class Runner:
    """A way of computing ``[fn(x) for x in items]``; subclasses override ``map``."""

    #: Short name, used in tables, JSON and on the command line.
    name: ClassVar[str] = ""
    #: What it is, in words.
    description: ClassVar[str] = ""
    #: Whether it needs joblib.
    needs_joblib: ClassVar[bool] = False

    def __init__(self) -> None:
        self._plan: Plan | None = None  # concurrency_kit's last auto plan, where there is one

    @property
    def reason(self) -> str | None:
        """Why concurrency_kit's last auto call ran as it did (read outside the timed calls)."""
        return None if self._plan is None else self._plan.reason

    def skip_reason(self, count: int) -> str | None:  # noqa: ARG002 - subclasses use it
        """Why this runner should not run ``count`` items (or None: run it)."""
        if self.needs_joblib and not joblib_available():
            return "joblib is not installed (pip install -e '.[bench]')"
        return None

    def open(self, count: int) -> None:
        """Get ready to map over ``count`` items (make the executor)."""

    def map(self, fn: Fn, items: Sequence[Any]) -> list[Any]:
        """Return ``[fn(x) for x in items]``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the executor (waits for its workers)."""


class Loop(Runner):
    name = "loop"
    description = "[fn(x) for x in items]"

    def map(self, fn: Fn, items: Sequence[Any]) -> list[Any]:
        return [fn(x) for x in items]


class _ExecutorRunner(Runner):
    """A concurrent.futures executor kept for the runner's life: warm calls reuse it."""

    def __init__(self) -> None:
        super().__init__()
        self._executor: Executor | None = None

    #: The executor class; ``_make`` calls it with no arguments (default workers).
    pool_type: ClassVar[type[Executor]]

    def _make(self, count: int) -> Executor:  # noqa: ARG002 - the thread-per-item runner sizes by it
        return self.pool_type()

    def _chunksize(self, count: int) -> int:  # noqa: ARG002 - subclasses use it
        return 1

    def open(self, count: int) -> None:
        self._executor = self._make(count)

    def map(self, fn: Fn, items: Sequence[Any]) -> list[Any]:
        assert self._executor is not None, "open() first"
        return list(self._executor.map(fn, items, chunksize=self._chunksize(len(items))))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class ThreadsDefault(_ExecutorRunner):
    name = "tpe"
    description = "ThreadPoolExecutor().map (default workers: min(32, cpus + 4))"
    pool_type = ThreadPoolExecutor


class ThreadPerItem(_ExecutorRunner):
    name = "tpe/item"
    description = "ThreadPoolExecutor(max_workers=len(items)).map (idle threads are reused)"
    pool_type = ThreadPoolExecutor

    def skip_reason(self, count: int) -> str | None:
        return f"{count} threads" if count > MAX_THREADS_PER_ITEM else super().skip_reason(count)

    def _make(self, count: int) -> Executor:
        return ThreadPoolExecutor(max_workers=max(1, count))


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ProcessesChunk1(_ExecutorRunner):
    name = "ppe/c1"
    description = "ProcessPoolExecutor().map(chunksize=1), default start method"
    pool_type = ProcessPoolExecutor


class ProcessesTuned(_ExecutorRunner):
    name = "ppe/tuned"
    description = "ProcessPoolExecutor().map(chunksize=len(items) // (4 * cpus))"
    pool_type = ProcessPoolExecutor

    def _chunksize(self, count: int) -> int:
        return max(1, count // (4 * _cpus()))


class _JoblibRunner(Runner):
    """One ``Parallel`` object, reused by warm calls (loky keeps its executor anyway)."""

    needs_joblib = True
    _prefer: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self._parallel: Any = None

    def open(self, count: int) -> None:  # noqa: ARG002 - joblib sizes its own batches
        from joblib import Parallel

        self._parallel = Parallel(n_jobs=-1, prefer=self._prefer)

    def map(self, fn: Fn, items: Sequence[Any]) -> list[Any]:
        from joblib import delayed

        assert self._parallel is not None, "open() first"
        return list(self._parallel(delayed(fn)(x) for x in items))

    def close(self) -> None:
        self._parallel = None


class JoblibLoky(_JoblibRunner):
    name = "jl/loky"
    description = "joblib Parallel(n_jobs=-1) (loky processes)"


class JoblibThreads(_JoblibRunner):
    name = "jl/thr"
    description = 'joblib Parallel(n_jobs=-1, prefer="threads")'
    _prefer = "threads"


class _KitRunner(Runner):
    """concurrency_kit; its own pools stay warm between calls."""

    mode: ClassVar[str] = "auto"

    def map(self, fn: Fn, items: Sequence[Any]) -> list[Any]:
        chosen = ck_plan(fn, items, self.mode)
        if self.mode == "auto":
            self._plan = chosen  # its reason is written when read, after the timing
        return chosen.run()


class KitAuto(_KitRunner):
    name = "ck/auto"
    description = 'run_parallel(fn, items) (mode="auto")'


class KitSerial(_KitRunner):
    name = "ck/serial"
    description = 'run_parallel(fn, items, "serial")'
    mode = "serial"


class KitThread(_KitRunner):
    name = "ck/thread"
    description = 'run_parallel(fn, items, "thread")'
    mode = "thread"


class KitProcess(_KitRunner):
    name = "ck/proc"
    description = 'run_parallel(fn, items, "process")'
    mode = "process"


#: Every runner, in table order.
RUNNERS: tuple[type[Runner], ...] = (
    Loop,
    ThreadsDefault,
    ThreadPerItem,
    ProcessesChunk1,
    ProcessesTuned,
    JoblibLoky,
    JoblibThreads,
    KitAuto,
    KitSerial,
    KitThread,
    KitProcess,
)
#: The runners that are not concurrency_kit.
PEERS: tuple[str, ...] = tuple(r.name for r in RUNNERS if not r.name.startswith("ck/"))
#: Runners of the smoke profile: no joblib (loky leaves workers), no fork-started pools.
SMOKE_RUNNERS: tuple[str, ...] = ("loop", "tpe", "ck/auto", "ck/serial", "ck/thread", "ck/proc")


def get_runner(name: str) -> type[Runner]:
    """The runner class called ``name``.

    Raises:
        KeyError: no runner has that name.
    """
    for runner in RUNNERS:
        if runner.name == name:
            return runner
    raise KeyError(f"no runner {name!r}; known: {', '.join(r.name for r in RUNNERS)}")


def shutdown_peers(*, joblib_used: bool) -> None:
    """Stop every pool left warm: concurrency_kit's, and loky's reusable executor."""
    ck_shutdown(wait=True)
    if joblib_used and joblib_available():
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
