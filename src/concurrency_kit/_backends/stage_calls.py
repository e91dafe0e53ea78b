"""What a pipeline stage runs in a worker: the user's function on an item tagged with its source index.

    StageCall(fn, shape, name)((index, item)) → (index, outputs)
        map       outputs = [fn(item)]
        filter    outputs = [item] if fn(item) else []
        flat_map  outputs = list(fn(item))
    AsyncStageCall: the same for a coroutine function, awaited.
    Fused(calls)((index, item)) → (index, outputs, counts)
        the stages of ``calls`` one after the other, in one worker: each output of
        one is an input of the next (fused stages: no queue between them); ``counts``
        says what each of them took, made and how long it took (for the report)

Every stage's items are ``(source index, item)`` pairs, and its results ``(source index,
outputs)``: the pipeline knows which source item each result comes from however the
stage's units finish, and a failure is noted with it (and with the stage's name) where
it is raised. A ``Failed`` item (a failure collected by ``return_exceptions`` in an
earlier stage) is handed on as it is, so that it keeps its place in source order.

A failure takes the place of the one item it failed on, wherever the stage runs
(``outputs``): fused after a ``flat_map``, one failing element does not cost its
siblings their place, as it would not in stages of their own.

Light to import, as ``item_calls`` is: a worker process rebuilds them.
"""

from __future__ import annotations

from time import perf_counter

#: ``typing.TYPE_CHECKING``, without importing typing (a tenth of a worker's start-up).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

__all__ = [
    "BATCH",
    "FILTER",
    "FLAT_MAP",
    "MAP",
    "AsyncStageCall",
    "Failed",
    "Fused",
    "StageCall",
    "outputs",
    "stage_note",
]

#: The shapes of a stage's outputs (a batch's are made by the pipeline itself, with no function).
MAP, FILTER, FLAT_MAP, BATCH = "map", "filter", "flat_map", "batch"


class Failed:
    """An item's exception collected by ``return_exceptions``, on its way to the output past the later stages."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self) -> tuple[type[Failed], tuple[BaseException]]:
        return Failed, (self.error,)


def stage_note(stage: str, index: int) -> str:
    """The note a pipeline's failure carries: its stage and its source item."""
    return f"concurrency_kit: in pipeline stage {stage!r}, from source item {index}"


def _shaped(shape: str, item: Any, result: Any) -> list[Any]:
    """A stage's outputs for ``item``, of which ``result`` is ``fn(item)``."""
    if shape == MAP:
        return [result]
    if shape == FILTER:
        return [item] if result else []
    return list(result)


class StageCall:
    """A stage's function, on ``(index, item)`` pairs: ``(index, outputs)`` (see the module's docstring)."""

    __slots__ = ("fn", "name", "shape")

    def __init__(self, fn: Callable[[Any], Any], shape: str, name: str) -> None:
        self.fn, self.shape, self.name = fn, shape, name

    def __call__(self, tagged: tuple[int, Any]) -> tuple[int, list[Any]]:
        index, item = tagged
        if type(item) is Failed:
            return index, [item]
        try:
            return index, _shaped(self.shape, item, self.fn(item))
        except Exception as exc:
            _note(exc, self.name, index)
            raise

    def __reduce__(self) -> tuple[type[StageCall], tuple[Any, str, str]]:
        from .pickling import sendable  # noqa: PLC0415 - the parent's side only

        return StageCall, (sendable(self.fn), self.shape, self.name)


class AsyncStageCall:
    """A coroutine function's stage: ``StageCall``, awaited."""

    __slots__ = ("fn", "name", "shape")

    def __init__(self, fn: Callable[[Any], Awaitable[Any]], shape: str, name: str) -> None:
        self.fn, self.shape, self.name = fn, shape, name

    async def __call__(self, tagged: tuple[int, Any]) -> tuple[int, list[Any]]:
        index, item = tagged
        if type(item) is Failed:
            return index, [item]
        try:
            return index, _shaped(self.shape, item, await self.fn(item))
        except Exception as exc:
            _note(exc, self.name, index)
            raise


class Fused:
    """Stages fused into one: each one's outputs are the next one's inputs, in the same worker.

    With ``collect`` (``return_exceptions``), a stage's failure on an item takes that
    item's place (``outputs``), as it would between stages of their own.
    """

    __slots__ = ("__concurrency_kit_kind__", "__concurrency_kit_memo__", "calls", "collect")

    def __init__(
        self, calls: tuple[StageCall, ...], kind: str | None = None, *, collect: bool = False, memo: object = None
    ) -> None:
        self.calls, self.collect = calls, collect
        #: The kind the pipeline knows the stages by (one of them computes), read as a
        #: declaration is (``_decide/classify.py``): measured beside the other stages'
        #: threads, a computing stage could read as a waiting one.
        self.__concurrency_kit_kind__ = kind
        #: What the run's memory of these stages, measured as one, is kept under
        #: (``_decide/memory.py``): the same for the same stages in every run, where no
        #: memory of one stage's function stands for them all (``None``: this call's own).
        self.__concurrency_kit_memo__ = memo

    def __reduce__(self) -> tuple[Callable[..., Fused], tuple[tuple[StageCall, ...], bool]]:
        return _fused, (self.calls, self.collect)

    def __call__(self, tagged: tuple[int, Any]) -> tuple[int, list[Any], tuple[tuple[int, int, float], ...]]:
        """``(index, outputs, counts)``: ``counts`` has each stage's items in, items out and seconds on this item."""
        index, items = tagged[0], [tagged[1]]
        counts: list[tuple[int, int, float]] = []
        for call in self.calls:
            began, taken = perf_counter(), len(items)
            items = [output for item in items for output in outputs(call, (index, item), collect=self.collect)]
            counts.append((taken, len(items), perf_counter() - began))
        return index, items, tuple(counts)


def _fused(calls: tuple[StageCall, ...], collect: bool) -> Fused:  # noqa: FBT001 - unpickling's call
    """A ``Fused`` rebuilt in a worker."""
    return Fused(calls, collect=collect)


def outputs(
    call: Callable[[tuple[int, Any]], tuple[int, list[Any]]], tagged: tuple[int, Any], *, collect: bool
) -> list[Any]:
    """``call``'s outputs for one ``(index, item)``; with ``collect``, its failure in their place (a ``Failed``).

    Raises:
        Exception: its failure, without ``collect``.
    """
    try:
        return call(tagged)[1]
    except Exception as exc:
        if not collect:
            raise
        return [Failed(exc)]


def _note(exc: BaseException, stage: str, index: int) -> None:
    """Note ``exc`` with its stage and source item, once."""
    note = stage_note(stage, index)
    if note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)
