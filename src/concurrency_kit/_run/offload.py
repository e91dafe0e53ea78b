"""A plain function's stream, run in a thread of its own and read from an event loop.

A plain function inside an event loop cannot be measured or waited for in the loop's
thread: a probe that watches the GIL, a wait for a pool, a loop over the items would
each block it. So the whole synchronous stream (measuring included) runs in a driver
thread, and hands its results over::

    event loop (the reader)                    driver thread
      next_batch() ── waits for ──────────────   iter_parallel(fn, items, stop=…)
        the results handed over so far  ◄──────    each result, as the stream yields it
                                                   (it waits while `bound` are unread)
      aclose() / cancelled: sets `stop` ──────►    the stream stops: queued items never
        and waits for the driver to end              start, worker processes running
                                                     its items are killed

An async iterable as input is read on the loop, an item at a time, for the driver.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import CancelledError as FutureCancelledError
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from typing import Any, final

from .._backends.outcomes import Stopped
from .stream import ResultStream

__all__ = ["HANDOFF_BOUND", "Offloaded"]

#: Results the driver thread may hand over before the reader has taken them: enough that
#: the reader wakes once for many quick results rather than once each (a wake-up
#: between threads costs tens of microseconds), few enough to hold in memory. With
#: ``max_in_flight``, one.
HANDOFF_BOUND = 256


async def _next_of(source: AsyncIterator[Any]) -> Any:
    return await anext(source)


@final
class Offloaded:
    """The results of ``open_stream(stop, items)``, a synchronous stream driven in a thread, for an event loop.

    The driver starts with the first ``next_batch``. ``mode`` and ``reason`` are the
    stream's, once it is planned (``None`` before). Read with ``next_batch`` until it
    returns an empty list; ``aclose`` stops the stream and waits for the driver.
    """

    def __init__(
        self,
        open_stream: Callable[[Future[None], Iterable[Any]], ResultStream[Any]],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        bound: int,
    ) -> None:
        self.mode: str | None = None
        self.reason: str | None = None
        self._open = open_stream
        self._items = items
        self._bound = bound
        self._stop: Future[None] = Future()
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._results: list[Any] = []
        self._ended: tuple[BaseException | None] | None = None  # the driver's end, and its error
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._hop: Future[Any] | None = None  # an item of an async input, being read on the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._driver: threading.Thread | None = None
        self._done: Future[None] = Future()

    async def next_batch(self) -> list[Any]:
        """The results handed over since the last batch (waiting for one at least); ``[]`` at the end.

        Raises:
            BaseException: what ended the stream (``fn``'s first exception, a timeout).
        """
        if self._driver is None:
            self._loop = asyncio.get_running_loop()
            self._driver = threading.Thread(target=self._drive, name="concurrency_kit-async-driver", daemon=True)
            self._driver.start()
        while True:
            with self._lock:
                if self._results:
                    batch, self._results = self._results, []
                    self._space.notify()
                    return batch
                if self._ended is not None:
                    error = self._ended[0]
                    if error is not None and not isinstance(error, Stopped):
                        self._ended = (None,)  # raised once
                        raise error
                    return []
                assert self._loop is not None
                self._waiter = waiter = self._loop.create_future()
            await waiter

    def _drive(self) -> None:
        error: BaseException | None = None
        items = self._items
        source: Iterable[Any] = self._from_loop(aiter(items)) if isinstance(items, AsyncIterable) else items
        try:
            with self._open(self._stop, source) as results:
                self.mode, self.reason = results.mode, results.reason
                for value in results:
                    with self._lock:
                        while len(self._results) >= self._bound and not self._closed:
                            self._space.wait()
                        if self._closed:
                            break
                        self._results.append(value)
                        waiter, self._waiter = self._waiter, None
                    if waiter is not None:
                        self._wake(waiter)
                    del value  # the driver keeps no reference to a result handed over
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            error = exc
        finally:
            with self._lock:
                self._ended = (error,)
                waiter, self._waiter = self._waiter, None
            if waiter is not None:
                self._wake(waiter)
            self._done.set_result(None)

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        assert self._loop is not None
        with suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(_set, waiter)

    def _from_loop(self, source: AsyncIterator[Any]) -> Iterator[Any]:
        """The items of an async iterator, each read on the loop for the driver.

        Raises:
            Stopped: the reader went away while an item was read.
        """
        assert self._loop is not None
        while True:
            with self._lock:
                if self._closed:
                    raise Stopped
                self._hop = hop = asyncio.run_coroutine_threadsafe(_next_of(source), self._loop)
            try:
                item = hop.result()
            except StopAsyncIteration:
                return
            except FutureCancelledError:
                raise Stopped from None
            finally:
                self._hop = None
            yield item
            del item

    def abandon(self) -> None:
        """Stop the stream without waiting for it (the reader is gone): safe from any thread."""
        with self._lock:
            self._closed = True
            self._space.notify_all()
            hop = self._hop
        if hop is not None:
            hop.cancel()
        with suppress(InvalidStateError):  # set meanwhile by another closer
            self._stop.set_result(None)

    async def aclose(self) -> None:
        """Stop the stream and wait for the driver to end (worker processes running its items are killed)."""
        self.abandon()
        if self._driver is not None:
            await asyncio.shield(asyncio.wrap_future(self._done))


def _set(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
