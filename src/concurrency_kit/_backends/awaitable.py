"""Results that are awaitables: a plain function that makes coroutines, found and reported.

A function that returns coroutines without being a coroutine function (a lambda or a
wrapper around one) is a coroutine function in disguise: its results would be
coroutines nobody awaits. Every result of a plain function is checked, in every mode,
and the first awaitable is a ``TypeError`` naming its item; every awaitable found is
closed, so none warns that it was never awaited. The error is the caller's, not
``fn``'s: ``return_exceptions=True`` does not collect it.

The check costs as little per result as Python allows (one C-level step where it can):

- a list of results (``run_parallel``, a stream's chunk) is checked at C speed
  (``first_awaitable``): the types of the results are read in one pass, and each
  distinct type is asked once whether its instances may be awaitable;
- a loop that yields results one at a time (the serial stream) takes them in runs of
  one type (``itertools.groupby``) and asks once a run (``may_await``); a loop that
  looks at each result anyway keeps the type so far (``settled_type``);
- a worker process cannot send an awaitable back: it sends an ``AwaitableResult``
  in its place, which the calling process finds as it finds any other.
"""

from __future__ import annotations

import reprlib
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from inspect import CO_ITERABLE_COROUTINE
from operator import countOf
from types import CoroutineType, GeneratorType
from typing import Any, Final

from .worker import AwaitableResult

__all__ = [
    "awaitable_result",
    "check_not_awaitable",
    "check_results",
    "close_awaitables",
    "cut_at_awaitable",
    "first_awaitable",
    "is_awaitable",
    "may_await",
    "settled_type",
    "until_awaitable",
]

#: Result types whose instances ``await`` never accepts, known without asking: most results.
_NEVER_AWAITABLE: Final = frozenset(
    {int, float, complex, bool, str, bytes, bytearray, type(None), tuple, list, dict, set, frozenset, object}
)


def may_await(kind: type) -> bool:
    """Whether an instance of ``kind`` may be awaitable (a generator is, when it is a generator-based coroutine)."""
    return kind not in _NEVER_AWAITABLE and (kind is GeneratorType or issubclass(kind, (CoroutineType, Awaitable)))


def settled_type(value: object) -> type | None:
    """``type(value)`` when no instance of it can be awaitable; ``None`` when each must be looked at.

    A loop that checks its results one by one keeps the type it was given and asks
    again only when a result's type differs: one identity test per result.
    """
    kind = type(value)
    return None if may_await(kind) else kind


def is_awaitable(value: object) -> bool:
    """Whether ``await`` accepts ``value``: a coroutine, a generator-based coroutine, anything with ``__await__``.

    ``inspect.isawaitable``, read from the value's type, as ``await`` reads it.
    """
    kind = type(value)
    if kind is GeneratorType:
        return bool(value.gi_code.co_flags & CO_ITERABLE_COROUTINE)  # type: ignore[attr-defined]
    return may_await(kind)


def first_awaitable(values: Sequence[Any]) -> int:
    """The index of the first awaitable among ``values``, ``-1`` if there is none.

    At C speed: one pass reads the results' types (a second when they differ), and
    each distinct type is asked once; only results of a type whose instances may be
    awaitable are looked at one by one.
    """
    if not values:
        return -1
    first: object = values[0]
    kind = type(first)
    if countOf(map(type, values), kind) == len(values):  # one type: the usual list of results
        suspect = may_await(kind)
    else:
        suspect = any(map(may_await, set(map(type, values))))
    if not suspect:
        return -1
    return next((index for index, value in enumerate(values) if is_awaitable(value)), -1)


def close_awaitables(values: Sequence[Any]) -> None:
    """Close every coroutine among ``values``: nobody awaits them, and none must warn that it was never awaited."""
    at = first_awaitable(values)
    if at < 0:
        return
    for value in values[at:]:
        close = getattr(value, "close", None) if is_awaitable(value) else None
        if close is not None:
            close()


def awaitable_result(value: object, index: int, item: object) -> TypeError:
    """The error for an awaitable ``value`` that a plain function returned for item ``index`` (``item``)."""
    kind = f"{value.kind}, in a worker process" if isinstance(value, AwaitableResult) else type(value).__name__
    return TypeError(
        f"fn returned an awaitable ({kind}) for item {index} ({reprlib.repr(item)}), not a result: it makes "
        "coroutines without being a coroutine function. Run it with mode='async' (or await arun_parallel inside "
        "an event loop), or define it with async def, which auto recognises"
    )


def check_not_awaitable(value: object, index: int, item: object, results: Sequence[Any] = ()) -> None:
    """Raise if ``value``, what a plain function returned for item ``index``, is awaitable.

    It is closed, and so is every awaitable among ``results`` (the call's other results).

    Raises:
        TypeError: ``value`` is awaitable; the message names the item and the fix.
    """
    if not is_awaitable(value):
        return
    close_awaitables((value, *results))
    raise awaitable_result(value, index, item)


def check_results(values: Sequence[Any], items: Sequence[Any], start: int = 0) -> None:
    """Raise if one of ``values`` is awaitable (see ``first_awaitable``).

    ``values[i]`` is what ``fn`` returned for ``items[i]``, item ``start + i`` of the
    call. Every awaitable among them is closed first.

    Raises:
        TypeError: for the first awaitable; the message names its item and the fix.
    """
    at = first_awaitable(values)
    if at >= 0:
        value = values[at]
        close_awaitables(values)
        raise awaitable_result(value, start + at, items[at])


def cut_at_awaitable(
    values: list[Any], items: Sequence[Any], start: int, index: Callable[[int], int] | None = None
) -> TypeError | None:
    """Cut ``values`` before the first awaitable; the error that names it (``None``, nothing cut: there is none).

    ``values[i]`` is what ``fn`` returned for ``items[i]``, item ``start + i`` (its input
    index as ``index`` maps it, where given). Every awaitable among them is closed.
    """
    at = first_awaitable(values)
    if at < 0:
        return None
    error = awaitable_result(values[at], start + at if index is None else index(start + at), items[at])
    close_awaitables(values)
    del values[at:]
    return error


def until_awaitable(values: Iterator[Any]) -> Generator[Any, None, Any]:
    """Yield ``values`` up to the first awaitable, and return it (``None``: there was none).

    Each waits in ``box`` and leaves it as it is yielded: no reference is kept to a
    result the consumer has.
    """
    box: list[Any] = []
    for value in values:
        if is_awaitable(value):
            return value
        box.append(value)
        del value
        yield box.pop()
    return None
