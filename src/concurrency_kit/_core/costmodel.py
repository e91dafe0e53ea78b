"""The machine figures the cost model weighs, as one frozen object: per start method, refined from what runs observe.

    STARTING[start method]            the starting values, each with its reason (below)
          │
          │  observe(...)             what runs already time, reported as they see it:
          │                             a pool's start to its first answer (_backends.pools: the
          │                             pre-start), cold or from a running forkserver;
          │                             the first item's round trip through a warm pool
          │                             (the process backend's send_first)
          ▼
    model_in_force() → CostModel      the starting values, each refined to the median of
                                      its last observations, kept within 0.5–2× of its
                                      starting value; read by the decision and ``explain``

Nothing is measured at import: a figure nothing has observed keeps its starting value.
The starting values need only be right within a factor of two (the margin between the
options is wide wherever the choice matters), which is also as far as observations may
move them: one odd reading (a pool started beside a busy machine's other work) shifts
a decision no more than the start method's own spread does.

An executor's ping (``task_overhead``) is not one of these figures: it is the round trip
of an executor the caller gave (a Dask cluster's milliseconds, a thread pool's
microseconds), kept for that executor, and no figure of this machine's own pools.

Tests pass a model in (``using_model``, or the decision's ``Question.model``).
"""

from __future__ import annotations

import os
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Literal, final

import attrs

from .config import get_config
from .in_force import InForce

__all__ = [
    "FIGURES",
    "STARTING",
    "CostModel",
    "Figure",
    "Observed",
    "model_in_force",
    "observe_pool_start",
    "observe_round_trip",
    "refined",
    "starting_model",
    "using_model",
]

#: A machine figure's name (a field of ``CostModel``).
Figure = Literal["thread_start", "process_round_trip", "cold_start", "restart", "byte_cost", "process_item"]
#: Every machine figure, in the order ``explain`` prints them.
FIGURES: tuple[Figure, ...] = (
    "thread_start",
    "process_round_trip",
    "cold_start",
    "restart",
    "byte_cost",
    "process_item",
)
#: The figures that depend on how workers start; the others are the same for every start method.
_BY_START_METHOD = frozenset({"cold_start", "restart"})
#: A refined figure stays within these multiples of its starting value.
LEAST, MOST = 0.5, 2.0
#: A figure is refined to the median of this many of its last observations: enough that
#: one odd reading does not move it, few enough that it follows a machine that changed.
KEPT = 15


@final
@attrs.frozen
class CostModel:
    """What running items costs on this machine, in seconds, as the cost model weighs it.

    Attributes:
        start_method: the start method the figures are for.
        thread_start: starting (or waking) one pool thread.
        process_round_trip: one chunk's round trip through a warm process pool.
        cold_start: starting a process pool when none is warm (with the forkserver, the
            server too).
        restart: starting a pool's workers from a forkserver this process already
            started (without a server, a cold start).
        byte_cost: pickling, piping and unpickling one byte, both ways.
        process_item: what a process pool costs per item however small: its outcome is
            pickled on its own and unpickled in the calling process, one at a time.
        observed: how many observations refined each figure (a figure not named keeps
            its starting value).
    """

    start_method: str
    thread_start: float
    process_round_trip: float
    cold_start: float
    restart: float
    byte_cost: float
    process_item: float
    observed: tuple[tuple[Figure, int], ...] = ()

    def pool_start(self, *, server_started: bool) -> float:
        """A process pool's start: from a running forkserver (``server_started``), or cold."""
        return self.restart if server_started else self.cold_start

    def observations(self, figure: Figure) -> int:
        """How many observations refined ``figure`` (0: its starting value)."""
        return dict(self.observed).get(figure, 0)

    def source(self, figure: Figure) -> str:
        """Where ``figure`` came from, for a person."""
        count = self.observations(figure)
        return "starting value" if not count else f"refined from {count} observation(s)"

    def figures(self) -> Iterator[tuple[Figure, float]]:
        """Each figure's name and value, in ``FIGURES`` order."""
        for figure in FIGURES:
            yield figure, getattr(self, figure)


def _starting(start_method: str, *, cold_start: float, restart: float) -> CostModel:
    """The starting values for ``start_method``: its pool start, and the figures every method shares."""
    return CostModel(
        start_method,
        # Tens of µs on any OS (a clone and a stack, or a wake-up), counted generously.
        thread_start=100e-6,
        # Two pipe writes and the wake-ups of the executor's threads and a worker: well
        # under a millisecond wherever a context switch costs microseconds.
        process_round_trip=0.5e-3,
        cold_start=cold_start,
        restart=restart,
        # A byte is copied several times each way (pickled, written to a pipe, read, unpickled)
        # through 64 KiB pipe buffers: about half a GB/s where memory copies at several.
        byte_cost=2e-9,
        # One pickle.dumps in the worker and one pickle.loads here per outcome: about
        # 1-1.5 µs measured here, a pickle call's floor anywhere.
        process_item=1e-6,
    )


