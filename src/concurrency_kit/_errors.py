"""The errors that concurrency_kit raises.

Every error of the library derives from :class:`ConcurrencyKitError`; leaves also
derive from the standard-library error a caller would already catch, so code written
against ``concurrent.futures`` keeps working::

    Exception
     ├── ConcurrencyKitError
     │    ├── UnpicklableTaskError (also TypeError)
     │    └── WorkerCrashedError (also concurrent.futures.process.BrokenProcessPool)
     └── TimeoutError (builtin: a call ran past its ``timeout``)

``WorkerCrashedError`` lives in ``_crash.py`` and is imported on first use, since its
stdlib base pulls in :mod:`multiprocessing`.

An exception raised by the user's ``fn`` is never wrapped: it reaches the caller with
its own type. In process mode it carries the worker's formatted traceback as
``__cause__``, as :mod:`concurrent.futures` does.
"""

from __future__ import annotations

__all__ = ["ConcurrencyKitError", "UnpicklableTaskError"]


class ConcurrencyKitError(Exception):
    """Root of every error that concurrency_kit itself raises."""


class UnpicklableTaskError(ConcurrencyKitError, TypeError):
    """The function or an item cannot be sent to a worker process.

    Raised when ``mode="process"`` is forced with something :mod:`pickle` cannot
    serialise by reference (a lambda, a closure, a function defined in an interactive
    session, an open file as an item). ``mode="auto"`` never raises it: it falls back to
    threads or a plain loop and says so in the plan's reason.
    """


# Shown as concurrency_kit.<Name> in tracebacks (and pickled by that public path).
for _error in (ConcurrencyKitError, UnpicklableTaskError):
    _error.__module__ = "concurrency_kit"
