"""Worker processes of the shared pool, fed pickled chunks.

The parent pickles each chunk itself (function, first index, items), so a failure to
pickle names the item at fault, and the bytes in flight are bounded: at most
``2 × workers`` chunks are submitted at a time. Each item's outcome comes back pickled
on its own, so one that cannot be rebuilt here is reported against its item. Chunks
shrink toward the end of the input (guided scheduling), so the workers finish together.

When the call must end early — a timeout, Ctrl-C — the pool's workers are killed, so
no CPU is burned on work nobody will read. A ``ProcessPoolExecutor`` cannot lose one
worker without breaking, so every worker of the shared pool goes; other calls that had
chunks running there send them again to a fresh pool. When a worker dies on its own,
the call raises [`WorkerCrashedError`][concurrency_kit.WorkerCrashedError] naming the items that were running; with
``return_exceptions`` those items are retried one at a time on a fresh pool instead,
and the one that kills its worker again gets the error.
"""

from __future__ import annotations

import math
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import TYPE_CHECKING, Any, cast, final

from .._core.costmodel import observe_round_trip
from .._core.crash import WorkerCrashedError
from .._core.errors import UnpicklableTaskError
from .given import given_in_worker
from .outcomes import Feed, Outcomes, run_span
from .pickling import needs_main, sendable, why_not_picklable
from .pools import (
    discard_process_pool,
    kill_process_pool,
    process_pool_size,
    stop_board,
    submit_daemon,
    submit_to_processes,
    was_killed,
)
from .prestart import Prestart, prestart_process_pool
from .unit import Lost, Read, Unit, run_chunk
from .worker import run_pickled_chunk

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from .stop_tokens import ProcessToken

__all__ = ["ProcessBackend", "ProcessRunner", "Sent", "check_function", "crashed", "pickle_chunk", "unpack_outcomes"]

#: Chunks kept in flight per worker when the pool is this call's size: one running, one
#: queued behind it. On a larger shared pool a queued chunk would start on an idle
#: worker, so there the call keeps just ``workers`` in flight.
IN_FLIGHT_PER_WORKER = 2
#: Guided scheduling: a chunk is at most the items left over this many times the
#: workers, so chunks shrink toward the end of the input and the workers finish together
#: (a long item near the end does not share its chunk, and its worker, with many more).
TAIL_SHARE = 2
#: A stream's chunk is sent to a fresh pool this many times at most when each breaks as it is submitted.
SUBMIT_ATTEMPTS = 3


def pickle_chunk(
    fn: Callable[[Any], Any], chunk: Sequence[Any], start: int, *, collect: bool, slot: int | None = None
) -> bytes:
    """What a worker's ``run_pickled_chunk`` takes: ``fn`` and the items ``start …`` of ``chunk``.

    ``slot``: the stream's stop token on the board (``_backends.stop_tokens``), if it has one.

    Raises:
        UnpicklableTaskError: naming the first item that cannot be pickled.
    """
    try:
        return pickle.dumps((sendable(fn), start, list(chunk), collect, slot), protocol=pickle.HIGHEST_PROTOCOL)
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


def _pickle_chunk(
    fn: Callable[[Any], Any], items: Sequence[Any], span: range, *, collect: bool, slot: int | None = None
) -> bytes:
    return pickle_chunk(fn, [items[i] for i in span], span.start, collect=collect, slot=slot)


def unpack_outcomes(payload: bytes, start: int) -> tuple[list[tuple[bool, Any]], float]:
    """What ``run_pickled_chunk`` sent back for items ``start …``: each one's outcome, and the seconds they took.

    An outcome is ``(True, result)`` or ``(False, exception)``; one that cannot be
    rebuilt here becomes an [`UnpicklableTaskError`][concurrency_kit.UnpicklableTaskError] naming its item.
    """
    packed_outcomes, seconds = pickle.loads(payload)
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
    return outcomes, float(seconds)


def _store(outcomes: Outcomes, span: range, payload: bytes) -> float:
    """Store a chunk's outcomes (what ``run_pickled_chunk`` sent back); return the seconds its items took."""
    values = outcomes.values
    unpacked, seconds = unpack_outcomes(payload, span.start)
    for index, (ok, value) in zip(span, unpacked, strict=False):
        if ok:
            values[index] = value
        else:
            outcomes.fail(index, value)
    return seconds


