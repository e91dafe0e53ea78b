"""The error of a worker process that died (kept apart: it imports multiprocessing)."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

from .errors import ConcurrencyKitError

__all__ = ["WorkerCrashedError"]


class WorkerCrashedError(ConcurrencyKitError, BrokenProcessPool):
    """A worker process died (``os._exit``, a signal, a segfault) while running items.

    Also a ``concurrent.futures.process.BrokenProcessPool``, so code written for
    ``concurrent.futures`` still catches it. A fresh worker takes the dead one's
    place; the next call works.

    Attributes:
        indices: the indices of the items the worker was running when it died: the
            one it noted running, where it did (the library's own process pool), else
            every item that was running in its pool (one of them killed it).
    """

    def __init__(self, message: str, indices: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.indices = indices

    def __reduce__(self) -> tuple[type[WorkerCrashedError], tuple[str, tuple[int, ...]]]:
        return type(self), (str(self), self.indices)


WorkerCrashedError.__module__ = "concurrency_kit"  # the public path, in tracebacks and pickles
