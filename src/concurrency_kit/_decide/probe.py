"""The measuring probe: run the first items in threads and watch how they behave.

Up to two probe threads take items from the front of the input, in growing batches, and
record per batch the wall time and their own CPU time (``_decide.probe_threads``; the
second joins once the GIL was seen free: items holding it are probed one at a time).
Meanwhile the calling thread acts as a GIL monitor (``monitor.py``, the method of
gil_load and gilknocker): it sleeps a tick at a
time and notes how late it wakes. A thread that holds the GIL while running bytecode
makes the monitor wait for the switch interval (``sys.getswitchinterval()``, 5 ms); a
thread waiting on I/O or computing in C with the GIL released lets it wake on time.

The probe stops once it has a clear picture (a minimum window and a few GIL samples),
as soon as the remaining work is too small to be worth a pool, or when the input runs
out. Items already taken keep running to completion in the probe threads; their
results stay in the call's ``Outcomes``, so nothing is
run twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from typing import Any, Protocol, final

from .._backends.given import given_now
from .._backends.outcomes import Feed, Outcomes
from .given_probe import probe_given
from .monitor import PROBING, Measurement, Monitor, ProbePolicy
from .probe_threads import Slot, work

__all__ = ["PROBING", "Measurement", "ProbePolicy", "ProbeRun", "probe"]


class Watcher(Protocol):
    """Where a :class:`ProbeRun` reads its items' figures: the monitor (or, in a test, given figures)."""

    #: When the probe began (``time.perf_counter()``).
    start: float

    def measure(self, taken: int) -> Measurement:
        """The figures of the ``taken`` items so far."""
        ...