def crashed(indices: Sequence[int], exc: BaseException) -> BaseException:
    """The ``WorkerCrashedError`` for items ``indices``, lost with their worker (``exc``)."""
    shown = ", ".join(map(str, indices[:10])) + (", …" if len(indices) > 10 else "")
    error = WorkerCrashedError(
        f"a worker process died while running item(s) {shown} ({exc}); the pool was replaced", tuple(indices)
    )
    error.__cause__ = exc
    return error


class _Chunks:
    """One call's chunks in flight, and the spans to send again."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        feed: Feed,
        workers: int,
        computing: Sequence[Future[Any]] = (),
    ) -> None:
        self.fn, self.items, self.feed, self.workers = fn, items, feed, workers
        #: The call's stop token, taken by ``_with_token``: a chunk queued where it
        #: cannot be cancelled starts no item once the call failed or ended.
        self.token: ProcessToken | None = None
        self.running: dict[Future[bytes], tuple[ProcessPoolExecutor, range]] = {}
        self.again: list[range] = []  # lost to a pool another call killed: send again
        #: Threads of this process computing the call's items meanwhile (see ProcessBackend.run_helping).
        self.computing = computing
        #: What the items of the chunks stored so far took in the workers.
        self.seconds = 0.0

    def others_computing(self) -> set[Future[Any]]:
        """The threads of ``computing`` still running."""
        return {future for future in self.computing if not future.done()}

    def fill(self, chunksize: int) -> None:
        """Submit chunks until the call's share of the pool is busy.

        While threads of this process still compute the call's items, they take a CPU
        (one between them: they hold the GIL): the call then keeps one chunk fewer than
        it has workers in flight, none queued, rather than run a process more than there
        are CPUs. The rest follow as those threads finish.
        """
        if self.others_computing():
            limit = max(1, self.workers - 1)
        else:
            limit = self.workers * (IN_FLIGHT_PER_WORKER if process_pool_size() == self.workers else 1)
        while len(self.running) < limit and (span := self.again.pop() if self.again else self._take(chunksize)):
            try:
                token = self.token
                slot = None if token is None else token.slot
                payload = _pickle_chunk(self.fn, self.items, span, collect=self.feed.outcomes.collect, slot=slot)
            except UnpicklableTaskError:
                self.feed.stop()
                self.finish()  # keep what was already sent
                raise
            try:
                pool, future = submit_to_processes(self.workers, run_pickled_chunk, payload, main=needs_main(payload))
            except BrokenProcessPool:
                # A worker died since the last look: the chunks in flight will say which.
                self.again.append(span)
                if self.running:
                    return
                continue  # nothing in flight: the next submission gets a fresh pool
            self.running[future] = (pool, span)

    def _take(self, chunksize: int) -> range:
        guided = math.ceil(self.feed.remaining / (TAIL_SHARE * self.workers))
        return self.feed.take(max(1, min(chunksize, guided)))

    def collect(self, done: set[Future[bytes]]) -> None:
        """Store finished chunks; handle chunks lost with a broken pool."""
        lost: list[int] = []
        broken: tuple[ProcessPoolExecutor, BaseException] | None = None
        for future in done:
            pool, span = self.running.pop(future)
            try:
                self.seconds += _store(self.feed.outcomes, span, future.result())
            except BrokenProcessPool as exc:
                if was_killed(pool):  # another call's timeout or Ctrl-C, not our items
                    self.again.append(span)
                    continue
                discard_process_pool(pool)
                lost.extend(span)
                broken = pool, exc
        if broken is None:
            return
        # Every chunk still in flight on the broken pool went down with it.
        for future, (pool, span) in list(self.running.items()):
            if pool is broken[0]:
                del self.running[future]
                lost.extend(span)
        lost.sort()
        if not self.feed.outcomes.collect:
            raise crashed(lost, broken[1])
        _isolate(self.fn, self.items, lost, self.feed.outcomes, self.workers)

    def finish(self) -> None:
        """Cancel the chunks not started; wait for the others and keep their results."""
        for future in list(self.running):
            if future.cancel():
                del self.running[future]
        self.collect(wait(self.running).done)

    def kill(self) -> None:
        """Stop the workers running this call's chunks (every worker of their pools)."""
        for pool in {pool for pool, _ in self.running.values()}:
            kill_process_pool(pool)


