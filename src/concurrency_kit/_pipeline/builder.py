"""The façade of pipelines: ``pipeline(source)``, its builder methods, and the ways to run it.

How a pipeline is made and run::

    pipeline(urls).map(fetch).filter(ok).flat_map(rows).batch(100).map(store)
      each method: a new Pipeline with one more Stage (stages.py), its options checked now
    for row in p / p.run() / p.stream(...) / p.arun() / p.astream()
      → a PipelineRun (running.py): the pass, fusion, a thread per stage, each stage's
        items measured and run as iter_parallel runs a stream; the report (report.py)
        says where the time went
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, Generic, TypeVar, final, overload

import attrs
from typing_extensions import TypedDict, Unpack

from .._api.async_stream import AsyncResultStream
from .._backends.stage_calls import BATCH, FILTER, FLAT_MAP, MAP
from .._core.options import CallOptions, ClassifierFn, ModeName, call_options, check_count, check_timeout
from .._core.retrying import RetryDelay, RetryOn
from .._run.stream import NEEDS_TQDM, ResultStream
from .progress import StageProgress
from .report import PipelineReport, StageReport
from .running import PipelineRun, RunShape
from .stages import Stage

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "Pipeline", "pipeline"]

T = TypeVar("T")
R = TypeVar("R")

#: The most items taken from the source and not yet yielded, by default (at least four
#: of the largest ``batch``'s lists): enough for a stage of many threads to keep them
#: busy, little enough to keep memory flat behind a slow consumer.
DEFAULT_MAX_IN_FLIGHT = 256


def pipeline(source: Iterable[T] | AsyncIterable[T]) -> Pipeline[T]:
    """A pipeline over ``source``: add stages with its methods, then iterate it (or ``run()`` it).

    Args:
        source: any iterable, read lazily (endless ones included), or an async iterable.

    Raises:
        TypeError: ``source`` is neither iterable nor async iterable.
    """
    if not isinstance(source, Iterable | AsyncIterable):
        raise TypeError(f"a pipeline's source must be iterable or async iterable, got {type(source).__name__}")
    one_shot = isinstance(source, Iterator) or (not isinstance(source, Iterable) and aiter(source) is source)
    return Pipeline(_Source(source, one_shot=one_shot), ())


@attrs.define
class _Source:
    """A pipeline's source, shared by the pipelines built from one ``pipeline()`` call."""

    items: Iterable[Any] | AsyncIterable[Any]
    one_shot: bool
    used: bool = False

    def take(self) -> Iterable[Any] | AsyncIterable[Any]:
        """The items, for a run.

        Raises:
            RuntimeError: a one-shot iterator that an earlier run already read.
        """
        if self.one_shot and self.used:
            raise RuntimeError(
                "this pipeline's source is a one-shot iterator that an earlier run already read; "
                "build the pipeline on a list, or on an iterable that can be iterated again"
            )
        self.used = True
        return self.items