@final
class ProbeRun:
    """A finished measurement, and the probe threads that may still be running items."""

    def __init__(self, measurement: Measurement, resume_at: int, futures: list[Future[None]], monitor: Watcher) -> None:
        #: What was measured.
        self.measurement = measurement
        #: The first item the probe did not take: the rest of the call starts here.
        self.resume_at = resume_at
        self._futures = futures
        self._monitor = monitor

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the items the probe took; re-raise what escaped a probe thread.

        Returns:
            Whether the probe threads are done.
        """
        done, pending = wait(self._futures, timeout=timeout)
        for future in done:
            future.result()
        return not pending

    @property
    def threads(self) -> tuple[Future[None], ...]:
        """The probe threads, as futures done when they are (whatever their items raised)."""
        return tuple(self._futures)

    @property
    def started(self) -> float:
        """When the probe began (``time.perf_counter()``)."""
        return self._monitor.start

    @property
    def first(self) -> int:
        """The first item the probe took."""
        return self.resume_at - self.measurement.items

    def final(self) -> Measurement:
        """The figures of every item the probe took, once ``join`` said they are done.

        Exact where ``measurement`` may have been a lower bound (items still running).
        """
        return self._monitor.measure(self.measurement.items)


def probe(  # noqa: PLR0913 - the probe's inputs and its hooks
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    outcomes: Outcomes,
    submit: Callable[..., Future[None]],
    *,
    on_gil_held: Callable[[], object] | None = None,
    settled: Callable[[Measurement], bool] | None = None,
    enough: Callable[[Measurement], bool] | None = None,
    threads: int | None = None,
    deadline: float | None = None,
    start: int = 0,
    policy: ProbePolicy | None = None,
) -> ProbeRun:
    """Run the first items of ``items`` in probe threads and measure them.

    Args:
        fn: the user's function.
        items: the whole input; the probe takes from the front.
        outcomes: where the probed items' results (or first failure) go.
        submit: starts a probe thread, as ``Executor.submit`` does.
        on_gil_held: called once, as soon as the monitor has seen the GIL held twice
            while more items remain (the caller may start a process pool meanwhile). The
            probe threads start no new batch while it runs.
        settled: asked, once the window is over, whether a measurement whose items
            are still running is enough to decide on. While it says no, the probe
            takes no new items but keeps watching the running ones, until they finish.
        enough: asked at every tick from ``ProbePolicy.quick_window`` on whether the figures so
            far are enough to decide on; yes ends the probe at once.
        threads: how many probe threads may run items (the second joins once the
            monitor has seen the GIL free while items ran); one when the items are
            known to hold the GIL, which a second thread would only take turns with,
            starving the monitor (default: the policy's ``threads``).
        deadline: a ``time.monotonic()`` value past which the probe gives up.
        start: the first item to take (those before it already ran).
        policy: the probe's windows and thresholds (default: those in force).

    In a test that gave the figures (``_backends.given``), the probe runs the items they name and
    reports them instead of watching.

    Returns:
        The measurement and where the rest of the call resumes.

    Raises:
        TimeoutError: the deadline passed while measuring (the items already taken
            finish in the background; nothing new starts).
    """
    policy, given = policy or PROBING.get(), given_now()
    threads = policy.threads if threads is None else threads
    if given is not None and given.probe is not None:
        return probe_given(
            given, fn, items, outcomes, submit, threads=threads, settled=settled, deadline=deadline, start=start
        )
    feed = Feed(outcomes, start, len(items))
    slots = [Slot() for _ in range(min(threads, len(items) - start))]
    watch = _Watch(fn, items, feed, submit, Monitor(slots, policy, gil_held=None if given is None else given.gil_held))
    resume_at = watch.run(deadline, enough, on_gil_held)
    return ProbeRun(watch.settle(resume_at, settled, deadline), resume_at, watch.futures, watch.monitor)


@final
class _Watch:
    """The calling thread's watch over the probe threads, in named steps.

    It starts the first probe thread, the second once the GIL was seen free, and stops
    watching once the figures are enough to decide on (or the items are done, or one
    failed); then, where items are still running, it settles their figures.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        feed: Feed,
        submit: Callable[..., Future[None]],
        monitor: Monitor,
    ) -> None:
        self.fn, self.items, self.feed, self.submit, self.monitor = fn, items, feed, submit, monitor
        self.policy, self.first = monitor.policy, feed.next
        self.wake = threading.Event()
        # Held while on_gil_held runs: the probe threads start no new batch meanwhile, so that
        # the hook (which pickles the function, and may import cloudpickle for it) does not
        # take turns for the GIL with items that hold it, a switch interval (5 ms) at a time.
        self.hold = threading.Lock()
        self.window_end = monitor.start + self.policy.max_window
        self.futures: list[Future[None]] = []
        # The second thread joins once a GIL sample (a tick at the earliest) found the GIL
        # free while the first ran items: work so small that one thread is through it by
        # then never pays for two threads contending, and items that hold the GIL are not
        # run two at a time, taking turns with each other and with the thread that starts a
        # process pool meanwhile.
        self.add_thread()

    def add_thread(self) -> None:
        """Start the next probe thread, on the next slot."""
        slot = self.monitor.slots[len(self.futures)]
        batch = self.policy.batch_seconds
        self.futures.append(
            self.submit(work, self.fn, self.items, self.feed, slot, self.wake, self.window_end, batch, self.hold)
        )

    def run(
        self,
        deadline: float | None,
        enough: Callable[[Measurement], bool] | None,
        on_gil_held: Callable[[], object] | None,
    ) -> int:
        """Watch the probe threads, a tick at a time, until the figures are enough to decide on.

        Then the feed stops: returns the first item no probe thread took.

        Raises:
            TimeoutError: the deadline passed.
        """
        monitor, feed, policy = self.monitor, self.feed, self.policy
        try:
            while not feed.outcomes.failed:
                _check(deadline)
                self.wake.clear()
                if self.threads_done():
                    break
                now = time.perf_counter()
                if self.little_left(now):
                    break  # too little left to be worth measuring, let alone a pool
                if len(self.futures) < len(monitor.slots) and monitor.samples > monitor.late and feed.remaining:
                    self.add_thread()
                if self.window_over(now, enough):
                    break
                if (
                    monitor.tick(self.wake, policy.tick)
                    and monitor.late == policy.late_enough
                    and on_gil_held is not None
                    and feed.remaining > 1
                ):
                    with self.hold:
                        on_gil_held()
        except BaseException:
            feed.stop()  # Ctrl-C in the monitor: the probe threads take nothing more
            raise
        return feed.stop()

    def threads_done(self) -> bool:
        """Whether the probe threads are done, and no other is to start."""
        all_started = len(self.futures) == len(self.monitor.slots)
        return all(f.done() for f in self.futures) and (all_started or not self.feed.remaining)

    def little_left(self, now: float) -> bool:
        """Whether the items left would take too little time, at the pace so far, to be worth measuring."""
        tallies = [slot.snapshot(now) for slot in self.monitor.slots]
        finished = sum(t.items for t in tallies)
        left = self.feed.remaining * sum(t.wall + t.running_wall for t in tallies) / max(finished, 1)
        return finished >= min(3, self.feed.stop_at - self.first) and left < self.policy.trivial_seconds

    def window_over(self, now: float, enough: Callable[[Measurement], bool] | None) -> bool:
        """Whether the figures so far are enough to decide on."""
        monitor, policy, taken = self.monitor, self.policy, self.feed.next - self.first
        watched = now - monitor.start
        return (
            (watched >= policy.min_window and monitor.enough_samples() and not monitor.in_doubt(monitor.measure(taken)))
            # I/O: every item waiting is time the rest of the input could overlap.
            or monitor.plainly_waiting(taken)
            or (enough is not None and watched >= policy.quick_window and enough(monitor.measure(taken)))
            # Decide on what there is, rather than keep the items in two threads.
            or watched >= policy.max_window
        )

    def settle(
        self, resume_at: int, settled: Callable[[Measurement], bool] | None, deadline: float | None
    ) -> Measurement:
        """The measurement of the items taken; while ``settled`` says it is not enough, watched on till it is.

        Raises:
            TimeoutError: the deadline passed.
        """
        monitor, outcomes = self.monitor, self.feed.outcomes
        measurement = monitor.measure(resume_at - self.first)
        while settled is not None and not measurement.exact and not outcomes.failed and not settled(measurement):
            _check(deadline)
            self.wake.clear()
            monitor.tick(self.wake, self.policy.settle_tick)
            measurement = monitor.measure(resume_at - self.first)
        return measurement


def _check(deadline: float | None) -> None:
    """Raise ``TimeoutError`` once ``deadline`` (a ``time.monotonic()`` value) has passed."""
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError  # the caller words it
