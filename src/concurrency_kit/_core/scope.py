"""``use_executor``: an executor for every auto call in a block, without passing it."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from concurrent.futures import Executor
from contextvars import ContextVar
from typing import TypeVar

__all__ = ["current_executor", "use_executor"]

E = TypeVar("E", bound=Executor)

_executor: ContextVar[Executor | None] = ContextVar("concurrency_kit.executor", default=None)


@contextlib.contextmanager
def use_executor(executor: E) -> Generator[E, None, None]:
    """Run every auto call inside the block on ``executor``, as if each passed ``executor=executor``.

    The scope is a ``contextvars`` one: it covers this thread, and the asyncio tasks
    and ``contextvars.copy_context().run`` calls started from it (a thread started
    inside the block sees it only when started in a copy of the context, as
    ``asyncio.to_thread`` does). Calls with an explicit ``mode=`` other than ``"auto"``
    run as they say; an ``executor=`` argument wins over the block's. Blocks nest: the
    innermost wins. The executor is not shut down at the end of the block (nor ever by
    concurrency_kit).

    Args:
        executor: any ``concurrent.futures.Executor`` (a Dask client's
            ``get_executor()``, loky's ``get_reusable_executor()``, a pool of your own).

    Yields:
        ``executor``.

    Raises:
        TypeError: ``executor`` has no ``submit`` method.
    """
    check_executor(executor)
    token = _executor.set(executor)
    try:
        yield executor
    finally:
        _executor.reset(token)


def current_executor() -> Executor | None:
    """The executor of the innermost [`use_executor`][concurrency_kit.use_executor] block around this call, if any."""
    return _executor.get()


def check_executor(executor: object) -> None:
    """Raise ``TypeError`` unless ``executor`` can take tasks (an ``Executor``, or anything with ``submit``)."""
    if not isinstance(executor, Executor) and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
