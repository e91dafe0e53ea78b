"""A call's retries, as one value: how many, for which failures, after how long.

``run_parallel(fn, items, retries=3, retry_on=ConnectionError, retry_delay=backoff(0.1))``
runs an item whose call fails with a ``ConnectionError`` up to three more times, waiting
0–0.1 s, 0–0.2 s, then 0–0.4 s before each. The run engine carries it out
(``_run/retrying.py``); this module checks the options and works out the waits.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import cast, final

import attrs

__all__ = ["Backoff", "RetryDelay", "RetryOn", "RetryPolicy", "backoff", "retry_policy"]

#: What ``retry_on=`` takes: an exception type, a tuple of them, or a predicate ``exc -> bool``.
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
#: What ``retry_delay=`` takes: seconds, or a callable ``attempt -> seconds`` (attempt 1: the first retry).
RetryDelay = float | Callable[[int], float]


@final
@attrs.frozen
class Backoff:
    """Exponential waits between retries (made by [`backoff`][concurrency_kit.backoff]).

    Retry ``n`` waits ``min(max, base × factor^(n−1))`` seconds; with ``jitter``, a
    uniformly random time between 0 and that ("full jitter": retries of many items
    that failed together do not come back together).
    """

    base: float
    factor: float = 2.0
    max: float = 60.0
    jitter: bool = True

    def __call__(self, attempt: int) -> float:
        """The seconds to wait before retry ``attempt`` (1: the first)."""
        ceiling = min(self.max, self.base * self.factor ** (attempt - 1))
        return random.uniform(0.0, ceiling) if self.jitter else ceiling


def backoff(base: float, factor: float = 2.0, max: float = 60.0, *, jitter: bool = True) -> Backoff:
    """Exponential waits for ``retry_delay=``: ``min(max, base × factor^(n−1))`` before retry ``n``.

    Args:
        base: the first retry's wait, in seconds.
        factor: how much longer each wait is than the one before (at least 1).
        max: no wait is longer.
        jitter: wait a uniformly random time between 0 and that (full jitter).

    Raises:
        TypeError: a figure is not a number.
        ValueError: ``base`` or ``max`` is negative or not finite, or ``factor`` is below 1.
    """
    for name, value in (("base", base), ("factor", factor), ("max", max)):
        _check_seconds(f"backoff {name}", value)
    if factor < 1:
        raise ValueError(f"backoff factor must be at least 1, got {factor}")
    return Backoff(float(base), float(factor), float(max), jitter=bool(jitter))


@final
@attrs.frozen
class RetryPolicy:
    """A call's retries, checked (``retries`` at least 1).

    Attributes:
        retries: how many more times a failed item may run.
        retry_on: which failures count (see ``RetryOn``).
        retry_delay: the wait before each retry (see ``RetryDelay``).
    """

    retries: int
    retry_on: RetryOn = Exception
    retry_delay: RetryDelay = 0.0

    def delay(self, attempt: int) -> float:
        """The seconds to wait before retry ``attempt`` (1: the first).

        Raises:
            ValueError: a ``retry_delay`` callable gave a negative or non-finite wait.
        """
        wait = self.retry_delay(attempt) if callable(self.retry_delay) else self.retry_delay
        return _check_seconds("retry_delay", wait)


def retry_policy(retries: object, retry_on: object, retry_delay: object) -> RetryPolicy | None:
    """A call's retries, checked; ``None`` for none (``retries=0``).

    Raises:
        TypeError: ``retries`` is not an int, ``retry_on`` is neither an exception
            type, a tuple of them, nor a callable, or ``retry_delay`` is neither a
            number nor a callable.
        ValueError: ``retries`` is negative, ``retry_on`` is an empty tuple, or
            ``retry_delay`` is negative or not finite.
    """
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"retries must be an int, got {type(retries).__name__} {retries!r}")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, got {retries}")
    _check_retry_on(retry_on)
    if not callable(retry_delay):
        _check_seconds("retry_delay", retry_delay)
    if retries == 0:
        return None
    return RetryPolicy(retries, retry_on, retry_delay)  # type: ignore[arg-type]


def _check_retry_on(retry_on: object) -> None:
    """Check ``retry_on=``: an exception type, a non-empty tuple of them, or a predicate."""
    if isinstance(retry_on, tuple):
        kinds = cast("tuple[object, ...]", retry_on)
        if not kinds:
            raise ValueError("retry_on must name at least one exception type, got ()")
        for kind in kinds:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(f"retry_on's tuple must hold exception types only, got {kind!r}")
    elif isinstance(retry_on, type):
        if not issubclass(retry_on, BaseException):
            raise TypeError(f"retry_on must be an exception type, got the class {retry_on.__name__}")
    elif not callable(retry_on):
        raise TypeError(
            "retry_on must be an exception type, a tuple of them, or a callable exc -> bool, "
            f"got {type(retry_on).__name__} {retry_on!r}"
        )


def _check_seconds(name: str, value: object) -> float:
    """``value`` as seconds: a finite number, at least 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds, at least 0, got {value}")
    return float(value)
