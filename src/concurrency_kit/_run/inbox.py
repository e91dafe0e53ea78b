"""A pipeline stage's input: the items the stage before it handed on, read by an engine that never blocks on it.

    stage k's driver ── put() ──▶ Inbox ──▶ stage k+1's run
                     (blocks while full:  take(size)  the engine: what is there, at once;
                      "blocked")                      woken (``on_arrival``) by the next put,
                                                      once it found less than it wanted
                                          __next__    a loop: blocks until one comes
                                                      ("waiting"); auto's head: the first,
                                                      then what is there (``head``)

An engine that blocked on its input while its units ran could not hand their results
on: a pipeline whose items all sat finished in one stage, while that stage waited for
one more, would hang. So the engine takes only what is there (``take``) and waits for a
unit's end or the next arrival, whichever comes first.

Its items are ``(source index, item)`` pairs. It keeps the source indices of the last
items taken (``origin``), so that a failure the engine names by its position in the
stage's input is told by the item of the source it came from.

The inbox counts the seconds its writer was held up by a full inbox (``blocked``) and
its reader had nothing to take (``waiting``): the pipeline's report is made of them.
``close`` (the pipeline stops) wakes both sides: the writer's ``put`` returns ``False``
and the reader finds the end.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Self, final

__all__ = ["WAKE", "Inbox"]

_NONE: Any = object()

#: Put on an engine's completion queue to end its wait: no unit's future (``forget`` finds none).
WAKE: Future[Any] = Future()


@final
class Inbox:
    """A bounded first-in first-out hand-over between two threads, readable without blocking.

    Args:
        capacity: the most items held; ``put`` waits for room beyond it.
        remember: how many of the last items taken ``origin`` knows (the reader's items
            in flight at most).
    """

    def __init__(self, capacity: int, remember: int = 1024) -> None:
        self.capacity = capacity
        self.taken = 0  # items taken so far: the next one's position in the reader's input
        self.origins: deque[int] = deque(maxlen=remember)  # the source indices of the last taken
        self.items: deque[Any] = deque()
        self.lock = threading.Condition()
        self.ended = False  # the writer has no more
        self.closed = False  # the pipeline stopped: nothing more is read or written
        self.arrival: Callable[[], None] | None = None  # the reader's wake-up, called outside the lock
        self.blocked = 0.0  # seconds ``put`` waited for room
        self.waiting = 0.0  # seconds the reader had nothing to take, while it wanted more
        self.starved: float | None = None  # since when the reader wants an item that is not there

    # The writer's side.

    def put(self, item: Any) -> bool:
        """Hand ``item`` on, waiting while the inbox is full: whether it went in (not once closed)."""
        with self.lock:
            if len(self.items) >= self.capacity and not self.closed:
                since = time.monotonic()
                while len(self.items) >= self.capacity and not self.closed:
                    self.lock.wait()
                self.blocked += time.monotonic() - since
            if self.closed:
                return False
            self.items.append(item)
            starved = self.starved is not None
            self.fed()
            self.lock.notify_all()
        if starved:  # else the reader comes back for more by itself: a wake-up an item would cost more than the item
            self.wake()
        return True

    def preload(self, items: Iterable[Any]) -> None:
        """Hold ``items`` before the writer and the reader start (past the capacity: nobody waits yet)."""
        with self.lock:
            self.items.extend(items)

    def end(self) -> None:
        """The writer has no more items."""
        with self.lock:
            self.ended = True
            self.fed()
            self.lock.notify_all()
        self.wake()

    def close(self) -> None:
        """Stop: a waiting ``put`` returns ``False``, the reader finds the end now."""
        with self.lock:
            self.closed = True
            self.items.clear()
            self.lock.notify_all()
        self.wake()

    # The reader's side.

    def on_arrival(self, wake: Callable[[], None]) -> Self:
        """Call ``wake`` (from the writer's thread) whenever an item or the end arrives; the inbox."""
        self.arrival = wake
        self.wake()  # what arrived before the reader asked
        return self

    def take(self, size: int) -> list[Any]:
        """Up to ``size`` of the items there now, at once (``[]``: none yet, or the end)."""
        with self.lock:
            items = self.items
            chunk = [items.popleft() for _ in range(min(size, len(items)))]
            self.took(chunk)
            if len(chunk) < size and not self.ended and self.starved is None:
                self.starved = time.monotonic()
            self.lock.notify_all()
            return chunk

    def at_end(self) -> bool:
        """Whether every item was taken and no more will come (or the inbox was closed)."""
        with self.lock:
            return self.closed or (self.ended and not self.items)

    def prepended(self, items: Iterable[Any]) -> Self:
        """The inbox, with ``items`` (a stage's head, not measured after all) read first."""
        back = list(items)
        with self.lock:
            self.items.extendleft(reversed(back))
            self.taken -= len(back)
            for _ in range(min(len(back), len(self.origins))):
                self.origins.pop()
        return self

    def origin(self, position: int) -> int | None:
        """The source index of the item taken at ``position`` (``None``: not among the last remembered)."""
        with self.lock:
            back = self.taken - position
            return self.origins[-back] if 0 < back <= len(self.origins) else None

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        """The next item, waiting for it (a loop's input, or auto's head).

        Raises:
            StopIteration: the end, or the inbox was closed.
        """
        with self.lock:
            if not self.items and not self.ended and not self.closed:
                if self.starved is None:
                    self.starved = time.monotonic()
                while not self.items and not self.ended and not self.closed:
                    self.lock.wait()
            if self.closed or not self.items:
                raise StopIteration
            item = self.items.popleft()
            self.took([item])
            self.lock.notify_all()
            return item

    def head(self, wanted: int) -> list[Any]:
        """Auto's head: the first item (waiting for it), then up to ``wanted`` in all of those there now.

        It never waits for more than one: items held in the heads of other stages while
        each waited for more would fill the pipeline's bound, and none would ever come.
        """
        first = next(self, _NONE)
        return [] if first is _NONE else [first, *self.take(wanted - 1)]

    def next_within(self, seconds: float) -> list[Any] | None:
        """The next item, as ``[item]``, waiting ``seconds`` at most: ``None`` when none came, ``[]`` at the end."""
        with self.lock:
            if not self.items and not self.ended and not self.closed:
                self.lock.wait_for(lambda: self.items or self.ended or self.closed, seconds)
            if self.items and not self.closed:
                item = self.items.popleft()
                self.took([item])
                self.lock.notify_all()
                return [item]
            return [] if self.ended or self.closed else None

    # Inside the lock.

    def took(self, chunk: list[Any]) -> None:
        """Count the items of ``chunk``, taken, and remember where they came from."""
        self.taken += len(chunk)
        self.origins.extend(index for index, _ in chunk)

    def fed(self) -> None:
        """The reader's wait for input (if any) ends now."""
        if self.starved is not None:
            self.waiting += time.monotonic() - self.starved
            self.starved = None

    def wake(self) -> None:
        """Tell the reader something arrived."""
        arrival = self.arrival
        if arrival is not None:
            arrival()

    def waited(self) -> float:
        """The seconds the reader had nothing to take, until now."""
        with self.lock:
            open_wait = 0.0 if self.starved is None else time.monotonic() - self.starved
            return self.waiting + open_wait
