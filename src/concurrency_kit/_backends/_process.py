"""Worker processes of the shared pool, fed pickled chunks.

The parent pickles each chunk itself (function, first index, items), so a failure to
pickle names the item at fault, and the bytes in flight are bounded: at most
``2 × workers`` chunks are submitted at a time.

When the call must end early — a timeout, Ctrl-C — the pool's workers are killed, so
no CPU is burned on work nobody will read, and the pool is rebuilt by the next call.
When a worker dies, the call raises :class:`WorkerCrashedError` naming the items that
were running; with ``return_exceptions`` those items are retried one at a time on a
fresh pool instead, and the one that kills its worker again gets the error.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TYPE_CHECKING, Any

from .._errors import UnpicklableTaskError
from .._outcomes import Feed, Outcomes
from .._pickling import why_not_picklable
from .._pools import discard_process_pool, kill_process_pool, process_pool, process_pool_size
from .._worker import run_pickled_chunk

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["ProcessBackend"]

#: Chunks kept in flight per worker when the pool is this call's size: one running, one
#: queued behind it. On a larger shared pool a queued chunk would start on an idle
#: worker, so there the call keeps just ``workers`` in flight.
IN_FLIGHT_PER_WORKER = 2


def _pickle_chunk(fn: Callable[[Any], Any], items: Sequence[Any], span: range, *, collect: bool) -> bytes:
    chunk = [items[i] for i in span]
    try:
        return pickle.dumps((fn, span.start, chunk, collect), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        for index, item in zip(span, chunk, strict=True):
            try:
                pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as item_exc:
                raise UnpicklableTaskError(
                    f"item {index} ({type(item).__name__}) cannot be sent to a worker process: {item_exc}. "
                    "Pass picklable items, or use mode='thread' or 'serial'."
                ) from item_exc
        raise UnpicklableTaskError(f"a chunk cannot be sent to a worker process: {exc}") from exc


def _store(outcomes: Outcomes, span: range, payload: bytes) -> None:
    values = outcomes.values
    for index, (ok, value) in zip(span, pickle.loads(payload), strict=False):
        if ok:
            values[index] = value
        else:
            outcomes.fail(index, value)


def _crashed(indices: Sequence[int], exc: BaseException) -> BaseException:
    from .._crash import WorkerCrashedError  # noqa: PLC0415 - imports multiprocessing

    shown = ", ".join(map(str, indices[:10])) + (", …" if len(indices) > 10 else "")
    error = WorkerCrashedError(
        f"a worker process died while running item(s) {shown} ({exc}); the pool was replaced", tuple(indices)
    )
    error.__cause__ = exc
    return error


class ProcessBackend:
    """Runs chunks of items in the shared process pool."""

    def run(  # noqa: PLR0913 - the backend protocol
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        feed: Feed,
        *,
        workers: int,
        chunksize: int,
        deadline: float | None = None,
    ) -> None:
        """Run the feed's items in ``workers`` worker processes.

        Raises:
            UnpicklableTaskError: ``fn`` or an item cannot be pickled.
            WorkerCrashedError: a worker died (unless exceptions are collected).
            TimeoutError: ``deadline`` (a ``time.monotonic()`` value) passed.
        """
        reason = why_not_picklable(fn)
        if reason is not None:
            raise UnpicklableTaskError(
                f"{reason}. Worker processes need a function defined at module level in an importable "
                "module; use mode='thread' or 'serial' for this one."
            )
        outcomes = feed.outcomes
        collect = outcomes.collect
        pool = process_pool(workers)
        limit = workers * (IN_FLIGHT_PER_WORKER if process_pool_size() == workers else 1)
        running: dict[Future[bytes], range] = {}
        try:
            while True:
                while len(running) < limit and (span := feed.take(chunksize)):
                    try:
                        payload = _pickle_chunk(fn, items, span, collect=collect)
                    except UnpicklableTaskError:
                        feed.stop()
                        _finish_running(outcomes, running)  # keep what was already sent
                        raise
                    running[pool.submit(run_pickled_chunk, payload)] = span
                if not running:
                    return
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                if not done:
                    raise TimeoutError  # the caller words it
                lost, broken = _collect(done, running, outcomes)
                if broken is not None:
                    # Every chunk still in flight went down with the pool.
                    lost = sorted([*lost, *(i for span in running.values() for i in span)])
                    running.clear()
                    discard_process_pool(pool)
                    if not collect:
                        raise _crashed(lost, broken)
                    _isolate(fn, items, lost, outcomes, workers)
                    pool = process_pool(workers)
                if outcomes.failed:
                    return
        except (KeyboardInterrupt, TimeoutError):
            kill_process_pool(pool)  # nobody will read what they compute
            raise
        finally:
            feed.stop()
            for future in running:
                future.cancel()  # not yet started: never runs


def _collect(
    done: set[Future[bytes]], running: dict[Future[bytes], range], outcomes: Outcomes
) -> tuple[list[int], BaseException | None]:
    """Store finished chunks; return the items of chunks lost to a dead worker, and why."""
    from concurrent.futures.process import BrokenProcessPool  # noqa: PLC0415

    lost: list[int] = []
    broken: BaseException | None = None
    for future in done:
        span = running.pop(future)
        try:
            _store(outcomes, span, future.result())
        except BrokenProcessPool as exc:
            lost.extend(span)
            broken = exc
    return lost, broken


def _isolate(
    fn: Callable[[Any], Any], items: Sequence[Any], indices: Sequence[int], outcomes: Outcomes, workers: int
) -> None:
    """Retry each lost item alone; one that kills its worker again gets WorkerCrashedError."""
    from concurrent.futures.process import BrokenProcessPool  # noqa: PLC0415

    pool: ProcessPoolExecutor = process_pool(workers)
    for index in indices:
        span = range(index, index + 1)
        future = pool.submit(run_pickled_chunk, _pickle_chunk(fn, items, span, collect=True))
        try:
            _store(outcomes, span, future.result())
        except BrokenProcessPool as exc:
            outcomes.fail(index, _crashed([index], exc))
            discard_process_pool(pool)
            pool = process_pool(workers)


def _finish_running(outcomes: Outcomes, running: dict[Future[bytes], range]) -> None:
    """Cancel the chunks not started; wait for the others and keep their results."""
    for future in list(running):
        if future.cancel():
            del running[future]
    for future in wait(running).done:
        _store(outcomes, running.pop(future), future.result())
