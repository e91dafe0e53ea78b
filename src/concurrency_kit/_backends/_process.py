"""Worker processes of the shared pool, fed pickled chunks.

The parent pickles each chunk itself (function, first index, items), so a failure to
pickle names the item at fault, and the bytes in flight are bounded: at most
``2 × workers`` chunks are submitted at a time.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from .._errors import UnpicklableTaskError
from .._outcomes import Feed, Outcomes
from .._pickling import why_not_picklable
from .._pools import discard_process_pool, process_pool, process_pool_size
from .._worker import run_pickled_chunk

__all__ = ["ProcessBackend"]

#: Chunks kept in flight per worker when the pool is this call's size: one running, one
#: queued behind it. On a larger shared pool a queued chunk would start on an idle
#: worker, so there the call keeps just ``workers`` in flight.
IN_FLIGHT_PER_WORKER = 2


def _pickle_chunk(fn: Callable[[Any], Any], items: Sequence[Any], span: range) -> bytes:
    chunk = [items[i] for i in span]
    try:
        return pickle.dumps((fn, span.start, chunk), protocol=pickle.HIGHEST_PROTOCOL)
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


class ProcessBackend:
    """Runs chunks of items in the shared process pool."""

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any], feed: Feed, *, workers: int, chunksize: int) -> None:
        """Run the feed's items in ``workers`` worker processes.

        Raises:
            UnpicklableTaskError: ``fn`` or an item cannot be pickled.
        """
        reason = why_not_picklable(fn)
        if reason is not None:
            raise UnpicklableTaskError(
                f"{reason}. Worker processes need a function defined at module level in an importable "
                "module; use mode='thread' or 'serial' for this one."
            )
        pool = process_pool(workers)
        limit = workers * (IN_FLIGHT_PER_WORKER if process_pool_size() == workers else 1)
        outcomes = feed.outcomes
        running: dict[Future[bytes], range] = {}
        try:
            while True:
                while len(running) < limit and (span := feed.take(chunksize)):
                    try:
                        payload = _pickle_chunk(fn, items, span)
                    except UnpicklableTaskError:
                        feed.stop()
                        _finish_running(outcomes, running)  # keep what was already sent
                        raise
                    running[pool.submit(run_pickled_chunk, payload)] = span
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    _store(outcomes, running.pop(future), future.result())
                if outcomes.failed:
                    return
        except BaseException as exc:
            from concurrent.futures.process import BrokenProcessPool  # noqa: PLC0415 - loaded with the pool

            if isinstance(exc, BrokenProcessPool):
                discard_process_pool(pool)
            raise
        finally:
            feed.stop()
            for future in running:
                future.cancel()  # not yet started: never runs


def _finish_running(outcomes: Outcomes, running: dict[Future[bytes], range]) -> None:
    """Cancel the chunks not started; wait for the others and keep their results."""
    for future in list(running):
        if future.cancel():
            del running[future]
    for future in wait(running).done:
        _store(outcomes, running.pop(future), future.result())
