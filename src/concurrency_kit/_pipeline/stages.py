"""A pipeline's stages: what each one is (a value the builder makes), and the thread that drives it in a run.

    source ─▶ Inbox ─▶ [stage 0's driver: iter_parallel(StageCall, inbox)] ─▶ Inbox ─▶ … ─▶ Inbox ─▶ consumer
                         measured and run as any stream (_api/planning.open_iter)

A stage's driver thread runs the stage's stream over its input inbox and hands each
result's outputs to the next inbox, waiting while it is full. A ``batch`` stage's
driver gathers items into lists itself. Each driver tells the run (``budget_add``)
how many items an input became, so that the bound on items in flight holds across
stages: a ``filter`` that drops one frees its place, a ``flat_map`` that makes ten takes
nine more.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence, Sized
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol, cast, final

import attrs

from .._api.planning import open_iter
from .._backends.outcomes import Stopped
from .._backends.stage_calls import BATCH, MAP, AsyncStageCall, Failed, Fused, StageCall, stage_note
from .._core.kinds import TaskKind, is_coroutine_function
from .._core.options import CallOptions
from .._core.share import Share

if TYPE_CHECKING:
    from .._run.inbox import Inbox

__all__ = ["FUSED", "Driver", "Stage", "StageState", "stage_sizes", "stage_windows"]

#: The shape of stages fused into one.
FUSED = "fused"


@final
@attrs.frozen
class Stage:
    """One stage, as the builder made it.

    Attributes:
        name: its name in the report and in errors.
        shape: ``"map"``, ``"filter"``, ``"flat_map"`` or ``"batch"``.
        fn: the user's function (``None`` for a batch).
        options: the stage's checked options (``None`` for a batch).
        size: a batch's most items.
        members: the stages fused into this one (``fusing.py``), whose options it has.
        kind: the fused stages' kind, where one of them is known to compute.
    """

    name: str
    shape: str
    fn: Callable[[Any], Any] | None = None
    options: CallOptions | None = None
    size: int = 0
    members: tuple[Stage, ...] = ()
    kind: TaskKind | None = None

    @classmethod
    def fused(cls, members: tuple[Stage, ...], kind: TaskKind | None = None) -> Stage:
        """The stage that runs ``members`` (plain stages) one after the other, in one worker (``kind``: if known)."""
        if len(members) == 1:
            return members[0]
        name = "+".join(member.name for member in members)
        return cls(name, FUSED, options=members[-1].options, members=members, kind=kind)

    def call(self, *, collect: bool = False) -> Callable[[Any], Any]:
        """What its workers run: the function on ``(source index, item)`` pairs (``collect``: ``return_exceptions``).

        Fused stages' call is known to the run's memory by ``memo_of``: the same stages,
        in any pipeline, are remembered from one run to the next.
        """
        if self.members:
            calls = tuple(StageCall(member.fn, member.shape, member.name) for member in self.members if member.fn)
            kind = None if self.kind is None else self.kind.value
            return Fused(calls, kind, collect=collect, memo=memo_of(self, collect=collect))
        assert self.fn is not None
        if is_coroutine_function(self.fn):
            return AsyncStageCall(self.fn, self.shape, self.name)
        return StageCall(self.fn, self.shape, self.name)


@attrs.define
class StageState:
    """What a stage has done so far in a run (written by its driver, read by the report)."""

    mode: str = "starting"
    reason: str = ""
    share: Share | None = None  # its share of the budget, where it computes
    workers: int = 0
    done: int = 0  # inputs whose outputs it handed on
    items_out: int = 0
    seconds: float = 0.0  # a fused stage's: what its calls took in the workers
    started: float | None = None
    ended: float | None = None


class Run(Protocol):
    """What a driver needs of the run it is part of (``running.PipelineRun``)."""

    stop: Future[None]

    def budget_add(self, count: int) -> None:
        """``count`` more items in flight (fewer where negative)."""
        ...

    def fail(self, error: BaseException) -> None:
        """The run's first failure: everything stops."""
        ...

    def stopping(self) -> bool:
        """Whether the run is stopping."""
        ...

    def computes(self, share: Share, workers: int) -> None:
        """The stage of ``share`` computes, on ``workers`` workers: it joins the budget."""
        ...


