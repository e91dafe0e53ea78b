"""The stream ``aiter_parallel`` returns: a call's results, read with ``async for`` on the caller's loop."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, final

from typing_extensions import Protocol

from .._run.stream import Progress

__all__ = ["AsyncResultStream"]

R = TypeVar("R")


class _Batches(Protocol):
    """What an [`AsyncResultStream`][concurrency_kit.AsyncResultStream] reads: results a batch at a time."""

    async def next_batch(self) -> list[Any]:
        """The next results (``[]`` at the end)."""
        ...

    async def aclose(self) -> None:
        """Stop, and wait for what runs to stop."""
        ...

    def abandon(self) -> None:
        """Stop without waiting (from any thread)."""
        ...


@final
class AsyncResultStream(Generic[R]):
    """The results of [`aiter_parallel`][concurrency_kit.aiter_parallel], as they come: ``async for result in stream``.

    An async iterator with ``aclose``; as an async context manager, leaving the
    ``async with`` block closes it. Closing it (or dropping the last reference to it, or
    cancelling the task that reads it) cancels the coroutines in flight, stops taking
    items, and kills the worker processes running its items.

    Attributes:
        mode: how the items run (``"async"``, ``"serial"``, ``"thread"``, ``"process"``
            or ``"executor"``); for a plain function, known once the first result is
            read (``None`` before).
        reason: why (the plan's reason); likewise.
    """

    __slots__ = ("_batch", "_closed", "_done", "_mode", "_reason", "_source", "_told", "_total")

    def __init__(
        self,
        source: _Batches,
        *,
        progress: Progress | None,
        total: int | None,
        mode: str | None = None,
        reason: str | None = None,
    ) -> None:
        self._source = source
        self._mode, self._reason = mode, reason
        self._batch: list[Any] = []
        self._told = progress
        self._total = total
        self._done = 0
        self._closed = False

    @property
    def mode(self) -> str | None:
        """How the items run (``None`` until a plain function's stream is planned)."""
        return self._mode or getattr(self._source, "mode", None)

    @property
    def reason(self) -> str | None:
        """Why (``None`` until a plain function's stream is planned)."""
        return self._reason or getattr(self._source, "reason", None)

    def __aiter__(self) -> AsyncResultStream[R]:
        return self

    async def __anext__(self) -> R:
        batch = self._batch
        if not batch:
            if self._closed:
                raise StopAsyncIteration
            try:
                batch = await self._source.next_batch()
            except BaseException:
                await self.aclose()
                raise
            if not batch:
                await self.aclose()
                raise StopAsyncIteration
            batch.reverse()
            self._batch = batch
        self._done += 1
        if self._told is not None:
            self._told(self._done, self._total)
        return batch.pop()  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Stop: cancel the coroutines in flight, take no more items, kill worker processes running its items."""
        if self._closed:
            return
        self._closed = True
        self._batch = []
        try:
            await self._source.aclose()
        finally:
            close = getattr(self._told, "close", None)
            if close is not None:
                close()

    async def __aenter__(self) -> AsyncResultStream[R]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._source.abandon()
