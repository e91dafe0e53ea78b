"""``AutoExecutor``: a ``concurrent.futures.Executor`` that decides, call by call, where work runs.

    submit(fn, *args)  → the kind of fn: declared (a decorator, a classifier), or what
                         concurrency_kit measured of it (memory, shared with auto calls)
                           io / gil_free / unknown  → the executor's threads
                             (an unknown function's calls are timed there, and what
                             they show is remembered)
                           cpu, long enough to pay a process's round trip
                                                    → the executor's worker processes
                           async (a coroutine function) → the executor's event loop,
                             in a thread of its own: the future holds what it returns
    map(fn, *iterables) → auto's stream (iter_parallel): measured, chunked, bounded

The executor owns its thread and process pools and its event loop (each started when
first needed) and shuts them down with [`AutoExecutor.shutdown`][concurrency_kit.AutoExecutor.shutdown]; ``map`` streams
through concurrency_kit's shared pools, as every auto call does.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import ParamSpec

from .._backends.given import timed_call
from .._backends.item_calls import call_prepared
from .._backends.pickling import why_not_picklable
from .._backends.pools import new_process_pool
from .._backends.recycling import Recycling
from .._core.costmodel import model_in_force
from .._core.cpu import gil_enabled, planning_cpus
from .._core.kinds import TaskKind
from .._core.options import MODES, check_count, check_initializer
from .._decide.classify import declared_kind, kind_from_measurement
from .._decide.learning import Finished, learn
from .._decide.measuring import one_thread_measurement
from .._decide.memory import Memo, recall
from .._decide.sizing import SIZING
from .._run.in_place import init_of

if TYPE_CHECKING:
    import asyncio

__all__ = ["AutoExecutor"]

P = ParamSpec("P")
T = TypeVar("T")

#: An unknown function's first calls are timed in a thread, this many, before its kind is remembered.
TIMED_CALLS = 2
#: A call goes to a worker process only if it computes at least this many process round
#: trips' worth (pickling both ways, a pipe each way): its own cost is then a tenth at most.
PROCESS_WORTH = 10


class _Star(functools.partial):  # type: ignore[type-arg]
    """``fn(*args)`` as a one-argument function of ``args``, for ``map`` over several iterables.

    A ``functools.partial`` of ``fn``, so that what concurrency_kit remembers of ``fn``
    (kept under its code, through partials) and its declared kind serve this too; it
    pickles when ``fn`` does.
    """

    def __call__(self, args: tuple[Any, ...], /) -> Any:
        fn: Callable[..., Any] = self.func
        return fn(*args)


class _Zipped:
    """The argument tuples of ``map`` over several iterables, with their length where every one has one."""

    def __init__(self, iterables: tuple[Iterable[Any], ...]) -> None:
        self._iterables = iterables

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return zip(*self._iterables, strict=False)

    def __len__(self) -> int:
        return min(len(each) for each in self._iterables)  # type: ignore[arg-type]


def _code_of(fn: Callable[..., Any]) -> object:
    """What identifies a function's calls without keeping its object (or a bound method's instance) alive."""
    inner: Any = getattr(fn, "__func__", fn)
    code: object = getattr(inner, "__code__", None)
    return code or inner


class AutoExecutor(Executor):
    """A drop-in ``concurrent.futures.Executor`` whose calls run where their kind says.

    ``submit`` sends each call to threads or processes by what is known of its function:
    its declared kind (``@cpu_bound``, ``@io_bound``, ``@gil_free``, a classifier), or
    what concurrency_kit measured of it before (the same memory as ``run_parallel``'s).
    A function nothing is known of runs in threads, timed, for its first calls; a
    function then found computing, longer than ten process round trips (~5 ms), goes to
    processes from its next call on (not on free-threaded CPython without a GIL, where
    threads compute side by side). A coroutine function's calls are awaited on the
    executor's own event loop, in a thread of its own: its future holds the coroutine's
    result, not the coroutine. ``map`` is auto's streaming map: lazy, bounded, ordered,
    with chunks sized by measuring (coroutines on an event loop of the map's own).

    Args:
        max_workers: the most threads, and the most worker processes (default: 64 threads,
            one process per CPU).
        mode: ``"auto"``, or a mode every call takes: ``"thread"``, ``"process"``,
            ``"serial"`` (run in ``submit``'s caller) or ``"async"`` (awaited on the
            executor's event loop).
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``,
            consulted first (``sample`` is the call's arguments).
        initializer: run as ``initializer(*initargs)`` once in each worker (thread or
            process) before the first call it runs, as ``concurrent.futures``' own; once
            on the event loop for coroutines, once for ``mode="serial"``; ``map`` passes
            it to its run. If it raises, the call's future holds a
            [`WorkerInitError`][concurrency_kit.WorkerInitError].
        initargs: its arguments.
        max_tasks_per_worker: a worker process is replaced after it has run this many
            calls (``map``: items); no effect on threads, coroutines or ``"serial"``.

    Raises:
        ValueError: ``max_workers`` or ``max_tasks_per_worker`` below 1, or an unknown mode.
        TypeError: ``max_workers`` not an int, ``classifier`` or ``initializer`` not
            callable, ``initargs`` not a tuple, or ``max_tasks_per_worker`` not an int.
    """

    def __init__(  # noqa: PLR0913 - the public signature
        self,
        max_workers: int | None = None,
        *,
        mode: str = "auto",
        classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
    ) -> None:
        if max_workers is not None:
            if isinstance(max_workers, bool) or not isinstance(max_workers, int):
                raise TypeError(f"max_workers must be an int or None, got {type(max_workers).__name__}")
            if max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
        if mode not in MODES or mode == "executor":
            raise ValueError(f"mode must be 'auto', 'serial', 'thread', 'process' or 'async', got {mode!r}")
        if classifier is not None and not callable(classifier):
            raise TypeError(f"classifier must be callable or None, got {type(classifier).__name__}")
        check_initializer(initializer, initargs)
        if max_tasks_per_worker is not None:
            check_count("max_tasks_per_worker", max_tasks_per_worker)
        self._limit = max_tasks_per_worker
        self._recycling: Recycling | None = None
        self._initializer, self._initargs = initializer, initargs
        #: Sent by reference, as the standard executor sends it, beside a function it sends so.
        self._init = init_of(initializer, initargs, by_reference=True)
        self._loop_ready: Any = None  # the event loop's run of the initializer (PreparedAsync)
        self._max_workers = max_workers
        self._mode = mode
        self._classifier = classifier
        self._lock = threading.RLock()  # a coroutine's future may be done, its callback run, inside submit
        self._shutdown = False
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._awaiting: set[Future[Any]] = set()  # coroutines' futures not yet done
        self._timings: dict[object, list[tuple[float, float]]] = {}  # code → (wall, cpu) of timed calls

    # -- where a call goes ----------------------------------------------------------

    def _kind(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[TaskKind | None, Memo | None]:
        decision = declared_kind(fn, args, self._classifier)
        if decision is not None:
            return decision.kind, None
        memo = recall(fn)
        return (None if memo is None else memo.kind), memo

    def _in_processes(self, fn: Callable[..., Any], kind: TaskKind | None, memo: Memo | None) -> bool:
        if self._mode != "auto":
            return self._mode == "process"
        if not gil_enabled() or kind is not TaskKind.CPU:
            return False
        worth = memo is None or memo.item_seconds >= PROCESS_WORTH * model_in_force().process_round_trip
        return worth and why_not_picklable(fn) is None

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=self._max_workers or SIZING.forced_threads, thread_name_prefix="concurrency_kit-auto"
            )
        return self._threads

    def _recycled(self) -> Recycling:
        """The process pools whose workers retire after ``max_tasks_per_worker`` calls (under the lock)."""
        if self._recycling is None:
            workers, limit = self._max_workers or planning_cpus(), self._limit
            assert limit is not None
            self._recycling = Recycling(lambda: new_process_pool(workers), limit, self._init)
        return self._recycling

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            self._processes = new_process_pool(self._max_workers or planning_cpus())
        return self._processes

    # -- the Executor interface ----------------------------------------------------------

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` where its kind says; return its ``Future``.

        Raises:
            RuntimeError: the executor was shut down.
        """
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._mode == "serial":
                return _run_here(self._prepared(fn, in_threads=False), args, kwargs)
            kind, memo = self._kind(fn, args) if self._mode == "auto" else (None, None)
            if self._mode == "async" or kind is TaskKind.ASYNC:
                return self._on_loop(fn, args, kwargs)
            if self._in_processes(fn, kind, memo):
                return self._to_processes(fn, args, kwargs)
            pool, run = self._thread_pool(), self._prepared(fn, in_threads=True)
            if self._mode == "auto" and kind is None:
                return pool.submit(self._timed, run, args, kwargs)
            return pool.submit(run, *args, **kwargs)

    def _to_processes(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[T]:
        """``fn(*args, **kwargs)`` on the processes: set up first, retired at their limit (under the lock)."""
        if self._limit is not None:
            return self._recycled().submit(fn, args, kwargs)
        if self._init is not None:
            in_threads = False
            return self._process_pool().submit(call_prepared, self._init, in_threads, fn, args, kwargs)
        return self._process_pool().submit(fn, *args, **kwargs)

    def _prepared(self, fn: Callable[..., T], *, in_threads: bool) -> Callable[..., T]:
        """``fn``, run once the initializer ran in its thread (``in_threads``) or this process."""
        init = self._init
        if init is None:
            return fn

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> T:
            return call_prepared(init, in_threads, fn, args, kwargs)  # type: ignore[no-any-return]

        return run

    def _on_loop(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        """``await fn(*args, **kwargs)`` on the executor's event loop (called under the lock)."""
        import asyncio  # noqa: PLC0415 - only for coroutine functions

        from .._backends.coroutines import awaited, start_loop  # noqa: PLC0415 - likewise

        if self._loop is None:
            self._loop, self._loop_thread = start_loop("concurrency_kit-auto-loop")
        if self._init is not None and self._loop_ready is None:
            from .._backends.coroutines import PreparedAsync  # noqa: PLC0415 - asyncio, only for coroutines

            self._loop_ready = PreparedAsync(fn, self._init)
        call = awaited(fn, args, kwargs) if self._loop_ready is None else _after(self._loop_ready, fn, args, kwargs)
        future: Future[Any] = asyncio.run_coroutine_threadsafe(call, self._loop)
        self._awaiting.add(future)
        future.add_done_callback(self._awaited)
        return future

    def _awaited(self, future: Future[Any]) -> None:
        with self._lock:
            self._awaiting.discard(future)
            self._stop_loop_when_idle()

    def _stop_loop_when_idle(self) -> None:
        """After shutdown, once no coroutine is left: stop the event loop (its thread then closes it)."""
        loop = self._loop
        if self._shutdown and not self._awaiting and loop is not None and not loop.is_closed():
            with suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(loop.stop)

    def _timed(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """Run an unknown function's call in this thread, timed; after ``TIMED_CALLS``, remember its kind."""
        began, began_cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            wall, cpu = timed_call(time.perf_counter() - began, time.thread_time() - began_cpu)  # or a test's
            key = _code_of(fn)
            with self._lock:
                timings = self._timings.setdefault(key, [])
                timings.append((wall, cpu))
                done = len(timings) >= TIMED_CALLS
                if done:
                    del self._timings[key]
            if done:
                measured = one_thread_measurement(len(timings), sum(w for w, _ in timings), sum(c for _, c in timings))
                learn(fn, Finished(kind_from_measurement(measured.cpu_share, None), measured))

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``map(fn, *iterables)``, as auto streams it: lazy, bounded, in order.

        Args:
            fn: a function of as many arguments as there are iterables.
            iterables: read lazily, as the stream needs items (endless ones too).
            timeout: seconds the whole iteration may take, from this call; then
                ``TimeoutError`` (worker processes running its items are stopped).
            chunksize: kept for the standard signature: ``1`` (the default) lets auto
                size the chunks by measuring; a larger value fixes them.
            buffersize: the most items taken from the iterables and not yet yielded
                (as Python 3.14's); default: auto's window.

        Returns:
            The results, in order.

        Raises:
            RuntimeError: the executor was shut down.
            ValueError: ``chunksize`` or ``buffersize`` below 1.
            TypeError: ``buffersize`` not an int.
        """
        from .._core.options import call_options  # noqa: PLC0415 - with the façade
        from .planning import open_iter  # noqa: PLC0415 - the façade imports this module's users, not this one

        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if buffersize is not None:
            if isinstance(buffersize, bool) or not isinstance(buffersize, int):
                raise TypeError("buffersize must be an integer or None")
            if buffersize < 1:
                raise ValueError("buffersize must be None or > 0")
        if len(iterables) == 1:  # fn itself, over the iterable itself (a list is measured as run_parallel would)
            function: Callable[[Any], Any] = fn
            items: Iterable[Any] = iterables[0]
        else:
            function = _Star(fn)
            sized = all(isinstance(each, Sized) for each in iterables)
            items = _Zipped(iterables) if sized else zip(*iterables, strict=False)
        options, iterator = call_options(
            function,
            items,
            started=time.monotonic(),
            mode=self._mode,
            workers=self._max_workers,
            chunksize=None if chunksize == 1 else chunksize,
            classifier=self._classifier,
            timeout=timeout,
            max_in_flight=buffersize,
            initializer=self._initializer,
            initargs=self._initargs,
            max_tasks_per_worker=self._limit,
        )
        stream = open_iter(function, items, options, iterator=iterator)
        return iter(stream)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:  # noqa: FBT001, FBT002 - the standard signature
        """Stop taking calls; with ``wait``, wait for those running; with ``cancel_futures``, cancel those queued."""
        with self._lock:
            self._shutdown = True
            pools: list[Executor] = [p for p in (self._threads, self._processes) if p is not None]
            if self._recycling is not None:
                pools += self._recycling.pools()
            awaiting = list(self._awaiting)
            self._stop_loop_when_idle()
        if cancel_futures:
            for future in awaiting:
                future.cancel()  # cancels its coroutine, even one that has started (an await can be interrupted)
        for pool in pools:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait and self._loop_thread is not None:
            wait_for(awaiting)
            self._loop_thread.join()


async def _after(ready: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``await fn(*args, **kwargs)`` once the event loop's run of the initializer is done (``ready``)."""
    from .._backends.coroutines import awaited  # noqa: PLC0415 - asyncio, only for coroutines

    await ready.ready()
    return await awaited(fn, args, kwargs)


def _run_here(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[T]:
    """``fn(*args, **kwargs)`` run now, in this thread, as a done future (serial mode)."""
    future: Future[T] = Future()
    future.set_running_or_notify_cancel()
    try:
        future.set_result(fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the future holds it, as an executor's would
        future.set_exception(exc)
    return future