#: The starting values per start method (measured with ``python -m benchmarks.pool_start``,
#: a pool of 2 to its first answer: idle, and beside a thread computing items, as auto
#: starts pools while items run; 2-CPU Linux, medians of 9 interpreters).
STARTING: Mapping[str, CostModel] = {
    # The server is a fresh interpreter importing the worker modules, then forks the
    # workers: between idle (110 ms here) and beside a computing thread (260 ms). A
    # restart forks workers from the running server alone: a seventh to a tenth of that
    # (12 ms idle, 34 ms beside a computing thread).
    "forkserver": _starting("forkserver", cold_start=0.18, restart=0.04),
    # Every worker is a fresh interpreter that imports the main module, as the
    # forkserver's server is, and no server outlives a pool: every start costs what the
    # forkserver's first does, a little more (1.1-1.4× here: 150 ms idle, 290 ms busy).
    "spawn": _starting("spawn", cold_start=0.2, restart=0.2),
    # Forking this process needs no fresh interpreter: every start costs what the
    # forkserver's restart does (0.9-1.1× here: 11 ms idle, 38 ms busy).
    "fork": _starting("fork", cold_start=0.04, restart=0.04),
}


def starting_model(start_method: str) -> CostModel:
    """The starting values for ``start_method`` (``forkserver``'s for a method not listed)."""
    return STARTING.get(start_method) or attrs.evolve(STARTING["forkserver"], start_method=start_method)


def refined(start: CostModel, seen: Mapping[Figure, Sequence[float]]) -> CostModel:
    """``start`` with each figure observed in ``seen`` refined: the median of its observations, within 0.5–2× of it.

    Observations of zero or less, or not numbers, are left out.
    """
    values: dict[str, float] = {}
    counts: list[tuple[Figure, int]] = []
    for figure in FIGURES:
        usable = [seconds for seconds in seen.get(figure, ()) if seconds > 0]
        if not usable:
            continue
        base: float = getattr(start, figure)
        values[figure] = min(MOST * base, max(LEAST * base, statistics.median(usable)))
        counts.append((figure, len(usable)))
    if not counts:
        return start
    return attrs.evolve(start, observed=tuple(counts), **values)  # type: ignore[arg-type]


@final
class Observed:
    """What runs observed of the machine figures, and the models refined from it (one per start method)."""

    def __init__(self, starting: Callable[[str], CostModel] = starting_model) -> None:
        self._starting = starting
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, Figure], deque[float]] = {}
        self._models: dict[str, CostModel] = {}

    def observe(self, figure: Figure, seconds: float, *, start_method: str = "") -> None:
        """Record ``seconds`` of ``figure`` (``start_method``: for the figures that depend on it)."""
        if not seconds > 0:
            return
        key = (start_method if figure in _BY_START_METHOD else "", figure)
        with self._lock:
            self._seen.setdefault(key, deque(maxlen=KEPT)).append(seconds)
            self._models.clear()

    def model(self, start_method: str) -> CostModel:
        """The model for ``start_method``: its starting values, refined from what was observed."""
        model = self._models.get(start_method)
        if model is not None:
            return model
        with self._lock:
            seen: dict[Figure, tuple[float, ...]] = {
                figure: tuple(values) for (method, figure), values in self._seen.items() if method in ("", start_method)
            }
            model = refined(self._starting(start_method), seen)
            self._models[start_method] = model
        return model

    def clear(self) -> None:
        """Forget every observation: the starting values stand again."""
        with self._lock:
            self._seen.clear()
            self._models.clear()

    def after_fork(self) -> None:
        """In a child made by ``os.fork()``: a lock of its own (another thread may have held the parent's)."""
        self._lock = threading.Lock()


#: What this process's runs observed (a child made by ``os.fork()`` keeps it: the same machine).
OBSERVED = Observed()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=OBSERVED.after_fork)


def observe_pool_start(seconds: float, *, start_method: str, server_was_running: bool) -> None:
    """A process pool of ``start_method`` took ``seconds`` from its start to its first answer.

    With the forkserver, a cold start, or a restart when the server was already running;
    without a server every start is a cold one, and a restart the same.
    """
    if start_method == "forkserver":
        OBSERVED.observe("restart" if server_was_running else "cold_start", seconds, start_method=start_method)
        return
    OBSERVED.observe("cold_start", seconds, start_method=start_method)
    OBSERVED.observe("restart", seconds, start_method=start_method)


def observe_round_trip(seconds: float) -> None:
    """One chunk took ``seconds`` through a warm pool, beyond its items' own time in the worker."""
    OBSERVED.observe("process_round_trip", seconds)


def _for_the_start_method() -> CostModel:
    return OBSERVED.model(get_config().resolved_start_method())


_MODEL: InForce[CostModel] = InForce("cost_model", _for_the_start_method)


def model_in_force() -> CostModel:
    """The cost model in force: the configured start method's, refined from what runs observed.

    Inside a ``using_model`` block, that block's model.
    """
    return _MODEL.get()


def using_model(model: CostModel) -> AbstractContextManager[CostModel]:
    """Have ``model`` in force inside the block, for every decision made there (the seam tests use)."""
    return _MODEL.using(model)
