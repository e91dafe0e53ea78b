"""A pipeline's source: read in a thread of its own, only while the bound on items in flight has room.

The two pieces::

    Budget      the items in the pipeline: taken from the source (or made by a ``flat_map``)
                and not yet yielded or dropped; ``acquire`` waits while ``bound`` are
    Reader      the thread that reads the source into the first stage's inbox, an item
                per place in the budget; it closes the source when it stops (a
                generator's ``finally`` runs, in that thread); an async iterable's items
                are awaited on an event loop of the reader's own, one at a time
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, Callable, Generator, Iterator
from typing import Any, final

from .._run.inbox import Inbox

__all__ = ["Budget", "Reader", "close_source"]


@final
class Budget:
    """Items in the pipeline: taken from the source (or made by a ``flat_map``) and not yet yielded or dropped."""

    def __init__(self, bound: int) -> None:
        self.bound, self.held, self.stopped = bound, 0, False
        self.lock = threading.Condition()

    def acquire(self) -> bool:
        """One more item from the source, once there is room: whether the run goes on."""
        with self.lock:
            while self.held >= self.bound and not self.stopped:
                self.lock.wait()
            self.held += 1
            return not self.stopped

    def add(self, count: int) -> None:
        """``count`` more items in the pipeline (fewer where negative: room for the source)."""
        with self.lock:
            self.held += count
            if count < 0:
                self.lock.notify_all()

    def stop(self) -> None:
        """The run stops: a waiting ``acquire`` returns ``False``."""
        with self.lock:
            self.stopped = True
            self.lock.notify_all()


@final
class Reader:
    """The source's reader (``run`` is its thread's body): items into ``inbox``, tagged with their index.

    Args:
        source: the source's iterator (the pass may have read its first items), or an
            async iterable.
        start: the index of its next item.
        inbox: the first stage's input (ended when the reader stops).
        budget: the bound it reads within.
        fail: the run's failure, told of the source's own.
    """

    def __init__(
        self,
        source: Iterator[Any] | AsyncIterable[Any],
        start: int,
        *,
        inbox: Inbox,
        budget: Budget,
        fail: Callable[[BaseException], None],
    ) -> None:
        self.source, self.index, self.inbox, self.budget, self.fail = source, start, inbox, budget, fail

    def run(self) -> None:
        """Read until the source ends, the run stops, or the source fails (the run's failure, noted)."""
        source = self.source
        items = _awaited(source) if isinstance(source, AsyncIterable) else source
        try:
            while self.budget.acquire():
                try:
                    item = next(items)
                except StopIteration:
                    return
                if not self.inbox.put((self.index, item)):
                    return
                self.index += 1
        except BaseException as exc:  # noqa: BLE001 - the run's failure, raised by its consumer
            self.fail(self.noted(exc))
        finally:
            self.inbox.end()
            close_source(items)

    def noted(self, error: BaseException) -> BaseException:
        """The source's own failure, noted with the item it was reading."""
        error.add_note(f"concurrency_kit: raised by the pipeline's source, reading item {self.index}")
        return error


def _awaited(source: AsyncIterable[Any]) -> Generator[Any, None, None]:
    """An async iterable's items, each awaited on an event loop of this generator's own (in the reader's thread).

    Closing the generator closes the async iterator (its ``aclose``), then the loop.
    """
    loop = asyncio.new_event_loop()
    iterator = aiter(source)
    try:
        while True:
            try:
                item = loop.run_until_complete(anext(iterator))
            except StopAsyncIteration:
                return
            yield item
    finally:
        try:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                loop.run_until_complete(aclose())
        finally:
            loop.close()


def close_source(iterator: Iterator[Any]) -> None:
    """Close the source's iterator, where it has ``close`` (a generator: its ``finally`` runs)."""
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
