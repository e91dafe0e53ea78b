"""What the decision's steps measure themselves, and their policy numbers.

Items timed in the calling thread (spans that grow, the clock read between them), a
first item timed in a worker, and an earlier call's figures as the cost model takes them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, final

import attrs

from .._backends.given import timed_here
from .._backends.outcomes import Outcomes, run_timed
from .memory import Memo
from .probe import Measurement

__all__ = ["POLICY", "DecisionPolicy", "as_measured", "in_pool", "joined", "measure_inline", "one_thread_measurement"]


def joined(a: Measurement, b: Measurement) -> Measurement:
    """Two inline measurements of consecutive items, as one."""
    return one_thread_measurement(a.items + b.items, a.seconds + b.seconds, a.item_cpu * a.items + b.item_cpu * b.items)


def measure_inline(  # noqa: PLR0913 - the items, and when to stop
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    outcomes: Outcomes,
    stop: int,
    budget: float = math.inf,
    *,
    start: int = 0,
) -> Measurement:
    """Run items from ``start`` on in the calling thread, timing them.

    Stops before ``stop``, after a failure, or once ``budget`` seconds have passed. The
    items run in spans of 1, 4, 16 … items, with the clock read between spans: a check of
    items that turned out slow costs one item, and tiny ones run as fast as in a loop.
    The measurement counts the items from ``start`` on.
    """
    if (given := timed_here(fn, items, outcomes, stop, budget, start=start, growth=POLICY.span_growth)) is not None:
        return one_thread_measurement(*given)  # a test's figures (_backends.given)
    # Nothing else runs this call's items yet: no feed is needed to hand them out.
    clock = time.perf_counter
    t0, c0 = clock(), time.thread_time()
    done = run_timed(fn, items, outcomes, stop, budget=budget, growth=POLICY.span_growth, start=start) - start
    return one_thread_measurement(done, clock() - t0, time.thread_time() - c0)


def one_thread_measurement(items: int, wall: float, cpu: float) -> Measurement:
    """What ``items`` items run one after another in one thread measure, in ``wall`` seconds and ``cpu`` of CPU."""
    return Measurement(
        items=items,
        completed=items,
        seconds=wall,
        item_wall=wall / items,
        item_cpu=min(cpu, wall) / items,
        cpu_share=min(1.0, cpu / wall) if wall > 0 else 0.0,
        gil_share=None,
        exact=True,
    )


@final
@attrs.frozen
class DecisionPolicy:
    """The steps' policy numbers."""

    #: Each span of the calling thread's timed check is this many times the last.
    span_growth: int = 4
    #: When an earlier call says items are tiny, this much of the new call's work is run
    #: in the calling thread first, timed, to check the estimate before the loop goes on.
    inline_check_seconds: float = 0.0001
    #: Items that now take this many times longer than remembered (plus 20 µs) have
    #: drifted: the function is measured afresh, its kind too.
    drift: float = 4.0
    #: An input of at least this many times the most threads an I/O-bound call may get
    #: (``max_io_workers``, else 512) is checked in the calling thread first, as
    #: remembered tiny items are: starting probe threads costs more than the whole loop
    #: when the items are tiny, and a slow first item delays a call that long by at most
    #: a tenth (even I/O items, a thread each, take that many rounds).
    long_input: int = 10
    #: Through an executor, the first items run in the calling thread for this long (at
    #: least one item), timed, to size the executor's tasks.
    executor_check_seconds: float = 0.002


#: The steps' policy in force.
POLICY = DecisionPolicy()


def as_measured(memo: Memo, scale: float = 1.0) -> Measurement:
    """What an earlier call measured, as the cost model takes it (exact, one item), ``scale`` times as long."""
    seconds = memo.item_seconds * scale
    cpu = seconds if memo.item_cpu is None else memo.item_cpu * scale
    return Measurement(
        items=0,
        completed=1,
        seconds=0.0,
        item_wall=seconds,
        item_cpu=cpu,
        cpu_share=min(1.0, cpu / seconds) if seconds > 0 else 1.0,
        gil_share=None,
        exact=True,
    )


def in_pool(seconds: float, *, done: bool) -> Measurement:
    """What measuring the first item in a worker found: it took ``seconds`` there, or is still running then."""
    return Measurement(
        items=1,
        completed=int(done),
        seconds=seconds,
        item_wall=seconds,
        item_cpu=seconds,
        cpu_share=1.0,
        gil_share=None,
        exact=done,
        in_pool=True,
    )
