"""A stage's share of a pipeline's workers: how many of its workers it may keep busy now, moved while it runs."""

from __future__ import annotations

from typing import final

__all__ = ["Share"]


@final
class Share:
    """How many workers a call may keep busy (``None``: as many as it was planned with).

    A pipeline's budget (``_pipeline/budget.py``) sets it while the call runs; the run
    engine reads it each time it would hand a unit on (``_run/sharing.py``). One writer,
    one reader, an int: no lock.
    """

    __slots__ = ("workers",)

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers
