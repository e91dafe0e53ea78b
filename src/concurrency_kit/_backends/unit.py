"""What the run engine hands a backend: units (chunks of items) to run, and the protocol a backend's runner keeps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, final

from typing_extensions import Protocol

if TYPE_CHECKING:
    from .stop_tokens import ThreadToken
    from .worker_pool import WorkerPool

__all__ = ["QUEUED_PER_LANE", "Done", "Lost", "Read", "Runner", "Unit", "Warming", "run_chunk", "run_into"]

#: Units in flight per lane of a runner that runs its own lanes (threads, coroutines): one
#: running, one queued behind it, so that a lane never waits for the engine.
QUEUED_PER_LANE = 2


@final
class Done:
    """What became of a unit's items: their results in order, up to where the unit stopped.

    ``values`` holds fewer results than the unit has items when its stop token stopped
    it, or a failure did. With exceptions collected, an exception ``fn`` raised is a
    result, in its item's place. ``failed``: the last of ``values`` is the exception
    that stops the call (``fn``'s, not collected; or the call's own error).
    ``seconds``: how long its items took in the worker, where the worker timed them.
    """

    __slots__ = ("failed", "seconds", "values")

    def __init__(self, values: list[Any], *, failed: bool = False, seconds: float | None = None) -> None:
        self.values = values
        self.failed = failed
        self.seconds = seconds

    @classmethod
    def of(cls, outcomes: Sequence[tuple[bool, Any]], *, collect: bool) -> Done:
        """From ``(ok, value)`` pairs (a worker process's, a coroutine's).

        Cut after the first failure that is not collected.
        """
        values: list[Any] = []
        for ok, value in outcomes:
            values.append(value)
            if not ok and not collect:
                return cls(values, failed=True)
        return cls(values)


@final
class Lost:
    """What became of a unit whose worker died (or whose task its executor lost).

    Where the worker noted the item it was running (``culprit``), that item is at fault;
    else nobody knows which (an executor's process pool's dead worker takes the units
    beside it down too): with exceptions collected, the stream runs each of them again
    alone (``Unit.alone``), one at a time, with nothing else of the stream running;
    without, it raises ``blame`` for the items that were running.
    """

    __slots__ = ("blame", "culprit", "together")

    def __init__(
        self, blame: Callable[[Sequence[int]], BaseException], *, together: bool, culprit: int | None = None
    ) -> None:
        #: The error for the items of these indices, lost with it (a ``WorkerCrashedError``).
        self.blame = blame
        #: Whether the units running beside it were lost with it (an executor's process pool breaks whole).
        self.together = together
        #: The position of the item its worker was running as it died, where known.
        self.culprit = culprit


#: What became of a finished unit: its results (``Done``); ``Lost``; or ``None``, to run it
#: again (its pool was stopped by another call).
Read = Done | Lost | None


class Unit:
    """Items ``start …`` of a stream, run together (a chunk), and what became of them."""

    __slots__ = ("alone", "done", "items", "pool", "read", "results", "start")

    def __init__(self, start: int, items: list[Any], *, alone: bool = False) -> None:
        self.start = start
        self.items = items
        #: What became of its items, once it is done.
        self.done: Done | None = None
        #: The process pool running it, if any.
        self.pool: WorkerPool | None = None
        #: Run again by itself, nothing else of the stream beside it, after its worker died
        #: with others: dying again (``Lost`` again) is its own fault.
        self.alone = alone
        #: Its results, already run (the items a plan measured), once the future is done
        #: (``None``: done): the results before the first failure, and that failure
        #: (``None`` if none); exceptions collected are results. Else the runner reads it.
        self.results: Callable[[Future[Any] | None], tuple[list[Any], BaseException | None]] | None = None

    @property
    def stop(self) -> int:
        """The index after its last item."""
        return self.start + len(self.items)


class Warming(Protocol):
    """A runner's workers starting in the background (a cold process pool)."""

    @property
    def up(self) -> threading.Event:
        """Set once a first worker is up: units sent then start at once."""
        ...

    def is_alive(self) -> bool:
        """Whether the start is still under way (else ``up`` may never be set)."""
        ...


class Runner(Protocol):
    """A backend's side of the run engine: runs its units, reads what became of them, stops them.

    Each unit's items check the run's stop token (``_backends.stop_tokens``) before they start.
    """

    @property
    def capacity(self) -> int:
        """How many units to keep in flight: enough that no worker waits for the next."""
        ...

    def warming(self) -> Warming | None:
        """Start the workers if they are not up; what says when they are (``None``: up now)."""
        ...

    def submit(self, unit: Unit) -> Future[Any]:
        """Start ``unit``; its future is done when it is."""
        ...

    def run_here(self, unit: Unit) -> Done:
        """Run ``unit`` in the calling thread (while the workers start)."""
        ...

    def help(self) -> bool:
        """Run one of the units submitted and not yet started in the calling thread, where the runner needs that.

        A call made inside one of the library's own worker threads (nested) runs its
        units too, so that it makes progress even when every pool thread waits for it.

        Returns:
            Whether a unit ran (its future is done).
        """
        ...

    def read(self, unit: Unit, future: Future[Any]) -> Read:
        """What became of ``unit``'s items, its ``future`` done; ``Lost``; or ``None`` to run it again."""
        ...

    def halt(self, after: int) -> None:
        """Item ``after`` failed: no item after it starts, even one already handed to a worker."""
        ...

    def expire(self, seconds: float) -> list[tuple[Future[Any], Unit, int]]:
        """Stop the items running longer than ``seconds`` (the call's ``task_timeout``), where it can.

        Returns:
            Each ``(future, unit, offset)`` whose item at ``offset`` ran too long and whose
            unit the engine takes back: it fails that item and sends the rest again. A
            runner that fills the item's place itself (a ``Raised`` of a
            ``TaskTimeoutError``) and finishes the unit returns nothing for it.
        """
        ...

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:
        """The run ended: no item starts; cancel the units not started; with ``kill``, stop the rest's workers."""
        ...


class _Unstoppable:
    """The token of a chunk run with none: every item may start."""

    last = 2**63 - 1

    def failed(self, index: int) -> None:
        """Nothing to lower."""


_NO_TOKEN: ThreadToken | _Unstoppable = _Unstoppable()


def run_chunk(
    fn: Callable[[Any], Any],
    items: list[Any],
    collect: bool,  # noqa: FBT001
    start: int = 0,
    token: ThreadToken | None = None,
) -> Done:
    """Run ``items`` (``start …``) in order in this thread; stop after the first exception unless ``collect``.

    With ``token``, an item past its mark does not start, and a failure lowers the mark
    to its item before the chunk ends (see ``_backends.stop_tokens``).
    """
    if token is None and not collect:
        values: list[Any] = []
        try:
            values.extend(map(fn, items))  # what came before a failure stays in the list
        except Exception as exc:  # noqa: BLE001 - an outcome, raised by the consumer
            values.append(exc)
            return Done(values, failed=True)
        return Done(values)
    values = [None] * len(items)
    ran, failed = run_into(fn, items, values, 0, len(items), start, _NO_TOKEN if token is None else token, collect)
    if failed and not isinstance(values[ran - 1], Exception):
        raise values[ran - 1]  # SystemExit, Ctrl-C: the caller's, not an item's failure
    return Done(values if ran == len(values) else values[:ran], failed=failed)


def run_into(  # noqa: PLR0913, PLR0917 - a step's inputs, positional for speed
    fn: Callable[[Any], Any],
    items: list[Any],
    values: list[Any],
    start: int,
    stop: int,
    first: int,
    token: ThreadToken | _Unstoppable,
    collect: bool,  # noqa: FBT001
) -> tuple[int, bool]:
    """Run ``items[start:stop]`` in order into the same slots of ``values``: how many ran, and whether the last failed.

    ``first`` is the call's index of ``items[0]``. An item past the token's mark does not
    start. A failure (not collected) lowers the mark to its item; so does what escapes
    ``fn`` (``SystemExit``), which is kept in its slot as the failure.
    """
    offset = start
    try:
        for offset in range(start, stop):
            if first + offset > token.last:
                return offset - start, False  # the run failed before it, or ended
            try:
                values[offset] = fn(items[offset])
            except Exception as exc:  # noqa: BLE001 - a result, raised or yielded by the consumer
                values[offset] = exc
                if not collect:
                    token.failed(first + offset)
                    return offset - start + 1, True
    except BaseException as exc:  # noqa: BLE001 - the caller decides: a lane hands it to the engine
        values[offset] = exc
        token.failed(first + offset)
        return offset - start + 1, True
    return stop - start, False
