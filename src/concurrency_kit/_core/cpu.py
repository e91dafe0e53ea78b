"""How many CPUs this process may use, and whether its threads can compute on them at once."""

from __future__ import annotations

import os
import sys
import time

__all__ = ["gil_enabled", "planning_cpus", "usable_cpus"]

#: The planner re-reads the affinity mask at most this often (seconds): it is a system
#: call, and a call on tiny items plans in tens of microseconds.
_REREAD_SECONDS = 1.0
_read: list[tuple[float, int]] = []  # (when, count) of the last reading


def usable_cpus() -> int:
    """Return the number of CPUs this process may run on.

    Uses the affinity mask (``os.sched_getaffinity``) where the platform has one, so a
    process pinned to two cores of a large machine counts two; otherwise
    ``os.cpu_count()``. Never less than 1.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        return max(1, len(getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def planning_cpus() -> int:
    """[`usable_cpus`][concurrency_kit.usable_cpus], as read at most ``_REREAD_SECONDS`` ago."""
    now = time.monotonic()
    if _read and now - _read[0][0] < _REREAD_SECONDS:
        return _read[0][1]
    count = usable_cpus()
    _read[:] = [(now, count)]
    return count


def gil_enabled() -> bool:
    """Whether this interpreter has a GIL: ``False`` on free-threaded CPython (3.13t+) running without one.

    Then bytecode runs in parallel in threads, and computing items need no processes.
    """
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())
