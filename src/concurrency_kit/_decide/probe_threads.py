"""A probe thread's side of the probe: it runs items in growing batches, and keeps a tally.

Each probe thread takes items from the front of the input (a ``Feed``), a batch at a
time, doubling the batch until one takes about ``ProbePolicy.batch_seconds``, and records
per batch the wall time and its own CPU time in its ``Slot``. The calling thread (the
GIL monitor, ``_decide.probe``) reads the slots: the finished batches' figures, and the
running batch's so far (another thread's CPU clock, where the platform has one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._backends.outcomes import Feed, run_span

__all__ = ["Slot", "Tally", "thread_clock", "work"]

#: Another thread's CPU clock (``None`` where the platform has none): the CPU time of a
#: batch still running.
thread_clock = getattr(time, "pthread_getcpuclockid", None)


class Tally(NamedTuple):
    """A probe thread's figures: its finished batches', then its running batch's so far."""

    wall: float
    cpu: float
    items: int
    running_wall: float
    running_cpu: float
    running: int


class Slot:
    """One probe thread's running tally; updated under its lock."""

    __slots__ = ("busy", "c0", "cpu", "ident", "items", "live", "lock", "t0", "wall")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ident = 0
        self.live = False
        self.busy = 0  # items in the batch now running
        self.t0 = self.c0 = 0.0
        self.wall = self.cpu = 0.0
        self.items = 0

    def snapshot(self, now: float) -> Tally:
        """The figures so far, the running batch's up to ``now``."""
        with self.lock:
            wall = cpu = 0.0
            if self.busy:
                wall = now - self.t0
                if thread_clock is not None and self.live:
                    cpu = time.clock_gettime(thread_clock(self.ident)) - self.c0
            return Tally(self.wall, self.cpu, self.items, wall, cpu, self.busy)


def work(  # noqa: PLR0913, PLR0917 - the probe thread's whole state, by name
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    feed: Feed,
    slot: Slot,
    wake: threading.Event,
    window_end: float,
    batch_seconds: float,
    hold: threading.Lock,
) -> None:
    """A probe thread: run batches of ``items`` taken from ``feed``, keeping their figures in ``slot``.

    No new batch starts past ``window_end`` (a ``time.perf_counter()`` value) or while
    the monitor holds ``hold``; ``wake`` is set when the thread ends.
    """
    with slot.lock:
        slot.ident = threading.get_ident()
        slot.live = True
    count = 1
    try:
        # Past the longest window no new batch starts, even before the monitor (which may
        # wait long for the GIL behind two busy threads) has stopped the feed; nor while
        # the monitor holds ``hold``.
        while True:
            with hold:
                span = feed.take(count) if time.perf_counter() < window_end else range(0)
            if not span:
                break
            with slot.lock:
                slot.busy = len(span)
                slot.t0 = time.perf_counter()
                slot.c0 = time.thread_time()
            going = run_span(fn, items, feed, span, check_each=False)  # batches are short
            t1, c1 = time.perf_counter(), time.thread_time()
            with slot.lock:
                wall = t1 - slot.t0
                slot.wall += wall
                slot.cpu += c1 - slot.c0
                slot.items += len(span)
                slot.busy = 0
            per_item = wall / len(span)
            count = max(1, min(count * 2, int(batch_seconds / per_item))) if per_item > 0 else count * 2
            if not going:
                break
            # No wake-up per batch: it would cut the monitor's tick short and spoil its GIL sample.
    finally:
        with slot.lock:
            slot.live = False
            slot.busy = 0
        wake.set()
