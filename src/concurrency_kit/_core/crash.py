"""The error of a worker process that died (kept apart: it imports multiprocessing)."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

from .errors import ConcurrencyKitError

__all__ = ["WorkerCrashedError"]


class WorkerCrashedError(ConcurrencyKitError, BrokenProcessPool):
    """A worker process died (``os._exit``, a signal, a segfault) while running items.

    Also a ``concurrent.futures.process.BrokenProcessPool``, so code written for
    ``concurrent.futures`` still catches it. The pool is replaced; the next call
    works.

    Attributes:
        indices: the indices of the items that were running in the dead worker's
            pool when it died (one of them killed it).
    """

    def __init__(self, message: str, indices: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.indices = indices

    def __reduce__(self) -> tuple[type[WorkerCrashedError], tuple[str, tuple[int, ...]]]:
        return type(self), (str(self), self.indices)


WorkerCrashedError.__module__ = "concurrency_kit"  # the public path, in tracebacks and pickles
