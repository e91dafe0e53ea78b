"""What a decided call hands its run: the measured items, and the work still under way.

The decision's steps run the first items to measure them; their results are kept, so
that ``fn`` runs once per item. A ``Handover`` carries what the steps left: the
outcomes of the measured items, the probe's threads still running some
(``Measuring``), the first item still running in a worker process, the items sent
ahead to an executor. The run takes it once (``Handover.take``); a second run of
the same plan starts afresh, with the whole timeout.

The run never asks how the mode was chosen: the decision hands it a
``Measuring`` to wait for, and to tell, once the measured items are done, how the
run went (``RunFacts``) — the decision learns from that, the run does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, final

import attrs
from typing_extensions import Protocol

from .._backends.outcomes import Outcomes
from .._core.options import CallOptions, CostFn, Mode

if TYPE_CHECKING:
    from .._backends.registry import Sent, Unit

__all__ = ["Handover", "Measuring", "OnTimed", "RunFacts", "Sizing", "Taken", "TimedUnits"]


#: Units a run's workers timed: each unit's items (their input indices) and its seconds.
TimedUnits = list[tuple[range | list[int], float]]
#: What the decision is told them with, once the run is done.
OnTimed = Callable[[TimedUnits], None]


@final
@attrs.frozen
class Sizing:
    """How a decided call runs: its mode, with how many workers, in chunks of how many items."""

    mode: Mode
    workers: int
    chunksize: int


@final
@attrs.frozen
class RunFacts:
    """What a run observed of a call whose measuring it took over (for the decision to learn from).

    Attributes:
        sizing: how it ran.
        total: the call's items.
        ended: ``time.perf_counter()`` once its items were done.
        cpu: CPU seconds the run's own threads spent on items, where they say.
        pool_age: in process mode, how long the pool had been up when the run began.
    """

    sizing: Sizing
    total: int
    ended: float
    cpu: float
    pool_age: float | None


class Measuring(Protocol):
    """The measuring a decision left under way: threads still running measured items."""

    @property
    def threads(self) -> Sequence[Future[None]]:
        """The futures of the threads still running measured items (done when they are)."""
        ...

    @property
    def computing(self) -> bool:
        """Whether its items compute holding the GIL (a process pool then waits for a CPU of theirs)."""
        ...

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for its threads; ``False`` if they still run.

        Raises:
            BaseException: what escaped a thread (not ``fn``'s exceptions, which are outcomes).
        """
        ...

    def finished(self, facts: RunFacts | None) -> None:
        """Its items are done: the decision learns from their final figures (and ``facts``, where the run has them)."""
        ...


@final
@attrs.frozen
class Taken:
    """What a run takes over: the measured items' outcomes and the work still under way."""

    outcomes: Outcomes
    resume_at: int
    measuring: Measuring | None
    sent: Sent | None
    ahead: tuple[tuple[Unit, Future[Any]], ...]
    deadline: float | None


class Handover:
    """The hand-over from a call's decision to its run, taken once.

    Args:
        fn: the function.
        items: the items planned on (all of them, or a stream's head).
        options: the call's options.
        outcomes: the measured items' outcomes.
        resume_at: the first item the measuring did not take.
        measuring: the probe's threads still running measured items, if any.
        sent: the first item, still running in the worker process that measures it.
        ahead: items sent to the executor while the first was timed here (a unit and its task each).
        timed_out: a stream whose timeout passed while its first items were measured:
            raised after the results of those that finished (``resume_at`` of them).
        cost: what each item costs, where a list's items start dearest first
            (``balancing.py``): the caller's ``cost=``, or a size the decision found the
            item times follow (default: the caller's).
        timing: told, once a list's run is done, the units its workers timed (where
            the decision wants to learn from them).
        cost_said: why the items start dearest first, where the decision found the
            cost (for the plan's reason).
    """

    def __init__(  # noqa: PLR0913 - what the decision left, by name
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        options: CallOptions,
        outcomes: Outcomes,
        *,
        resume_at: int = 0,
        measuring: Measuring | None = None,
        sent: Sent | None = None,
        ahead: tuple[tuple[Unit, Future[Any]], ...] = (),
        timed_out: TimeoutError | None = None,
        cost: CostFn | None = None,
        timing: OnTimed | None = None,
        cost_said: str = "",
    ) -> None:
        self.fn, self.items, self.options = fn, items, options
        self.cost = cost if options.cost is None else options.cost  # the caller's, before what was learnt
        self.timing, self.cost_said = timing, cost_said
        self.resume_at = resume_at
        self.timed_out = timed_out
        self._taken: Taken | None = Taken(outcomes, resume_at, measuring, sent, ahead, options.deadline)
        self._lock = threading.Lock()

    def take(self) -> Taken:
        """What the measuring left, the first time; afterwards, nothing measured and the whole timeout again."""
        with self._lock:
            taken, self._taken = self._taken, None
        if taken is not None:
            return taken
        timeout = self.options.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        outcomes = Outcomes(len(self.items), collect=self.options.return_exceptions, in_order=True)
        return Taken(outcomes, 0, None, None, (), deadline)

    def measured(self) -> tuple[int, list[Any], tuple[int, BaseException] | None]:
        """The measured items not yet taken: how many, their results, and the failure among them (if any)."""
        with self._lock:
            taken = self._taken
            if taken is None:
                return 0, [], None
            outcomes = taken.outcomes
            values = list(outcomes.values[: self.resume_at])
            failure = None if outcomes.error is None else (outcomes.error_index, outcomes.error)
        return self.resume_at, values, failure
