"""A value in force: a default, or the one a block sets (the seam tests use instead of patching constants)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from contextvars import ContextVar
from typing import Generic, TypeVar, final

__all__ = ["InForce"]

T = TypeVar("T")


@final
class InForce(Generic[T]):
    """The value in force: that of the innermost ``using`` block around the caller, else ``default()``.

    The scope is a ``contextvars`` one, as [`use_executor`][concurrency_kit.use_executor]'s: it
    covers this thread and what is started in a copy of its context.
    """

    def __init__(self, name: str, default: Callable[[], T]) -> None:
        self._set: ContextVar[T | None] = ContextVar(f"concurrency_kit.{name}", default=None)
        self._default = default

    def get(self) -> T:
        """The value in force here."""
        value = self._set.get()
        return self._default() if value is None else value

    @contextlib.contextmanager
    def using(self, value: T) -> Generator[T, None, None]:
        """Have ``value`` in force inside the block (blocks nest: the innermost wins)."""
        token = self._set.set(value)
        try:
            yield value
        finally:
            self._set.reset(token)