class Sent:
    """A call's first item, sent to the pool before its plan was made, still running there.

    ``ProcessBackend.run_helping`` takes it over (its outcome is stored as the
    call's other chunks' are); ``finish`` waits for it instead.
    """

    def __init__(self, chunks: _Chunks) -> None:
        self._chunks = chunks

    def adopt(self, chunks: _Chunks) -> None:
        """Have ``chunks`` (the rest of the call's) wait for this one too."""
        chunks.running.update(self._chunks.running)
        self._chunks.running.clear()

    def finish(self) -> None:
        """Wait for it and store its outcome, where nothing took it over."""
        self._chunks.finish()

    def take(self) -> tuple[Future[bytes], ProcessPoolExecutor]:
        """Its future (what ``run_pickled_chunk`` sends back) and the pool running it, for a stream to wait on."""
        future, (pool, _) = self._chunks.running.popitem()
        return future, pool


class ProcessBackend:
    """Runs chunks of items in the shared process pool."""

    def send_first(
        self, fn: Callable[[Any], Any], items: Sequence[Any], outcomes: Outcomes, *, workers: int, within: float
    ) -> tuple[float, Sent | None]:
        """Run ``items[0]`` in a worker of the shared pool (of ``workers``), waiting up to ``within`` seconds.

        How the first item of work known to hold the GIL is measured when a pool is warm
        for it: a probe thread here would take a CPU, and the GIL from the threads that
        feed the pool, while the workers run the rest.

        Returns:
            The seconds it took in the worker (or, while it still runs, waited for it),
            and, while it still runs, what ``run_helping`` takes over; ``None``
            once its outcome (a result, or an exception) is stored in ``outcomes``.

        Raises:
            UnpicklableTaskError: ``fn`` or the item cannot be pickled (nothing was sent).
            WorkerCrashedError: its worker died (unless exceptions are collected).
        """
        check_function(fn)
        chunks = _Chunks(fn, items, Feed(outcomes, 0, 1), workers)
        given = given_in_worker()  # a test's figures (_backends.given): finished, or still running
        began = time.perf_counter()
        chunks.fill(1)
        try:
            if given is None or given.finished:
                done, _ = wait(chunks.running, timeout=within if given is None else None)
                chunks.collect(done)
        except BaseException as exc:
            _abandon(chunks, kill=_ends_the_program(exc))
            raise
        if chunks.running:
            return time.perf_counter() - began if given is None else given.seconds, Sent(chunks)
        observe_round_trip(time.perf_counter() - began - chunks.seconds)  # a warm pool's, for the cost model
        return chunks.seconds if given is None else given.seconds, None

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
        check_function(fn)
        _drain(_with_token(_Chunks(fn, items, feed, workers)), chunksize, deadline)

    def run_helping(  # noqa: PLR0913 - run()'s, and what else runs items here
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        feed: Feed,
        *,
        workers: int,
        chunksize: int,
        others: Sequence[Future[Any]] = (),
        others_compute: bool = False,
        sent: Sent | None = None,
    ) -> None:
        """``run``, with the calling thread running items itself until a worker is up.

        A cold pool takes a fifth of a second or more to start: rather than wait, the
        calling thread runs items from the front of the feed, a few milliseconds' worth
        at a time, as a loop would. The moment a first worker is up, a thread of ours
        sends the pool its first chunks (workers still starting take theirs as they
        come), even while the calling thread is still in the middle of an item (which
        may be long); the calling thread then finishes its span and sends the rest. With
        no deadline only: an item running in the calling thread could not be stopped in
        time.

        Between spans the calling thread lets go of the GIL: the pool is started by
        threads of this process (ours, the executor's), each step of which needs it, and
        a caller that held it for all but the forced switch every 5 ms made a pool start
        take 2-3 times as long (in exchange, about a tenth of the caller's time).

        ``others``: other threads of this process that run the call's items (the
        probe's); the calling thread starts on items only once they are done. Items
        that hold the GIL gain nothing from a second thread of the same process, which
        would take turns with them, and with the threads starting the pool. With
        ``others_compute`` (their items hold the GIL), those threads take a CPU
        meanwhile, and the pool runs a chunk fewer until they are done (see
        ``_Chunks.fill``): on two CPUs, four items of 0.1 s ran three at a time.
        ``sent``: the call's first item, already running in the pool (``send_first``).

        Raises:
            The same as ``run``, without the timeout.
        """
        check_function(fn)
        chunks = _with_token(_Chunks(fn, items, feed, workers, others if others_compute else ()))
        if sent is not None:
            sent.adopt(chunks)
        starting = prestart_process_pool(workers, fn)
        if starting is not None:
            try:
                _help_while_starting(chunks, chunksize, starting, others)
            except BaseException as exc:  # between spans (one inside an item is recorded)
                _abandon(chunks, kill=_ends_the_program(exc))
                raise
        _drain(chunks, chunksize, None)


