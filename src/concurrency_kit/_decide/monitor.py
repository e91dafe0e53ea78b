"""The probe's GIL monitor: the calling thread's side of the probe, its policy, and the figures it reads.

While probe threads run the first items (``probe_threads.py``), the calling thread
sleeps a tick at a time and notes how late it wakes (a thread holding the GIL makes it
late by up to the switch interval), and, while two probe threads run items, how many
CPUs they keep busy between them. ``Monitor.measure`` turns what it saw into a
``Measurement``; ``ProbePolicy`` holds the windows and thresholds it goes by.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import final

import attrs

from .._core.cpu import gil_enabled
from .._core.in_force import InForce
from .classify import READING, decisive
from .probe_threads import Slot, thread_clock

__all__ = ["PROBING", "Measurement", "Monitor", "ProbePolicy"]


@final
@attrs.frozen
class ProbePolicy:
    """The probe's windows and thresholds."""

    #: Threads the probe runs items in: two, so I/O already overlaps while it is measured.
    threads: int = 2
    #: The probe watches at least this long before deciding (unless the input runs out) ...
    min_window: float = 0.010
    #: ... and collects at least this many GIL samples ...
    min_samples: int = 4
    #: ... unless the caller says sooner that what it has is enough (it may know the task
    #: from an earlier call), which it is asked from this much on ...
    quick_window: float = 0.002
    #: ... or, once it has that many GIL samples, none late, sooner when the items plainly
    #: wait: their CPU share so far is below this (they compute a tenth of the time or less) ...
    plain_wait_share: float = 0.1
    #: ... but never watches longer than this before deciding on what it has ...
    max_window: float = 0.050
    #: ... or this many late wake-ups: the GIL is plainly held.
    late_enough: int = 2
    #: The monitor's tick.
    tick: float = 0.001
    #: The CPU time of the probe threads is read off ticks during which both ran items, of
    #: at least this many seconds in all (two ticks): fewer leave the reading to chance.
    #: The median tick counts, so that a few ticks with the CPUs busy elsewhere do not.
    min_pair_seconds: float = 0.002
    #: The monitor's tick while it waits for running items to settle a decision.
    settle_tick: float = 0.005
    #: Remaining work below this many seconds is not worth a pool: stop probing at once.
    trivial_seconds: float = 0.002
    #: A probe batch grows until it takes about this long (keeps per-item overhead low).
    batch_seconds: float = 0.001


_DEFAULT_PROBING = ProbePolicy()
#: The probe's policy in force (tests set another for a block with ``PROBING.using``).
PROBING: InForce[ProbePolicy] = InForce("probe_policy", lambda: _DEFAULT_PROBING)


@final
@attrs.frozen
class Measurement:
    """What the probe saw while it ran the first items.

    Attributes:
        items: items the probe took (finished or still running in its threads).
        completed: items finished when the probe decided.
        seconds: how long the probe watched.
        item_wall: mean wall seconds an item spent in ``fn``.
        item_cpu: mean CPU seconds an item spent in ``fn``.
        cpu_share: CPU time over time spent in ``fn`` (0: waiting, 1: computing); while
            items still run, that of the finished ones where there are any.
        gil_share: share of monitor wake-ups delayed by a GIL holder, or ``None``
            when there were too few samples to tell.
        exact: ``False`` when items were still running, so per-item figures are lower
            bounds.
        parallelism: the probe threads' CPU seconds per second while both ran items
            (about 1 when they took turns for the GIL, up to 2 when it was free and two
            CPUs were), or ``None`` when they did not run side by side long enough to tell.
        in_pool: the item was measured in a worker process (its CPU time unknown:
            ``item_cpu`` and ``cpu_share`` then assume it computed).
    """

    items: int
    completed: int
    seconds: float
    item_wall: float
    item_cpu: float
    cpu_share: float
    gil_share: float | None
    exact: bool
    parallelism: float | None = None
    in_pool: bool = False


