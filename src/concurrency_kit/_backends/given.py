"""Test-only: figures given in place of what measuring reads off the clocks, so that a test decides on known ones.

    with using_measurements(Given(probe=Measurement(...), here=Timing(wall=1e-6, cpu=1e-6))):
        plan = ck.plan(fn, items)      # decided on those figures, whatever else the machine runs

Every item still runs, exactly once, for its result, in the thread or process it would
run in: only the figures are given. Where each one acts:

    probe      the probe (_decide.probe.probe) runs ``probe.items`` items in its threads and
               reports ``probe`` without watching them: no GIL samples, no pool warmed
               meanwhile. Exact figures wait for their items; others leave them running
               (and where the decision waits for them to settle, it then sees ``final``).
    final      the probe's items' figures once they are done (default: ``probe``, exact):
               what a decision made on running items remembers
    gil_held   the real probe's monitor reads every GIL sample as held (or as free)
    here       an item timed in one thread (the calling thread's check, an executor's
               first items, an AutoExecutor's timed calls) takes ``wall`` seconds, ``cpu``
               of them computing; the calling thread's check stops where those seconds
               would stop it
    in_worker  the first item measured in a worker (_backends/process.send_first) took
               ``seconds`` there, and had finished (waited for) or was still running
               (taken over by the run) when the plan was made

Nothing in the library sets them. The value is the process's, not a context's, so that
the threads a call starts (an AutoExecutor's) see it too.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, final

import attrs

from .outcomes import Outcomes, run_timed

if TYPE_CHECKING:
    from .._decide.probe import Measurement

__all__ = [
    "Given",
    "InWorker",
    "Timing",
    "given_in_worker",
    "given_now",
    "timed_call",
    "timed_here",
    "using_measurements",
]


@final
@attrs.frozen
class Timing:
    """What one item takes, timed in one thread: ``wall`` seconds, ``cpu`` of them computing."""

    wall: float
    cpu: float


@final
@attrs.frozen
class InWorker:
    """The first item measured in a worker: ``seconds`` there; ``finished`` within the window, or still running."""

    seconds: float
    finished: bool = True


@final
@attrs.frozen
class Given:
    """Test-only: the figures measuring reports in place of the clocks' (see the module's docstring).

    Attributes:
        probe: what the probe reports, having run ``probe.items`` items.
        final: the probe's items' figures once done (default: ``probe``, exact).
        gil_held: how the real probe's monitor reads every GIL sample.
        here: an item's figures, timed in one thread.
        in_worker: the first item's, measured in a worker.
    """

    probe: Measurement | None = None
    final: Measurement | None = None
    gil_held: bool | None = None
    here: Timing | None = None
    in_worker: InWorker | None = None


_given: Given | None = None
_lock = threading.Lock()


def given_now() -> Given | None:
    """The figures a test gave, or ``None`` (measuring reads the clocks)."""
    return _given


@contextlib.contextmanager
def using_measurements(given: Given) -> Generator[Given, None, None]:
    """Test-only: have measuring report ``given`` inside the block, in every thread (blocks nest)."""
    global _given  # noqa: PLW0603 - one value for the process, replaced whole
    with _lock:
        before, _given = _given, given
    try:
        yield given
    finally:
        with _lock:
            _given = before


def given_in_worker() -> InWorker | None:
    """The figures a test gave of the first item measured in a worker, or ``None``."""
    given = _given
    return None if given is None else given.in_worker


def timed_here(  # noqa: PLR0913 - the calling thread's check's inputs
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    outcomes: Outcomes,
    stop: int,
    budget: float,
    *,
    start: int,
    growth: int,
) -> tuple[int, float, float] | None:
    """With ``here`` given: run the items the calling thread's timed check would, as ``here`` times them.

    The check runs spans of 1, ``growth``, ``growth``² … items (``_backends.outcomes.run_timed``)
    until ``stop`` or a failure, or until its items have taken ``budget`` seconds, here
    counted at ``here.wall`` an item.

    Returns:
        How many items ran from ``start`` on, and their wall and CPU seconds in all; or
        ``None`` when nothing is given (the clocks time them).
    """
    given = _given
    if given is None or given.here is None:
        return None
    wall, cpu = given.here.wall, given.here.cpu
    end, count = start, 1
    while end < stop:
        end = min(end + count, stop)
        if (end - start) * wall > budget:
            break
        count *= growth
    done = run_timed(fn, items, outcomes, end, budget=math.inf, growth=growth, start=start) - start
    return done, done * wall, done * cpu


def timed_call(wall: float, cpu: float) -> tuple[float, float]:
    """A call timed in one thread: ``wall`` and ``cpu`` as the clocks read them, or as ``here`` gives them."""
    given = _given
    if given is None or given.here is None:
        return wall, cpu
    return given.here.wall, given.here.cpu
