"""How results leave the run engine: handed over to the consumer, progress told, and the errors of a late call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._backends.awaitable import cut_at_awaitable

if TYPE_CHECKING:
    from .._backends.registry import Unit
    from .engine import Engine

__all__ = [
    "Progress",
    "call_timed_out",
    "close_progress",
    "done_unread",
    "ends_the_call",
    "handed_over",
    "handing_over",
    "measured_in_time",
    "stream_timed_out",
]

#: A progress callback, told ``(done, total)`` as each result is yielded.
Progress = Callable[[int, "int | None"], object]
#: Marks the end of a list being handed over (``handing_over``).
_END: Any = object()


def stream_timed_out(timeout: float | None, yielded: int) -> TimeoutError:
    """The error of a stream that ran past its ``timeout``, saying how far it got."""
    return TimeoutError(
        f"the stream did not finish within its timeout of {timeout:g} s ({yielded} results yielded); worker "
        "processes running its items were stopped; an item running in a thread finishes in the background "
        "(threads cannot be stopped)"
    )


def call_timed_out(timeout: float | None, done: int, total: int | None) -> TimeoutError:
    """The error of a list call that ran past its ``timeout``, saying how far it got."""
    return TimeoutError(
        f"the call did not finish within its timeout of {timeout:g} s ({done} of {total} items done); worker "
        "processes running its items were stopped; an item running in a thread finishes in the background "
        "(threads cannot be stopped)"
    )


def handed_over(values: list[Any], offset: int) -> Any:
    """``values[offset]``, taken out of the list: once yielded, only the consumer holds it."""
    value = values[offset]
    values[offset] = None
    return value


def handing_over(values: list[Any]) -> Iterator[Any]:
    """The items of ``values``, each taken out of the list as it is yielded (the list ends empty).

    At ``list.pop``'s speed, no step of ours per item: the list is reversed behind an
    end marker once, then popped from its end until the marker comes.
    """
    values.append(_END)
    values.reverse()
    return iter(values.pop, _END)


def ends_the_call(exc: BaseException) -> bool:
    """Whether leaving a call with ``exc`` should stop the workers running its units.

    Closed by the consumer (``GeneratorExit``), Ctrl-C, ``SystemExit`` or a timeout:
    nobody will read what they compute. Not for an exception of ``fn``: what runs
    finishes; nothing new starts.
    """
    return not isinstance(exc, Exception) or isinstance(exc, TimeoutError)


def done_unread(ready: dict[int, Unit]) -> int:
    """How many items of the finished ``ready`` units are not yet yielded (for a list's timeout message)."""
    return sum(len(unit.done.values) for unit in ready.values() if unit.done is not None)


def close_progress(progress: Progress | None) -> None:
    """Call ``progress.close()``, where it has one (a tqdm bar)."""
    close = getattr(progress, "close", None)
    if close is not None:
        close()


def measured_in_time(engine: Engine) -> Iterator[Any]:
    """After a stream's deadline: in order, the measured items that finished in time; then the timeout.

    Raises:
        TimeoutError: the deadline passed (or the error of an awaitable result among those items).
    """
    front = next((u for u in engine.running.values() if u.start == engine.next_index), None)
    misuse = None
    if engine.ordered and front is not None and front.results is not None:
        values = front.results(None)[0]
        misuse = cut_at_awaitable(values, front.items, front.start)
        for value in handing_over(values):
            engine.yielded += 1
            if engine.progress is not None:
                engine.progress(engine.yielded, engine.total)
            yield value
    raise misuse or stream_timed_out(engine.timeout, engine.yielded)