@final
class Pipeline(Generic[T]):
    """Stages joined by bounded queues, each measured and run as [`iter_parallel`][concurrency_kit.iter_parallel] runs.

    Made by [`pipeline`][concurrency_kit.pipeline]. Each builder method returns a new
    pipeline and leaves this one as it is. Iterating it runs it; see
    [pipelines](pipelines.md).
    """

    __slots__ = ("_last", "_source", "_stages")

    def __init__(self, source: _Source, stages: tuple[Stage, ...]) -> None:
        self._source, self._stages = source, stages
        self._last: list[PipelineRun] = []  # the latest run, for report()

    # Building.

    @overload
    def map(
        self, fn: Callable[[T], Awaitable[R]], mode: ModeName = "auto", **options: Unpack[StageOptions]
    ) -> Pipeline[R]: ...
    @overload
    def map(self, fn: Callable[[T], R], mode: ModeName = "auto", **options: Unpack[StageOptions]) -> Pipeline[R]: ...
    def map(self, fn: Callable[[T], Any], mode: ModeName = "auto", **options: Unpack[StageOptions]) -> Pipeline[Any]:
        """A stage of ``fn(item)`` for each item.

        Args:
            fn: a one-argument function, or a coroutine function.
            mode: ``"auto"`` (measured), or the mode to run it in, as in
                [`iter_parallel`][concurrency_kit.iter_parallel].
            **options: ``name`` (default ``fn.__name__``), and the stage options of
                [`iter_parallel`][concurrency_kit.iter_parallel]: ``workers``, ``chunksize``, ``classifier``,
                ``executor``, ``task_timeout``, ``retries``, ``retry_on``, ``retry_delay``,
                ``initializer``, ``initargs``, ``max_tasks_per_worker``.

        Raises:
            TypeError: an unknown option, or a bad one (as ``iter_parallel`` says).
            ValueError: a bad option's value (likewise).
        """
        return self._with(_stage(MAP, fn, mode, dict(options), self._stages))

    def filter(self, fn: Callable[[T], Any], mode: ModeName = "auto", **options: Unpack[StageOptions]) -> Pipeline[T]:
        """A stage that keeps the items for which ``fn(item)`` is truthy (the options: ``map``'s)."""
        return self._with(_stage(FILTER, fn, mode, dict(options), self._stages))

    def flat_map(
        self, fn: Callable[[T], Iterable[R]], mode: ModeName = "auto", **options: Unpack[StageOptions]
    ) -> Pipeline[R]:
        """A stage that hands on each element of the iterable ``fn(item)`` returns, in order (options: ``map``'s)."""
        return self._with(_stage(FLAT_MAP, fn, mode, dict(options), self._stages))

    def batch(self, size: int, *, name: str | None = None) -> Pipeline[list[T]]:
        """Lists of up to ``size`` items (the last may be shorter).

        Raises:
            TypeError: ``size`` is not an int.
            ValueError: ``size`` is below 1.
        """
        check_count("size", size)
        return self._with(Stage(_unique(name or f"batch({size})", self._stages), BATCH, size=size))

    def _with(self, stage: Stage) -> Pipeline[Any]:
        return Pipeline(self._source, (*self._stages, stage))

    # Running.

    def __iter__(self) -> Iterator[T]:
        return self.stream()

    def run(self, **options: Unpack[StreamOptions]) -> list[T]:
        """Run it to the end: its results as a list (``options``: those of ``stream``)."""
        with self.stream(**options) as results:
            return list(results)

    def stream(
        self,
        *,
        ordered: bool = True,
        progress: bool | StageProgress | None = None,
        timeout: float | None = None,
        return_exceptions: bool = False,
        max_in_flight: int | None = None,
    ) -> ResultStream[T]:
        """Run it: its results as they come, as a [`ResultStream`][concurrency_kit.ResultStream] (close it to stop).

        Args:
            ordered: results in source order (``flat_map``'s elements in their item's
                place); with ``False``, as they come.
            progress: ``True`` for a tqdm bar per stage; or a callable told
                ``(stage name, done, total)`` in the consumer's thread (``total``: the
                items the stage takes where a sized source says, through ``map`` and
                ``batch`` stages; else ``None``).
            timeout: seconds the whole run may take; then everything stops and
                ``TimeoutError`` is raised.
            return_exceptions: a failing item's exception takes its place in the output,
                and goes through no later stage; the run goes on.
            max_in_flight: the most items taken from the source and not yet yielded
                (default ``DEFAULT_MAX_IN_FLIGHT``, and at least four of the largest batch).

        Raises:
            TypeError: a bad argument's type.
            ValueError: ``max_in_flight`` below 1 or below a batch's size, or a timeout that is not positive.
            RuntimeError: a one-shot source that an earlier run read.
        """
        shape = self._shape(
            ordered=ordered,
            progress=progress,
            timeout=timeout,
            return_exceptions=return_exceptions,
            max_in_flight=max_in_flight,
        )
        run = PipelineRun(self._source.take(), self._stages, shape, self._options(shape))
        self._last[:] = [run]
        return ResultStream(run.results(), "pipeline", f"a pipeline of {len(self._stages)} stages")

    async def arun(self, **options: Unpack[StreamOptions]) -> list[T]:
        """``run()``, awaited inside a running event loop."""
        async with self.astream(**options) as results:
            return [result async for result in results]

    def astream(self, **options: Unpack[StreamOptions]) -> AsyncResultStream[T]:
        """``stream()``, for ``async for`` inside a running event loop (an async source is read on that loop)."""
        from .._run.offload import HANDOFF_BOUND, Offloaded  # noqa: PLC0415 - threads, only when asked for

        shape = self._shape(**options)
        source = self._source.take()

        def open_stream(stop: Future[None], items: Iterable[Any]) -> ResultStream[Any]:
            run = PipelineRun(items, self._stages, shape, self._options(shape))
            self._last[:] = [run]
            stop.add_done_callback(lambda _: run.halt())
            return ResultStream(run.results(), "pipeline", f"a pipeline of {len(self._stages)} stages")

        return AsyncResultStream(Offloaded(open_stream, source, bound=HANDOFF_BOUND), progress=None, total=None)

    def report(self) -> PipelineReport:
        """Where the latest run's time went (during the run too); before a run, every stage at zero."""
        if self._last:
            return self._last[0].report()
        stages = [StageReport(stage.name, "not run", 0, 0, 0, 0.0, 0.0, 0.0, 0.0) for stage in self._stages]
        return PipelineReport(stages, None, [], 0.0)

    def _shape(self, **options: Unpack[StreamOptions]) -> RunShape:
        """``stream()``'s options, checked."""
        timeout, progress = options.get("timeout"), options.get("progress")
        max_in_flight = options.get("max_in_flight")
        seconds = None if timeout is None else check_timeout(timeout)
        batches = [stage.size for stage in self._stages if stage.shape == BATCH]
        if max_in_flight is None:
            bound = max(DEFAULT_MAX_IN_FLIGHT, 4 * max(batches, default=1))
        else:
            check_count("max_in_flight", max_in_flight)
            bound = max_in_flight
            if batches and bound < max(batches):
                raise ValueError(f"max_in_flight={bound} cannot fill a batch of {max(batches)}: give at least that")
        if progress is not None and not isinstance(progress, bool) and not callable(progress):
            raise TypeError(f"progress must be True, False, None or a callable, got {type(progress).__name__}")
        if progress is True:
            _need_tqdm()
        ordered, collect = options.get("ordered", True), options.get("return_exceptions", False)
        return RunShape(bool(ordered), bool(collect), seconds, bound, progress)

    def _options(self, shape: RunShape) -> Callable[[Stage, int], CallOptions | None]:
        """A stage's options in a run of ``shape``, with its window (``None`` for a batch)."""

        def options(stage: Stage, window: int) -> CallOptions | None:
            if stage.options is None:
                return None
            return attrs.evolve(
                stage.options,
                started=time.monotonic(),
                ordered=shape.ordered,
                return_exceptions=shape.collect,
                max_in_flight=window,
            )

        return options


