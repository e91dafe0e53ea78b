"""The errors that concurrency_kit raises.

Every error of the library derives from [`ConcurrencyKitError`][concurrency_kit.ConcurrencyKitError]; leaves also
derive from the standard-library error a caller would already catch, so code written
against ``concurrent.futures`` keeps working::

    Exception
     ├── ConcurrencyKitError
     │    ├── UnpicklableTaskError (also TypeError)
     │    │    └── MainGuardMissingError
     │    ├── WorkerCrashedError (also concurrent.futures.process.BrokenProcessPool)
     │    ├── TaskTimeoutError (also TimeoutError: an item ran past ``task_timeout``)
     │    └── WorkerInitError (a worker's ``initializer`` raised: its ``__cause__``)
     └── TimeoutError (builtin: a call ran past its ``timeout``)

``WorkerCrashedError`` lives in ``crash.py`` and is imported on first use, since its
stdlib base pulls in ``multiprocessing``.

An exception raised by the user's ``fn`` is never wrapped: it reaches the caller with
its own type. In process mode it carries the worker's formatted traceback as
``__cause__``, as ``concurrent.futures`` does.
"""

from __future__ import annotations

#: ``typing.TYPE_CHECKING``, without importing typing (worker processes import this module).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ConcurrencyKitError",
    "MainGuardMissingError",
    "TaskTimeoutError",
    "UnpicklableTaskError",
    "WorkerInitError",
    "task_timed_out",
]


class ConcurrencyKitError(Exception):
    """Root of every error that concurrency_kit itself raises."""


class UnpicklableTaskError(ConcurrencyKitError, TypeError):
    """The function or an item cannot be sent to a worker process.

    Raised when ``mode="process"`` is forced with something ``pickle`` cannot
    serialise by reference (a lambda, a closure, a function defined in an interactive
    session, an open file as an item). ``mode="auto"`` never raises it: it falls back to
    threads or a plain loop and says so in the plan's reason.
    """


class MainGuardMissingError(UnpicklableTaskError):
    """A task needs the main module in its worker processes, and the main module lacks its guard.

    Worker processes import the main module to find a function or an item class defined
    there; a script whose call is not under ``if __name__ == "__main__":`` would run
    again in each of them. Raised by ``mode="process"``; ``mode="auto"`` runs such a
    task in threads or a loop instead, and says why in the plan's reason.
    """


class TaskTimeoutError(ConcurrencyKitError, TimeoutError):
    """One item ran longer than the call's ``task_timeout`` (seconds from its start in a worker).

    The item is stopped where its mode can stop it (a worker process is killed, a
    coroutine cancelled; a thread cannot be stopped, and its item is abandoned), and the
    other items go on. Without ``return_exceptions`` the call raises it, noted with the
    item; with it, it stands in the item's place. Also a ``TimeoutError``.

    Attributes:
        index: the item's index in the input.
        seconds: the ``task_timeout`` it ran past.
    """

    def __init__(self, message: str, index: int = -1, seconds: float = 0.0) -> None:
        super().__init__(message)
        self.index, self.seconds = index, seconds

    def __reduce__(self) -> tuple[type[TaskTimeoutError], tuple[str, int, float]]:
        return type(self), (str(self), self.index, self.seconds)


def task_timed_out(seconds: float) -> TaskTimeoutError:
    """The error of an item stopped after ``seconds``, its ``task_timeout`` (the engine sets its ``index``)."""
    return TaskTimeoutError(f"the item ran longer than its task_timeout of {seconds:g} s", -1, seconds)


class WorkerInitError(ConcurrencyKitError):
    """A worker's ``initializer`` raised: the call stops, and the initializer's exception is the ``__cause__``.

    Never collected by ``return_exceptions`` and never retried: no item can run where
    its worker could not be set up. The next call starts afresh.
    """

    def __reduce__(self) -> tuple[Any, tuple[str, BaseException | None]]:
        return _init_error, (str(self), self.__cause__)


def _init_error(message: str, cause: BaseException | None) -> WorkerInitError:
    """A ``WorkerInitError`` rebuilt from a worker process, with its cause (which pickling alone drops)."""
    error = WorkerInitError(message)
    error.__cause__ = cause
    return error


# Shown as concurrency_kit.<Name> in tracebacks (and pickled by that public path).
for _error in (ConcurrencyKitError, UnpicklableTaskError, MainGuardMissingError, TaskTimeoutError, WorkerInitError):
    _error.__module__ = "concurrency_kit"
