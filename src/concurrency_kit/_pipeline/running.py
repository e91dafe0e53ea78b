"""One run of a pipeline: the source's reader, a driver thread per stage, the consumer, and how they stop.

    reader thread ── budget.acquire() ─▶ Inbox ─▶ stage drivers (stages.py) ─▶ … ─▶ Inbox ─▶ results()
      (waits while max_in_flight items            each waits while the next        the consumer's generator:
       are taken and not yet yielded)             inbox is full                    yields, frees their places

The bound: ``budget`` counts the items in the pipeline (taken from the source, or made
from one by a ``flat_map``, and not yet yielded or dropped); the reader takes a new
item only while fewer than ``max_in_flight`` are. So the source is never read far ahead
of a slow consumer, however many stages there are.

Stopping, for every reason (the end, a failure in any stage or in the source, the
consumer's ``close``, ``break``, Ctrl-C, the timeout): ``halt`` sets the stop future
each stage's stream watches (its engine stops, its worker processes are killed), wakes
every thread waiting on an inbox or on the budget, and the reader closes the source in
its own thread (its ``finally`` runs). The consumer then waits for every thread to end.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future, InvalidStateError
from typing import Any, final

import attrs

from .._backends.outcomes import Stopped
from .._backends.stage_calls import BATCH, MAP, Failed
from .._run.inbox import Inbox
from .report import PipelineReport, StageReport, bottleneck_of
from .stages import Driver, Stage, StageState

__all__ = ["PipelineRun", "StageProgress"]

#: A progress callable: told ``(stage name, done, total)`` in the consumer's thread.
StageProgress = Callable[[str, int, "int | None"], object]

#: How long the consumer waits for a result before it looks at the clock and the progress again.
_POLL_SECONDS = 0.1
#: How long stopping waits for each of the run's threads (a source that blocks in
#: ``next`` cannot be interrupted: its thread is left to end by itself, as a daemon).
_JOIN_SECONDS = 5.0


@final
class _Budget:
    """Items in the pipeline: taken from the source (or made by a ``flat_map``) and not yet yielded or dropped."""

    def __init__(self, bound: int) -> None:
        self.bound, self.held, self.stopped = bound, 0, False
        self.lock = threading.Condition()

    def acquire(self) -> bool:
        """One more item from the source, once there is room: whether the run goes on."""
        with self.lock:
            while self.held >= self.bound and not self.stopped:
                self.lock.wait()
            self.held += 1
            return not self.stopped

    def add(self, count: int) -> None:
        with self.lock:
            self.held += count
            if count < 0:
                self.lock.notify_all()

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.lock.notify_all()


@final
@attrs.frozen
class RunShape:
    """How a run goes: the options of ``Pipeline.stream`` (checked)."""

    ordered: bool
    collect: bool
    timeout: float | None
    bound: int
    progress: bool | StageProgress | None


class PipelineRun:
    """A pipeline's one run: start it with ``results()`` (the consumer's generator)."""

    def __init__(
        self,
        source: Iterable[Any] | AsyncIterable[Any],
        stages: Sequence[Stage],
        shape: RunShape,
        options: Callable[[int, int], Any],
    ) -> None:
        self.source, self.stages, self.shape = source, stages, shape
        windows = _windows(stages, shape.bound)
        self.inboxes = [Inbox(max(2, window // 2), remember=window + 128) for window in windows]
        self.inboxes.append(Inbox(max(2, shape.bound // 4)))  # the consumer's
        sizes = _sizes(source, stages)
        self.drivers = [
            Driver(
                self,
                stage,
                inbox=self.inboxes[number],
                out=self.inboxes[number + 1],
                options=options(number, windows[number]),
                size=sizes[number],
            )
            for number, stage in enumerate(stages)
        ]
        self.states = [driver.state for driver in self.drivers]
        self.budget = _Budget(shape.bound)
        self.stop: Future[None] = Future()
        self.failure: BaseException | None = None
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.started: float | None = None
        self.ended: float | None = None
        self.yielded = 0

    # The run's side, for the stage drivers (``stages.Run``).

    def budget_add(self, count: int) -> None:
        self.budget.add(count)

    def fail(self, error: BaseException) -> None:
        """The run's first failure: kept for the consumer, and everything stops."""
        with self.lock:
            if self.failure is None:
                self.failure = error
        self.halt()

    def stopping(self) -> bool:
        return self.stop.done()

    def halt(self) -> None:
        """Stop every stage, wake every wait (see the module's docstring)."""
        try:
            self.stop.set_result(None)
        except InvalidStateError:
            return
        self.budget.stop()
        for inbox in self.inboxes:
            inbox.close()

    # Starting.

    def start(self) -> None:
        """The reader's thread and each stage's."""
        self.started = time.monotonic()
        targets: list[tuple[str, Callable[[], None]]] = [("source", self.read)]
        targets += [(driver.stage.name, driver.run) for driver in self.drivers]
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"concurrency_kit pipeline: {name}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def read(self) -> None:
        """The reader's thread: source items into the first inbox while the budget has room."""
        if isinstance(self.source, AsyncIterable):
            asyncio.run(self.read_async(self.source))
            return
        iterator = iter(self.source)
        index = 0
        try:
            while self.budget.acquire():
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                if not self.inboxes[0].put((index, item)):
                    return
                index += 1
        except BaseException as exc:  # noqa: BLE001 - the run's failure, raised by its consumer
            self.fail(_source_noted(exc, index))
        finally:
            self.inboxes[0].end()
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's finally runs, in this thread

    async def read_async(self, source: AsyncIterable[Any]) -> None:
        """The reader, for an async iterable: on an event loop of its own, in the reader's thread."""
        iterator = aiter(source)
        index = 0
        try:
            while self.budget.acquire():
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return
                if not self.inboxes[0].put((index, item)):
                    return
                index += 1
        except BaseException as exc:  # noqa: BLE001 - the run's failure, raised by its consumer
            self.fail(_source_noted(exc, index))
        finally:
            self.inboxes[0].end()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    # The consumer.

    def results(self) -> Iterator[Any]:
        """The consumer's generator: the outputs of the last stage; on leaving it, everything stops.

        Raises:
            TimeoutError: ``timeout`` passed (everything was stopped).
            Exception: the first failure of a stage or of the source, noted with where it came from.
        """
        self.start()
        out, shape = self.inboxes[-1], self.shape
        deadline = None if shape.timeout is None else time.monotonic() + shape.timeout
        told = _told(self.stages, progress=shape.progress)
        try:
            while True:
                wait = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - time.monotonic())
                got = out.next_within(max(0.0, wait))
                if told is not None:
                    told(self.states)
                if got is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise self.timed_out()
                    continue
                if not got:
                    break
                _, value = got[0]
                self.budget.add(-1)
                self.yielded += 1
                yield value.error if type(value) is Failed else value
            if self.failure is not None:
                raise self.failure
            if self.stop.done():
                raise Stopped
        finally:
            self.halt()
            self.join()
            if told is not None:
                told.close(self.states)

    def timed_out(self) -> TimeoutError:
        return TimeoutError(
            f"the pipeline did not finish within its timeout of {self.shape.timeout:g} s "
            f"({self.yielded} results read); its stages were stopped"
        )

    def join(self) -> None:
        """Wait for the run's threads to end (a bounded time each)."""
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(_JOIN_SECONDS)
        self.ended = time.monotonic()

    # The report.

    def report(self) -> PipelineReport:
        """Where the time went, so far."""
        now = time.monotonic() if self.ended is None else self.ended
        seconds = 0.0 if self.started is None else now - self.started
        records = [self.record(number, now) for number in range(len(self.stages))]
        return PipelineReport(records, bottleneck_of(records, seconds), [], seconds)

    def record(self, number: int, now: float) -> StageReport:
        """Stage ``number``'s record."""
        state, inbox, out = self.states[number], self.inboxes[number], self.inboxes[number + 1]
        began = state.started
        ran = 0.0 if began is None else (state.ended or now) - began
        waiting, blocked = min(ran, inbox.waited()), min(ran, out.blocked)
        return StageReport(
            name=self.stages[number].name,
            mode=state.mode,
            workers=state.workers,
            items_in=inbox.taken,
            items_out=state.items_out,
            busy=max(0.0, ran - waiting - blocked),
            waiting=waiting,
            blocked=blocked,
            rate=inbox.taken / ran if ran > 0 else 0.0,
            reason=state.reason,
        )