@final
class Driver:
    """A stage's driver thread (``run`` is its target): its stream (or its batching) from ``inbox`` to ``out``.

    Args:
        run: the run it is part of.
        stage: what the stage is.
        state: what it did so far, for the report.
        inbox: its input.
        out: the next stage's input (the consumer's, for the last): ended when the driver ends.
        options: the stage's options in this run (``None`` for a batch).
        size: how many items its input has, where that is known.
        members: a fused stage's: each fused stage's own state, counted from what its workers say.
    """

    def __init__(  # noqa: PLR0913 - the stage's place in its run, by name
        self,
        run: Run,
        stage: Stage,
        state: StageState,
        *,
        inbox: Inbox,
        out: Inbox,
        options: CallOptions | None,
        size: int | None,
        members: Sequence[StageState] = (),
    ) -> None:
        self.run_, self.stage, self.state, self.members = run, stage, state, members
        self.inbox, self.out, self.options, self.size = inbox, out, options, size

    def run(self) -> None:
        """The thread's body: the stage until its input ends or the run stops; a failure stops the run."""
        self.state.started = time.monotonic()
        try:
            if self.stage.shape == BATCH:
                self.batch()
            else:
                assert self.options is not None
                self.stream(self.options)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - the run's failure, raised by its consumer
            if not self.run_.stopping():
                self.run_.fail(renoted(exc, self.stage.name, self.inbox))
        finally:
            self.state.ended = time.monotonic()
            self.out.end()

    def stream(self, options: CallOptions) -> None:
        """The stage's stream: each result's outputs, handed on."""
        state, inbox = self.state, self.inbox
        call = self.stage.call(collect=options.return_exceptions)
        with open_iter(call, inbox, options, iterator=inbox, stop=self.run_.stop, size=self.size) as stream:
            state.mode, state.workers, state.reason = stream.mode, stream.workers, stream.reason
            computing = stream.mode == "process" or (stream.mode == "thread" and stream.kind is TaskKind.GIL_FREE)
            if computing and options.share is not None:
                self.run_.computes(options.share, stream.workers)
            for result in stream:
                if type(result) is tuple:
                    made = cast("tuple[Any, ...]", result)  # type: ignore[redundant-cast]  # pyright: unknown
                    index, outputs = cast("tuple[int, list[Any]]", made[:2])
                    if len(made) == 3:  # a fused stage's: what each of its stages did
                        self.count_members(made[2])
                else:  # an exception collected in the item's place: past the later stages, to the output
                    error = renoted(result, self.stage.name, inbox)
                    index, outputs = origin(error), [Failed(error)]
                if not self.hand_on(index, outputs):
                    return

    def count_members(self, counts: tuple[tuple[int, int, float], ...]) -> None:
        """Count what each fused stage did on an item (its items in and out, its seconds) in its state."""
        for state, (taken, made, seconds) in zip(self.members, counts, strict=True):
            state.done += taken
            state.items_out += made
            state.seconds += seconds

    def batch(self) -> None:
        """Lists of up to ``stage.size`` items, in the order they come (the last one shorter)."""
        self.state.mode, self.state.workers = "inline", 1
        pending: list[Any] = []
        last = 0
        for index, item in self.inbox:
            if type(item) is Failed:
                if not self.hand_on(index, [item]):
                    return
                continue
            pending.append(item)
            last = index
            if len(pending) == self.stage.size:
                if not self.hand_on(last, [pending], inputs=len(pending)):
                    return
                pending = []
        if pending and not self.run_.stopping():
            self.hand_on(last, [pending], inputs=len(pending))

    def hand_on(self, index: int, outputs: list[Any], inputs: int = 1) -> bool:
        """Hand ``outputs``, made of ``inputs`` items, to the next stage: whether they all went (not once stopped)."""
        self.run_.budget_add(len(outputs) - inputs)
        self.state.done += inputs
        self.state.items_out += len(outputs)
        return all(self.out.put((index, output)) for output in outputs)


class _MemoKey:
    """What the memory of fused stages is kept under (weakly): it holds none of their functions."""

    __slots__ = ("__weakref__",)


#: The keys of fused stages' memory, by their first stage's function (weakly) and the rest
#: of what makes them: the same for the same stages in every run, of any pipeline built
#: of them. Gone with the function, and the memory with it.
_MEMO_KEYS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _MemoKey]] = weakref.WeakKeyDictionary()
_MEMO_LOCK = threading.Lock()


def memo_of(stage: Stage, *, collect: bool) -> object:
    """The key fused ``stage``'s memory is kept under (``None``: a function that takes no weak reference)."""
    first, *rest = stage.members
    key = (first.shape, first.name, tuple((m.fn, m.shape, m.name) for m in rest), stage.kind, collect)
    with _MEMO_LOCK:
        try:
            keys = _MEMO_KEYS.setdefault(first.fn, {})
        except TypeError:
            return None
        return keys.setdefault(key, _MemoKey())


#: The note the run engine gives a failure, naming its position in the stage's input.
_ENGINE_NOTE = re.compile(r"^concurrency_kit: raised by item (\d+): ")
_STAGE_NOTE = re.compile(r"^concurrency_kit: in pipeline stage .*, from source item (\d+)$")


def renoted(error: BaseException, stage: str, inbox: Inbox) -> BaseException:
    """``error`` with the pipeline's note (stage, source item) in place of the engine's (a position in the stage)."""
    notes: list[str] = getattr(error, "__notes__", [])
    position = None
    for note in list(notes):
        if (match := _ENGINE_NOTE.match(note)) is not None:
            position = int(match[1])
            notes.remove(note)
    if not any(_STAGE_NOTE.match(note) for note in notes):
        index = inbox.origin(position if position is not None else getattr(error, "index", -1))
        error.add_note(
            stage_note(stage, index) if index is not None else f"concurrency_kit: in pipeline stage {stage!r}"
        )
    return error


def origin(error: BaseException) -> int:
    """The source index a noted failure comes from (``-1``: unknown)."""
    for note in getattr(error, "__notes__", ()):
        if (match := _STAGE_NOTE.match(note)) is not None:
            return int(match[1])
    return -1


def stage_windows(stages: Sequence[Stage], bound: int) -> list[int]:
    """Each stage's window: the items it may hold, so that its share of the bound is whole items of its own.

    A stage after ``batch(n)`` takes lists of ``n``: its window is the bound over ``n``.
    """
    windows: list[int] = []
    per_item = 1
    for stage in stages:
        windows.append(max(1, bound // per_item))
        if stage.shape == BATCH:
            per_item *= stage.size
    return windows


def stage_sizes(source: object, stages: Sequence[Stage]) -> list[int | None]:
    """How many items each stage's input has, where that is known: the source's, through maps and batches."""
    size = len(source) if isinstance(source, Sized) else None
    sizes: list[int | None] = []
    for stage in stages:
        sizes.append(size)
        if size is not None and stage.shape == BATCH:
            size = -(-size // stage.size)
        elif stage.shape != MAP:
            size = None
    return sizes