#: While the process pool starts, the calling thread runs spans of this fraction of a
#: chunk (about a millisecond of work), checking in between whether a worker is up.
HELP_SPAN = 1 / 32
#: ... and, while other threads of the call still run items here, checks this often
#: whether they are done.
HELP_WAIT = 0.001


def _help_while_starting(
    chunks: _Chunks, chunksize: int, starting: Prestart, others: Sequence[Future[Any]] = ()
) -> None:
    """Run spans in the calling thread while ``starting`` (the pool's pre-start) runs.

    Not before ``others``, the call's other threads here, have finished their
    items (see ``ProcessBackend.run_helping``).
    """
    first = _FirstChunks(chunks, chunksize)
    submit_daemon(first.send_when_up, starting, name="concurrency_kit-first-chunks")
    feed, span_size = chunks.feed, max(1, int(chunksize * HELP_SPAN))
    try:
        while others and not first.sent and starting.is_alive():
            if not wait(others, timeout=HELP_WAIT).not_done:
                break
        while not first.sent and starting.is_alive() and (span := feed.take(span_size)):
            if not run_span(chunks.fn, chunks.items, feed, span, check_each=False):
                break
            time.sleep(0)  # let the threads starting the pool take the GIL
    finally:
        first.close()
    if first.error is not None:
        raise first.error


class _FirstChunks:
    """A call's first chunks, sent by a thread of ours the moment a worker of the pool is up."""

    def __init__(self, chunks: _Chunks, chunksize: int) -> None:
        self._chunks, self._chunksize = chunks, chunksize
        self._lock = threading.Lock()
        self._closed = False
        #: Whether they were sent (the calling thread then stops running items itself).
        self.sent = False
        #: What sending them raised (an item that cannot be pickled), for the caller.
        self.error: Exception | None = None

    def send_when_up(self, starting: Prestart) -> None:
        """Wait for a first worker to be up, then send chunks unless the caller closed first.

        Not for every worker: those still starting take chunks from the queue as they come.
        """
        starting.up.wait()
        with self._lock:
            if self._closed:
                return
            try:
                self._chunks.fill(self._chunksize)
            except Exception as exc:  # noqa: BLE001 - the calling thread raises it
                self.error = exc
            self.sent = True

    def close(self) -> None:
        """Send nothing from now on; wait for a sending under way to end."""
        with self._lock:
            self._closed = True


def check_function(fn: Callable[[Any], Any]) -> None:
    """Raise ``UnpicklableTaskError`` when ``fn`` cannot go to a worker process (a lambda, a closure)."""
    reason = why_not_picklable(fn)
    if reason is not None:
        raise UnpicklableTaskError(
            f"{reason}. Worker processes need a function defined at module level in an importable "
            "module; use mode='thread' or 'serial' for this one."
        )


def _drain(chunks: _Chunks, chunksize: int, deadline: float | None) -> None:
    """Keep the call's chunks in flight and store what comes back, until the feed is done."""
    feed = chunks.feed
    kill = False  # the workers running chunks: nobody will read what they compute
    try:
        while not feed.outcomes.failed:
            chunks.fill(chunksize)
            if not chunks.running:
                return
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            # Also woken when a thread computing the call's items here ends: a chunk more may go.
            done, _ = wait(chunks.running.keys() | chunks.others_computing(), timeout, FIRST_COMPLETED)
            if not done:
                raise TimeoutError  # the caller words it
            chunks.collect(done & chunks.running.keys())
        kill = _ends_the_program(feed.outcomes.error)  # Ctrl-C in an item run here
    except BaseException as exc:
        kill = _ends_the_program(exc) or isinstance(exc, TimeoutError)
        raise
    finally:
        _abandon(chunks, kill=kill)


def _ends_the_program(exc: BaseException | None) -> bool:
    """Whether ``exc`` ends the program rather than the call: Ctrl-C, or ``SystemExit`` from a signal handler.

    The workers running the call's chunks are then killed: the interpreter's exit would
    otherwise wait for them to finish items whose results nobody will read.
    """
    return exc is not None and not isinstance(exc, Exception)


def _with_token(chunks: _Chunks) -> _Chunks:
    """``chunks``, with a stop token of their own (see ``_backends.stop_tokens``); ``_abandon`` gives it back."""
    chunks.token = stop_board().token()
    return chunks