def _sizes(source: object, stages: Sequence[Stage]) -> list[int | None]:
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


def _windows(stages: Sequence[Stage], bound: int) -> list[int]:
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


def _source_noted(error: BaseException, index: int) -> BaseException:
    error.add_note(f"concurrency_kit: raised by the pipeline's source, reading item {index}")
    return error


class _Told:
    """Progress, per stage, told in the consumer's thread: tqdm bars or the caller's callable."""

    def __init__(self, stages: Sequence[Stage], *, progress: bool | StageProgress) -> None:
        self.names = [stage.name for stage in stages]
        self.callback = None if progress is True else progress
        self.told = [-1] * len(stages)
        self.bars: list[Any] = []
        if progress is True:
            from tqdm import tqdm  # noqa: PLC0415 - an optional extra, imported when asked for

            self.bars = [tqdm(desc=name, unit="item", position=n) for n, name in enumerate(self.names)]

    def __call__(self, states: Sequence[StageState]) -> None:
        for number, state in enumerate(states):
            if state.done == self.told[number]:
                continue
            self.told[number] = state.done
            if self.bars:
                bar = self.bars[number]
                bar.set_description(f"{self.names[number]} ({state.mode})", refresh=False)
                bar.update(state.done - bar.n)
            elif callable(self.callback):
                self.callback(self.names[number], state.done, None)

    def close(self, states: Sequence[StageState]) -> None:
        self(states)
        for bar in self.bars:
            bar.close()


def _told(stages: Sequence[Stage], *, progress: bool | StageProgress | None) -> _Told | None:
    if progress is None or progress is False:
        return None
    return _Told(stages, progress=progress)
