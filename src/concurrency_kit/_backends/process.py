"""Worker processes of the shared pool, fed pickled units (chunks) by the run engine.

The parent pickles each unit itself (function, first index, items), so a failure to
pickle names the item at fault. Each item's outcome comes back pickled on its own, so
one that cannot be rebuilt here is reported against its item.

When a run must end early — a timeout, Ctrl-C, a stream closed — the workers running
its units are killed, so no CPU is burned on work nobody will read; the pool
(``_backends.worker_pool``) starts fresh ones in their places, and other calls' units
go on. The same holds for an item past its ``task_timeout``, and for a worker that
reached ``max_tasks_per_worker`` (it retires). A worker that dies on its own makes its
unit ``Lost``: the engine raises
[`WorkerCrashedError`][concurrency_kit.WorkerCrashedError] naming the items that were
running or, with ``return_exceptions``, runs them again one at a time; the units queued
behind it go to other workers.

A cold pool takes a fifth of a second or more to start: ``ProcessRunner.warming``
starts it in the background and says when a first worker is up, so that the engine can
run items in the calling thread meanwhile (``_run/warming.py``).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import TYPE_CHECKING, Any, final

from .._core.costmodel import observe_round_trip
from .._core.crash import WorkerCrashedError
from .._core.errors import UnpicklableTaskError
from .given import given_in_worker
from .item_calls import prepared_in
from .pickling import needs_main, sendable, why_not_picklable
from .pools import (
    discard_process_pool,
    process_pool_size,
    stop_board,
    submit_to_processes,
    was_killed,
)
from .prestart import prestart_prepared_pool, prestart_process_pool
from .unit import Done, Lost, Read, Unit, Warming, run_chunk
from .worker import run_pickled_chunk
from .worker_pool import WorkerDied

if TYPE_CHECKING:
    from .outcomes import Outcomes
    from .stop_tokens import ProcessToken
    from .worker_pool import WorkerPool

__all__ = ["ProcessRunner", "Sent", "check_function", "crashed", "pickle_chunk", "send_first", "unpack_outcomes"]

#: Units kept in flight per worker when the pool is this call's size: one running, one
#: queued behind it. On a larger shared pool a queued unit would start on an idle
#: worker, so there the call keeps just ``workers`` in flight.
IN_FLIGHT_PER_WORKER = 2


def pickle_chunk(  # noqa: PLR0913 - a chunk's parts, by name
    fn: Callable[[Any], Any],
    chunk: Sequence[Any],
    start: int,
    *,
    collect: bool,
    slot: int | None = None,
    clock: int | None = None,
    timed: bool = False,
    limit: int | None = None,
) -> bytes:
    """What a worker's ``run_pickled_chunk`` takes: ``fn`` and the items ``start …`` of ``chunk``.

    ``slot``: the stream's stop token on the board (``_backends.stop_tokens``), if it has one;
    ``clock``: the call's clock on the board, where each item's index is noted (and,
    ``timed``: a task timeout, when it started); ``limit``: with
    ``max_tasks_per_worker``, the most items a worker may run in its life.

    Raises:
        UnpicklableTaskError: naming the first item that cannot be pickled.
    """
    try:
        chunk_parts = (sendable(fn), start, list(chunk), collect, slot, clock, timed, limit)
        return pickle.dumps(chunk_parts, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        for index, item in enumerate(chunk, start):
            try:
                pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as item_exc:
                raise UnpicklableTaskError(
                    f"item {index} ({type(item).__name__}) cannot be sent to a worker process: {item_exc}. "
                    "Pass picklable items, or use mode='thread' or 'serial'."
                ) from item_exc
        raise UnpicklableTaskError(f"a chunk cannot be sent to a worker process: {exc}") from exc


def unpack_outcomes(payload: bytes, start: int, *, collect: bool) -> tuple[Done, float]:
    """What ``run_pickled_chunk`` sent back for items ``start …``: their results, and the seconds they took."""
    done, seconds, _ = unpack_chunk(payload, start, collect=collect)
    return done, seconds


def unpack_chunk(payload: bytes, start: int, *, collect: bool) -> tuple[Done, float, bool]:
    """``unpack_outcomes``, and whether the worker retired (it reached ``max_tasks_per_worker``).

    Each item's outcome comes pickled on its own: one that cannot be rebuilt here
    becomes an [`UnpicklableTaskError`][concurrency_kit.UnpicklableTaskError] naming
    its item (a failure like any other, collected or not).
    """
    packed_outcomes, seconds, retired = pickle.loads(payload)
    outcomes: list[tuple[bool, Any]] = []
    for index, packed in enumerate(packed_outcomes, start):
        try:
            outcomes.append(pickle.loads(packed))
        except Exception as exc:  # noqa: BLE001 - reported against its item
            error = UnpicklableTaskError(
                f"the outcome of item {index} cannot be rebuilt in the calling process: {exc}. "
                "Its result or exception must unpickle (an exception class must accept its own args)."
            )
            error.__cause__ = exc
            outcomes.append((False, error))
    return Done.of(outcomes, collect=collect), float(seconds), bool(retired)


def crashed(indices: Sequence[int], exc: BaseException) -> BaseException:
    """The ``WorkerCrashedError`` for items ``indices``, lost with their worker (``exc``)."""
    shown = ", ".join(map(str, indices[:10])) + (", …" if len(indices) > 10 else "")
    error = WorkerCrashedError(
        f"a worker process died while running item(s) {shown} ({exc}); a fresh worker took its place", tuple(indices)
    )
    error.__cause__ = exc
    return error


class Sent:
    """A call's first item, sent to the pool before its plan was made, still running there.

    A run takes it over (``take``: a stream's first unit waits on it), or ``finish``
    waits for it and stores its outcome.
    """

    def __init__(self, fn: Callable[[Any], Any], item: Any, outcomes: Outcomes, sending: tuple[Any, Any]) -> None:
        self._fn, self._item, self._outcomes = fn, item, outcomes
        self._pool, self._future = sending

    def take(self) -> tuple[Future[bytes], WorkerPool]:
        """Its future (what ``run_pickled_chunk`` sends back) and the pool running it, for a run to wait on."""
        return self._future, self._pool

    def finish(self) -> None:
        """Wait for it and store its outcome, where nothing took it over.

        Raises:
            WorkerCrashedError: its worker died twice (unless exceptions are collected: then its outcome).
        """
        _settle(self._fn, self._item, self._outcomes, self._pool, self._future)


def send_first(
    fn: Callable[[Any], Any], items: Sequence[Any], outcomes: Outcomes, *, workers: int, within: float
) -> tuple[float, Sent | None]:
    """Run ``items[0]`` in a worker of the shared pool (of ``workers``), waiting up to ``within`` seconds.

    How the first item of work known to hold the GIL is measured when a pool is warm
    for it: a probe thread here would take a CPU, and the GIL from the threads that
    feed the pool, while the workers run the rest.

    Returns:
        The seconds it took in the worker (or, while it still runs, waited for it),
        and, while it still runs, what the run takes over (``Sent``); ``None``
        once its outcome (a result, or an exception) is stored in ``outcomes``.

    Raises:
        UnpicklableTaskError: ``fn`` or the item cannot be pickled (nothing was sent).
        WorkerCrashedError: its worker died (unless exceptions are collected).
    """
    check_function(fn)
    payload = pickle_chunk(fn, items[:1], 0, collect=outcomes.collect)
    given = given_in_worker()  # a test's figures (_backends.given): finished, or still running
    began = time.perf_counter()
    pool, future = submit_to_processes(workers, run_pickled_chunk, payload, main=needs_main(payload))
    try:
        if given is None or given.finished:
            wait([future], timeout=within if given is None else None)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            pool.kill_running([future])  # Ctrl-C: nobody will read it
        raise
    if not future.done():
        waited = time.perf_counter() - began if given is None else given.seconds
        return waited, Sent(fn, items[0], outcomes, (pool, future))
    seconds = _settle(fn, items[0], outcomes, pool, future)
    observe_round_trip(time.perf_counter() - began - seconds)  # a warm pool's, for the cost model
    return seconds if given is None else given.seconds, None


def _settle(fn: Callable[[Any], Any], item: Any, outcomes: Outcomes, pool: WorkerPool, future: Future[bytes]) -> float:
    """Store the first item's outcome into slot 0 of ``outcomes``; return the seconds it took in its worker.

    A worker that died is tried once more alone (with exceptions collected), as a run's
    lost items are; dying again, or without collecting, is the item's ``WorkerCrashedError``.
    """
    collect = outcomes.collect
    try:
        done, seconds = unpack_outcomes(future.result(), 0, collect=collect)
    except BrokenProcessPool as exc:
        _forget_if_stopped(pool, exc)
        if not outcomes.collect:
            raise crashed([0], exc)  # noqa: B904 - its cause is set: the pool's error
        payload = pickle_chunk(fn, [item], 0, collect=True)
        pool, future = submit_to_processes(1, run_pickled_chunk, payload, main=needs_main(payload))
        try:
            done, seconds = unpack_outcomes(future.result(), 0, collect=True)
        except BrokenProcessPool as again:
            _forget_if_stopped(pool, again)
            done, seconds = Done([crashed([0], again)]), 0.0
    if done.failed:
        outcomes.fail(0, done.values[0])
    else:
        outcomes.dense()[0] = done.values[0]  # with exceptions collected: the exception
    return seconds


def _forget_if_stopped(pool: WorkerPool, exc: BrokenProcessPool) -> None:
    """Forget ``pool`` where ``exc`` says it stopped whole (its workers could not start), not that one worker died.

    The units sent from now on then go to a fresh pool.
    """
    if not isinstance(exc, WorkerDied):
        discard_process_pool(pool)


def check_function(fn: Callable[[Any], Any]) -> None:
    """Raise ``UnpicklableTaskError`` when ``fn`` cannot go to a worker process (a lambda, a closure)."""
    reason = why_not_picklable(fn)
    if reason is not None:
        raise UnpicklableTaskError(
            f"{reason}. Worker processes need a function defined at module level in an importable "
            "module; use mode='thread' or 'serial' for this one."
        )


@final
class ProcessRunner:
    """A run's units as pickled chunks for the shared process pool (of ``workers`` workers at least).

    With ``fallback`` (auto mode), a unit that cannot be pickled runs in the calling
    thread instead, as a loop would run it.

    The pool moves up to ``workers + 1`` units into its call queue, beyond the reach of
    ``Future.cancel()``. Handing a worker only what it can start at once (CPython's
    ``EXTRA_QUEUED_CALLS`` trade-off) would leave it idle for a round trip after each
    unit; instead the units stay queued, and their items check the run's stop token
    (a slot of the board every worker reads, see ``_backends.stop_tokens``) before they start.
    """

    def __init__(  # noqa: PLR0913 - the run's shape, by name
        self,
        fn: Callable[[Any], Any],
        workers: int,
        *,
        collect: bool,
        fallback: bool = False,
        task_timeout: float | None = None,
        max_tasks_per_worker: int | None = None,
    ) -> None:
        check_function(fn)
        self._fn, self._workers, self._collect, self._fallback = fn, workers, collect, fallback
        #: With an initializer, the pool kept for it (its workers run it as they start), not the shared one.
        self._prepared = prepared_in(fn)
        self._limit = max_tasks_per_worker
        self._token: ProcessToken | None = None
        self._token_asked = False
        #: The call's clock on the board (its workers note the item they run), timed with a
        #: task timeout; then the units in the workers too.
        self._clock, self._timed = stop_board().new_clock(), task_timeout is not None
        self._sent: dict[Future[Any], Unit] = {}

    @property
    def capacity(self) -> int:
        """Units in flight: two a worker on a pool of the call's size, else one (a queued unit would start)."""
        own_size = self._prepared is not None or process_pool_size() == self._workers
        return self._workers * (IN_FLIGHT_PER_WORKER if own_size else 1)

    def warming(self) -> Warming | None:
        """Start the pool in the background if it is not up for this function: what says when a worker is."""
        if self._prepared is None:
            return prestart_process_pool(self._workers, self._fn)
        return prestart_prepared_pool(self._workers, self._prepared, self._fn)

    def submit(self, unit: Unit) -> Future[Any]:
        """Send ``unit`` to a worker (or run it here, when it cannot be pickled and may fall back)."""
        if not self._token_asked:
            self._token_asked = True
            self._token = stop_board().token()
        slot = None if self._token is None else self._token.slot
        try:
            payload = pickle_chunk(
                self._fn,
                unit.items,
                unit.start,
                collect=self._collect,
                slot=slot,
                clock=self._clock,
                timed=self._timed,
                limit=self._limit,
            )
        except UnpicklableTaskError:
            if not self._fallback:
                raise
            done: Future[Any] = Future()
            done.set_result(self.run_here(unit))
            return done
        # A unit of many short items may wait behind a busy worker's task; one long item
        # waits for the first worker to be free (``WorkerPool``).
        unit.pool, future = submit_to_processes(
            self._workers,
            run_pickled_chunk,
            payload,
            main=needs_main(payload),
            queue=len(unit.items) > 1,
            prepared=self._prepared,
        )
        if self._timed:
            self._sent[future] = unit
            future.add_done_callback(self._forget)
        return future

    def run_here(self, unit: Unit) -> Done:
        """Run ``unit`` in the calling thread."""
        return run_chunk(self._fn, unit.items, self._collect, unit.start)

    def help(self) -> bool:
        """Nothing to run here: the workers take every unit."""
        return False

    def read(self, unit: Unit, future: Future[Any]) -> Read:
        """Its outcomes; ``Lost`` when its worker died; ``None`` to send it again (another call killed its pool)."""
        try:
            result = future.result()
        except CancelledError:
            if unit.pool is not None and was_killed(unit.pool):
                return (
                    None  # still queued when its pool was killed whole (a pre-start stopped as the interpreter exits)
                )
            raise
        except BrokenProcessPool as exc:
            return self._lost(unit, exc)
        if isinstance(result, Done):  # run here, unpicklable
            return result
        done, seconds, retired = unpack_chunk(result, unit.start, collect=self._collect)
        # A worker that reached max_tasks_per_worker retires (``worker_loop``): a fresh one takes its place.
        if retired and not done.values and unit.items:
            return None  # it ran none of them, retired: send them again, to a fresh worker
        done.seconds = seconds
        return done

    def _lost(self, unit: Unit, exc: BrokenProcessPool) -> Lost | None:
        """``unit``'s worker died (or its pool stopped): what the engine makes of it (``None``: send it again)."""
        pool = unit.pool
        if pool is not None and was_killed(pool):
            return None  # killed whole on purpose (a pre-start stopped as the interpreter exits), not by these items
        if isinstance(exc, WorkerDied):  # the item it noted running is at fault
            culprit = stop_board().running_on(exc.pid, self._clock)
            return Lost(partial(crashed, exc=exc), together=False, culprit=culprit)
        if pool is not None:
            _forget_if_stopped(pool, exc)
        return Lost(partial(crashed, exc=exc), together=True)

    def halt(self, after: int) -> None:
        """No item after ``after`` starts, in any worker."""
        if self._token is not None:
            self._token.failed(after)

    def expire(self, seconds: float) -> list[tuple[Future[Any], Unit, int]]:
        """Kill the workers that run an item of the call longer than ``seconds``: those items' units.

        Each such worker alone goes: a fresh one takes its place, and the units queued
        behind it go to other workers.
        """
        if not self._timed:
            return []
        board, expired = stop_board(), list[tuple[Future[Any], Unit, int]]()
        overdue = board.overdue(self._clock, seconds)
        for _, index in overdue:
            for future, unit in list(self._sent.items()):
                if unit.start <= index < unit.stop and self._sent.pop(future, None) is not None:
                    expired.append((future, unit, index - unit.start))
        pools = {unit.pool for _, unit, _ in expired if unit.pool is not None}
        for entry, _ in overdue:
            for pool in pools:
                pool.kill_worker(board.pid_of(entry))
            board.stopped(entry)  # its worker is gone: the item no longer runs
        return expired

    def _forget(self, future: Future[Any]) -> None:
        """A unit is back: its items no longer run."""
        self._sent.pop(future, None)

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:
        """No item starts; cancel the units not started; with ``kill``, kill the workers running the others."""
        if self._token is not None:
            self._token.stop()
        started = {future: unit for future, unit in running.items() if not future.cancel()}
        if kill:
            for pool in {unit.pool for unit in started.values() if unit.pool is not None}:
                pool.kill_running(started)
        if self._token is not None:
            self._token.release_when_done(started)
            self._token = None