class Monitor:
    """The calling thread's side of the probe: GIL samples and the figures so far."""

    def __init__(self, slots: list[Slot], policy: ProbePolicy, *, gil_held: bool | None = None) -> None:
        self.slots, self.policy = slots, policy
        #: How every GIL sample reads, where a test gave it (_backends.given); else the lateness says.
        self.gil_held = gil_held
        self.start = time.perf_counter()
        self.samples = self.late = 0
        #: Whether there is a GIL to read: without one (free-threaded CPython) a tick
        #: still counts as a sample (the window, the second thread and the I/O check go
        #: by them) but never as late, and the measurement has no GIL share.
        self.gil = gil_enabled()
        #: Per tick during which both probe threads ran items: their CPU seconds per second,
        #: and those ticks' wall time in all ...
        self.pair_rates: list[float] = []
        self.pair_wall = 0.0
        #: ... and the same of the ticks during which both were past their first item: a
        #: function's first run in a process is often not like the others (it imports,
        #: fills caches, sets a library up, sometimes under a lock of its own, so that two
        #: threads take turns even where the GIL is free).
        self.warm_rates: list[float] = []
        self.warm_wall = 0.0

    def tick(self, wake: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds``; count a GIL sample if items ran throughout. True if late.

        Throughout means items were running both when the wait began and after it: a
        probe thread that ran out of items meanwhile may have left the GIL free for
        reasons that say nothing about the items. A tick during which both probe
        threads ran items also counts their CPU time (see ``Measurement.parallelism``).
        """
        busy = any(slot.busy for slot in self.slots)
        interval, late_fraction = sys.getswitchinterval(), READING.get().late_fraction
        pair = self._pair_clock()
        began = time.perf_counter()
        if wake.wait(seconds) or not busy:
            return False
        ended = time.perf_counter()
        lateness = ended - began - seconds
        if pair is not None and (after := self._pair_clock()) is not None:
            self._count_pair(after[0] - pair[0], ended - began, warm=pair[1])
        if not any(slot.busy for slot in self.slots):
            return False
        self.samples += 1
        if not self.gil:
            return False
        # The interval may change meanwhile (a pool starting lowers it): a GIL holder
        # delays the wake-up by the shorter of the two at least.
        late = lateness > max(0.0005, late_fraction * min(interval, sys.getswitchinterval()))
        if late if self.gil_held is None else self.gil_held:
            self.late += 1
            return True
        return False

    def _pair_clock(self) -> tuple[float, bool] | None:
        """The probe threads' CPU time so far, when there are two and both are running items; else ``None``.

        Also: whether both are past their first item. The GIL monitor alone is fooled by
        C code that keeps the GIL in calls shorter than its lateness threshold and lets
        it go between them (a system call): it then wakes nearly on time. Two threads
        that take turns for the GIL cannot compute more than one CPU's worth between
        them, whatever the monitor sees.
        """
        if thread_clock is None or len(self.slots) < 2:
            return None
        total, warm = 0.0, True
        for slot in self.slots:
            with slot.lock:
                if not (slot.live and slot.busy):
                    return None
                total += time.clock_gettime(thread_clock(slot.ident))
                warm = warm and slot.items > 0
        return total, warm

    def _count_pair(self, cpu: float, wall: float, *, warm: bool) -> None:
        """Count a tick of ``wall`` seconds during which both probe threads ran items, computing ``cpu`` seconds."""
        self.pair_wall += wall
        self.pair_rates.append(cpu / wall)
        if warm:
            self.warm_wall += wall
            self.warm_rates.append(cpu / wall)

    def parallelism(self) -> float | None:
        """The probe threads' CPUs busy while both ran items: past their first items where that was read long enough.

        ``None`` where they did not run side by side long enough to tell.
        """
        least = self.policy.min_pair_seconds
        if self.warm_wall >= least:
            return _median(self.warm_rates)
        return _median(self.pair_rates) if self.pair_wall >= least else None

    def in_doubt(self, m: Measurement) -> bool:
        """Whether the figures so far may yet name computing items GIL-free, once both threads are warm.

        The items compute, and the GIL samples and the threads' parallelism so far are
        not decisive (``classify.decisive``: the GIL mostly free, yet two threads not
        seen computing side by side), with no tick yet past their first items: that
        reading alone may be a first run's (see ``warm_rates``). Two threads that compute side by side
        are the only proof that the GIL was let go; a first run that takes turns under
        a lock of its own must not hide it.
        """
        if not self.gil or self.warm_wall >= self.policy.min_pair_seconds or len(self.slots) < 2:
            return False
        computing = m.cpu_share >= READING.get().compute_share
        return computing and m.gil_share is not None and not decisive(m.gil_share, m.parallelism)

    def enough_samples(self) -> bool:
        """Whether the monitor has the GIL samples a decision needs, or plainly saw the GIL held."""
        return self.samples >= self.policy.min_samples or self.late >= self.policy.late_enough

    def plainly_waiting(self, taken: int) -> bool:
        """Whether enough GIL samples, none late, and the CPU share say the items wait.

        Only where the CPU time of a running item can be read: else a computing item
        still running would look as if it waited.
        """
        if thread_clock is None or self.samples < self.policy.min_samples or self.late:
            return False
        return self.measure(taken).cpu_share < self.policy.plain_wait_share

    def measure(self, taken: int, now: float | None = None) -> Measurement:
        """The figures of the ``taken`` items, running ones up to ``now`` (default: the clock's now)."""
        now = time.perf_counter() if now is None else now
        tallies = [slot.snapshot(now) for slot in self.slots]
        done_wall = sum(t.wall for t in tallies)
        done_cpu = min(done_wall, sum(t.cpu for t in tallies))
        completed = sum(t.items for t in tallies)
        wall = done_wall + sum(t.running_wall for t in tallies)
        cpu = min(wall, done_cpu + sum(t.running_cpu for t in tallies))
        running = sum(t.running for t in tallies)
        counted = max(1, completed + running)
        # A running item's share is that of the phase it is in (one that computed first
        # shows a share falling as it waits): once some have finished, theirs is the share.
        share_cpu, share_wall = (done_cpu, done_wall) if completed and running else (cpu, wall)
        return Measurement(
            items=taken,
            completed=completed,
            seconds=now - self.start,
            item_wall=wall / counted,
            item_cpu=cpu / counted,
            cpu_share=share_cpu / share_wall if share_wall > 0 else 0.0,
            gil_share=self.late / self.samples if self.samples >= 2 and self.gil else None,
            exact=running == 0,
            parallelism=self.parallelism(),
        )


def _median(values: list[float]) -> float:
    """The median of ``values`` (not empty); ``statistics`` costs a cold call ~13 ms to import."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