class StreamOptions(TypedDict, total=False):
    """The keyword options of ``stream``, ``run``, ``arun`` and ``astream``."""

    ordered: bool
    progress: bool | StageProgress | None
    timeout: float | None
    return_exceptions: bool
    max_in_flight: int | None


class StageOptions(TypedDict, total=False):
    """The keyword options of ``map``, ``filter`` and ``flat_map``: ``iter_parallel``'s, per stage, and a name."""

    name: str
    workers: int
    chunksize: int
    classifier: ClassifierFn
    executor: Executor
    task_timeout: float
    retries: int
    retry_on: RetryOn
    retry_delay: RetryDelay
    initializer: Callable[..., object]
    initargs: tuple[Any, ...]
    max_tasks_per_worker: int


#: The stage options that go to ``iter_parallel``'s checks.
_STAGE_OPTIONS = frozenset(StageOptions.__annotations__) - {"name"}


def _stage(
    shape: str, fn: Callable[[Any], Any], mode: str, options: dict[str, Any], stages: tuple[Stage, ...]
) -> Stage:
    """A stage of ``fn``, its options checked as ``iter_parallel`` checks them.

    Raises:
        TypeError: an unknown option, or one ``iter_parallel`` would reject.
        ValueError: likewise.
    """
    name = options.pop("name", None)
    unknown = set(options) - _STAGE_OPTIONS
    if unknown:
        raise TypeError(f"unknown stage option(s): {', '.join(sorted(unknown))}")
    checked, _ = call_options(fn, (), started=0.0, mode=mode, **options)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    default = getattr(fn, "__name__", None) or type(fn).__name__
    return Stage(_unique(name or default, stages), shape, fn, checked)


def _unique(name: str, stages: tuple[Stage, ...]) -> str:
    """``name``, or ``name-2``, ``name-3``… where an earlier stage has it."""
    taken = {stage.name for stage in stages}
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    return candidate


def _need_tqdm() -> None:
    if importlib.util.find_spec("tqdm") is None:
        raise ImportError(NEEDS_TQDM)
