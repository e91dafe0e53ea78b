"""Coroutines from synchronous code: an event loop of the call's own, and the checks of a coroutine call.

    private_loop(make)     the batches of a stream of coroutines (the run engine on a loop,
                           ``_run/coroutines.py``), run on a loop of its own in a thread of
                           its own, so that the coroutines go on while the caller handles a
                           batch; closed with the stream
    check_no_running_loop  a synchronous call inside a running loop would block it
    not_awaitable          the error of mode "async" over a plain function
    RetriedAsync           a coroutine function whose failures to retry are returned

Nothing here measures or classifies: the plan chose this mode.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import CancelledError as FutureCancelledError
from concurrent.futures import Future
from inspect import isawaitable
from typing import Any, TypeVar, final

from typing_extensions import Protocol

from .item_calls import Init, Raised, retries_it
from .outcomes import Stopped

__all__ = [
    "SLICE_SECONDS",
    "Batches",
    "PreparedAsync",
    "RetriedAsync",
    "awaited",
    "check_no_running_loop",
    "not_awaitable",
    "private_loop",
    "start_loop",
]

T = TypeVar("T")

#: A worker whose coroutines finish without suspending gives the loop a turn after this
#: long: the caller's other tasks (a server's requests) wait no longer than that for a
#: stream of quick coroutines, at the cost of one ``sleep(0)`` (microseconds) per turn.
SLICE_SECONDS = 0.001


class Batches(Protocol):
    """Results a batch at a time, read on an event loop (the run engine of a coroutine function's call)."""

    async def next_batch(self) -> list[Any]:
        """The next results (``[]`` at the end)."""
        ...

    async def aclose(self) -> None:
        """Stop, and wait for what runs to stop."""
        ...


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


def not_awaitable(value: object, index: int, item: object) -> TypeError:
    """The error of mode ``"async"`` where ``fn`` returned ``value``, not an awaitable, for item ``index``."""
    return TypeError(
        f"mode='async' awaits what fn returns, but fn returned {type(value).__name__} {value!r:.60} for item "
        f"{index} ({item!r:.60}): it is not a coroutine function. Use mode='auto' (or 'thread', 'process', "
        "'serial') for a plain function"
    )


@final
class PreparedAsync:
    """A coroutine function, with the call's initializer run first, once, on its loop (``item_calls.Prepared``).

    The first coroutine runs it (and awaits what it returns, if that is awaitable); the
    others wait for it. If it raises, every item fails with the same ``WorkerInitError``.
    """

    __slots__ = ("_ready", "fn", "init")

    def __init__(self, fn: Callable[[Any], Any], init: Init) -> None:
        self.fn, self.init = fn, init
        self._ready: asyncio.Future[None] | None = None

    async def __call__(self, item: Any) -> Any:
        """``await fn(item)``, once the initializer ran.

        Raises:
            WorkerInitError: the initializer raised.
        """
        await self.ready()
        return await self.fn(item)

    async def ready(self) -> None:
        """Run the initializer, the first time (awaiting what it returns, if awaitable); else wait for that run.

        Raises:
            WorkerInitError: it raised.
        """
        if self._ready is None:
            self._ready = ready = asyncio.get_running_loop().create_future()
            try:
                started = self.init.fn(*self.init.args)
                if isawaitable(started):
                    await started
            except Exception as exc:  # noqa: BLE001 - every item's failure, with it as the cause
                ready.set_exception(self.init.failed(exc))
            else:
                ready.set_result(None)
        await asyncio.shield(self._ready)


@final
class RetriedAsync:
    """A coroutine function, with the failures ``retry_on`` counts returned as ``Raised`` (as ``worker.Retried``)."""

    __slots__ = ("fn", "retry_on")

    def __init__(self, fn: Callable[[Any], Any], retry_on: Any) -> None:
        self.fn, self.retry_on = fn, retry_on

    async def __call__(self, item: Any) -> Any:
        """``await fn(item)``, or the ``Raised`` of a failure to retry.

        Raises:
            TypeError: ``fn`` returned something that is not awaitable (never retried).
            Exception: a failure ``retry_on`` does not count.
        """
        try:
            awaitable = self.fn(item)
        except Exception as exc:  # noqa: BLE001 - returned to retry, or raised again
            return self._failed(exc)
        if not isawaitable(awaitable):
            raise TypeError(
                f"mode='async' awaits what fn returns, but fn returned {type(awaitable).__name__} "
                f"{awaitable!r:.60} for item {item!r:.60}: it is not a coroutine function"
            )
        try:
            return await awaitable
        except Exception as exc:  # noqa: BLE001 - returned to retry, or raised again
            return self._failed(exc)

    def _failed(self, exc: Exception) -> Raised:
        if retries_it(self.retry_on, exc):
            return Raised(exc)
        raise exc


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


async def _settled(coroutine: Coroutine[Any, Any, T]) -> tuple[T, None] | tuple[None, BaseException]:
    """``coroutine``'s result, or what it raised.

    ``SystemExit`` or Ctrl-C raised in a task is not the task's outcome: asyncio raises
    it out of the loop, which would end the loop's thread and leave the caller waiting.
    """
    try:
        return await coroutine, None
    except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by _on
        return None, exc


def _on(
    loop: asyncio.AbstractEventLoop,
    coroutine: Coroutine[Any, Any, T],
    waiting: list[Future[Any]] | None = None,
    stop: Future[None] | None = None,
) -> T:
    """Run ``coroutine`` on ``loop`` (another thread's) and wait for its result here.

    ``waiting`` holds its future meanwhile, for ``stop``'s callback to cancel; one set
    already cancels it now.

    Raises:
        BaseException: what ``coroutine`` raised (``SystemExit`` and Ctrl-C too);
            ``CancelledError`` where the wait was cancelled.
    """
    future = asyncio.run_coroutine_threadsafe(_settled(coroutine), loop)
    if waiting is not None:
        waiting[:] = [future]
    if stop is not None and stop.done():
        future.cancel()
    try:
        outcome = future.result()
    except BaseException:
        future.cancel()  # Ctrl-C while waiting: the stream is closed next
        raise
    if outcome[1] is not None:
        raise outcome[1]
    return outcome[0]


def private_loop(make: Callable[[], Batches], stop: Future[None] | None = None) -> Generator[list[Any], None, None]:
    """The batches of the stream ``make()`` builds, run on an event loop of its own, from synchronous code.

    The loop runs in a thread of its own, so the coroutines go on while the caller
    handles a batch. Closing the generator (or its end, an error, Ctrl-C) closes the
    stream (cancelling what is in flight) and the loop. So does ``stop``, once done
    (from another thread): the wait for the next batch ends with ``Stopped``.

    Raises:
        Stopped: ``stop`` was set.
    """
    loop, thread = start_loop("concurrency_kit-event-loop")
    stream = None
    waiting: list[Future[Any]] = []
    if stop is not None:
        stop.add_done_callback(lambda _: [future.cancel() for future in list(waiting)])
    try:
        stream = make()
        while True:
            try:
                batch = _on(loop, stream.next_batch(), waiting, stop)
            except FutureCancelledError:
                if stop is not None and stop.done():
                    raise Stopped from None
                raise
            if not batch:
                return
            yield batch
    finally:
        try:
            if stream is not None:
                _on(loop, stream.aclose())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
