"""A unit's future for a runner whose units run in the engine's own thread (the event loop's)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import final

from .unit import Done

__all__ = ["LoopFuture"]

#: A ``LoopFuture``'s states, in order.
_PENDING, _RUNNING, _SET, _CANCELLED = range(4)


@final
class LoopFuture(Future[Done]):
    """A unit's future, set and read in the loop's thread only: a ``Future`` without its lock.

    ``concurrent.futures.Future`` builds a ``Condition`` and takes it in every method, so
    that threads may wait for it; the engine and the lanes share one thread, and nobody
    waits: the engine is told by the done callback. Half the cost of a unit of one
    quick coroutine went to that lock. ``result`` and ``exception`` never wait: they are
    read once the future is done.
    """

    def __init__(self) -> None:
        self._stage = _PENDING
        self._value: Done | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Future[Done]], object]] = []

    def done(self) -> bool:
        """Whether it is set or cancelled."""
        return self._stage >= _SET

    def cancelled(self) -> bool:
        """Whether it was cancelled before it ran."""
        return self._stage == _CANCELLED

    def running(self) -> bool:
        """Whether its unit's first item was taken."""
        return self._stage == _RUNNING

    def cancel(self) -> bool:
        """Cancel it unless its unit started: whether it is cancelled."""
        if self._stage == _PENDING:
            self._finish(_CANCELLED)
        return self._stage == _CANCELLED

    def set_running_or_notify_cancel(self) -> bool:
        """Mark its unit started; ``False`` if it was cancelled."""
        if self._stage == _CANCELLED:
            return False
        self._stage = _RUNNING
        return True

    def set_result(self, result: Done) -> None:
        """Its unit's results."""
        self._value = result
        self._finish(_SET)

    def set_exception(self, exception: BaseException | None) -> None:
        """Its unit's error."""
        self._error = exception
        self._finish(_SET)

    def result(self, timeout: float | None = None) -> Done:  # noqa: ARG002 - never waits
        """Its unit's results (it is done).

        Raises:
            CancelledError: it was cancelled.
            BaseException: the error it was set with.
        """
        if self._stage == _CANCELLED:
            raise CancelledError
        if self._error is not None:
            raise self._error
        assert self._value is not None, "a LoopFuture is read once done"
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:  # noqa: ARG002 - never waits
        """The error it was set with (``None``: results).

        Raises:
            CancelledError: it was cancelled.
        """
        if self._stage == _CANCELLED:
            raise CancelledError
        return self._error

    def add_done_callback(self, fn: Callable[[Future[Done]], object]) -> None:
        """Call ``fn(self)`` once it is done (at once, if it is)."""
        if self._stage >= _SET:
            fn(self)
        else:
            self._callbacks.append(fn)

    def _finish(self, state: int) -> None:
        self._stage = state
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
