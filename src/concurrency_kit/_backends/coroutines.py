"""Coroutines on an event loop: a bounded number at a time, results in input order or as they finish.

    CoroutineStream(fn, items)        on the running loop (arun_parallel, aiter_parallel)
      ├─ `workers` tasks; each takes the next item (of an iterable or an async
      │  iterable) while fewer than `window` items are taken and not yet read, and
      │  awaits fn(item) in place: a coroutine that never suspends costs no task
      ├─ a failure stops the taking (in order, the items before it still finish);
      │  the deadline, or closing the stream, cancels every coroutine in flight
      └─ next_batch(): the results ready, in order or as they finished

    private_loop(make)                from synchronous code (run_parallel, iter_parallel):
      a loop of its own in a thread of its own, read a batch at a time, so that the
      coroutines go on while the caller handles a result; closed with the stream

Nothing here measures or classifies: the plan chose this mode.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable, Iterator
from concurrent.futures import Future as ThreadFuture
from inspect import isawaitable
from types import CoroutineType
from typing import Any, TypeVar, cast, final

from .outcomes import noted

__all__ = ["SLICE_SECONDS", "CoroutineStream", "awaited", "check_no_running_loop", "private_loop", "start_loop"]

T = TypeVar("T")

#: One coroutine's outcome: ``(True, result)`` or ``(False, exception)``.
Outcome = tuple[bool, Any]
#: What taking an item gives when there is none to take.
_NOTHING: Any = object()

#: A worker whose coroutines finish without suspending gives the loop a turn after this
#: long: the caller's other tasks (a server's requests) wait no longer than that for a
#: stream of quick coroutines, at the cost of one ``sleep(0)`` (microseconds) per turn.
SLICE_SECONDS = 0.001


def check_no_running_loop(what: str) -> None:
    """Raise if an event loop runs in this thread: ``what`` would block it and cannot start its own.

    Raises:
        RuntimeError: a loop runs here; the message points at the awaitable forms.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"{what} with a coroutine function was called inside a running event loop: it would run the coroutines "
        "on a loop of its own and block this one. Await the coroutine form instead: "
        "`await arun_parallel(fn, items)` (or `async for result in aiter_parallel(fn, items)`)"
    )


def _not_awaitable(value: object, index: int, item: object) -> TypeError:
    return TypeError(
        f"mode='async' awaits what fn returns, but fn returned {type(value).__name__} {value!r:.60} for item "
        f"{index} ({item!r:.60}): it is not a coroutine function. Use mode='auto' (or 'thread', 'process', "
        "'serial') for a plain function"
    )