def _abandon(chunks: _Chunks, *, kill: bool) -> None:
    """Hand out nothing more, start no item, cancel the chunks not started and, with ``kill``, stop the rest."""
    chunks.feed.stop()
    token, chunks.token = chunks.token, None
    if token is not None:
        token.stop()
    if kill:
        chunks.kill()
    for future in chunks.running:
        future.cancel()  # not yet started: never runs
    if token is not None:
        token.release_when_done(chunks.running)


def _isolate(
    fn: Callable[[Any], Any], items: Sequence[Any], indices: Sequence[int], outcomes: Outcomes, workers: int
) -> None:
    """Retry each lost item alone; one that kills its worker again gets WorkerCrashedError."""
    for index in indices:
        span = range(index, index + 1)
        payload = _pickle_chunk(fn, items, span, collect=True)
        pool, future = submit_to_processes(workers, run_pickled_chunk, payload, main=needs_main(payload))
        try:
            _store(outcomes, span, future.result())
        except BrokenProcessPool as exc:
            outcomes.fail(index, crashed([index], exc))
            discard_process_pool(pool)


@final
class ProcessRunner:
    """A stream's units as pickled chunks for the shared process pool (of ``workers`` workers at least).

    With ``fallback`` (auto mode), a chunk that cannot be pickled runs in the calling
    thread instead, as a loop would run it.

    The pool moves up to ``workers + 1`` chunks into its call queue, beyond the reach of
    ``Future.cancel()``. Handing a worker only what it can start at once (CPython's
    ``EXTRA_QUEUED_CALLS`` trade-off) would leave it idle for a round trip after each
    chunk; instead the chunks stay queued, and their items check the stream's stop token
    (a slot of the board every worker reads, see ``_backends.stop_tokens``) before they start.
    """

    def __init__(self, fn: Callable[[Any], Any], workers: int, *, collect: bool, fallback: bool = False) -> None:
        check_function(fn)
        self._fn, self._workers, self._collect, self._fallback = fn, workers, collect, fallback
        self._token: ProcessToken | None = None
        self._token_asked = False

    def submit(self, unit: Unit) -> Future[Any]:
        """Send ``unit`` to a worker (or run it here, when it cannot be pickled and may fall back)."""
        if not self._token_asked:
            self._token_asked = True
            self._token = stop_board().token()
        slot = None if self._token is None else self._token.slot
        try:
            payload = pickle_chunk(self._fn, unit.items, unit.start, collect=self._collect, slot=slot)
        except UnpicklableTaskError:
            if not self._fallback:
                raise
            done: Future[Any] = Future()
            done.set_result(run_chunk(self._fn, unit.items, self._collect))
            return done
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                unit.pool, future = submit_to_processes(
                    self._workers, run_pickled_chunk, payload, main=needs_main(payload)
                )
            except BrokenProcessPool:
                if attempt == SUBMIT_ATTEMPTS - 1:
                    raise
                continue  # a worker died since the last submission: a fresh pool takes it
            return future
        raise AssertionError("unreachable")

    def read(self, unit: Unit, future: Future[Any]) -> Read:
        """Its outcomes; ``Lost`` when its worker died; ``None`` to send it again (another call killed its pool).

        The broken pool is forgotten: the units sent from now on go to a fresh one.
        """
        try:
            result = future.result()
        except BrokenProcessPool as exc:
            pool = unit.pool
            if pool is not None and was_killed(pool):
                return None  # another call's timeout or Ctrl-C, not these items
            if pool is not None:
                discard_process_pool(pool)
            return Lost(partial(crashed, exc=exc), together=True)
        if isinstance(result, list):  # run here, unpicklable
            return cast("list[tuple[bool, Any]]", result)
        outcomes, _ = unpack_outcomes(result, unit.start)
        return outcomes

    def halt(self, after: int) -> None:
        """No item after ``after`` starts, in any worker."""
        if self._token is not None:
            self._token.failed(after)

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:
        """No item starts; cancel the chunks not started; with ``kill``, kill the pools running the others."""
        if self._token is not None:
            self._token.stop()
        started = {future: unit for future, unit in running.items() if not future.cancel()}
        if kill:
            for pool in {unit.pool for unit in started.values() if unit.pool is not None}:
                kill_process_pool(pool)
        if self._token is not None:
            self._token.release_when_done(started)
            self._token = None
