"""Functions for tests whose worker processes are replaced again and again.

Each fresh worker imports the module of the function it runs: ``helpers`` imports
pytest (a tenth of a second or more), this module only ``select``.
"""

from __future__ import annotations

import select


def every_fifth_hangs(index: int) -> int:
    """Every fifth item waits 30 s (a task timeout stops it long before); the others return at once."""
    if index % 5 == 0:
        select.select([], [], [], 30)
    return index