async def awaited(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``await fn(*args, **kwargs)``.

    Raises:
        TypeError: ``fn`` returned something that is not awaitable.
    """
    result = fn(*args, **kwargs)
    if not isawaitable(result):
        raise TypeError(
            f"fn returned {type(result).__name__} {result!r:.60}, which cannot be awaited: "
            "it is not a coroutine function"
        )
    return await result


@final
class CoroutineStream:
    """``fn(item)`` awaited for every item, at most ``workers`` at a time, on the running loop.

    Read with ``next_batch`` until it returns an empty list; ``aclose`` (always,
    also after an error) cancels what is still in flight and waits for it.

    Args:
        fn: returns an awaitable for an item (a coroutine function, or with
            ``checked``, any function: a result that is not awaitable is an error).
        items: an iterable or an async iterable; read as the workers need items.
        workers: the most coroutines in flight.
        window: the most items taken and not yet read (``None``: no bound). Read means
            returned by a ``next_batch`` before the last one.
        ordered: results in input order; else as they finish.
        collect: an exception ``fn`` raised is a result (``return_exceptions``).
        total: how many items there are, where known (no more workers than that).
        timeout: the seconds the whole stream may take.
        deadline: the ``time.monotonic()`` it must end by (default: ``timeout`` seconds
            after the first ``next_batch``).
        checked: check that each ``fn(item)`` is awaitable.
        context: the context the coroutines run in (a copy each); default: the one
            current at the first ``next_batch``.
    """

    def __init__(  # noqa: PLR0913 - the stream's inputs, by name
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        workers: int,
        window: int | None,
        ordered: bool,
        collect: bool,
        total: int | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        checked: bool = False,
        context: contextvars.Context | None = None,
    ) -> None:
        self._fn = fn
        self._items = items
        self._workers = workers if total is None else min(workers, total)
        self._window = window
        self._ordered = ordered
        self._collect = collect
        self._total = total
        self._timeout = timeout
        self._deadline = deadline
        self._checked = checked
        self._context = context
        self._source: Iterator[Any] | AsyncIterator[Any] | None = None
        self._source_lock: asyncio.Lock | None = None
        self._ready: dict[int, Outcome] = {}  # in order: finished, by index
        self._finished: deque[Outcome] = deque()  # as they finish
        self._next = 0  # in order: the index read next
        self._taken = 0
        self._read = 0  # results returned by the batches before the last
        self._unread = 0  # ... and by the last
        self._failed_at: int | None = None
        self._error: BaseException | None = None  # stops the stream: a timeout, the input's own failure, misuse
        self._exhausted = False
        self._closed = False
        self._running: dict[asyncio.Task[None], int] = {}  # worker → the index it awaits (-1: none)
        self._alive = 0
        self._wake: asyncio.Future[None] | None = None  # the reader's
        self._room: asyncio.Future[None] | None = None  # workers waiting for the window
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # The reader's side.

    async def next_batch(self) -> list[Any]:
        """The results ready now (waiting for one at least), in order or as they finished; ``[]`` at the end.

        Raises:
            TimeoutError: the deadline passed.
            Exception: the first exception ``fn`` raised (unless collected), noted
                with its item; in order, after the results before it.
        """
        if self._loop is None:
            self._start()
        self._read += self._unread
        self._unread = 0
        self._make_room()
        while True:
            if self._error is not None:
                raise self._error
            batch = self._ready_now()
            if batch:
                self._unread = len(batch)
                return batch
            if self._alive == 0:
                return []
            assert self._loop is not None
            self._wake = self._loop.create_future()
            await self._wake

    def _ready_now(self) -> list[Any]:
        """Take the results that are ready; raise the failure that comes first, when it does."""
        batch: list[Any] = []
        if self._ordered:
            ready, index = self._ready, self._next
            while (outcome := ready.pop(index, None)) is not None:
                if not outcome[0] and not self._collect:
                    if batch:  # the results before it first
                        ready[index] = outcome
                        break
                    self._next = index + 1
                    raise outcome[1]
                batch.append(outcome[1])
                index += 1
            self._next = index
            return batch
        finished = self._finished
        while finished:
            ok, value = finished[0]
            if not ok and not self._collect:
                if batch:
                    break
                finished.popleft()
                raise value
            batch.append(value)
            finished.popleft()
        return batch

    async def aclose(self) -> None:
        """Cancel what is in flight, wait for it to end, take nothing more."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        tasks = [task for task in self._running if not task.done()]
        for task in tasks:
            task.cancel()
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        if tasks:
            await asyncio.wait(tasks)

    def abandon(self) -> None:
        """``aclose`` without waiting (the reader is gone): safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._cancel_all()
        else:
            loop.call_soon_threadsafe(self._cancel_all)

    # The workers' side.

    def _start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        items = self._items
        if isinstance(items, AsyncIterable):
            self._source = aiter(items)
            self._source_lock = asyncio.Lock()
        else:
            self._source = iter(items)
        if self._deadline is None and self._timeout is not None:
            self._deadline = time.monotonic() + self._timeout
        if self._deadline is not None:
            self._timer = loop.call_at(loop.time() + (self._deadline - time.monotonic()), self._on_deadline)
        context = contextvars.copy_context() if self._context is None else self._context
        for _ in range(self._workers):
            task = loop.create_task(self._work(), context=context.copy())
            self._running[task] = -1
        self._alive = len(self._running)

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        fn, checked, clock = self._fn, self._checked, time.perf_counter
        turn = clock() + SLICE_SECONDS
        try:
            while (taken := await self._take()) is not None:
                index, item = taken
                self._running[me] = index
                try:
                    awaitable = fn(item)
                    if checked and type(awaitable) is not CoroutineType and not isawaitable(awaitable):
                        self._stop(_not_awaitable(awaitable, index, item))
                        return
                    value: Any = await cast("Awaitable[Any]", awaitable)
                    outcome: Outcome = (True, value)
                except Exception as exc:  # noqa: BLE001 - an outcome, raised or returned by the reader
                    outcome = (False, noted(exc, index, item))
                except asyncio.CancelledError as exc:
                    if me.cancelling():
                        raise  # ours: the stream is closing
                    outcome = (False, noted(exc, index, item))  # the item's own: it failed
                self._running[me] = -1
                self._store(index, outcome)
                if clock() >= turn:
                    await asyncio.sleep(0)  # the loop's other tasks get a turn
                    turn = clock() + SLICE_SECONDS
        finally:
            self._alive -= 1
            if self._alive == 0:
                self._wake_reader()

    def _taking(self) -> bool:
        return not (self._closed or self._exhausted or self._error is not None or self._failed_at is not None)

    async def _take(self) -> tuple[int, Any] | None:
        """The next item and its index, once the window has room; ``None`` when nothing more is taken."""
        while self._taking():
            if self._window is not None and self._taken - self._read >= self._window:
                assert self._loop is not None
                if self._room is None or self._room.done():
                    self._room = self._loop.create_future()
                await self._room
                continue
            if self._source_lock is None:
                item = self._next_item()
            else:
                async with self._source_lock:  # an async generator takes one reader at a time
                    item = await self._next_async_item() if self._taking() else _NOTHING
            if item is _NOTHING:
                return None
            index = self._taken
            self._taken += 1
            return index, item
        return None

    def _next_item(self) -> Any:
        try:
            return next(self._source)  # type: ignore[arg-type]
        except StopIteration:
            self._exhausted = True
        except Exception as exc:  # noqa: BLE001 - the input's own failure ends the stream
            self._stop(exc)
        return _NOTHING

    async def _next_async_item(self) -> Any:
        try:
            return await anext(self._source)  # type: ignore[arg-type]
        except StopAsyncIteration:
            self._exhausted = True
        except Exception as exc:  # noqa: BLE001 - the input's own failure ends the stream
            self._stop(exc)
        return _NOTHING

    def _store(self, index: int, outcome: Outcome) -> None:
        if self._ordered:
            self._ready[index] = outcome
        else:
            self._finished.append(outcome)
        if not outcome[0] and not self._collect:
            if self._failed_at is None or index < self._failed_at:
                self._failed_at = index
            # Nothing new starts; in order, the items before the failure still finish.
            for task, running in self._running.items():
                if running >= 0 and (not self._ordered or running > index):
                    task.cancel()
            if self._room is not None and not self._room.done():
                self._room.set_result(None)
        if not self._ordered or index == self._next or not outcome[0]:
            self._wake_reader()

    def _make_room(self) -> None:
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    def _wake_reader(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _stop(self, error: BaseException) -> None:
        """End the stream with ``error``: every coroutine in flight is cancelled."""
        if self._error is None:
            self._error = error
        self._cancel_all()
        self._wake_reader()

    def _cancel_all(self) -> None:
        self._closed = True
        for task in self._running:
            task.cancel()
        self._make_room()

    def _on_deadline(self) -> None:
        self._stop(
            TimeoutError(
                f"the call did not finish within its timeout of {self._timeout:g} s ({self._read + self._unread} "
                "results read); its coroutines still in flight were cancelled"
            )
        )


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """A private loop's thread: run it until stopped, then close it (its async generators and executor too)."""
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def start_loop(name: str) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """A new event loop (the policy's: uvloop's, where it is installed), running in a daemon thread named ``name``.

    Stop it with ``loop.call_soon_threadsafe(loop.stop)``: the thread then closes it and ends.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=_serve, args=(loop,), name=name, daemon=True)
    thread.start()
    return loop, thread


def _on(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on ``loop`` (another thread's) and wait for its result here."""
    future: ThreadFuture[T] = asyncio.run_coroutine_threadsafe(coroutine, loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # Ctrl-C while waiting: the stream is closed next
        raise


def private_loop(make: Callable[[], CoroutineStream]) -> Generator[list[Any], None, None]:
    """The batches of the stream ``make()`` builds, run on an event loop of its own, from synchronous code.

    The loop runs in a thread of its own, so the coroutines go on while the caller
    handles a batch. Closing the generator (or its end, an error, Ctrl-C) closes the
    stream (cancelling what is in flight) and the loop.
    """
    loop, thread = start_loop("concurrency_kit-event-loop")
    stream = None
    try:
        stream = make()
        while batch := _on(loop, stream.next_batch()):
            yield batch
    finally:
        try:
            if stream is not None:
                _on(loop, stream.aclose())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
