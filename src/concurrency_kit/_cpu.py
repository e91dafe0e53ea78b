"""How many CPUs this process may use."""

from __future__ import annotations

import os

__all__ = ["usable_cpus"]


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
